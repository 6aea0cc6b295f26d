"""What every analysis shares: loading a checkpoint with its task, the test split, batches,
the output folder, JSON and figures.

An analysis reads a checkpoint written by ``python -m minisnn.train`` (the network and, in
``meta["config"]``, the dataset, T and seed it was trained with), runs the network in evaluation
mode on the test split encoded exactly as ``python -m minisnn.evaluate`` encodes it, and writes
``NAME.png`` and ``NAME.json`` into the output folder.
"""
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt  # the backend is the caller's: the CLI picks Agg, a notebook keeps its own
import numpy as np

from ..checkpoint import CheckpointError, load_network
from ..evaluate import default_bn_stats, test_batches
from ..layers import BNTT, LIF
from ..tasks import EVAL_KEY, batch_rng, get_task
from ..training import train_step

__all__ = ["plt", "load", "load_test", "batches", "n_batches", "out_dir", "save_json", "save_figure",
           "bntt_layers", "lif_layers", "parse_list", "positive_int", "encode_eval", "eval_mode"]


def load(path):
    """(net, meta, task) of a checkpoint written by ``python -m minisnn.train``."""
    net, meta = load_network(path, trained=True)
    try:
        task = get_task(meta["config"]["dataset"])
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    return net, meta, task


def load_test(task, data_dir, subset=None):
    """Normalised test images and labels, optionally the first ``subset`` of them."""
    images, labels = task.load(data_dir, False)
    if subset is not None:
        if subset < 1:
            raise ValueError("--subset must be at least 1")
        images, labels = images[:subset], labels[:subset]
    return images, labels


def batches(task, images, labels, meta, batch_size, T=None):
    """The evaluation batches of ``minisnn.evaluate``: same encoding, same random draws."""
    config = meta["config"]
    return test_batches(task, images, labels, T or config["T"], batch_size, config.get("seed", 0))


def encode_eval(task, images, start, T, seed, key=EVAL_KEY):
    """Encode test images ``start, start + 1, …`` exactly as ``test_batches`` does: image i with
    its own generator (seed, key, i), so a perturbed image gets the clean run's draws (another
    ``key``: other draws, e.g. robustness's fresh ones)."""
    return np.concatenate([task.encode(images[j:j + 1], T, batch_rng(seed, key, start + j))
                           for j in range(len(images))], axis=1)


def eval_mode(net, meta, bn_stats=None, batch_size=None):
    """Set how ``net``'s BNTT/BN layers normalise in evaluation (``--bn-stats``; None: as in
    training, ``evaluate.default_bn_stats``). Returns (batch size, the statistics used): the
    batch size is ``batch_size`` if given, else 200 with fixed statistics and the training batch
    size with batch statistics (as ``python -m minisnn.evaluate``)."""
    bn_stats = bn_stats or default_bn_stats(net, meta["config"])
    net.set_eval_stats(bn_stats)
    if batch_size is None:
        batch_size = meta["config"].get("batch_size", 200) if bn_stats == "batch" else 200
    return batch_size, bn_stats


def fixed_batch_steps(net, opt, task, images, labels, T, steps, batch_size, seed):
    """The analyses' short trainings: ``steps`` ``train_step``s on batches that follow one fixed
    permutation of the images (wrapping around), encoded with (seed, 0, step). Returns the
    losses, stopping after the first non-finite one."""
    order = batch_rng(seed, 0).permutation(len(images))
    losses = []
    for step in range(steps):
        idx = np.take(order, np.arange(step * batch_size, (step + 1) * batch_size), mode="wrap")
        loss, _ = train_step(net, opt, task.encode(images[idx], T, batch_rng(seed, 0, step)), labels[idx])
        losses.append(loss)
        if not np.isfinite(loss):
            break
    return losses


def n_batches(n, batch_size):
    return -(-n // batch_size)


def out_dir(out, checkpoint=None):
    """``--out`` or, by default, ``analysis/`` beside the checkpoint; created if missing."""
    path = Path(out) if out else Path(checkpoint).parent / "analysis"
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(obj):
    """NumPy scalars and arrays as JSON values; NaN and infinities as null."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def save_json(path, obj):
    Path(path).write_text(json.dumps(_plain(obj), indent=1) + "\n")
    return path


def save_figure(fig, path, dpi=100):
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def bntt_layers(net):
    """(index in net.layers, BNTT layer) pairs, in network order."""
    return [(i, layer) for i, layer in enumerate(net.layers) if isinstance(layer, BNTT)]


def lif_layers(net):
    """(index in net.layers, LIF layer) pairs, in network order."""
    return [(i, layer) for i, layer in enumerate(net.layers) if isinstance(layer, LIF)]


def labels(runs):
    """Legend labels for (norm, checkpoint path) pairs: the norm, or "norm: folder" when norms repeat."""
    names = [norm or Path(path).parent.name for norm, path in runs]
    return [f"{n}: {Path(path).parent.name}" if names.count(n) > 1 else n for n, (_, path) in zip(names, runs)]


def parse_list(text, kind=float, name="list"):
    """'0,0.1,0.2' -> [0.0, 0.1, 0.2]; ValueError with the option's name if malformed."""
    try:
        values = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{name} is empty")
    return values


def positive_int(name, value, allow_none=True):
    if value is None and allow_none:
        return value
    if value is None or value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value
