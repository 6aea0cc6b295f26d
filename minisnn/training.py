"""Training: one step, one loop, one config. ``python -m minisnn.train`` is its command line.

``train_step`` is the step every trainer here runs (this loop, the surrogate sweep's short
trainings, the tutorials, the benchmarks). ``train(TrainConfig(...))`` is the loop:

    for epoch:  lr ← schedule(epoch);  order ← permutation(seed, epoch)
        for step:  x ← encode(batch, rng(seed, epoch, step));  train_step(net, opt, x, labels)
                   every checkpoint_every steps (and on a stop signal): save
        calibrate the normalisation statistics;  evaluate (a fixed test subset, or all of it);  log;  save

and writes to ``out``: ``checkpoint.npz`` (every ``checkpoint_every`` steps and every epoch,
atomically), ``metrics.jsonl`` (one line per epoch), ``steps.jsonl`` (running training loss),
``summary.json`` and ``learning_curve.png``. Resuming continues bit for bit: every random draw
is keyed by (seed, epoch, step), so the position in training is the whole RNG state. The first
SIGINT (Ctrl-C) or SIGTERM (``timeout``, batch schedulers) finishes the current step, saves and
raises ``TrainingInterrupted``; a second one aborts at once.
"""
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .calibrate import calibrate_norm_stats
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .evaluate import evaluate, test_batches
from .layers import BNTT
from .losses import cross_entropy
from .optim import DROPS, SGD, step_schedule
from .plots import plot_learning_curve
from .tasks import CALIBRATION_KEY, RECIPES, SUBSET_KEY, batch_rng, get_task


class UsageError(Exception):
    """Impossible options or data."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint; ``signum`` says which."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


def train_step(net, opt, x, labels, observe=None):
    """One SGD step on a batch: forward, loss, zero_grad, backward, update, clear.

        L = cross_entropy(net(x), labels),   ∂L/∂θ by BPTT (``Sequential.backward``),   θ ← SGD(θ, ∂L/∂θ)

    Returns (loss, logits ``[B, classes]``). A non-finite loss is returned before any gradient is
    computed or applied, so the weights stay those of the last good step. With ``opt`` None the
    gradients are computed and left in ``.grad``, not applied (benchmarks, gradient studies).
    ``observe`` watches both passes (``Sequential``).
    """
    logits = net.forward(x, train=True, observe=observe)
    loss, dlogits = cross_entropy(logits, labels)
    if not np.isfinite(loss):
        net.clear()
        return loss, logits
    net.zero_grad()
    net.backward(dlogits, observe=observe, input_grad=False)     # ∂L/∂x is not needed to learn
    if opt is not None:
        opt.step()
    net.clear()
    return loss, logits


# The recipe's settings that a resumed run may change: the schedule and the evaluation.
RESUMABLE_KEYS = ("epochs", "drops", "milestones", "bn_calibration", "eval_samples", "full_eval_every")
RECIPE_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "T", "leak")
RESETS = ("soft", "hard")


@dataclass
class TrainConfig:
    """Everything one training run needs. ``None`` recipe values take the task's defaults
    (``tasks.py``); the resolved recipe (``resolve()``) is what checkpoints store as their config."""
    dataset: str
    recipe: str = "code"             # tasks.RECIPES: "code" (reference code's defaults) or "paper" (its text)
    epochs: int = None
    batch_size: int = None
    lr: float = None
    milestones: list = None          # ÷10 after these epoch counts (default: at the task's drops,
                                     # fractions of the epochs; 50/70/90 % unless tasks.py says otherwise)
    momentum: float = None
    weight_decay: float = None
    T: int = None
    leak: float = None
    threshold: float = 1.0
    norm: str = "bntt"
    reset: str = "soft"              # LIF reset: "soft" (v = u − θ·o) or "hard" (v = u·(1 − o), as NIR's)
    surrogate: str = "triangle"
    surrogate_height: float = None   # None: the surrogate's own (triangle 0.3; docs/deep.md tunes it for depth)
    surrogate_width: float = None    # None: the surrogate's own (triangle 1)
    seed: int = 0
    subset: int = None               # train on N training samples, test on N test samples
    bn_calibration: int = 20         # training batches for the calibrated statistics (0: none)
    gamma_decay: bool = True         # weight decay on BNTT's γ too (False: the weight-decay control)
    # where and how, not what: not part of the recipe
    data_dir: str = None
    out: str = None                  # default runs/DATASET
    resume: str = None               # a checkpoint path, or "auto" for OUT/checkpoint.npz
    checkpoint_every: int = 50
    keep_epochs: bool = False        # also keep each epoch's end as OUT/epochN.npz (analyses at equal steps)
    eval_batch_size: int = 256
    eval_samples: int = None         # between epochs, test on the first N test samples only (None: the
                                     # task's default; all of them unless tasks.py says otherwise)
    full_eval_every: int = None      # ... except every K epochs (None: the task's, else 0: only the last)
    batch_stats_eval: bool = False   # also evaluate with each test batch's own statistics
    record: str = None               # after training, record the test set for hwmodel (run.npz)
    command: str = None              # the command line, for summary.json
    progress: bool = True

    def resolve(self):
        """(task, the validated recipe dict: task defaults overridden by the set values)."""
        task = get_task(self.dataset)
        if self.recipe not in RECIPES:
            raise UsageError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        cfg = dict(task.defaults, **RECIPES[self.recipe])
        cfg.update({k: getattr(self, k) for k in RECIPE_KEYS if getattr(self, k) is not None})
        cfg["drops"] = list(cfg.get("drops", DROPS))
        cfg.update({k: getattr(self, k) for k in ("eval_samples", "full_eval_every") if getattr(self, k) is not None})
        cfg.setdefault("eval_samples", None)
        cfg.setdefault("full_eval_every", 0)
        cfg.update(dataset=task.name, recipe=self.recipe, threshold=self.threshold, norm=self.norm, reset=self.reset,
                   surrogate=self.surrogate, surrogate_height=self.surrogate_height,
                   surrogate_width=self.surrogate_width,
                   seed=self.seed, subset=self.subset, milestones=self.milestones,
                   bn_calibration=self.bn_calibration, gamma_decay=self.gamma_decay)
        milestones = self.milestones or []
        checks = [(cfg["epochs"] >= 1, "--epochs must be at least 1"),
                  (cfg["T"] >= 1, "--T must be at least 1"),
                  (cfg["batch_size"] >= 1, "--batch-size must be at least 1"),
                  (cfg["lr"] > 0, "--lr must be positive"),
                  (cfg["momentum"] >= 0, "--momentum must be non-negative"),
                  (cfg["weight_decay"] >= 0, "--weight-decay must be non-negative"),
                  (0 <= cfg["leak"] <= 1, "--leak must be in [0, 1]"),
                  (cfg["threshold"] > 0, "--threshold must be positive"),
                  (cfg["reset"] in RESETS, f"--reset must be one of {', '.join(RESETS)}, got {cfg['reset']!r}"),
                  (all(v is None or v > 0 for v in (self.surrogate_height, self.surrogate_width)),
                   "--surrogate-height and --surrogate-width must be positive"),
                  (self.subset is None or self.subset >= 1, "--subset must be at least 1"),
                  (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
                  (self.bn_calibration >= 0, "--bn-calibration must be non-negative"),
                  (cfg["eval_samples"] is None or cfg["eval_samples"] >= 1, "--eval-samples must be at least 1"),
                  (cfg["full_eval_every"] >= 0, "--full-eval-every must be non-negative"),
                  (all(m >= 1 for m in milestones) and milestones == sorted(set(milestones)),
                   "--milestones must be increasing epoch counts of at least 1")]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return task, cfg


class StopRequest:
    """First SIGINT or SIGTERM: finish the step, save, stop. Second: abort immediately."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None

    @property
    def requested(self):
        return self.signum is not None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        name = "interrupt" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: finishing this step, then saving a checkpoint (again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def load_data(task, cfg, data_dir):
    train = task.load(data_dir, True)
    test = task.load(data_dir, False)
    if cfg["subset"]:
        idx = np.sort(batch_rng(cfg["seed"], SUBSET_KEY).permutation(len(train[0]))[:cfg["subset"]])
        train = (train[0][idx], train[1][idx])
        test = (test[0][:cfg["subset"]], test[1][:cfg["subset"]])
    if cfg["batch_size"] > len(train[0]):
        raise UsageError(f"--batch-size {cfg['batch_size']} is larger than the {len(train[0])} training samples")
    return train, test


def train(config):
    """Run (or resume) the training ``config`` describes; returns the summary dict.

    Raises ``TrainingDiverged`` (after keeping the last good checkpoint), ``TrainingInterrupted``
    (after saving on a signal), ``UsageError``, ``DataError`` or ``CheckpointError``."""
    task, cfg = config.resolve()
    out = Path(config.out or f"runs/{task.name}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    ckpt_path = out / "checkpoint.npz"
    net = task.build(T=cfg["T"], norm=cfg["norm"], leak=cfg["leak"], threshold=cfg["threshold"],
                     reset=cfg["reset"], surrogate=surrogate_spec(cfg), seed=cfg["seed"])
    no_decay = [] if cfg["gamma_decay"] else [layer.gamma for layer in net.modules() if isinstance(layer, BNTT)]
    opt = SGD(net.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"], no_decay=no_decay)
    progress = {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "elapsed_s": 0.0, "lr_sum": 0.0}
    if config.resume:
        progress = resume(config, net, opt, cfg, out)
    (train_x, train_y), (test_x, test_y) = load_data(task, cfg, config.data_dir)
    out.mkdir(parents=True, exist_ok=True)     # only now: bad data or options leave no empty folder
    steps_per_epoch = len(train_x) // cfg["batch_size"]   # the last partial batch is dropped
    bn_stats = "calibrated" if cfg["bn_calibration"] and net.norm_layers() else "running"
    started = time.time() - progress["elapsed_s"]

    def save():
        progress["elapsed_s"] = time.time() - started
        save_checkpoint(ckpt_path, net, opt, cfg, progress)

    def diverged(what, epoch, step):
        last = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved"
        return TrainingDiverged(f"{what} at epoch {epoch + 1}, step {step + 1}; {last} (try a lower --lr)")

    def test(desc, batch_size, stats, n):
        """Loss and accuracy on the first n test samples (image i always encoded the same way)."""
        batches = test_batches(task, test_x[:n], test_y[:n], cfg["T"], batch_size, cfg["seed"])
        return evaluate(net, batches, progress=config.progress, total=-(-n // batch_size), desc=desc,
                        bn_stats=stats)

    def test_samples(epoch):
        """The whole test set after the last epoch, every ``full_eval_every`` epochs and without
        ``eval_samples``; otherwise its first ``eval_samples`` (a fixed subset, cheaper)."""
        every = cfg["full_eval_every"]
        full = not cfg["eval_samples"] or epoch + 1 == cfg["epochs"] or (every and (epoch + 1) % every == 0)
        return len(test_x) if full else min(cfg["eval_samples"], len(test_x))

    print(f"training {task.name}: {len(train_x)} samples, {steps_per_epoch} steps/epoch, "
          f"{cfg['epochs']} epochs, T={cfg['T']}, norm={cfg['norm']}, out={out}", file=sys.stderr)
    log_mode = "a" if config.resume else "w"   # a fresh run replaces the logs of an earlier run in out
    with StopRequest() as stop, open(out / "metrics.jsonl", log_mode) as metrics, \
            open(out / "steps.jsonl", log_mode) as steps:
        for epoch in range(progress["epoch"], cfg["epochs"]):
            opt.lr = step_schedule(cfg["lr"], epoch, cfg["epochs"], cfg["drops"], after=cfg["milestones"])
            order = batch_rng(cfg["seed"], epoch).permutation(len(train_x))
            bar = tqdm(range(progress["step"], steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg['epochs']}",
                       initial=progress["step"], total=steps_per_epoch, mininterval=2.0,
                       disable=not config.progress)
            for step in bar:
                idx = order[step * cfg["batch_size"]:(step + 1) * cfg["batch_size"]]
                rng = batch_rng(cfg["seed"], epoch, step)
                images = task.augment(train_x[idx], rng) if task.augment else train_x[idx]
                loss, logits = train_step(net, opt, task.encode(images, cfg["T"], rng), train_y[idx])
                if not np.isfinite(loss):
                    raise diverged(f"loss became {loss}", epoch, step)
                if not all(np.isfinite(p.data).all() for p in net.parameters()):   # never save inf/NaN weights
                    raise diverged("the weights became infinite or NaN", epoch, step)
                progress["loss_sum"] += loss * len(idx)
                progress["correct"] += int((logits.argmax(axis=1) == train_y[idx]).sum())
                progress["seen"] += len(idx)
                progress["step"] = step + 1
                progress["lr_sum"] = progress.get("lr_sum", 0.0) + opt.lr   # Σ lr over steps, for κ
                bar.set_postfix(loss=f"{progress['loss_sum'] / progress['seen']:.4f}",
                                acc=f"{progress['correct'] / progress['seen']:.4f}", refresh=False)
                if (step + 1) % config.checkpoint_every == 0 or stop.requested:
                    steps.write(json.dumps({"epoch": epoch + (step + 1) / steps_per_epoch,
                                            "train_loss": progress["loss_sum"] / progress["seen"],
                                            "train_acc": progress["correct"] / progress["seen"]}) + "\n")
                    steps.flush()
                    save()
                if stop.requested:
                    bar.close()
                    raise TrainingInterrupted(stop.signum, f"saved {ckpt_path} at epoch {epoch + 1}, step {step + 1}; "
                                                           f"continue with --resume")
            bar.close()
            if bn_stats == "calibrated":
                calibrate(task, cfg, net, train_x, epoch, config.progress)
            n = test_samples(epoch)
            test_loss, test_acc = test("test", config.eval_batch_size, bn_stats, n)
            record = {"epoch": epoch + 1, "lr": opt.lr, "train_loss": progress["loss_sum"] / progress["seen"],
                      "train_acc": progress["correct"] / progress["seen"], "test_loss": test_loss,
                      "test_acc": test_acc, "test_samples": n, "bn_stats": bn_stats, "kappa": kappa(cfg, progress),
                      "elapsed_s": time.time() - started}
            if config.batch_stats_eval and net.norm_layers():   # as in training: batches of the training size
                record["test_loss_batch_stats"], record["test_acc_batch_stats"] = test(
                    "test (batch stats)", cfg["batch_size"], "batch", n)
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f} | "
                  f"test loss {test_loss:.4f} acc {test_acc:.4f}" + (
                      f" | batch-stats test acc {record['test_acc_batch_stats']:.4f}"
                      if "test_acc_batch_stats" in record else "") + f" ({n} test samples)", file=sys.stderr)
            progress.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0, seen=0)
            save()
            if config.keep_epochs:
                shutil.copyfile(ckpt_path, out / f"epoch{epoch + 1}.npz")
    return finish(config, task, cfg, net, out, (test_x, test_y), time.time() - started, bn_stats)


def kappa(cfg, progress):
    """The weight-decay budget so far, κ = wd·Σ_steps lr/(1 − μ): a parameter that gets no
    gradient has decayed by exp(−κ) (for a run resumed from a checkpoint older than this
    bookkeeping, the steps before it are missing from the sum)."""
    return cfg["weight_decay"] * progress.get("lr_sum", 0.0) / (1.0 - cfg["momentum"])


def calibrate(task, cfg, net, train_x, epoch, progress=True):
    """Calibrated BN statistics from ``cfg["bn_calibration"]`` training batches (keyed by seed
    and epoch): ``minisnn/calibrate.py``."""
    n_batches = cfg["bn_calibration"]
    rng = batch_rng(cfg["seed"], epoch, CALIBRATION_KEY)
    size = min(cfg["batch_size"], len(train_x))
    batches = (task.encode(train_x[rng.choice(len(train_x), size, replace=False)], cfg["T"],
                           batch_rng(cfg["seed"], epoch, CALIBRATION_KEY, k)) for k in range(n_batches))
    calibrate_norm_stats(net, tqdm(batches, total=n_batches, desc="BN calibration", leave=False,
                                   disable=not progress))


# Settings added since older checkpoints were written, with the value they had then.
ADDED_KEYS = {"recipe": "code", "gamma_decay": True, "reset": "soft", "surrogate_height": None,
              "surrogate_width": None}


def surrogate_spec(cfg):
    """The surrogate a recipe asks for: its name, or {name, height, width} when either is set."""
    if cfg.get("surrogate_height") is None and cfg.get("surrogate_width") is None:
        return cfg["surrogate"]
    return {"name": cfg["surrogate"], "height": cfg.get("surrogate_height"), "width": cfg.get("surrogate_width")}


def recipe_changes(saved, now):
    """{key: (saved, now)} for every setting that differs, apart from those a resumed run may
    change (``RESUMABLE_KEYS``)."""
    saved = {k: v for k, v in {**ADDED_KEYS, **saved}.items() if k not in RESUMABLE_KEYS}
    now = {k: v for k, v in now.items() if k not in RESUMABLE_KEYS}
    return {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)}


def resume(config, net, opt, cfg, out):
    path = out / "checkpoint.npz" if config.resume == "auto" else Path(config.resume)
    meta, model_state, optim_state = load_checkpoint(path)
    diff = recipe_changes(meta["config"], cfg)
    if diff:
        raise CheckpointError(f"checkpoint {path} was trained with other settings (saved, now): {diff}")
    try:
        net.load_state_dict(model_state)
        opt.load_state_dict(optim_state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match this network: {e}") from None
    print(f"resuming from {path}: epoch {meta['progress']['epoch'] + 1}, step {meta['progress']['step']}",
          file=sys.stderr)
    return meta["progress"]


def finish(config, task, cfg, net, out, test, wall_time, bn_stats):
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    full = [r for r in lines if r.get("test_samples", len(test[0])) == len(test[0])]   # older lines: full
    summary = {"dataset": task.name, "test_accuracy": lines[-1]["test_acc"],
               "best_test_accuracy": max(r["test_acc"] for r in full), "epochs": cfg["epochs"],
               "wall_time_s": wall_time, "test_samples": len(test[0]), "bn_stats": bn_stats,
               "checkpoint": str(out / "checkpoint.npz"), "command": config.command, "config": cfg}
    plot_learning_curve(out / "metrics.jsonl", out / "steps.jsonl", out / "learning_curve.png",
                        title=f"{task.name} ({cfg['norm']}, T={cfg['T']})")
    if config.record:
        from .record import record_run
        net.set_eval_stats(bn_stats)
        record_run(net, test_batches(task, *test, cfg["T"], config.eval_batch_size, cfg["seed"]), config.record,
                   meta={"dataset": task.name, "checkpoint": str(out / "checkpoint.npz"), "bn_stats": bn_stats})
        net.set_eval_stats("running")
        summary["record"] = config.record
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"done: test accuracy {100 * summary['test_accuracy']:.2f} % ({out / 'summary.json'})", file=sys.stderr)
    return summary
