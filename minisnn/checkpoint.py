"""Checkpoints: one ``.npz`` with the model, the optimizer, the position in training and the
run's configuration (as JSON). Written atomically; read without pickle."""
import json
import os
from pathlib import Path

import numpy as np

from . import models

FORMAT = "minisnn-checkpoint-2"
# Format 1 kept one set of normalisation statistics, the running averages overwritten by the
# calibration before each evaluation; format 2 keeps the running averages and the calibrated
# statistics apart (``layers/norm.py``). A format-1 file is read as format 2 with both set to
# its one set (``meta["upgraded_from"]`` says so).
FORMAT_1 = "minisnn-checkpoint-1"


class CheckpointError(Exception):
    """An unreadable, foreign or mismatched checkpoint."""


def save_checkpoint(path, net, optimizer=None, config=None, progress=None):
    """Write ``path`` atomically: a temporary file in the same folder, then a rename, so an
    interrupted save never leaves a half-written checkpoint."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in net.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"format": FORMAT, "spec": net.spec, "config": config or {}, "progress": progress or {}}
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:   # a failed or interrupted save leaves the previous checkpoint and no .tmp
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path):
    """Return (meta dict, model state, optimizer state) from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else None
    except Exception as e:  # zip, npy and JSON errors alike mean "not a readable checkpoint"
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a minisnn checkpoint (no metadata)")
    if meta.get("format") not in (FORMAT, FORMAT_1):
        raise CheckpointError(f"{path} is not a minisnn checkpoint (format {meta.get('format')!r})")
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    if meta["format"] == FORMAT_1:
        for key in [k for k in model if k.endswith(".running_mean") or k.endswith(".running_var")]:
            model[key.replace(".running_", ".calibrated_")] = model[key].copy()
        meta.update(format=FORMAT, upgraded_from=FORMAT_1)
    return meta, model, optim


def load_network(path, trained=False):
    """Rebuild the network stored in a checkpoint, with its weights. Returns (net, meta).

    ``trained``: the checkpoint must come from ``minisnn.train`` (its config names the dataset and
    T, which evaluation and the analyses need)."""
    meta, model, _ = load_checkpoint(path)
    config = meta.get("config")
    if trained and not (isinstance(config, dict) and "dataset" in config and "T" in config):
        raise CheckpointError(f"checkpoint {path} has no training configuration (dataset and T); "
                              "evaluation needs a checkpoint written by python -m minisnn.train")
    try:
        net = models.build(meta["spec"])
        net.load_state_dict(model)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its network: {e}") from None
    return net, meta
