"""Shared fixtures: tiny MNIST-format datasets written on the fly, and an environment in which
no loader can find the user's data or reach the network."""
import minisnn  # noqa: F401  first, before NumPy: its OpenBLAS setting must act (minisnn/__init__.py)
import urllib.request
from types import SimpleNamespace

import pytest

from minisnn.data import mnist
from tiny_files import TINY_TEST, TINY_TRAIN, idx_bytes, tiny_arrays, write_idx_files


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
