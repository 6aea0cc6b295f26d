"""Test accuracy of a trained network: ``python -m minisnn.evaluate CHECKPOINT``."""
import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError, load_network
from .data import DataError
from .losses import cross_entropy
from .layers.norm import EVAL_STATS
from .tasks import EVAL_KEY, batch_rng, get_task


def test_batches(task, images, labels, T, batch_size, seed):
    """(encoded input [T, B, ...], labels) over a whole split, deterministic for a seed. Test image
    i is encoded with its own generator (seed, EVAL_KEY, i), so the input, and the accuracy, do not
    depend on the batch size (training's --eval-batch-size, evaluate's --batch-size)."""
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        x = np.concatenate([task.encode(images[i:i + 1], T, batch_rng(seed, EVAL_KEY, i))
                            for i in range(start, stop)], axis=1)
        yield x, labels[start:stop]


def default_bn_stats(net, config):
    """The statistics a checkpoint was evaluated with in training: "calibrated" when it was
    trained with calibration (``bn_calibration`` > 0; a format-1 checkpoint's config lacks the key
    and its one set of statistics serves both) and has calibrated statistics, else "running"."""
    norms = net.norm_layers()
    calibrated = norms and all(layer.is_calibrated() for layer in norms)
    return "calibrated" if calibrated and config.get("bn_calibration", 20) > 0 else "running"


def evaluate(net, batches, progress=False, total=None, desc="test", bn_stats="running"):
    """Mean loss and accuracy of ``net`` in evaluation mode over ``batches``.

    ``bn_stats``: normalisation layers use their "running" averages (the paper's protocol),
    their "calibrated" statistics (``minisnn/calibrate.py``), or each test batch's own "batch"
    statistics, as in training (transductive: depends on the batch size).
    """
    loss_sum, correct, seen = 0.0, 0, 0
    net.set_eval_stats(bn_stats)
    try:
        for x, y in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
            logits = net.forward(x, train=False)
            loss, _ = cross_entropy(logits, y)
            loss_sum += loss * len(y)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(y)
            net.clear()
    finally:
        net.set_eval_stats("running")
    return loss_sum / seen, correct / seen


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.evaluate", description=__doc__)
    p.add_argument("checkpoint", help="checkpoint.npz written by python -m minisnn.train")
    p.add_argument("--data-dir", help="folder with the dataset files")
    p.add_argument("--batch-size", type=int, help="default 200; with --bn-stats batch, the training batch size")
    p.add_argument("--bn-stats", choices=EVAL_STATS,
                   help="normalise with the running averages (the paper's protocol), the calibrated statistics "
                        "(precise BN) or each test batch's own (as in training); default: as in training "
                        "(calibrated when the run calibrated, else running)")
    p.add_argument("--subset", type=int, help="evaluate on the first N test samples only")
    p.add_argument("--record", metavar="PATH", help="also write the run file hwmodel reads (run.npz)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    try:
        net, meta = load_network(args.checkpoint, trained=True)
        config = meta["config"]
        args.bn_stats = args.bn_stats or default_bn_stats(net, config)
        if args.batch_size is None:
            args.batch_size = config.get("batch_size", 200) if args.bn_stats == "batch" else 200
        if args.batch_size < 1 or (args.subset is not None and args.subset < 1):
            raise ValueError("--batch-size and --subset must be positive")
        task = get_task(config.get("dataset"))
        images, labels = task.load(args.data_dir, False)
        if args.subset:
            images, labels = images[:args.subset], labels[:args.subset]
        T, seed = config["T"], config.get("seed", 0)
        n_batches = -(-len(images) // args.batch_size)
        loss, acc = evaluate(net, test_batches(task, images, labels, T, args.batch_size, seed),
                             progress=True, total=n_batches, bn_stats=args.bn_stats)
        result = {"checkpoint": str(args.checkpoint), "dataset": task.name, "samples": len(images),
                  "bn_stats": args.bn_stats, "batch_size": args.batch_size, "test_loss": loss, "test_accuracy": acc}
        if args.record:
            from .record import record_run
            net.set_eval_stats(args.bn_stats)
            record_run(net, test_batches(task, images, labels, T, args.batch_size, seed), args.record,
                       meta={"dataset": task.name, "checkpoint": str(args.checkpoint), "bn_stats": args.bn_stats})
            net.set_eval_stats("running")
            result["record"] = args.record
    except (CheckpointError, DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{task.name}: test accuracy {100 * acc:.2f} % on {len(images)} samples (loss {loss:.4f}; "
              f"{args.bn_stats} normalisation statistics, batch size {args.batch_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
