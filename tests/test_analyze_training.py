"""``python -m minisnn.analyze`` robustness, compare-norm and surrogate-sweep on tiny checkpoints
and the tiny MNIST-format dataset of conftest.py: the FGSM gradient is the true input gradient
and raises the loss, perturbation-free runs reproduce evaluation, a comparison trains each norm
once and reuses it, and the surrogate's height scales the gradient once per layer."""
import json

import numpy as np
import pytest

from minisnn import gradcheck, models
from minisnn.analyze import common, robustness, surrogate_sweep
from minisnn import evaluate as ev
from minisnn.losses import cross_entropy
from minisnn.tasks import get_task
from test_analyze import make_checkpoint, run

pytestmark = pytest.mark.usefixtures("isolated_home")


@pytest.fixture
def ckpt(tmp_path):
    return make_checkpoint(tmp_path / "bntt" / "checkpoint.npz")


# --- robustness ---------------------------------------------------------------------------------

def test_encode_eval_reproduces_the_evaluation_batches(ckpt, tiny_mnist):
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    for k, (x, _) in enumerate(ev.test_batches(task, images, labels, 6, 7, 3)):
        np.testing.assert_array_equal(x, common.encode_eval(task, images[7 * k:7 * k + 7], 7 * k, 6, 3))


def test_fgsm_gradient_is_the_input_gradient_of_the_loss():
    """sMNIST feeds the pixels themselves, so with the smooth stand-in for the spike the BPTT input
    gradient mapped back to the image must match central differences of the loss (the reset
    attached, so that the backward pass is the exact derivative of the smooth forward pass)."""
    task = get_task("smnist")
    net = models.smnist_fc(T=784, hidden=4, dtype=np.float64, seed=1)
    for layer in net.lif_layers():
        layer.detach_reset = False
    net = gradcheck.smooth_network(net)
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((3, 28, 28)), np.array([1, 4, 7])

    def loss(imgs):
        value, _ = cross_entropy(net.forward(task.encode(imgs, 784, None), train=False), labels)
        net.clear()
        return value

    _, dx = robustness.loss_gradient(net, task.encode(images, 784, None), labels)
    g = robustness.input_gradient(task, images, dx)
    v = rng.standard_normal(images.shape)
    h = 1e-5
    assert np.sum(g * v) == pytest.approx((loss(images + h * v) - loss(images - h * v)) / (2 * h), rel=1e-6)
    assert loss(images + 0.05 * np.sign(g)) > loss(images)          # one FGSM step raises the loss


def test_robustness_clean_runs_match_evaluate_and_fgsm_raises_the_loss(ckpt, tiny_mnist):
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    r = robustness.analyse(net, meta, task, images, labels, 8, [0.0, 0.3], [0.0, 0.1, 0.3])
    clean_loss, clean = ev.evaluate(net, common.batches(task, images, labels, meta, 8))
    assert r["noise_accuracy"][0] == clean == r["fgsm_accuracy"][0]
    assert r["fgsm_loss"][0] == pytest.approx(clean_loss)
    assert r["fgsm_loss"][2] > r["fgsm_loss"][1] > r["fgsm_loss"][0]
    again = robustness.analyse(net, meta, task, images, labels, 20, [0.0, 0.3], [0.0, 0.1, 0.3])
    np.testing.assert_array_equal(again["noise_accuracy"], r["noise_accuracy"])    # batch size does not matter


def test_robustness_fresh_draws_are_an_evaluation_with_new_poisson_draws(ckpt, tiny_mnist):
    """Unperturbed, the fresh-draw column is exactly an evaluation whose image i is encoded with
    (seed, FRESH_KEY, i), which is not the clean run's encoding; a deterministic encoder (sMNIST)
    has no draws, so there both columns agree at every level."""
    from minisnn.tasks import FRESH_KEY, batch_rng
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    T, seed = meta["config"]["T"], meta["config"]["seed"]
    r = robustness.analyse(net, meta, task, images, labels, 8, [0.0], [0.0])
    x = np.concatenate([task.encode(images[j:j + 1], T, batch_rng(seed, FRESH_KEY, j)) for j in range(len(images))], 1)
    assert not np.array_equal(x, common.encode_eval(task, images, 0, T, seed))
    fresh_loss, fresh = ev.evaluate(net, [(x[:, k:k + 8], labels[k:k + 8]) for k in range(0, len(images), 8)])
    assert r["noise_accuracy_fresh"][0] == fresh == r["fgsm_accuracy_fresh"][0]
    assert r["fgsm_loss_fresh"][0] == pytest.approx(fresh_loss)
    assert r["fgsm_loss_fresh"][0] != pytest.approx(r["fgsm_loss"][0])
    seq = make_checkpoint(ckpt.parent.parent / "seq" / "checkpoint.npz", dataset="smnist", hidden=(6,), T=784)
    net, meta, task = common.load(seq)
    images, labels = common.load_test(task, tiny_mnist, 6)
    r = robustness.analyse(net, meta, task, images, labels, 3, [0.0, 0.4], [0.0, 0.2])
    for kind in ("noise_accuracy", "fgsm_accuracy", "fgsm_loss"):
        np.testing.assert_array_equal(r[kind], r[kind + "_fresh"])


def test_robustness_cli_on_smnist_with_compare(tmp_path, tiny_mnist):
    a = make_checkpoint(tmp_path / "a" / "checkpoint.npz", dataset="smnist", hidden=(6,), T=784)
    b = make_checkpoint(tmp_path / "b" / "checkpoint.npz", dataset="smnist", hidden=(6,), T=784, norm="none")
    rc, out, err = run("robustness", a, "--compare", b, "--data-dir", tiny_mnist, "--subset", 6, "--out",
                       tmp_path / "rob", "--sigmas", "0,0.5", "--epsilons", "0,0.3")
    assert rc == 0, err
    result = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert [r["norm"] for r in result["runs"]] == ["bntt", "none"] and len(result["gaps"]) == 1
    assert all(r["fgsm_loss"][1] > r["fgsm_loss"][0] for r in result["runs"])
    assert (tmp_path / "rob" / "robustness.png").exists()


# --- compare-norm -------------------------------------------------------------------------------

def test_compare_norm_trains_each_norm_once(tmp_path, tiny_mnist):
    out = tmp_path / "cmp"
    argv = ["compare-norm", "mnist", "--norms", "none,bntt", "--epochs", 1, "--T", 2, "--subset", 20,
            "--train-batch-size", 10, "--data-dir", tiny_mnist, "--out", out, "--checkpoint-every", 1]
    rc, stdout, err = run(*argv)
    assert rc == 0, err
    result = json.loads((out / "compare_norm.json").read_text())
    assert [r["norm"] for r in result["norms"]] == ["none", "bntt"]
    for r in result["norms"]:
        assert r["samples"] == 20 and 0 <= r["test_accuracy"] <= 1 and r["synops"] > 0
        assert len(r["layer_rates"]) == 1 and len(result["curves"][r["norm"]]["steps"]) == 2
    assert "| bntt |" in stdout and (out / "compare_norm.png").exists() and (out / "compare_norm.md").exists()
    stamp = (out / "bntt" / "checkpoint.npz").stat().st_mtime_ns
    rc, _, err = run(*argv)                                   # finished runs are reused, not retrained
    assert rc == 0 and (out / "bntt" / "checkpoint.npz").stat().st_mtime_ns == stamp
    rc, _, err = run(*argv[:-4], "--lr", "0.5", "--out", out, "--checkpoint-every", 1)
    assert rc == 2 and "other settings" in err


# --- surrogate sweep ----------------------------------------------------------------------------

def test_height_scales_the_gradient_once_per_layer(ckpt, tiny_mnist):
    """Detached reset: ∂L/∂I of the top LIF layer is linear in h, of the one below quadratic,
    so the depth ratio doubles with h; width does not change the forward pass."""
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    x = task.encode(images[:10], 6, np.random.default_rng(0))
    r = surrogate_sweep.analyse(net, meta, task, (x, labels[:10]), ["triangle", "arctan"], [0.5, 1.0], [0.2, 0.4])
    assert len(r["settings"]) == 8
    for s in r["settings"]:
        assert np.shape(s["grad_norm"]) == (2, 6) and len(s["weight_grad_norm"]) == 2
    by = {(s["surrogate"], s["width"], s["height"]): s for s in r["settings"]}
    for name in ("triangle", "arctan"):
        lo, hi = by[name, 1.0, 0.2], by[name, 1.0, 0.4]
        np.testing.assert_allclose(hi["grad_norm"][1], 2 * lo["grad_norm"][1], rtol=1e-10)
        np.testing.assert_allclose(hi["grad_norm"][0], 4 * lo["grad_norm"][0], rtol=1e-10)
        assert hi["gain_per_layer"] == pytest.approx(2 * lo["gain_per_layer"], rel=1e-10)


def test_surrogate_sweep_cli_with_short_training(ckpt, tiny_mnist, tmp_path):
    rc, out, err = run("surrogate-sweep", ckpt, "--data-dir", tiny_mnist, "--out", tmp_path / "sw",
                       "--surrogates", "triangle,fast_sigmoid", "--widths", "1", "--heights", "0.3,3",
                       "--train-steps", 2, "--train-batch-size", 10, "--reset-grad", "attached")
    assert rc == 0, err
    r = json.loads((tmp_path / "sw" / "surrogate_sweep.json").read_text())
    assert len(r["settings"]) == 4 and r["reset_grad"] == "attached"
    for s in r["settings"]:
        assert {s["regime"]["depth"], s["regime"]["time"]} <= {"vanishing", "stable", "exploding"}
        assert set(s["training"]) >= {"test_accuracy", "trains"}
    assert (tmp_path / "sw" / "surrogate_sweep.png").exists()
    assert (tmp_path / "sw" / "surrogate_sweep_time.png").exists()


# --- gradient flow through depth -------------------------------------------------------------------

def test_first_to_last_labels_every_regime():
    from minisnn.analyze.gradient_flow import first_to_last
    assert first_to_last([1e-3, 1.0]) == (1e-3, "vanishing")
    assert first_to_last([5.0, 1.0]) == (5.0, "stable")
    assert first_to_last([1e3, 1.0])[1] == "exploding" and first_to_last([np.inf, 1.0])[1] == "exploding"
    ratio, regime = first_to_last([0.0, 0.0])
    assert np.isnan(ratio) and regime == "dead"


def test_gradient_flow_cli_measures_every_network_and_setting(tiny_mnist, tmp_path):
    rc, out, err = run("gradient-flow", "--data-dir", tiny_mnist, "--depths", "8", "--T", "2",
                       "--train-batch-size", "4", "--widths", "1", "--heights", "0.3,1", "--norms", "bntt",
                       "--resets", "detached", "--train-steps", "2", "--subset", "10", "--out", tmp_path)
    assert rc == 0, err
    result = json.loads((tmp_path / "gradient_flow.json").read_text())
    assert [r["arch"] for r in result["runs"]] == ["resnet", "sew", "plain"]
    for r in result["runs"]:
        assert [(p["width"], p["height"]) for p in r["profiles"]] == [(1.0, 0.3), (1.0, 1.0)]
        assert all(len(p["layer_norm"]) == 7 for p in r["profiles"])     # stem + 2 per block, 3 blocks
        assert 0 <= r["training"]["test_accuracy"] <= 1
        after = r["training"]["after"]              # the profile again, after the 2 training steps
        assert len(after["layer_norm"]) == 7 and np.array(after["grad_norm"]).shape == (7, 2)
        assert after["regime"] in ("vanishing", "stable", "exploding", "dead")
    low = {r["arch"]: r["profiles"][0]["ratio"] for r in result["runs"]}
    assert low["sew"] > low["resnet"] and low["sew"] > low["plain"]      # SEW's identity path keeps gradient
    assert (tmp_path / "gradient_flow.png").is_file() and (tmp_path / "gradient_flow_grid.png").is_file()
    assert "resnet-8" in out and "sew-8" in out and "first/last then" in out
