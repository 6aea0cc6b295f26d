"""The spikes file: what a network did on a data set, per NIR node and time step, for pricing a
NIR graph (``hwmodel.nirgraph``). docs/nir.md is the reference.

One layout in two containers, ``.npz`` (NumPy, no extra package) or ``.h5``/``.hdf5`` (HDF5,
needs h5py; a key ``a/b`` is the dataset ``b`` in the group ``a``):

    format, version          "nir-spikes", 1
    T, n_samples             time steps; samples the counts are summed over
    n_labelled, n_correct    optional (0, 0): for the accuracy
    meta                     optional JSON object (dataset, checkpoint, "sequential": true for a
                             sequence input, as in a run file)
    counts/<node>            int [T, *shape]: c[t, i] = #samples whose output of <node> at step t,
                             position i is non-zero
    binary/<node>            bool: every recorded value was −1, 0 or 1 (with counts/<node>)
    spikes/<node>            instead of counts: the raw outputs [T, B, *shape] (time-major); the
                             counts, ``binary`` and n_samples = B are computed from them

Each entry names a node of the graph: its Input node (the encoded input), every spiking node, and
any other node whose output a synaptic layer reads (e.g. an average pool of spikes).
``read_spikes`` validates and raises ``SpikesFormatError`` (one line); ``write_spikes`` validates
the same way and writes atomically (temporary file + ``os.replace``). Nothing is unpickled.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import replacing
from .runfile import RunFormatError

FORMAT = "nir-spikes"
VERSION = 1
HDF5 = (".h5", ".hdf5")


class SpikesFormatError(RunFormatError):
    """A spikes file that cannot be trusted; one line naming the file and the problem."""


@dataclass
class Spikes:
    """A validated recording: ``counts[node]`` int64 ``[T, *shape]``, ``binary[node]`` bool."""

    T: int
    n_samples: int
    counts: dict
    binary: dict
    n_labelled: int = 0
    n_correct: int = 0
    meta: dict = field(default_factory=dict)
    path: str = "<memory>"


def _fail(where, message):
    raise SpikesFormatError(f"{where}: {message}")


def _h5py(where):
    try:
        import h5py
    except ImportError:
        _fail(where, "an HDF5 spikes file needs h5py: pip install h5py (or use .npz)")
    return h5py


def check_container(path):
    """"hdf5" or "npz" by the file's suffix; an HDF5 file without h5py is refused here (before a
    recording is made to fill it)."""
    if Path(path).suffix.lower() in HDF5:
        _h5py(str(path))
        return "hdf5"
    return "npz"


def _read_arrays(path):
    """Every key of the file -> array (HDF5: every dataset, by its path)."""
    where = str(path)
    if not Path(path).is_file():
        _fail(where, "no such file")
    try:
        if Path(path).suffix.lower() in HDF5:
            h5py = _h5py(where)
            arrays = {}
            with h5py.File(path, "r") as f:
                f.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                             if isinstance(item, h5py.Dataset) else None)
            return {k: np.array(v.decode() if isinstance(v, bytes) else v) for k, v in arrays.items()}
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except SpikesFormatError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            _fail(where, "contains pickled objects; a spikes file holds plain arrays only (refused to unpickle)")
        _fail(where, f"not a readable spikes file ({e})")
    except Exception as e:   # zip, npy and HDF5 errors alike: not a spikes file
        _fail(where, f"not a readable spikes file ({type(e).__name__}: {e})")


def _int(where, arrays, key, default=None, low=0):
    if key not in arrays:
        if default is None:
            _fail(where, f"missing key {key!r}")
        return default
    a = np.asarray(arrays[key])
    if a.shape != () or not np.issubdtype(a.dtype, np.integer) or int(a) < low:
        _fail(where, f"{key!r} must be an integer >= {low}, got {a.tolist()!r}")
    return int(a)


def _binary(x):
    return bool(np.all((x == 0) | (np.abs(x) == 1)))


def read_spikes(path):
    """Load and validate a spikes file (layout: the module docstring). Returns ``Spikes``."""
    where = str(path)
    arrays = _read_arrays(path)
    if str(arrays.get("format", "")) != FORMAT:
        _fail(where, f"format is {str(arrays.get('format'))!r}, expected {FORMAT!r} (see docs/nir.md)")
    if _int(where, arrays, "version") != VERSION:
        _fail(where, f"unsupported spikes-file version {int(arrays['version'])} (this hwmodel reads {VERSION})")
    try:
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    except json.JSONDecodeError as e:
        _fail(where, f"key 'meta' is not valid JSON ({e.msg})")
    counts, binary, raw_samples = {}, {}, set()
    for key, value in arrays.items():
        group, _, node = key.partition("/")
        if group == "counts":
            counts[node] = value
            if f"binary/{node}" not in arrays:
                _fail(where, f"missing key 'binary/{node}' (does node {node!r} hold only −1, 0, 1?)")
            flag = np.asarray(arrays[f"binary/{node}"])
            if flag.shape != () or flag.dtype != bool:
                _fail(where, f"'binary/{node}' must be a boolean scalar")
            binary[node] = bool(flag)
        elif group == "spikes":
            if node in counts or f"counts/{node}" in arrays:
                _fail(where, f"node {node!r} has both counts and raw spikes")
            x = np.asarray(value)
            if x.ndim < 3 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
                _fail(where, f"'spikes/{node}' must be numeric [T, B, *shape], got {x.dtype} {list(x.shape)}")
            counts[node] = np.count_nonzero(x, axis=1).astype(np.int64)
            binary[node] = _binary(x)
            raw_samples.add(x.shape[1])
    if len(raw_samples) > 1:
        _fail(where, f"raw spikes of different batch sizes {sorted(raw_samples)}")
    default = raw_samples.pop() if raw_samples else None
    n_samples = _int(where, arrays, "n_samples", default, low=1)
    if default is not None and n_samples != default:
        _fail(where, f"n_samples is {n_samples}, but the raw spikes hold {default} samples")
    first = next(iter(counts.values()), np.zeros(()))
    T = _int(where, arrays, "T", first.shape[0] if first.ndim else None, low=1)
    spikes = Spikes(T=T, n_samples=n_samples, counts=counts, binary=binary, meta=meta, path=where,
                    n_labelled=_int(where, arrays, "n_labelled", 0), n_correct=_int(where, arrays, "n_correct", 0))
    return validate(spikes)


def validate(spikes):
    """Check counts (shape ``[T, ...]``, whole, 0 ≤ c ≤ n_samples) and names. Returns ``spikes``."""
    where = spikes.path
    if not spikes.counts:
        _fail(where, "no counts/<node> or spikes/<node> entries")
    if spikes.n_correct > spikes.n_labelled:
        _fail(where, f"n_correct ({spikes.n_correct}) exceeds n_labelled ({spikes.n_labelled})")
    if not isinstance(spikes.meta, dict):
        _fail(where, "meta must be a JSON object")
    for node, c in spikes.counts.items():
        c = np.asarray(c)
        if not node or "/" in node:
            _fail(where, f"bad node name {node!r}")
        if c.ndim < 2 or c.shape[0] != spikes.T:
            _fail(where, f"counts of node {node!r} have shape {list(c.shape)}, expected [T={spikes.T}, ...]")
        if not np.issubdtype(c.dtype, np.integer):
            _fail(where, f"counts of node {node!r} must be integers, got {c.dtype}")
        if c.size and (c.min() < 0 or c.max() > spikes.n_samples):
            _fail(where, f"counts of node {node!r} must lie in [0, n_samples = {spikes.n_samples}]")
        spikes.counts[node] = c.astype(np.int64, copy=False)
    return spikes


def write_spikes(path, *, T, n_samples, counts, binary, n_labelled=0, n_correct=0, meta=None):
    """Validate, then write a spikes file atomically (.npz, or .h5/.hdf5 with h5py).

    Parameters
    ----------
    path : str or Path
    T, n_samples : int
    counts : dict
        Node name -> int ``[T, *shape]``: c[t, i] = #samples non-zero at (t, i).
    binary : dict
        Node name -> bool (every value −1, 0 or 1).
    n_labelled, n_correct : int
    meta : dict, optional

    Returns
    -------
    Path
    """
    path = Path(path)
    spikes = validate(Spikes(T=int(T), n_samples=int(n_samples), counts={k: np.asarray(v) for k, v in counts.items()},
                             binary=dict(binary), n_labelled=int(n_labelled), n_correct=int(n_correct),
                             meta=dict(meta or {}), path=str(path)))
    if set(spikes.binary) != set(spikes.counts):
        _fail(str(path), "binary must name exactly the nodes of counts")
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION, dtype=np.int64),
              **{k: np.array(getattr(spikes, k), dtype=np.int64)
                 for k in ("T", "n_samples", "n_labelled", "n_correct")},
              "meta": np.array(json.dumps(spikes.meta, default=str))}
    for node, c in spikes.counts.items():
        arrays[f"counts/{node}"] = np.ascontiguousarray(c, dtype=np.int64)
        arrays[f"binary/{node}"] = np.array(bool(spikes.binary[node]))
    hdf5 = check_container(path) == "hdf5"
    h5py = _h5py(str(path)) if hdf5 else None
    with replacing(path) as tmp:
        if hdf5:
            with h5py.File(tmp, "w") as f:
                for key, a in arrays.items():
                    if a.dtype.kind == "U":
                        f.create_dataset(key, data=str(a), dtype=h5py.string_dtype())
                    else:
                        f.create_dataset(key, data=a, **({"compression": "gzip"} if a.ndim else {}))
        else:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
    return path
