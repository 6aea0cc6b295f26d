"""Train an SNN: ``python -m minisnn.train DATASET [options]``.

Writes to ``--out``: ``checkpoint.npz`` (every ``--checkpoint-every`` steps and every epoch,
atomically), ``metrics.jsonl`` (one line per epoch), ``steps.jsonl`` (running training loss),
``summary.json`` and ``learning_curve.png``. ``--resume`` continues bit for bit: every random
draw is keyed by (seed, epoch, step), so the position in training is the whole RNG state.
Ctrl-C finishes the current step, saves and exits; a second Ctrl-C aborts at once.
"""
import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .calibrate import calibrate_norm_stats
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError
from .evaluate import evaluate, test_batches
from .losses import cross_entropy
from .models import NORMS
from .optim import SGD, step_schedule
from .plots import plot_learning_curve
from .surrogate import SURROGATES
from .tasks import TASKS, batch_rng, get_task


CALIBRATION_KEY = 10 ** 9 + 1   # batch_rng key of calibration batches


class UsageError(Exception):
    """Impossible options or data."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help=f"one of: {', '.join(sorted(TASKS))}")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="base learning rate (÷10 at 50/70/90 %% of the epochs)")
    p.add_argument("--milestones", metavar="E1,E2,...",
                   help="÷10 after these numbers of epochs instead of at 50/70/90 %%; like --epochs, it "
                        "may change on --resume (to continue a run with a new schedule)")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--T", type=int, help="time steps")
    p.add_argument("--leak", type=float, help="membrane leak λ")
    p.add_argument("--threshold", type=float, default=1.0)
    p.add_argument("--norm", choices=NORMS, default="bntt")
    p.add_argument("--surrogate", choices=sorted(SURROGATES), default="triangle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder with the dataset files (else $MINISNN_DATA, ~/.cache/minisnn)")
    p.add_argument("--out", default=None, help="output folder (default runs/DATASET)")
    p.add_argument("--subset", type=int, help="train on N training samples and test on N test samples")
    p.add_argument("--record", metavar="PATH", help="after training, record the test set for hwmodel (run.npz)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default: OUT/checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="also checkpoint every N steps")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--bn-calibration", type=int, default=20, metavar="N",
                   help="before each evaluation, re-estimate BN running statistics on N training batches "
                        "with the current weights (0: keep the running averages; see minisnn/calibrate.py)")
    return p.parse_args(argv)


def resolve_config(args):
    """The run's configuration: CLI values over the task's paper defaults, validated."""
    task = get_task(args.dataset)
    cfg = dict(task.defaults)
    for key in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "T", "leak"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    cfg.update(dataset=task.name, threshold=args.threshold, norm=args.norm, surrogate=args.surrogate,
               seed=args.seed, subset=args.subset, milestones=parse_milestones(args.milestones))
    checks = [(cfg["epochs"] >= 1, "--epochs must be at least 1"),
              (cfg["T"] >= 1, "--T must be at least 1"),
              (cfg["batch_size"] >= 1, "--batch-size must be at least 1"),
              (cfg["lr"] > 0, "--lr must be positive"),
              (cfg["momentum"] >= 0, "--momentum must be non-negative"),
              (cfg["weight_decay"] >= 0, "--weight-decay must be non-negative"),
              (0 <= cfg["leak"] <= 1, "--leak must be in [0, 1]"),
              (cfg["threshold"] > 0, "--threshold must be positive"),
              (args.subset is None or args.subset >= 1, "--subset must be at least 1"),
              (args.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
              (args.bn_calibration >= 0, "--bn-calibration must be non-negative")]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return task, cfg


def parse_milestones(text):
    """"21,26,29" -> [21, 26, 29] (increasing epoch counts ≥ 1), or None."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--milestones must be comma-separated epoch counts, got {text!r}") from None
    if any(v < 1 for v in values) or values != sorted(set(values)):
        raise UsageError(f"--milestones must be increasing epoch counts of at least 1, got {text!r}")
    return values


# Settings that define the schedule, not the model or the data: --resume may change them.
SCHEDULE_KEYS = ("epochs", "milestones")


class StopRequest:
    """First Ctrl-C: finish the step, save, exit. Second: abort immediately."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this step, then saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)


def load_data(task, cfg, data_dir):
    train = task.load(data_dir, True)
    test = task.load(data_dir, False)
    if cfg["subset"]:
        idx = np.random.default_rng([cfg["seed"], 7]).permutation(len(train[0]))[:cfg["subset"]]
        train = (train[0][np.sort(idx)], train[1][np.sort(idx)])
        test = (test[0][:cfg["subset"]], test[1][:cfg["subset"]])
    if cfg["batch_size"] > len(train[0]):
        raise UsageError(f"--batch-size {cfg['batch_size']} is larger than the {len(train[0])} training samples")
    return train, test


def train(args):
    task, cfg = resolve_config(args)
    out = Path(args.out or f"runs/{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"
    net = task.build(T=cfg["T"], norm=cfg["norm"], leak=cfg["leak"], threshold=cfg["threshold"],
                     surrogate=cfg["surrogate"], seed=cfg["seed"])
    opt = SGD(net.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    progress = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "elapsed_s": 0.0}
    if args.resume:
        progress = resume(args, net, opt, cfg, out)
    (train_x, train_y), (test_x, test_y) = load_data(task, cfg, args.data_dir)
    steps_per_epoch = len(train_x) // cfg["batch_size"]   # the last partial batch is dropped
    n_test_batches = -(-len(test_x) // args.eval_batch_size)
    started = time.time() - progress["elapsed_s"]

    def save():
        progress["elapsed_s"] = time.time() - started
        save_checkpoint(ckpt_path, net, opt, cfg, progress)

    def diverged(what, epoch, step):
        last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved"
        return TrainingDiverged(f"{what} at epoch {epoch + 1}, step {step + 1}; {last} (try a lower --lr)")

    print(f"training {task.name}: {len(train_x)} samples, {steps_per_epoch} steps/epoch, "
          f"{cfg['epochs']} epochs, T={cfg['T']}, norm={cfg['norm']}, out={out}", file=sys.stderr)
    log_mode = "a" if args.resume else "w"   # a fresh run replaces the logs of an earlier run in --out
    with StopRequest() as stop, open(out / "metrics.jsonl", log_mode) as metrics, \
            open(out / "steps.jsonl", log_mode) as steps:
        for epoch in range(progress["epoch"], cfg["epochs"]):
            opt.lr = step_schedule(cfg["lr"], epoch, cfg["epochs"], after=cfg["milestones"])
            order = batch_rng(cfg["seed"], epoch).permutation(len(train_x))
            bar = tqdm(range(progress["step"], steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg['epochs']}",
                       initial=progress["step"], total=steps_per_epoch, mininterval=2.0)
            for step in bar:
                idx = order[step * cfg["batch_size"]:(step + 1) * cfg["batch_size"]]
                rng = batch_rng(cfg["seed"], epoch, step)
                images = task.augment(train_x[idx], rng) if task.augment else train_x[idx]
                x = task.encode(images, cfg["T"], rng)
                logits = net.forward(x, train=True)
                loss, dlogits = cross_entropy(logits, train_y[idx])
                if not np.isfinite(loss):
                    raise diverged(f"loss became {loss}", epoch, step)
                opt.zero_grad()
                net.backward(dlogits)
                opt.step()
                if not all(np.isfinite(p.data).all() for p in net.parameters()):   # never save inf/NaN weights
                    raise diverged("the weights became infinite or NaN", epoch, step)
                net.clear()
                progress["loss_sum"] += loss * len(idx)
                progress["correct"] += int((logits.argmax(axis=1) == train_y[idx]).sum())
                progress["seen"] += len(idx)
                progress["step"] = step + 1
                bar.set_postfix(loss=f"{progress['loss_sum'] / progress['seen']:.4f}",
                                acc=f"{progress['correct'] / progress['seen']:.4f}", refresh=False)
                if (step + 1) % args.checkpoint_every == 0 or stop.requested:
                    steps.write(json.dumps({"epoch": epoch + (step + 1) / steps_per_epoch,
                                            "train_loss": progress["loss_sum"] / progress["seen"],
                                            "train_acc": progress["correct"] / progress["seen"]}) + "\n")
                    steps.flush()
                    save()
                if stop.requested:
                    bar.close()
                    print(f"saved {ckpt_path} at epoch {epoch + 1}, step {step + 1}; "
                          f"continue with --resume", file=sys.stderr)
                    return None
            bar.close()
            calibrate(task, cfg, net, train_x, epoch, args.bn_calibration)
            test_loss, test_acc = evaluate(net, test_batches(task, test_x, test_y, cfg["T"], args.eval_batch_size,
                                                             cfg["seed"]), progress=True, total=n_test_batches)
            record = {"epoch": epoch + 1, "lr": opt.lr, "train_loss": progress["loss_sum"] / progress["seen"],
                      "train_acc": progress["correct"] / progress["seen"], "test_loss": test_loss,
                      "test_acc": test_acc, "elapsed_s": time.time() - started}
            if cfg["norm"] in ("bntt", "bn"):   # also as in training: test batches of the training size
                record["test_loss_batch_stats"], record["test_acc_batch_stats"] = evaluate(
                    net, test_batches(task, test_x, test_y, cfg["T"], cfg["batch_size"], cfg["seed"]),
                    progress=True, total=-(-len(test_x) // cfg["batch_size"]), desc="test (batch stats)",
                    bn_stats="batch")
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f} | "
                  f"test loss {test_loss:.4f} acc {test_acc:.4f}" + (
                      f" | batch-stats test acc {record['test_acc_batch_stats']:.4f}"
                      if "test_acc_batch_stats" in record else ""), file=sys.stderr)
            progress.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0, seen=0)
            save()
    return finish(args, task, cfg, net, out, (test_x, test_y), time.time() - started)


def calibrate(task, cfg, net, train_x, epoch, n_batches):
    """Precise BN statistics from ``n_batches`` training batches (keyed by seed and epoch)."""
    if n_batches <= 0 or not any(hasattr(layer, "batch_statistics") for layer in net.layers):
        return
    rng = batch_rng(cfg["seed"], epoch, CALIBRATION_KEY)
    size = min(cfg["batch_size"], len(train_x))
    batches = (task.encode(train_x[rng.choice(len(train_x), size, replace=False)], cfg["T"],
                           batch_rng(cfg["seed"], epoch, CALIBRATION_KEY, k)) for k in range(n_batches))
    calibrate_norm_stats(net, tqdm(batches, total=n_batches, desc="BN calibration", leave=False))


def resume(args, net, opt, cfg, out):
    path = out / "checkpoint.npz" if args.resume == "auto" else Path(args.resume)
    meta, model_state, optim_state = load_checkpoint(path)
    saved = {k: v for k, v in meta["config"].items() if k not in SCHEDULE_KEYS}
    now = {k: v for k, v in cfg.items() if k not in SCHEDULE_KEYS}
    if saved != now:
        diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)}
        raise CheckpointError(f"checkpoint {path} was trained with other settings (saved, now): {diff}")
    try:
        net.load_state_dict(model_state)
        opt.load_state_dict(optim_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match this network: {e}") from None
    print(f"resuming from {path}: epoch {meta['progress']['epoch'] + 1}, step {meta['progress']['step']}",
          file=sys.stderr)
    return meta["progress"]


def finish(args, task, cfg, net, out, test, wall_time):
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    summary = {"dataset": task.name, "test_accuracy": lines[-1]["test_acc"],
               "best_test_accuracy": max(r["test_acc"] for r in lines), "epochs": cfg["epochs"],
               "wall_time_s": wall_time, "test_samples": len(test[0]), "checkpoint": str(out / "checkpoint.npz"),
               "command": "python -m minisnn.train " + " ".join(shlex.quote(a) for a in sys.argv[1:]), "config": cfg}
    plot_learning_curve(out / "metrics.jsonl", out / "steps.jsonl", out / "learning_curve.png",
                        title=f"{task.name} ({cfg['norm']}, T={cfg['T']})")
    if args.record:
        from .record import record_run
        record_run(net, test_batches(task, *test, cfg["T"], args.eval_batch_size, cfg["seed"]), args.record,
                   meta={"dataset": task.name, "checkpoint": str(out / "checkpoint.npz")})
        summary["record"] = args.record
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"done: test accuracy {100 * summary['test_accuracy']:.2f} % ({out / 'summary.json'})", file=sys.stderr)
    return summary


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (UsageError, DataError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
