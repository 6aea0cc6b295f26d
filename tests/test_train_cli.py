"""``python -m minisnn.train`` and ``python -m minisnn.evaluate`` on a tiny MNIST-format dataset
(30 training and 20 test images, T = 3): the files a run writes, determinism, bit-for-bit
``--resume`` after Ctrl-C, divergence, and a one-line ``error: ...`` for every kind of bad input.

The CLIs are called in-process (``main(argv)``); one test runs a real subprocess. Ctrl-C is a
real SIGINT sent to this process during a chosen training step."""
import contextlib
import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from minisnn import checkpoint, evaluate, models, train, training
from minisnn.checkpoint import load_checkpoint
from minisnn.data import mnist

STEPS_PER_EPOCH = 3          # 30 training samples, --batch-size 10
RUN = ["--T", "3", "--epochs", "2", "--batch-size", "10", "--checkpoint-every", "1", "--eval-batch-size", "8",
       "--batch-stats-eval"]
OUTPUTS = {"checkpoint.npz", "metrics.jsonl", "steps.jsonl", "summary.json", "learning_curve.png"}

pytestmark = pytest.mark.usefixtures("isolated_home")


def cli(main, *argv):
    """Run a CLI's main in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def train_args(data, out, *extra):
    return ["mnist", *RUN, "--data-dir", data, "--out", out, *extra]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def untimed(records):
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def load_run(out):
    meta, model, optim = load_checkpoint(out / "checkpoint.npz")
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return SimpleNamespace(out=out, meta=meta, model=model, optim=optim, summary=summary,
                           metrics=read_jsonl(out / "metrics.jsonl"), steps=read_jsonl(out / "steps.jsonl"))


def assert_same_training(run, ref):
    """Bit-for-bit the same network, optimizer state, position and logged numbers."""
    assert run.model.keys() == ref.model.keys() and run.optim.keys() == ref.optim.keys()
    for key in ref.model:
        assert np.array_equal(run.model[key], ref.model[key]), key
    for key in ref.optim:
        assert np.array_equal(run.optim[key], ref.optim[key]), key
    assert run.meta["config"] == ref.meta["config"]
    progress = {k: v for k, v in run.meta["progress"].items() if k != "elapsed_s"}
    assert progress == {k: v for k, v in ref.meta["progress"].items() if k != "elapsed_s"}
    assert untimed(run.metrics) == untimed(ref.metrics)
    assert run.steps == ref.steps
    assert run.summary["test_accuracy"] == ref.summary["test_accuracy"]


def all_finite(arrays):
    """Every array finite, except calibrated statistics that are all NaN: never calibrated yet."""
    return all(np.isfinite(a).all() for k, a in arrays.items() if not (".calibrated_" in k and np.isnan(a).all()))


@pytest.fixture(scope="module")
def reference(mnist_tools, tmp_path_factory):
    """One uninterrupted 2-epoch run, shared by the tests below (which never write into it)."""
    base = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mnist_tools.isolate(mp, base)
        data = mnist_tools.tiny_dataset(mp, base)
        rc, _, err = cli(train.main, *train_args(data, base / "out"))
    assert rc == 0, err
    run = load_run(base / "out")
    run.err = err
    return run


def interrupt_at(mp, step, times=1):
    """Press Ctrl-C ``times`` times during training step number ``step`` (counted from 1 over the
    run): a real SIGINT to this process, from inside the loss computation of that step."""
    calls = [0]
    real = training.cross_entropy

    def cross_entropy(logits, labels):
        calls[0] += 1
        if calls[0] == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)          # the Python-level handler runs here
        return real(logits, labels)

    mp.setattr(training, "cross_entropy", cross_entropy)
    return calls


# --- a normal run --------------------------------------------------------------------------------

def test_run_writes_its_outputs_and_reports_test_accuracy_every_epoch(reference):
    out = reference.out
    assert set(os.listdir(out)) == OUTPUTS                     # nothing else, no leftover .tmp file
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["epoch"] for r in reference.metrics] == [1, 2]
    assert [r["lr"] for r in reference.metrics] == pytest.approx([0.1, 0.1 * 0.1 ** 3])  # schedule for 2 epochs
    for r in reference.metrics:
        assert set(r) == {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "elapsed_s", "bn_stats",
                          "kappa", "test_samples", "test_loss_batch_stats", "test_acc_batch_stats"}
        assert r["bn_stats"] == "calibrated" and r["test_samples"] == 20
        assert r["test_acc"] * 20 == pytest.approx(round(r["test_acc"] * 20))          # k of 20 test images
        assert np.isfinite(r["test_loss"]) and r["test_loss"] > 0
        assert (f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f} | "
                f"test loss {r['test_loss']:.4f} acc {r['test_acc']:.4f}") in reference.err
    # κ = wd·Σ lr/(1 − μ) over the steps so far: 3 steps at 0.1, then 3 at 0.1·0.1³
    assert [r["kappa"] for r in reference.metrics] == pytest.approx(
        [1e-4 * 3 * 0.1 / 0.1, 1e-4 * (3 * 0.1 + 3 * 1e-4) / 0.1], rel=1e-12)
    # --checkpoint-every 1: the running training loss after every step
    assert [s["epoch"] for s in reference.steps] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    summary = reference.summary
    assert summary["test_accuracy"] == reference.metrics[-1]["test_acc"]
    assert summary["best_test_accuracy"] == max(r["test_acc"] for r in reference.metrics)
    assert (summary["dataset"], summary["epochs"], summary["test_samples"]) == ("mnist", 2, 20)
    assert summary["checkpoint"] == str(out / "checkpoint.npz")
    assert summary["config"] == reference.meta["config"]
    assert {k: summary["config"][k] for k in ("T", "batch_size", "seed", "norm")} == \
        {"T": 3, "batch_size": 10, "seed": 0, "norm": "bntt"}
    assert f"done: test accuracy {100 * summary['test_accuracy']:.2f} % ({out / 'summary.json'})" in reference.err
    assert reference.meta["progress"]["epoch"] == 2 and reference.meta["progress"]["step"] == 0
    assert reference.meta["spec"]["model"] == "mnist_fc" and reference.meta["spec"]["T"] == 3


def test_cheaper_evaluation_between_epochs_and_the_whole_test_set_at_the_end(reference, tiny_mnist, tmp_path):
    """--eval-samples N tests the first N digits between epochs, all of them after the last one;
    every line says how many; the batch-statistics evaluation runs only when asked; the weights
    are those of the reference run (evaluation draws nothing from training's generators)."""
    out = tmp_path / "out"
    argv = [a for a in train_args(tiny_mnist, out, "--eval-samples", "8") if a != "--batch-stats-eval"]
    rc, _, err = cli(train.main, *argv)
    assert rc == 0, err
    run = load_run(out)
    assert [r["test_samples"] for r in run.metrics] == [8, 20]
    assert not any("test_acc_batch_stats" in r for r in run.metrics)
    assert run.metrics[-1]["test_acc"] == reference.metrics[-1]["test_acc"] == run.summary["test_accuracy"]
    assert run.metrics[0]["test_acc"] * 8 == pytest.approx(round(run.metrics[0]["test_acc"] * 8))
    for key in reference.model:
        assert np.array_equal(run.model[key], reference.model[key]), key
    assert "(8 test samples)" in err and "(20 test samples)" in err


def test_same_seed_gives_the_same_weights(reference, tiny_mnist, tmp_path):
    initial = models.mnist_fc(T=3, seed=0).state_dict()
    assert not np.array_equal(initial["0.weight"], reference.model["0.weight"])   # training moved them
    out = tmp_path / "again"
    for _ in range(2):   # the second run starts afresh in the same folder: its logs replace the first's
        rc, _, err = cli(train.main, *train_args(tiny_mnist, out))
        assert rc == 0, err
        assert_same_training(load_run(out), reference)


def test_evaluate_reproduces_the_summary(reference, tiny_mnist):
    ckpt = reference.out / "checkpoint.npz"
    final = reference.metrics[-1]
    rc, stdout, err = cli(evaluate.main, ckpt, "--data-dir", tiny_mnist, "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["test_accuracy"] == reference.summary["test_accuracy"]
    assert result["test_loss"] == pytest.approx(final["test_loss"], rel=1e-5)
    assert (result["samples"], result["dataset"]) == (20, "mnist")
    # the Poisson test input must not depend on the evaluation batch size (training used 8)
    rc, stdout, err = cli(evaluate.main, ckpt, "--data-dir", tiny_mnist, "--batch-size", "7")
    assert rc == 0, err
    assert stdout == (f"mnist: test accuracy {100 * reference.summary['test_accuracy']:.2f} % on 20 samples "
                      f"(loss {final['test_loss']:.4f}; calibrated normalisation statistics, batch size 7)\n")
    # the paper's protocol from the same checkpoint: the running averages, kept beside the calibration
    rc, stdout, err = cli(evaluate.main, ckpt, "--data-dir", tiny_mnist, "--bn-stats", "running", "--json")
    assert rc == 0, err
    running = json.loads(stdout)
    assert running["bn_stats"] == "running" and running["test_loss"] != result["test_loss"]
    meta, model, _ = load_checkpoint(ckpt)
    assert meta["config"]["bn_calibration"] == 20
    assert not np.array_equal(model["1.running_var"], model["1.calibrated_var"])
    # each test batch's own statistics, in batches of the training size: the second number training logs
    rc, stdout, err = cli(evaluate.main, ckpt, "--data-dir", tiny_mnist, "--bn-stats", "batch", "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    assert (result["bn_stats"], result["batch_size"]) == ("batch", 10)
    assert result["test_accuracy"] == final["test_acc_batch_stats"]
    assert result["test_loss"] == pytest.approx(final["test_loss_batch_stats"], rel=1e-5)


# --- Ctrl-C and --resume -------------------------------------------------------------------------

@pytest.mark.parametrize("stop_at", [2, 3, 5], ids=["mid-epoch-1", "end-of-epoch-1", "mid-epoch-2"])
def test_interrupt_then_resume_is_bit_for_bit(reference, tiny_mnist, tmp_path, monkeypatch, stop_at):
    out = tmp_path / "out"
    ckpt = out / "checkpoint.npz"
    with monkeypatch.context() as mp:
        calls = interrupt_at(mp, stop_at)
        rc, _, err = cli(train.main, *train_args(tiny_mnist, out))
    assert rc == 130, err                                       # 128 + SIGINT: saved, not finished
    assert calls[0] == stop_at                                  # no step after the interrupted one
    epoch, step = divmod(stop_at - 1, STEPS_PER_EPOCH)
    step += 1
    assert "interrupt: finishing this step, then saving a checkpoint" in err
    assert err.rstrip().endswith(f"saved {ckpt} at epoch {epoch + 1}, step {step}; continue with --resume")
    meta, _, _ = load_checkpoint(ckpt)
    assert (meta["progress"]["epoch"], meta["progress"]["step"]) == (epoch, step)
    assert len(read_jsonl(out / "metrics.jsonl")) == epoch
    assert not (out / "summary.json").exists()
    assert not list(out.glob("*.tmp"))

    resume = ["--resume"] if stop_at != 5 else ["--resume", ckpt]   # both forms of the option
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out), *resume)
    assert rc == 0, err
    assert f"resuming from {ckpt}: epoch {epoch + 1}, step {step}" in err
    assert_same_training(load_run(out), reference)


# The child process of the SIGTERM test: a real ``python -m minisnn.train`` whose training step
# number STEP waits, once it has said so, until the parent has sent its signal (GO exists).
SIGTERM_CHILD = """
import sys, time
from pathlib import Path
from minisnn import train, training
from minisnn.data import mnist
mnist.SHA256.update(HASHES)
real, calls = training.cross_entropy, [0]
def cross_entropy(logits, labels):
    calls[0] += 1
    if calls[0] == STEP:
        print("in step", STEP, file=sys.stderr, flush=True)
        while not Path(GO).exists():
            time.sleep(0.01)
    return real(logits, labels)
training.cross_entropy = cross_entropy
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("stop_at", [2, 5], ids=["mid-epoch-1", "mid-epoch-2"])
def test_sigterm_saves_like_ctrl_c_and_resumes_bit_for_bit(reference, tiny_mnist, tmp_path, stop_at):
    """``timeout`` and batch schedulers stop jobs with SIGTERM: a real process gets a real one
    during a training step, finishes the step, saves, exits with 143 (128 + 15), and the resumed
    run ends exactly like the uninterrupted reference."""
    out, go = tmp_path / "out", tmp_path / "go"
    code = SIGTERM_CHILD.replace("STEP", str(stop_at)).replace("GO", repr(str(go)))
    code = code.replace("HASHES", repr(mnist.SHA256))         # the tiny dataset's, as in this process
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, train_args(tiny_mnist, out))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "in step" in line:              # (after a progress bar written with \r)
                break
        proc.send_signal(signal.SIGTERM)
        go.touch()
        rest, _ = proc.communicate(timeout=120)[1], None
    finally:
        proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 128 + signal.SIGTERM, err
    epoch, step = divmod(stop_at - 1, STEPS_PER_EPOCH)
    assert "SIGTERM: finishing this step, then saving a checkpoint" in err and "Traceback" not in err
    assert err.rstrip().endswith(f"saved {out / 'checkpoint.npz'} at epoch {epoch + 1}, step {step + 1}; "
                                 "continue with --resume")
    meta, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert (meta["progress"]["epoch"], meta["progress"]["step"]) == (epoch, step + 1)
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out), "--resume")
    assert rc == 0, err
    assert_same_training(load_run(out), reference)


def test_one_epoch_then_resume_with_more_epochs(reference, tiny_mnist, tmp_path):
    out = tmp_path / "out"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--epochs", "1"))
    assert rc == 0, err
    assert len(read_jsonl(out / "metrics.jsonl")) == 1
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--epochs", "2", "--resume"))
    assert rc == 0, err
    assert_same_training(load_run(out), reference)


def test_keep_epochs_keeps_each_epochs_end(reference, tiny_mnist, tmp_path):
    """--keep-epochs: OUT/epochN.npz is the checkpoint at the end of epoch N (the run itself is
    unchanged: the last one is the reference run's final checkpoint)."""
    out = tmp_path / "out"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--keep-epochs"))
    assert rc == 0, err
    first, model1, _ = load_checkpoint(out / "epoch1.npz")
    last, model2, _ = load_checkpoint(out / "epoch2.npz")
    assert (first["progress"]["epoch"], first["progress"]["step"]) == (1, 0) and last["progress"]["epoch"] == 2
    assert all(np.array_equal(model2[k], reference.model[k]) for k in reference.model)
    assert not all(np.array_equal(model1[k], model2[k]) for k in model1)
    assert not (reference.out / "epoch1.npz").exists()                  # only when asked


def test_resume_with_explicit_milestones_changes_only_the_schedule(reference, tiny_mnist, tmp_path):
    """--milestones may be given (or changed) on --resume; the epochs after it follow it."""
    out = tmp_path / "out"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--epochs", "1"))
    assert rc == 0, err
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--epochs", "3", "--milestones", "1,2", "--resume"))
    assert rc == 0, err
    lrs = [r["lr"] for r in read_jsonl(out / "metrics.jsonl")]
    base = lrs[0]
    np.testing.assert_allclose(lrs, [base, base / 10, base / 100], rtol=1e-12)


def test_second_ctrl_c_aborts_and_keeps_the_last_checkpoint(tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as mp:
        calls = interrupt_at(mp, 2, times=2)
        rc, _, err = cli(train.main, *train_args(tiny_mnist, out))
    assert rc == 130
    assert calls[0] == 2
    assert err.endswith("aborted; the last checkpoint is kept\n") and "Traceback" not in err
    meta, model, _ = load_checkpoint(out / "checkpoint.npz")
    assert (meta["progress"]["epoch"], meta["progress"]["step"]) == (0, 1)   # saved after step 1
    assert signal.getsignal(signal.SIGINT) is handler                       # the handler is restored


# --- divergence ------------------------------------------------------------------------------------

def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(reference, tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "out"
    ckpt = out / "checkpoint.npz"
    with monkeypatch.context() as mp:
        calls = [0]
        real = training.cross_entropy

        def cross_entropy(logits, labels):
            calls[0] += 1
            loss, dlogits = real(logits, labels)
            return (np.float32(np.nan) if calls[0] == 4 else loss), dlogits

        mp.setattr(training, "cross_entropy", cross_entropy)
        rc, _, err = cli(train.main, *train_args(tiny_mnist, out))
    assert rc == 1
    assert err.splitlines()[-1] == (f"error: loss became nan at epoch 2, step 1; the last good checkpoint is "
                                    f"{ckpt} (try a lower --lr)")
    assert "Traceback" not in err
    meta, model, optim = load_checkpoint(ckpt)
    assert (meta["progress"]["epoch"], meta["progress"]["step"]) == (1, 0)
    assert all_finite(model) and all_finite(optim)
    assert not (out / "summary.json").exists() and not list(out.glob("*.tmp"))
    # it is the good state: resuming from it finishes exactly like the uninterrupted run
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out), "--resume")
    assert rc == 0, err
    assert_same_training(load_run(out), reference)


def test_divergent_learning_rate_never_saves_non_finite_weights(tiny_mnist, tmp_path):
    out = tmp_path / "out"
    ckpt = out / "checkpoint.npz"
    with np.errstate(all="ignore"):
        rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--lr", "1e30"))
    assert rc == 1 and "Traceback" not in err
    match = re.fullmatch(r"error: (the weights became infinite or NaN|loss became nan|loss became inf) at epoch 1, "
                         r"step (\d); the last good checkpoint is (.*) \(try a lower --lr\)", err.splitlines()[-1])
    assert match and match[3] == str(ckpt), err
    meta, model, optim = load_checkpoint(ckpt)
    assert meta["progress"]["step"] == int(match[2]) - 1               # the step before the blow-up
    assert all_finite(model) and all_finite(optim)
    assert not list(out.glob("*.tmp")) and not (out / "summary.json").exists()


def test_divergence_before_any_checkpoint_says_so(tiny_mnist, tmp_path, monkeypatch):
    real = training.cross_entropy
    monkeypatch.setattr(training, "cross_entropy", lambda logits, labels: (np.inf, real(logits, labels)[1]))
    rc, _, err = cli(train.main, *train_args(tiny_mnist, tmp_path / "out"))
    assert rc == 1
    assert err.splitlines()[-1] == "error: loss became inf at epoch 1, step 1; no checkpoint was saved (try a lower --lr)"
    assert not (tmp_path / "out" / "checkpoint.npz").exists()


# --- atomic checkpoints -------------------------------------------------------------------------

def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    net = models.smnist_fc(T=2, hidden=4)
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "checkpoint.npz"
    checkpoint.save_checkpoint(path, net, config={"seed": 0})
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_checkpoint(path, net, config={"seed": 1})
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["checkpoint.npz"]       # the temporary file is removed
    assert load_checkpoint(path)[0]["config"] == {"seed": 0}


# --- bad input: one line "error: ...", exit code 2, no traceback -----------------------------

def corrupt(folder, name, change):
    path = folder / f"{name}.gz"
    path.write_bytes(change(path.read_bytes()))
    return path


def flip_one_pixel(gz):
    raw = bytearray(gzip.decompress(gz))
    raw[-1] ^= 0xFF
    return gzip.compress(bytes(raw))


TRAIN_IMAGES = mnist.FILES["train", "images"]


def bad_train_input(case, data, tmp, ckpt, monkeypatch):
    """(argv, expected stderr line) of one kind of bad input."""
    out = tmp / "out"
    if case == "missing data dir":
        monkeypatch.setenv("MINISNN_DATA", str(data))             # a copy elsewhere is no excuse
        return train_args(tmp / "typo", out), f"--data-dir {tmp / 'typo'} does not exist"
    if case in ("checksum mismatch", "truncated file"):
        copy = tmp / "copy"
        shutil.copytree(data, copy)
        if case == "checksum mismatch":
            path = corrupt(copy, TRAIN_IMAGES, flip_one_pixel)
            return train_args(copy, out), (f"checksum mismatch for {path}: the file is corrupt or not the "
                                           f"standard MNIST {TRAIN_IMAGES}")
        path = corrupt(copy, TRAIN_IMAGES, lambda b: b[:len(b) // 2])
        return train_args(copy, out), (f"cannot read {path}: Compressed file ended before the end-of-stream "
                                       f"marker was reached")
    if case == "unknown dataset":
        return ["cifar7", "--data-dir", data, "--out", out], re.compile(
            r"unknown dataset 'cifar7'; choose one of ([\w-]+, )*mnist(, [\w-]+)*")
    if case == "negative epochs":
        return train_args(data, out, "--epochs", "-1"), "--epochs must be at least 1"
    if case == "T = 0":
        return train_args(data, out, "--T", "0"), "--T must be at least 1"
    if case == "batch larger than the data":
        return train_args(data, out, "--batch-size", "31"), "--batch-size 31 is larger than the 30 training samples"
    if case == "batch larger than the subset":
        return train_args(data, out, "--subset", "5"), "--batch-size 10 is larger than the 5 training samples"
    if case == "no checkpoint to resume":
        return train_args(data, out, "--resume"), f"checkpoint {out / 'checkpoint.npz'} does not exist"
    if case == "unreadable checkpoint":
        garbage = tmp / "garbage.npz"
        garbage.write_bytes(b"\x93NUMPY garbage" * 50)
        return train_args(data, out, "--resume", garbage), re.compile(
            re.escape(f"cannot read checkpoint {garbage}: ") + ".+")
    if case == "checkpoint of other settings":
        return train_args(data, out, "--resume", ckpt, "--seed", "1"), (
            f"checkpoint {ckpt} was trained with other settings (saved, now): {{'seed': (0, 1)}}")
    if case == "bad milestones":
        return train_args(data, out, "--milestones", "4,2"), (
            "--milestones must be increasing epoch counts of at least 1, got '4,2'")
    if case == "out is a file":
        (tmp / "file").write_text("not a folder")
        return train_args(data, tmp / "file"), f"--out {tmp / 'file'} exists and is not a folder"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "missing data dir", "checksum mismatch", "truncated file", "unknown dataset", "negative epochs", "T = 0",
    "batch larger than the data", "batch larger than the subset", "no checkpoint to resume",
    "unreadable checkpoint", "checkpoint of other settings", "bad milestones", "out is a file"])
def test_train_rejects_bad_input_with_one_line(case, reference, tiny_mnist, tmp_path, monkeypatch):
    argv, expected = bad_train_input(case, tiny_mnist, tmp_path, reference.out / "checkpoint.npz", monkeypatch)
    rc, stdout, err = cli(train.main, *argv)
    assert rc == 2
    assert stdout == "" and err.count("\n") == 1, err            # exactly one line, nothing else
    line = err.rstrip("\n")
    if isinstance(expected, str):
        assert line == f"error: {expected}"
    else:
        assert line.startswith("error: ") and expected.fullmatch(line[len("error: "):]), line


def test_no_gamma_decay_is_recorded_changes_gamma_and_blocks_a_mixed_resume(reference, tiny_mnist, tmp_path):
    """The weight-decay control (--no-gamma-decay; SGD's exemption itself is tested in
    test_components): recorded in the config, it changes the trained γ, and a resume may not mix it."""
    out = tmp_path / "out"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--no-gamma-decay"))
    assert rc == 0, err
    meta, model, _ = load_checkpoint(out / "checkpoint.npz")
    assert meta["config"]["gamma_decay"] is False and reference.meta["config"]["gamma_decay"] is True
    assert not np.array_equal(model["1.gamma"], reference.model["1.gamma"])
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--resume", "--epochs", "3"))
    assert rc == 2 and "'gamma_decay': (False, True)" in err


def test_surrogate_height_and_width_reach_every_lif_and_the_checkpoint(reference, tiny_mnist, tmp_path):
    """--surrogate-height/--surrogate-width (the depth study's tuning) are recorded in the config,
    built into every LIF, rebuilt from the checkpoint, change the training, and block a mixed resume."""
    from minisnn.checkpoint import load_network
    out = tmp_path / "out"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--surrogate-height", "1", "--surrogate-width", "0.5"))
    assert rc == 0, err
    net, meta = load_network(out / "checkpoint.npz")
    assert (meta["config"]["surrogate_height"], meta["config"]["surrogate_width"]) == (1.0, 0.5)
    lifs = net.lif_layers()
    assert lifs and all((lif.surrogate.height, lif.surrogate.width) == (1.0, 0.5) for lif in lifs)
    _, model, _ = load_checkpoint(out / "checkpoint.npz")
    assert not np.array_equal(model["0.weight"], reference.model["0.weight"])
    rc, _, err = cli(train.main, *train_args(tiny_mnist, out, "--resume", "--epochs", "3"))
    assert rc == 2 and "'surrogate_height': (1.0, None)" in err
    rc, _, err = cli(train.main, *train_args(tiny_mnist, tmp_path / "bad", "--surrogate-width", "0"))
    assert rc == 2 and err.strip() == "error: --surrogate-height and --surrogate-width must be positive"


def test_resume_reports_every_changed_setting(reference, tiny_mnist, tmp_path):
    ckpt = reference.out / "checkpoint.npz"
    rc, _, err = cli(train.main, *train_args(tiny_mnist, tmp_path / "out", "--resume", ckpt, "--T", "4",
                                             "--norm", "bn"))
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"error: checkpoint {ckpt} was trained with other settings (saved, now): {{")
    assert "'T': (3, 4)" in err and "'norm': ('bntt', 'bn')" in err and "seed" not in err


def test_smnist_with_the_wrong_T_ends_with_an_error_line(tiny_mnist, tmp_path):
    rc, _, err = cli(train.main, "smnist", "--T", "3", "--batch-size", "10", "--data-dir", tiny_mnist,
                     "--out", tmp_path / "out")
    assert rc == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == "error: sequential MNIST has one step per pixel: T must be 784, got 3"


def test_bad_input_from_a_real_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MINISNN_DATA"}
    env["NUMBA_NUM_THREADS"] = "1"
    missing = tmp_path / "no-such-folder"
    proc = subprocess.run([sys.executable, "-m", "minisnn.train", "mnist", "--data-dir", str(missing),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: --data-dir {missing} does not exist\n"
    assert proc.stdout == ""


# --- python -m minisnn.evaluate on bad checkpoints --------------------------------------------------

def bad_checkpoint(case, tmp, ckpt):
    path = tmp / "bad.npz"
    if case == "missing":
        return path, f"checkpoint {path} does not exist"
    if case == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
        return path, re.compile(re.escape(f"cannot read checkpoint {path}: ") + ".+")
    if case == "npz without metadata":
        np.savez(path, weights=np.ones(3))
        return path, f"{path} is not a minisnn checkpoint (no metadata)"
    if case == "other npz with metadata":      # e.g. a run.npz recorded for hwmodel
        np.savez(path, meta=np.array(json.dumps({"dataset": "mnist"})), counts=np.zeros(2))
        return path, f"{path} is not a minisnn checkpoint (format None)"
    if case == "weights missing":
        with np.load(ckpt) as f:
            arrays = {k: f[k] for k in f.files if k != "model/0.weight"}
        np.savez(path, **arrays)
        return path, (f"checkpoint {path} does not match its network: state dict does not match the network: "
                      f"missing ['0.weight'], unexpected []")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "garbage", "npz without metadata", "other npz with metadata",
                                  "weights missing"])
def test_evaluate_rejects_bad_checkpoints_with_one_line(case, reference, tiny_mnist, tmp_path):
    path, expected = bad_checkpoint(case, tmp_path, reference.out / "checkpoint.npz")
    rc, stdout, err = cli(evaluate.main, path, "--data-dir", tiny_mnist)
    assert rc == 2
    assert stdout == "" and err.count("\n") == 1, err
    line = err.rstrip("\n")
    if isinstance(expected, str):
        assert line == f"error: {expected}"
    else:
        assert line.startswith("error: ") and expected.fullmatch(line[len("error: "):]), line


def test_evaluate_without_data(reference, tmp_path):
    rc, stdout, err = cli(evaluate.main, reference.out / "checkpoint.npz", "--data-dir", tmp_path / "typo")
    assert rc == 2 and stdout == ""
    assert err == f"error: --data-dir {tmp_path / 'typo'} does not exist\n"
