"""The run file, format v1: a recorded inference run, enough to count every event exactly.

A run file is an ``.npz`` archive (``docs/run-format.md`` is the reference) holding

    format, version          "minisnn-run", 1
    T, n_samples             time steps per sample; samples recorded
    n_labelled, n_correct    for the accuracy (n_labelled = 0 when no labels were given)
    layers                   JSON: the layer sequence with its geometry
    sources                  JSON: the recorded activity tensors (encoder input, LIF outputs, …)
    meta                     JSON: free-form provenance (dataset, checkpoint, …)
    counts_<source>          int64 [T, *shape]: c[t, i] = #samples whose value at (t, i) ≠ 0

Everything is a plain array (JSON is stored as a 0-d unicode array), so ``np.load`` never
unpickles. ``read_run`` validates and raises ``RunFormatError`` with a one-line message;
``write_run`` validates the same way and writes atomically (temporary file + ``os.replace``).
"""
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import geometry
from .atomic import replacing

FORMAT = "minisnn-run"
VERSION = 1
SCALARS = ("T", "n_samples", "n_labelled", "n_correct")
REQUIRED = ("format", "version", *SCALARS, "layers", "sources", "meta")

SYNAPTIC = ("Linear", "Conv2d", "Readout")
POOLING = ("AvgPool2d", "MaxPool2d")
NEURONS = ("LIF",)
RESHAPE = ("Flatten",)
ELEMENTWISE = ("BNTT", "BatchNorm", "LayerNorm", "Dropout", "Identity")
MERGE = ("Add",)          # the sum of a residual block's two paths
KINDS = SYNAPTIC + POOLING + NEURONS + RESHAPE + ELEMENTWISE + MERGE
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class RunFormatError(ValueError):
    """A run file that cannot be trusted; the message is one line and names the problem."""


@dataclass
class Run:
    """A validated run: see the module docstring for the meaning of each field."""

    T: int
    n_samples: int
    layers: list
    sources: dict
    counts: dict
    meta: dict = field(default_factory=dict)
    n_labelled: int = 0
    n_correct: int = 0
    path: str = "<memory>"

    @property
    def accuracy(self):
        """n_correct / n_labelled, or None when no labels were recorded."""
        return self.n_correct / self.n_labelled if self.n_labelled else None


def _fail(where, message):
    raise RunFormatError(f"{where}: {message}")


def _json(where, key, raw):
    try:
        return json.loads(str(raw[()]) if isinstance(raw, np.ndarray) else str(raw))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        _fail(where, f"key {key!r} is not valid JSON ({e.msg if hasattr(e, 'msg') else e})")


def _int_scalar(where, key, value, low):
    arr = np.asarray(value)
    if arr.shape != () or not (np.issubdtype(arr.dtype, np.integer) or
                               (np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr) and arr == np.round(arr))):
        _fail(where, f"{key!r} must be an integer scalar, got {arr.dtype} of shape {arr.shape}")
    if int(arr) < low:
        _fail(where, f"{key!r} must be >= {low}, got {int(arr)}")
    return int(arr)


def _shape(where, what, value):
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        _fail(where, f"{what} must be a non-empty list of positive integers, got {value!r}")
    return tuple(value)


def read_run(path):
    """Load and validate a run file (never unpickling).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Run

    Raises
    ------
    RunFormatError
        With a one-line message naming the file and the problem.
    """
    where = str(path)
    try:
        if Path(path).is_file() and not zipfile.is_zipfile(path):
            _fail(where, "not a .npz archive (a run file is the zip that np.savez writes)")
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            for key in REQUIRED:
                if key not in keys:
                    _fail(where, f"missing key {key!r} (is this a run file from minisnn --record?)")
            fmt = str(npz["format"][()])
            if fmt != FORMAT:
                _fail(where, f"format is {fmt!r}, expected {FORMAT!r}")
            version = _int_scalar(where, "version", npz["version"], 0)
            if version != VERSION:
                _fail(where, f"unsupported run-format version {version} (this hwmodel reads version {VERSION})")
            scalars = {k: _int_scalar(where, k, npz[k], 1 if k in ("T", "n_samples") else 0) for k in SCALARS}
            layers = _json(where, "layers", npz["layers"])
            sources = _json(where, "sources", npz["sources"])
            meta = _json(where, "meta", npz["meta"])
            names = sources if isinstance(sources, dict) else {}
            counts = {}
            for name in names:
                key = f"counts_{name}"
                if key not in keys:
                    _fail(where, f"missing key {key!r} for source {name!r}")
                counts[name] = npz[key]
    except RunFormatError:
        raise
    except FileNotFoundError:
        _fail(where, "no such file")
    except IsADirectoryError:
        _fail(where, "is a directory, not a run file")
    except ValueError as e:
        if "pickle" in str(e).lower():
            _fail(where, "contains pickled objects; a run file holds plain arrays only (refused to unpickle)")
        _fail(where, f"not a readable .npz archive ({e})")
    # zlib.error: a corrupt deflate stream (write_run compresses); NotImplementedError and
    # RuntimeError: zipfile's answer to a flipped compression-method or encryption flag
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
        _fail(where, f"not a readable .npz archive ({type(e).__name__}: {e})")
    run = Run(T=scalars["T"], n_samples=scalars["n_samples"], layers=layers, sources=sources,
              counts=counts, meta=meta, n_labelled=scalars["n_labelled"], n_correct=scalars["n_correct"],
              path=where)
    validate(run)
    return run


def predecessor(layers, k):
    """Index of the layer whose output layer k reads: its ``after`` (−1: the network input),
    else k − 1. An ``Add`` reads its two ``operands`` instead."""
    return int(layers[k].get("after", k - 1))


def validate(run):
    """Check a ``Run`` for consistency: types, shapes, counts, geometry. Returns the run."""
    where = run.path
    if run.n_correct > run.n_labelled:
        _fail(where, f"n_correct ({run.n_correct}) exceeds n_labelled ({run.n_labelled})")
    if not isinstance(run.meta, dict):
        _fail(where, "meta must be a JSON object")
    _validate_sources(run)
    if not isinstance(run.layers, list) or not run.layers:
        _fail(where, "layers must be a non-empty JSON list")
    outputs = []            # out_shape of each layer so far; a layer reads its predecessor's
    for i, layer in enumerate(run.layers):
        lw = f"{where}: layer {i}"
        if not isinstance(layer, dict):
            _fail(lw, "must be a JSON object")
        for key in ("index", "kind", "in_shape", "out_shape"):
            if key not in layer:
                _fail(lw, f"missing {key!r}")
        if layer["index"] != i:
            _fail(lw, f"index is {layer['index']!r}, expected {i}")
        kind = layer["kind"]
        if kind not in KINDS:
            _fail(lw, f"unknown layer kind {kind!r} (hwmodel knows {', '.join(KINDS)})")
        lw = f"{lw} ({kind})"
        in_shape = _shape(lw, "in_shape", layer["in_shape"])
        out_shape = _shape(lw, "out_shape", layer["out_shape"])
        layer.setdefault("params", {})
        for k in _read_from(lw, layer, i):
            previous = run.sources["input"]["shape"] if k < 0 else outputs[k]
            if in_shape != tuple(previous):
                what = "the network input" if k < 0 else f"the output of layer {k}"
                _fail(lw, f"in_shape {list(in_shape)} disagrees with {what} {list(previous)}")
        _validate_io(run, lw, layer, kind, in_shape, out_shape)
        try:
            geometry.check_layer(kind, layer["params"], in_shape, out_shape)
        except (geometry.GeometryError, KeyError, TypeError, ValueError) as e:
            _fail(lw, str(e) if isinstance(e, geometry.GeometryError) else f"bad params ({type(e).__name__}: {e})")
        outputs.append(out_shape)
    return run


def _read_from(lw, layer, i):
    """The layers (−1: the input) whose outputs layer i reads, checked to come before it."""
    if layer["kind"] in MERGE:
        ops = layer.get("params", {}).get("operands")
        if not isinstance(ops, list) or len(ops) != 2:
            _fail(lw, "an Add needs params.operands: the two layers whose outputs it sums")
        found = ops
    else:
        found = [layer.get("after", i - 1)]
    for k in found:
        if not isinstance(k, int) or isinstance(k, bool) or not -1 <= k < i:
            _fail(lw, f"reads layer {k!r}, which is not an earlier layer (or −1, the input)")
    return found


def _validate_sources(run):
    where = run.path
    if not isinstance(run.sources, dict) or "input" not in run.sources:
        _fail(where, "sources must be a JSON object with an 'input' entry")
    for name, src in run.sources.items():
        sw = f"{where}: source {name!r}"
        if not _NAME.match(name):
            _fail(sw, "name must be letters, digits and underscores")
        if not isinstance(src, dict) or "shape" not in src or "binary" not in src:
            _fail(sw, "needs 'shape' and 'binary'")
        shape = _shape(sw, "shape", src["shape"])
        if not isinstance(src["binary"], bool):
            _fail(sw, f"'binary' must be true or false, got {src['binary']!r}")
        src.setdefault("origin", "input" if name == "input" else "spikes")
        if src["origin"] not in ("input", "spikes"):
            _fail(sw, f"origin must be 'input' or 'spikes', got {src['origin']!r}")
        c = np.asarray(run.counts.get(name))
        if c.shape != (run.T,) + shape:
            _fail(sw, f"counts have shape {list(c.shape)}, expected [T={run.T}] + {list(shape)}")
        if not (np.issubdtype(c.dtype, np.integer) or np.issubdtype(c.dtype, np.floating)):
            _fail(sw, f"counts must be integers, got dtype {c.dtype}")
        if np.issubdtype(c.dtype, np.floating):
            if not np.all(np.isfinite(c)):
                _fail(sw, "counts contain non-finite values (NaN or inf)")
            if np.any(c != np.round(c)):
                _fail(sw, "counts must be whole numbers")
        if c.size and c.min() < 0:
            _fail(sw, f"counts are negative (min {c.min()})")
        if c.size and c.max() > run.n_samples:
            _fail(sw, f"a count ({c.max()}) exceeds n_samples ({run.n_samples}): at most one event "
                      "per sample, position and step")


def _validate_io(run, lw, layer, kind, in_shape, out_shape):
    """A layer that reads activity names its input source; a LIF layer names its output. An
    ``Add`` whose operand is the block's input itself (an identity shortcut) names that source."""
    if kind in MERGE and layer.get("input") is not None:
        name = layer["input"]
        if name not in run.sources or tuple(run.sources[name]["shape"]) != in_shape:
            _fail(lw, f"input source {name!r} is not a recorded source of shape {list(in_shape)}")
    if kind in SYNAPTIC + POOLING:
        name = layer.get("input")
        if name not in run.sources:
            _fail(lw, f"input source {name!r} is not among the recorded sources")
        if int(np.prod(run.sources[name]["shape"])) != int(np.prod(in_shape)):
            _fail(lw, f"input source {name!r} has shape {run.sources[name]['shape']}, "
                      f"which does not hold in_shape {list(in_shape)}")
    if kind in NEURONS:
        name = layer.get("output")
        if name not in run.sources:
            _fail(lw, f"output source {name!r} is not among the recorded sources")
        if tuple(run.sources[name]["shape"]) != out_shape:
            _fail(lw, f"output source {name!r} has shape {run.sources[name]['shape']}, expected {list(out_shape)}")


def write_run(path, *, T, n_samples, layers, sources, counts, meta=None, n_labelled=0, n_correct=0):
    """Validate, then write a run file atomically (temp file in the same folder + ``os.replace``).

    Parameters
    ----------
    path : str or Path
    T, n_samples : int
    layers : list of dict
        The layer sequence (``docs/run-format.md``).
    sources : dict
        Source name -> {"shape", "binary", "origin"}.
    counts : dict
        Source name -> integer array ``[T, *shape]``, c[t, i] = #samples non-zero at (t, i).
    meta : dict, optional
    n_labelled, n_correct : int

    Returns
    -------
    Path

    Raises
    ------
    RunFormatError
        If the data would not make a valid file; nothing is written then.
    """
    path = Path(path)
    run = Run(T=int(T), n_samples=int(n_samples), layers=json.loads(json.dumps(layers)),
              sources=json.loads(json.dumps(sources)), counts={k: np.asarray(v) for k, v in counts.items()},
              meta=dict(meta or {}), n_labelled=int(n_labelled), n_correct=int(n_correct), path=str(path))
    validate(run)
    arrays = {
        "format": np.array(FORMAT), "version": np.array(VERSION, dtype=np.int64),
        **{k: np.array(getattr(run, k), dtype=np.int64) for k in SCALARS},
        "layers": np.array(json.dumps(layers)), "sources": np.array(json.dumps(sources)),
        "meta": np.array(json.dumps(run.meta, default=str)),
    }
    for name, c in run.counts.items():
        arrays[f"counts_{name}"] = np.ascontiguousarray(c, dtype=np.int64)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path
