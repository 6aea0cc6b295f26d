"""Every training task: its encoder produces the input its network expects, and a network built
from a checkpoint's spec is the same network."""
import numpy as np
import pytest

from minisnn import models
from minisnn.tasks import TASKS, get_task

RAW = {   # a fake batch of 2 in each dataset's loaded format
    "smnist": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-conv": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-vgg": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-resnet": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-sew-resnet": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-plain": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-sew-resnet-direct": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "mnist-plain-direct": lambda r: r.normal(size=(2, 28, 28)).astype(np.float32),
    "cifar10": lambda r: r.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8),
    "cifar100": lambda r: r.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8),
    "tinyimagenet": lambda r: r.integers(0, 256, (2, 3, 64, 64)).astype(np.uint8),
    "cifar100-resnet50": lambda r: r.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8),
    "imagenette": lambda r: r.integers(0, 256, (2, 3, 64, 64)).astype(np.uint8),
    "dvscifar10": lambda r: r.integers(0, 4, (2, 20, 2, 64, 64)).astype(np.uint8),
}
INPUT = {"smnist": (1,), "mnist": (784,), "mnist-conv": (1, 28, 28), "mnist-vgg": (1, 28, 28),
         "mnist-resnet": (1, 28, 28), "mnist-sew-resnet": (1, 28, 28), "mnist-plain": (1, 28, 28),
         "mnist-sew-resnet-direct": (1, 28, 28), "mnist-plain-direct": (1, 28, 28), "cifar10": (3, 32, 32),
         "cifar100": (3, 32, 32), "tinyimagenet": (3, 64, 64), "dvscifar10": (2, 64, 64),
         "cifar100-resnet50": (3, 32, 32), "imagenette": (3, 64, 64)}


DIRECT = {get_task("mnist-sew-resnet-direct").encode}


def test_every_task_is_covered():
    assert set(RAW) == set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_encoder_shape_and_values(name):
    task, rng = get_task(name), np.random.default_rng(0)
    T = task.defaults["T"]
    images = RAW[name](rng)
    if task.augment:
        images = task.augment(images, rng)
    x = task.encode(images, T, rng)
    assert x.shape == (T, 2) + INPUT[name]
    if task.encode in DIRECT:   # the image itself at every step
        assert all(np.array_equal(x_t[:, 0], images) for x_t in x)
    elif name != "smnist":   # every other input is a spike code in {-1, 0, 1}
        assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("name", ["mnist", "mnist-conv", "mnist-vgg", "mnist-resnet", "mnist-sew-resnet", "mnist-plain",
                                  "mnist-sew-resnet-direct", "mnist-plain-direct",
                                  "cifar10", "tinyimagenet", "dvscifar10", "cifar100-resnet50", "imagenette"])
def test_network_rebuilds_from_its_spec(name):
    task = get_task(name)
    net = task.build(T=2, norm="bntt", leak=0.9, threshold=1.0, surrogate="triangle", seed=3)
    again = models.build(net.spec)
    for (k1, a), (k2, b) in zip(net.named_parameters(), again.named_parameters()):
        assert k1 == k2 and np.array_equal(a.data, b.data)
    first = next(p for _, p in net.named_parameters())
    assert first.data.shape[1] == INPUT[name][0]


@pytest.mark.parametrize("name, classes, stem", [("cifar100-resnet50", 100, (64, 3, 3, 3)),
                                                 ("imagenette", 10, (64, 3, 7, 7))])
def test_resnet50_tasks(name, classes, stem):
    """ResNet-50 at T = 10: the CIFAR stem at 32 px, the ImageNet stem (conv 7×7/2) at 64 px."""
    task = get_task(name)
    assert task.defaults["T"] == 10 and task.augment is not None
    net = task.build(T=2, norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle", seed=0)
    params = [p.data.shape for _, p in net.named_parameters()]
    assert net.spec["model"] == "resnet50" and params[0] == stem and params[-1] == (classes, 2048)


def test_conv_task_forward_gives_class_scores():
    task, rng = get_task("mnist-conv"), np.random.default_rng(1)
    net = task.build(T=2, norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle", seed=0)
    logits = net.forward(task.encode(RAW["mnist-conv"](rng), 2, rng), train=True)
    assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


def test_the_deep_mnist_network_has_six_bntt_layers_and_five_conv_blocks():
    from minisnn.layers import BNTT, Conv2d
    net = get_task("mnist-vgg").build(T=25, norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle", seed=0)
    kinds = [type(layer) for layer in net.layers]
    assert kinds.count(BNTT) == 6 and kinds.count(Conv2d) == 5
    assert net.forward(np.zeros((2, 1, 1, 28, 28), np.float32), train=True).shape == (1, 10)


def test_recipes_name_their_source_and_explicit_values_win():
    from minisnn.training import TrainConfig, UsageError
    _, code = TrainConfig("mnist-vgg").resolve()
    _, paper = TrainConfig("mnist-vgg", recipe="paper").resolve()
    _, mixed = TrainConfig("mnist-vgg", recipe="paper", weight_decay=1e-3).resolve()
    assert (code["recipe"], code["lr"], code["weight_decay"]) == ("code", 0.1, 1e-4)
    assert (paper["recipe"], paper["lr"], paper["weight_decay"], paper["momentum"]) == ("paper", 0.3, 5e-4, 0.9)
    assert (mixed["lr"], mixed["weight_decay"]) == (0.3, 1e-3)
    with pytest.raises(UsageError, match="unknown recipe"):
        TrainConfig("mnist", recipe="blog").resolve()


def test_smnist_schedule_and_evaluation_defaults():
    """sMNIST's default ÷10 fractions are its own (0.8, 0.925 of 40 epochs: after 32 and 37); every
    other task, and --recipe paper anywhere, divides at 50/70/90 %; --milestones still wins."""
    from minisnn.optim import step_schedule
    from minisnn.training import TrainConfig
    _, smnist = TrainConfig("smnist").resolve()
    lrs = [step_schedule(smnist["lr"], e, smnist["epochs"], smnist["drops"]) for e in range(smnist["epochs"])]
    assert (smnist["epochs"], smnist["drops"]) == (40, [0.8, 0.925])
    assert lrs.index(min(lrs[:33])) == 32 and lrs[31] == 0.1 and lrs[36] == pytest.approx(0.01)
    assert lrs[37] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3)
    assert TrainConfig("smnist", recipe="paper").resolve()[1]["drops"] == [0.5, 0.7, 0.9]
    assert TrainConfig("mnist-vgg").resolve()[1]["drops"] == [0.5, 0.7, 0.9]
    assert TrainConfig("smnist", milestones=[3]).resolve()[1]["milestones"] == [3]
    # its evaluation: the first 2000 test digits between epochs, all of them every 5 epochs and at the end
    assert (smnist["eval_samples"], smnist["full_eval_every"]) == (2000, 5)
    _, everything = TrainConfig("smnist", eval_samples=10000, full_eval_every=1).resolve()
    assert (everything["eval_samples"], everything["full_eval_every"]) == (10000, 1)
    _, vgg = TrainConfig("mnist-vgg").resolve()
    assert (vgg["eval_samples"], vgg["full_eval_every"]) == (None, 0)


def test_unknown_task_and_wrong_T_are_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        get_task("imagenet")
    with pytest.raises(ValueError, match="T must be 784"):
        get_task("smnist").encode(RAW["smnist"](np.random.default_rng(0)), 10, None)
    with pytest.raises(ValueError, match="T must be 20"):
        get_task("dvscifar10").encode(RAW["dvscifar10"](np.random.default_rng(0)), 5, None)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_stochastic_says_whether_the_encoder_draws(name):
    """``Task.stochastic`` is what robustness relies on to skip a second evaluation: two rngs
    give two sequences exactly when it is True."""
    task = get_task(name)
    images = RAW[name](np.random.default_rng(0))
    T = task.defaults["T"]
    a, b = (task.encode(images, T, np.random.default_rng(seed)) for seed in (1, 2))
    assert (not np.array_equal(a, b)) == task.stochastic


def test_sew_resnet_task_builds_sew_blocks_and_the_standard_one_does_not():
    from minisnn.residual import Residual
    def blocks(name):
        net = get_task(name).build(T=2, norm="bntt", leak=0.9, threshold=1.0, surrogate="triangle", seed=0)
        return [layer for layer in net.layers if isinstance(layer, Residual)]
    sew, standard = blocks("mnist-sew-resnet"), blocks("mnist-resnet")
    assert len(sew) == len(standard) == 6
    assert all(b.sew for b in sew) and not any(b.sew for b in standard)


@pytest.mark.parametrize("name", [n for n in sorted(TASKS) if TASKS[n].encode_backward and not TASKS[n].stochastic])
def test_encode_backward_is_the_gradient_of_the_encoders_expectation(name):
    """A deterministic encoder's backward is its exact vector-Jacobian product: a central
    difference of <ds, encode(x)> in x agrees with <encode_backward(x, ds), v> (float64)."""
    task, rng = get_task(name), np.random.default_rng(5)
    x, v = RAW[name](rng).astype(np.float64), rng.normal(size=RAW[name](rng).shape)
    T = task.defaults["T"]
    ds = rng.normal(size=task.encode(x, T, None).shape)
    f = lambda z: np.sum(ds * task.encode(z, T, None))
    eps = 1e-6
    numeric = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.sum(task.encode_backward(x, ds) * v), numeric, rtol=1e-7)
