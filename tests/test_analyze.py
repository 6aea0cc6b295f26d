"""``python -m minisnn.analyze``: early exit, spikes, γ histograms and bad input, on tiny
checkpoints (mnist_fc, T = 6) and the tiny MNIST-format dataset of conftest.py (20 test images).

The training-based subcommands (robustness, compare-norm, surrogate-sweep) are tested in
test_analyze_training.py."""
import contextlib
import io
import json

import numpy as np
import pytest

from minisnn import models
from minisnn.analyze import activity, cli, common, early_exit, gamma
from minisnn.checkpoint import save_checkpoint
from minisnn.layers import Conv2d

T = 6
pytestmark = pytest.mark.usefixtures("isolated_home")


def run(*argv):
    """The CLI in-process: (exit code, stdout, stderr); argparse's exit counts as a return."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def make_checkpoint(path, norm="bntt", hidden=(24, 12), dtype=np.float64, dataset="mnist", T=T):
    """A tiny checkpoint whose γ_t rises then falls (layer 2 falls later than layer 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    net = models.mnist_fc(T=T, hidden=list(hidden), norm=norm, dtype=dtype) if dataset == "mnist" else \
        models.smnist_fc(T=T, hidden=hidden[0], norm=norm, dtype=dtype)
    for k, (_, layer) in enumerate(common.bntt_layers(net)):
        t = np.arange(T)[:, None]
        layer.gamma.data[:] = 1.5 * np.exp(-((t - 1.0 - k) ** 2) / 3.0) + 0.05 * np.cos(np.arange(layer.channels))
    save_checkpoint(path, net, config={"dataset": dataset, "T": T, "seed": 3, "norm": norm, "batch_size": 8,
                                       "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4})
    return path


@pytest.fixture
def ckpt(tmp_path):
    return make_checkpoint(tmp_path / "bntt" / "checkpoint.npz")


def single_error_line(rc, out, err):
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --- early exit ---------------------------------------------------------------------------------

def test_exit_step_definition_and_monotone_in_threshold():
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = rng.random((rng.integers(1, 4), rng.integers(1, 12)))
        thresholds = np.sort(rng.random(20) * 1.2)
        steps = [early_exit.exit_step(g, th) for th in thresholds]
        assert all(a >= b for a, b in zip(steps, steps[1:]))        # never later for a higher θ
        for th, t in zip(thresholds, steps):
            assert 1 <= t <= g.shape[1]
            assert np.all(g[:, t:] < th)                            # every layer stays below from t on
            if t > 1:
                assert np.any(g[:, t - 1:] >= th)                   # … and t is the first such step
    g = np.array([[0.2, 0.9, 0.5, 0.1], [0.1, 0.3, 0.7, 0.05]])
    assert [early_exit.exit_step(g, th) for th in (0.05, 0.1, 0.6, 0.8, 1.0)] == [4, 4, 3, 2, 1]


def test_prefix_accuracy_equals_really_truncated_runs(ckpt, tiny_mnist):
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    prefix = early_exit.prefix_accuracy(net, common.batches(task, images, labels, meta, 7))
    assert prefix.shape == (T,)
    for t in range(1, T + 1):
        assert early_exit.truncated_accuracy(net, common.batches(task, images, labels, meta, 7), t) == prefix[t - 1]


def test_early_exit_cli(ckpt, tiny_mnist, tmp_path):
    rc, out, err = run("early-exit", ckpt, "--data-dir", tiny_mnist, "--out", tmp_path / "ee", "--batch-size", 8)
    assert rc == 0, err
    assert "exit after" in out and (tmp_path / "ee" / "early_exit.png").stat().st_size > 1000
    r = json.loads((tmp_path / "ee" / "early_exit.json").read_text())
    assert np.shape(r["mean_gamma"]) == (2, T) and len(r["prefix_accuracy"]) == T and r["samples"] == 20
    thresholds = [s["threshold"] for s in r["sweep"]]
    steps = [s["exit_step"] for s in r["sweep"]]
    assert thresholds == sorted(thresholds) and all(a >= b for a, b in zip(steps, steps[1:]))
    assert len(set(steps)) > 2 and r["max_prefix_mismatch"] == 0
    assert r["accuracy_at_exit"] >= r["accuracy_full"] - 0.01 and 1 <= r["exit_step"] <= T
    # an explicit threshold is reported as asked
    rc, out, err = run("early-exit", ckpt, "--data-dir", tiny_mnist, "--out", tmp_path / "ee2", "--threshold", 0.5,
                       "--thresholds", "0.3,1")
    r = json.loads((tmp_path / "ee2" / "early_exit.json").read_text())
    assert rc == 0 and r["threshold"] == 0.5 and len(r["sweep"]) == 3
    assert r["exit_step"] == early_exit.exit_step(r["mean_gamma"], 0.5)


def test_early_exit_needs_bntt(tmp_path, tiny_mnist):
    path = make_checkpoint(tmp_path / "none.npz", norm="none")
    line = single_error_line(*run("early-exit", path, "--data-dir", tiny_mnist))
    assert "BNTT" in line


# --- spikes and activity ------------------------------------------------------------------------

def test_activity_counts_are_the_lif_spikes(ckpt, tiny_mnist):
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    act = activity.record_activity(net, common.batches(task, images, labels, meta, 8))
    lifs = common.lif_layers(net)
    expected = {i: 0 for i, _ in lifs}
    for x, _ in common.batches(task, images, labels, meta, 8):
        for i, layer in enumerate(net.layers):      # the reference: each layer by hand, no observer
            x = layer.forward(x, train=False)
            if i in expected:
                expected[i] = expected[i] + (x != 0).sum(axis=1)
    assert set(act["spike_counts"]) == set(expected)
    for i in expected:
        np.testing.assert_array_equal(act["spike_counts"][i], expected[i])
    s = activity.summarize(act)
    assert [len(layer["spikes_per_step"]) for layer in s["layers"]] == [T, T]
    first = net.layers[0]                  # Linear 784 -> 24 on signed Poisson spikes: synops
    assert act["ops"][0]["binary"] and act["ops"][0]["per_step"].shape == (T,)
    n_in = sum(int((x != 0).sum()) for x, _ in common.batches(task, images, labels, meta, 8))
    assert act["ops"][0]["per_step"].sum() == pytest.approx(n_in * first.out_features / 20)


def test_spikes_agree_with_a_recording_counted_by_hwmodel(ckpt, tiny_mnist, tmp_path):
    record = pytest.importorskip("minisnn.record")
    counts = pytest.importorskip("hwmodel.counts")
    from hwmodel.runfile import read_run
    net, meta, task = common.load(ckpt)
    images, labels = common.load_test(task, tiny_mnist)
    record.record_run(net, common.batches(task, images, labels, meta, 8), tmp_path / "run.npz")
    totals = counts.count_run(read_run(tmp_path / "run.npz")).totals()
    mine = activity.summarize(activity.record_activity(net, common.batches(task, images, labels, meta, 8)))
    for key in ("spikes", "synops", "macs", "spike_rate"):
        assert mine[key] == pytest.approx(totals[key], rel=1e-12), key
    rc, out, err = run("spikes", ckpt, "--run", tmp_path / "run.npz", "--out", tmp_path / "from_run")
    assert rc == 0, err
    from_run = json.loads((tmp_path / "from_run" / "spikes.json").read_text())["runs"][0]
    assert from_run["spike_rate"] == pytest.approx(mine["spike_rate"], rel=1e-12)
    rc, out, err = run("spikes", ckpt, "--record", tmp_path / "again.npz", "--data-dir", tiny_mnist, "--batch-size", 8,
                       "--out", tmp_path / "recorded")
    assert rc == 0 and (tmp_path / "again.npz").exists(), err
    recorded = json.loads((tmp_path / "recorded" / "spikes.json").read_text())["runs"][0]
    assert recorded["spike_rate"] == pytest.approx(mine["spike_rate"], rel=1e-12)


def test_conv_fanout_counts_the_outputs_each_input_reaches():
    layer = Conv2d(2, 3, kernel_size=3, stride=2, padding=1, rng=np.random.default_rng(0), dtype=np.float64)
    layer.weight.data[:] = 1.0                     # positive weights: a reached output is non-zero
    fan = activity.fanout(layer, (2, 5, 5))
    for i in range(50):
        x = np.zeros((1, 1, 50))
        x[0, 0, i] = 1.0
        assert fan[i] == np.count_nonzero(layer.forward(x.reshape(1, 1, 2, 5, 5)))


def test_spikes_cli_with_compare(ckpt, tiny_mnist, tmp_path):
    other = make_checkpoint(tmp_path / "none" / "checkpoint.npz", norm="none")
    rc, out, err = run("spikes", ckpt, "--compare", other, "--data-dir", tiny_mnist, "--out", tmp_path / "sp")
    assert rc == 0, err
    assert "bntt" in out and "none" in out and (tmp_path / "sp" / "spikes.png").exists()
    runs = json.loads((tmp_path / "sp" / "spikes.json").read_text())["runs"]
    assert [r["norm"] for r in runs] == ["bntt", "none"]
    for r in runs:
        assert len(r["layers"]) == 2 and all(0 <= layer["rate"] <= 1 for layer in r["layers"])
        assert r["spike_rate"] == pytest.approx(r["spikes"] / (36 * T))
        assert r["synops"] > 0 and r["macs"] == 0


# --- gamma --------------------------------------------------------------------------------------

def test_gamma_histograms(ckpt, tmp_path):
    net, _, _ = common.load(ckpt)
    h = gamma.histograms(net, layers=[1], steps=[0, 3, 5], bins=7)
    assert len(h["layers"][0]["edges"]) == 8 and [row["t"] for row in h["layers"][0]["steps"]] == [0, 3, 5]
    for row in h["layers"][0]["steps"]:
        assert sum(row["counts"]) == 12 and row["mean"] == pytest.approx(net.layers[4].gamma.data[row["t"]].mean())
    rc, out, err = run("gamma", ckpt, "--out", tmp_path / "g", "--steps", "0,2,5")
    assert rc == 0, err
    r = json.loads((tmp_path / "g" / "gamma.json").read_text())
    assert len(r["layers"]) == 2 and (tmp_path / "g" / "gamma.png").exists()


# --- bad input ----------------------------------------------------------------------------------

def test_bad_input_is_one_error_line(ckpt, tiny_mnist, tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    no_config = tmp_path / "no_config.npz"
    save_checkpoint(no_config, models.mnist_fc(T=2, hidden=[4]))
    cases = [
        ("frobnicate", ckpt),
        ("early-exit",),
        ("early-exit", tmp_path / "missing.npz"),
        ("spikes", garbage, "--data-dir", tiny_mnist),
        ("gamma", no_config),
        ("early-exit", ckpt, "--data-dir", tiny_mnist, "--thresholds", "a,b"),
        ("early-exit", ckpt, "--data-dir", tmp_path / "nowhere"),
        ("gamma", ckpt, "--layers", "7"),
        ("gamma", ckpt, "--steps", str(T)),
        ("spikes", ckpt, "--data-dir", tiny_mnist, "--subset", "0"),
        ("robustness", ckpt, "--data-dir", tiny_mnist, "--sigmas", "-1"),
        ("compare-norm", "cifar99"),
        ("compare-norm", "mnist", "--norms", "bntt,weird"),
        ("surrogate-sweep", ckpt, "--data-dir", tiny_mnist, "--surrogates", "relu"),
        ("surrogate-sweep", ckpt, "--data-dir", tiny_mnist, "--widths", "0,1"),
    ]
    for argv in cases:
        single_error_line(*run(*argv))


def test_gamma_gradients_are_the_training_steps_own():
    """gamma.gradients is the mean over channels of |∂L/∂γ_t| of plain training steps on the same
    batches, averaged over the batches, and leaves no gradient and no change of statistics behind."""
    from minisnn.layers import BNTT
    from minisnn.tasks import batch_rng, get_task
    from minisnn.training import train_step
    task = get_task("mnist")
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(20, 784)).astype(np.float32), rng.integers(0, 10, 20)
    net = models.mnist_fc(T=4, hidden=(8,))
    bntt = next(layer for layer in net.modules() if isinstance(layer, BNTT))
    bntt.running_mean[:] = rng.normal(size=bntt.running_mean.shape)
    before = bntt.running_mean.copy(), bntt.running_var.copy()
    got = gamma.gradients(net, task, images, labels, T=4, n_batches=2, batch_size=8, seed=3)
    assert got.shape == (1, 4) and np.all(got > 0)
    assert not bntt.gamma.grad.any()
    np.testing.assert_array_equal(bntt.running_mean, before[0])       # evaluation is left as it was
    np.testing.assert_array_equal(bntt.running_var, before[1])
    order = batch_rng(3, gamma.GRADIENT_KEY).permutation(20)
    expected = np.zeros(4)
    for k in range(2):
        idx = np.take(order, np.arange(8 * k, 8 * k + 8), mode="wrap")
        net.zero_grad()
        train_step(net, None, task.encode(images[idx], 4, batch_rng(3, gamma.GRADIENT_KEY, k)), labels[idx])
        expected += np.abs(bntt.gamma.grad).mean(axis=1) / 2
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
