"""What every tutorial notebook shares: the fast mode, the data, and a briefly trained network.

The notebooks import this file from their own folder (``from helpers import ...``). Everything
that computes something about spiking networks is done by ``minisnn`` and ``hwmodel``
themselves; this file only finds data and runs a plain training loop built from their parts.

    MINISNN_FAST=1     every expensive step shrinks (tiny subsets, few steps, small T); the test
                       suite sets it (tests/test_tutorials.py)
    MINISNN_DATA=DIR   where the MNIST IDX files are (else ../shared/data/mnist beside the repo);
                       without them a synthetic MNIST look-alike is used, so nothing fails
"""
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import minisnn  # noqa: F401  (before NumPy: it sets OpenBLAS's thread timeout)
import matplotlib.pyplot as plt
import numpy as np

from minisnn import encoding, models
from minisnn.checkpoint import CheckpointError, load_network, save_checkpoint
from minisnn.data import mnist
from minisnn.data.errors import DataError
from minisnn.evaluate import evaluate
from minisnn.optim import SGD
from minisnn.training import train_step

FAST = os.environ.get("MINISNN_FAST", "") not in ("", "0")
REPO = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "minisnn-tutorials"

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.figsize": (9, 3.4)})


def pick(fast, full):
    """``fast`` in fast mode, else ``full``."""
    return fast if FAST else full


def data_dir():
    """The folder holding the MNIST IDX files, or None."""
    candidates = [os.environ.get("MINISNN_DATA"), REPO.parent / "shared" / "data" / "mnist",
                  REPO / "data" / "mnist", Path.home() / ".cache" / "minisnn" / "mnist"]
    for c in candidates:
        if c and any((Path(c) / f).is_file() for f in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
            return Path(c)
    return None


def synthetic_digits(n, seed=0):
    """An MNIST look-alike, ``uint8 [n, 28, 28]`` and labels: class c is a bright horizontal band
    at rows 2c+4 … 2c+7 over faint noise. Used only when the real files are absent."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 4:2 * c + 8, 5:23] = 255
    return images, labels


def load_digits(train=True, n=None):
    """Normalised images ``float32 [N, 28, 28]``, labels ``[N]`` and where they came from.

    Real MNIST (``minisnn.data.mnist``: checksum-verified IDX, x = (p/255 − 0.1307)/0.3081) when
    the files are found, else the synthetic look-alike, normalised the same way.
    """
    folder = data_dir()
    source = "synthetic"
    try:
        if folder is None:
            raise DataError("no MNIST files")
        images, labels = mnist.load_mnist(folder, train=train, download=False)
        source = f"MNIST, {'train' if train else 'test'} split"
    except DataError:
        images, labels = synthetic_digits(n or 2000, seed=0 if train else 1)
    if n is not None:
        images, labels = images[:n], labels[:n]
    return mnist.normalize(images), labels.astype(np.int64), source


def poisson_batches(images, labels, T, batch_size, seed=0):
    """(Poisson spikes ``[T, B, 784]``, labels) over a split, one generator per batch."""
    for k, start in enumerate(range(0, len(images), batch_size)):
        x = images[start:start + batch_size].reshape(-1, 28 * 28)
        yield encoding.poisson(x, T, np.random.default_rng([seed, k])), labels[start:start + batch_size]


def train_steps(net, images, labels, steps, batch_size, encode, lr=0.1, momentum=0.9, weight_decay=1e-4,
                seed=0, every=10):
    """Plain SGD on random mini-batches with ``minisnn.training.train_step`` (the step of
    ``python -m minisnn.train``; no schedule, no checkpoints).

    ``encode(images, rng) -> [T, B, ...]``. Returns the history: a list of
    {"step", "loss", "acc"} averaged over the last ``every`` steps.
    """
    opt = SGD(net.parameters(), lr, momentum, weight_decay)
    rng = np.random.default_rng(seed)
    history, losses, hits = [], [], []
    for step in range(steps):
        idx = rng.choice(len(images), batch_size, replace=False)
        loss, logits = train_step(net, opt, encode(images[idx], rng), labels[idx])
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at step {step}")
        losses.append(loss)
        hits.append(float((logits.argmax(1) == labels[idx]).mean()))
        if (step + 1) % every == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": float(np.mean(losses)), "acc": float(np.mean(hits))})
            losses, hits = [], []
    return history


def accuracy(net, batches):
    """Test accuracy in evaluation mode (running normalisation statistics): ``minisnn.evaluate``."""
    return evaluate(net, batches)[1]


MNIST_FULL = dict(T=25, hidden=400, steps=300, batch_size=64, train_samples=20000)
MNIST_FAST = dict(T=8, hidden=64, steps=25, batch_size=32, train_samples=800)


def trained_mnist(norm="bntt", committed=True, verbose=True):
    """A static-MNIST network (``models.mnist_fc``, Poisson input) and its checkpoint meta.

    With ``committed``, the repository's ``results/mnist/checkpoint.npz`` when it exists (BNTT
    only); otherwise a network trained here for a short budget (``MNIST_FULL``, or ``MNIST_FAST``
    in fast mode), cached in the temporary folder so that the next notebook reuses it.
    ``meta["label"]`` says which it is.
    """
    path = REPO / "results" / "mnist" / "checkpoint.npz"
    if committed and norm == "bntt" and path.is_file():
        try:
            net, meta = load_network(path)
            config = meta.get("config", {})
            if config.get("norm") == "bntt":
                if verbose:
                    print(f"loaded {path.relative_to(REPO)}")
                meta["label"] = f"bntt, results/mnist ({config.get('epochs', '?')} epochs)"
                return net, meta
        except CheckpointError:
            pass
    cfg = dict(MNIST_FAST if FAST else MNIST_FULL, norm=norm, seed=0)
    images, labels, source = load_digits(True, cfg["train_samples"])
    cfg["data"] = source
    key = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"mnist_{norm}_{key}.npz"
    label = f"{norm}, trained here ({cfg['steps']} steps)"
    if path.is_file():
        try:
            net, meta = load_network(path)
            if verbose:
                print(f"reusing the network trained earlier: {path.name} (in {CACHE})")
            meta["label"] = label
            return net, meta
        except CheckpointError:
            pass
    net = models.mnist_fc(T=cfg["T"], hidden=(cfg["hidden"],), norm=norm, seed=0)
    started = time.time()
    T = cfg["T"]
    history = train_steps(net, images, labels, cfg["steps"], cfg["batch_size"],
                          lambda x, rng: encoding.poisson(x.reshape(len(x), -1), T, rng))
    config = {"dataset": "mnist", "T": T, "seed": 0, "norm": norm, "leak": 0.95, "trained_steps": cfg["steps"],
              "batch_size": cfg["batch_size"], "data": source}
    CACHE.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, net, None, config, {"history": history})
    if verbose:
        print(f"trained mnist_fc ({norm}, T={T}, hidden {cfg['hidden']}) for {cfg['steps']} steps on {source} "
              f"in {time.time() - started:.0f} s; last training accuracy {history[-1]['acc']:.3f}")
    net, meta = load_network(path)
    meta["label"] = label
    return net, meta


# The deep BNTT network of docs/paper.md (six BNTT layers, T = 25, the paper's recipe) and its
# weight-decay control (γ exempt from decay), compared at equal steps. Update these two lines
# when the runs advance; every notebook that uses them prints which file it read.
DEEP_BNTT = REPO / "results" / "mnist-vgg-paper" / "epoch3.npz"
DEEP_BNTT_GAMMA_EXEMPT = REPO / "results" / "mnist-vgg-paper-gamma-exempt" / "epoch3.npz"


def deep_bntt(gamma_exempt=False, verbose=True):
    """The committed deep BNTT VGG (``models.mnist_vgg``) and its checkpoint meta: the main run,
    or with ``gamma_exempt`` the control trained with γ excluded from weight decay."""
    path = DEEP_BNTT_GAMMA_EXEMPT if gamma_exempt else DEEP_BNTT
    net, meta = load_network(path)
    config = meta.get("config", {})
    meta["label"] = (f"mnist-vgg, {'γ exempt from decay' if gamma_exempt else 'paper recipe'}, "
                     f"{path.parent.name}/{path.name}")
    if verbose:
        print(f"loaded {path.relative_to(REPO)} (recipe {config.get('recipe', '?')}, T = {config.get('T', '?')})")
    return net, meta
