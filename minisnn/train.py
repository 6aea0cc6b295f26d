"""Train an SNN: ``python -m minisnn.train DATASET [options]``.

The command line of ``minisnn.training.train`` (the loop, its outputs and its resume and stop
rules are described there). Writes to ``--out``: ``checkpoint.npz`` (every
``--checkpoint-every`` steps and every epoch, atomically), ``metrics.jsonl``, ``steps.jsonl``,
``summary.json`` and ``learning_curve.png``. ``--resume`` continues bit for bit. Ctrl-C or
SIGTERM finishes the current step, saves and exits with status 130 or 143; a second one aborts.
"""
import argparse
import shlex
import sys

from .checkpoint import CheckpointError
from .data import DataError
from .models import NORMS
from .surrogate import SURROGATES
from .tasks import RECIPES, TASKS
from .training import RESETS, TrainConfig, TrainingDiverged, TrainingInterrupted, UsageError, train


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help=f"one of: {', '.join(sorted(TASKS))}")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="code",
                   help="optimiser defaults: the BNTT reference code's (lr 0.1, weight decay 1e-4; the default) or "
                        "the paper's text (lr 0.3, weight decay 5e-4); --lr, --momentum, --weight-decay override")
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
    p.add_argument("--reset", choices=RESETS, default="soft",
                   help="LIF reset after a spike: soft subtracts θ (v = u − θ·o, the reference's), hard sets the "
                        "membrane to 0 (v = u·(1 − o)); NIR export needs hard (docs/nir.md)")
    p.add_argument("--surrogate", choices=sorted(SURROGATES), default="triangle")
    p.add_argument("--surrogate-height", type=float, metavar="H",
                   help="the surrogate's peak (default: its own, triangle 0.3); deep networks need it tuned "
                        "(docs/deep.md: h = 1, w = 0.5 keeps a 20-layer ResNet's gradient balanced)")
    p.add_argument("--surrogate-width", type=float, metavar="W", help="the surrogate's half-width (default: its own, triangle 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder with the dataset files (else $MINISNN_DATA, ~/.cache/minisnn)")
    p.add_argument("--out", default=None, help="output folder (default runs/DATASET)")
    p.add_argument("--subset", type=int, help="train on N training samples and test on N test samples")
    p.add_argument("--record", metavar="PATH", help="after training, record the test set for hwmodel (run.npz)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default: OUT/checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="also checkpoint every N steps")
    p.add_argument("--keep-epochs", action="store_true",
                   help="also keep the checkpoint of every epoch's end as OUT/epochN.npz (to analyse a run at equal steps)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--eval-samples", type=int, metavar="N",
                   help="between epochs, evaluate on the first N test samples only; the last epoch (and every "
                        "--full-eval-every K) uses the whole test set; metrics.jsonl says how many (test_samples)")
    p.add_argument("--full-eval-every", type=int, metavar="K",
                   help="with --eval-samples, also evaluate on the whole test set every K epochs (default 0, "
                        "only after the last; smnist: every 5 epochs, between them its first 2000 test digits)")
    p.add_argument("--batch-stats-eval", action="store_true",
                   help="also evaluate with each test batch's own normalisation statistics (transductive)")
    p.add_argument("--bn-calibration", type=int, default=20, metavar="N",
                   help="before each evaluation, calibrate BN statistics on N training batches with the current "
                        "weights and evaluate with them (0: evaluate with the running averages, the paper's "
                        "protocol); the running averages are kept either way (minisnn/calibrate.py)")
    p.add_argument("--no-gamma-decay", dest="gamma_decay", action="store_false",
                   help="exempt BNTT's γ from weight decay (the control for the paper's γ analyses)")
    return p.parse_args(argv)


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


def config_from_args(args, argv=None):
    """The ``TrainConfig`` a command line describes."""
    options = {k: v for k, v in vars(args).items() if k != "milestones"}
    argv = sys.argv[1:] if argv is None else argv
    return TrainConfig(**options, milestones=parse_milestones(args.milestones),
                       command="python -m minisnn.train " + " ".join(shlex.quote(str(a)) for a in argv))


def main(argv=None):
    args = parse_args(argv)
    try:
        train(config_from_args(args, argv))
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (UsageError, DataError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("aborted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
