"""Shared fixtures: tiny MNIST-format datasets written on the fly, and an environment in which
no loader can find the user's data or reach the network."""
import gzip
import hashlib
import struct
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from minisnn.data import mnist

TINY_TRAIN, TINY_TEST = 30, 20


def idx_bytes(array):
    """The IDX encoding of a uint8 array: 0x0000, 0x08 (unsigned byte), ndim, big-endian sizes, data."""
    array = np.asarray(array)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def tiny_arrays(n_train=TINY_TRAIN, n_test=TINY_TEST, seed=0):
    """File name -> uint8 array of a small MNIST look-alike: labels 0..9 in turn; each class is a
    bright band (rows 2c..2c+3) over uniform noise, so a network can learn something."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 100, (n, 28, 28), dtype=np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c:2 * c + 4, 4:24] = 255
        arrays[mnist.FILES[split, "images"]] = images
        arrays[mnist.FILES[split, "labels"]] = labels
    return arrays


def write_idx_files(folder, arrays, gz=True):
    """Write ``arrays`` as IDX files (``name.gz`` when gz) into ``folder``; return
    {name: SHA-256 of the uncompressed file}."""
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        (folder / (f"{name}.gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
        hashes[name] = hashlib.sha256(raw).hexdigest()
    return hashes


def isolate(mp, base):
    """Point HOME at an empty folder, unset MINISNN_DATA and make every download fail."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    mp.setenv("HOME", str(home))
    mp.delenv("MINISNN_DATA", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network access is disabled in the tests")

    mp.setattr(urllib.request, "urlopen", no_network)
    return home


def tiny_dataset(mp, base, gz=True):
    """Write the tiny dataset into ``base/tiny-mnist`` and accept its checksums."""
    folder = base / "tiny-mnist"
    hashes = write_idx_files(folder, tiny_arrays(), gz=gz)
    mp.setattr(mnist, "SHA256", {**mnist.SHA256, **hashes})
    return folder


@pytest.fixture(scope="session")
def mnist_tools():
    """The helpers above, for test modules (and module-scoped fixtures) that need them."""
    return SimpleNamespace(idx_bytes=idx_bytes, tiny_arrays=tiny_arrays, write_idx_files=write_idx_files,
                           isolate=isolate, tiny_dataset=tiny_dataset, n_train=TINY_TRAIN, n_test=TINY_TEST)


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """An empty HOME, no MINISNN_DATA, no network: returns the HOME folder."""
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch, isolated_home):
    """A folder with the tiny dataset (gzipped IDX, 30 train / 20 test) whose checksums pass."""
    return tiny_dataset(monkeypatch, tmp_path)
