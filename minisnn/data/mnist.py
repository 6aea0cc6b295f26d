"""MNIST from its standard IDX files (gzipped or not), checksum-verified.

Search order: ``data_dir``, then ``$MINISNN_DATA``, then ``~/.cache/minisnn``; in each, the files
may sit directly or in a ``mnist/`` subfolder. Otherwise they are downloaded from the standard
mirror into ``~/.cache/minisnn/mnist`` and verified.
"""
import gzip
import hashlib
import math
import os
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
# SHA-256 of the uncompressed files (the same as SHA256SUMS beside the shared copy).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MEAN, STD = 0.1307, 0.3081   # the usual MNIST normalisation


def search_dirs(data_dir=None):
    """Directories searched, in order."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("MINISNN_DATA"):
        dirs.append(Path(os.environ["MINISNN_DATA"]))
    dirs.append(Path.home() / ".cache" / "minisnn")
    return [d for base in dirs for d in (base, base / "mnist")]


def parse_idx(raw, name="IDX data"):
    """Parse an IDX file: magic 0x0000 | dtype 0x08 (uint8) | ndim, then ndim big-endian uint32
    sizes, then the data. Returns a uint8 array of that shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{name} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name} is truncated (incomplete header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)          # exact: np.prod wraps around in int64
    if len(raw) != expected:
        raise DataError(f"{name} is truncated or corrupt: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read(path):
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    except zlib.error as e:     # bytes overwritten inside the deflate stream: not an OSError
        raise DataError(f"cannot read {path}: corrupt gzip data ({e})") from None


def _download(name, dest):
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}.gz"
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(MIRROR + name + ".gz", timeout=30) as r, open(tmp, "wb") as f:
            f.write(r.read())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"MNIST file {name} not found locally and the download failed ({e}); put the IDX files in a "
            f"folder and pass --data-dir DIR, or set MINISNN_DATA, or place them in ~/.cache/minisnn/mnist") from None
    os.replace(tmp, target)
    return target


def find_file(name, data_dir=None, download=True):
    """Path of ``name`` (or ``name.gz``) in the search directories, downloading if allowed.
    A ``data_dir`` that does not exist is an error (a typo), never a reason to look elsewhere."""
    if data_dir and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} does not exist")
    for d in search_dirs(data_dir):
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    if not download:
        raise DataError(f"MNIST file {name} not found in {', '.join(map(str, search_dirs(data_dir)))}")
    return _download(name, Path.home() / ".cache" / "minisnn" / "mnist")


def read_verified(name, data_dir=None, download=True, verify=True):
    path = find_file(name, data_dir, download)
    raw = _read(path)
    if verify and hashlib.sha256(raw).hexdigest() != SHA256[name]:
        raise DataError(f"checksum mismatch for {path}: the file is corrupt or not the standard MNIST {name}")
    return parse_idx(raw, str(path))


def load_mnist(data_dir=None, train=True, download=True, verify=True):
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]`` of the train or test split."""
    split = "train" if train else "test"
    images = read_verified(FILES[split, "images"], data_dir, download, verify)
    labels = read_verified(FILES[split, "labels"], data_dir, download, verify).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"MNIST {split} images {images.shape} and labels {labels.shape} do not match")
    return images, labels


def normalize(images, dtype=np.float32):
    """x = (pixel/255 − 0.1307)/0.3081."""
    return ((images.astype(dtype) / 255.0 - MEAN) / STD).astype(dtype)
