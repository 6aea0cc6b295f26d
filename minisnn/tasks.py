"""Tasks: a dataset, how its images become spike-time sequences, and the network for it.

``python -m minisnn.train NAME`` looks NAME up here; a checkpoint stores the task name so
``python -m minisnn.evaluate`` encodes the test set the same way.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import encoding, models
from .data import mnist


@dataclass
class Task:
    """What training on one dataset needs.

    load(data_dir, train) -> (images float [N, ...] normalised, labels int [N])
    encode(images, T, rng) -> input sequence [T, B, ...]
    build(T, **model_kwargs) -> Sequential
    defaults: the paper's hyper-parameters for this task (CLI defaults).
    """
    name: str
    load: Callable
    encode: Callable
    build: Callable
    defaults: dict = field(default_factory=dict)
    augment: Callable = None


def _load_mnist(data_dir, train):
    images, labels = mnist.load_mnist(data_dir, train=train)
    return mnist.normalize(images), labels


def _encode_pixels(images, T, rng):
    seq = encoding.pixel_sequence(images)
    if T != seq.shape[0]:
        raise ValueError(f"sequential MNIST has one step per pixel: T must be {seq.shape[0]}, got {T}")
    return seq


def _encode_poisson(images, T, rng):
    return encoding.poisson(images.reshape(images.shape[0], -1), T, rng)


TASKS = {
    # Sequential MNIST: leak 0.99 (a 100-step memory, so early rows still matter at the end of the
    # 784-step sequence); see docs/results.md for the choice of learning rate.
    "smnist": Task("smnist", _load_mnist, _encode_pixels, models.smnist_fc,
                   dict(T=784, epochs=30, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, leak=0.99)),
    "mnist": Task("mnist", _load_mnist, _encode_poisson, models.mnist_fc,
                  dict(T=25, epochs=10, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, leak=0.95)),
}


def get_task(name):
    if name not in TASKS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def batch_rng(seed, *key):
    """The random generator of one (epoch, step) or evaluation batch: every draw is a pure function
    of the seed and the position, so a resumed run repeats the interrupted one bit for bit."""
    return np.random.default_rng([seed, *key])
