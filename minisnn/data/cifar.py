"""CIFAR-10 and CIFAR-100 from their *binary* distributions (no pickle).

CIFAR-10, ``cifar-10-binary.tar.gz`` -> ``cifar-10-batches-bin/``: ``data_batch_1.bin`` …
``data_batch_5.bin`` (training) and ``test_batch.bin``, each a run of 3073-byte records

    <1 byte: label 0–9> <3072 bytes: 1024 red, 1024 green, 1024 blue; each 32×32 row-major>

CIFAR-100, ``cifar-100-binary.tar.gz`` -> ``cifar-100-binary/``: ``train.bin`` and ``test.bin``,
3074-byte records ``<coarse label 0–19> <fine label 0–99> <3072 pixel bytes>``.

The pixel block is already channel-major, so a file is read as one ``uint8`` array and viewed
as ``[N, 3, 32, 32]`` without copying. Files are found as described in ``fetch.py``.
"""
import numpy as np

from .augment import normalize as _normalize
from .errors import DataError
from .fetch import locate

IMAGE_BYTES = 3 * 32 * 32
# normalisation of the BNTT reference code (train.py), used for CIFAR-10 and CIFAR-100
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# labels: (name, number of classes) of each label byte of a record
CIFAR10 = dict(title="CIFAR-10", subdir="cifar10", inner="cifar-10-batches-bin", labels=[("label", 10)],
               train=[f"data_batch_{i}.bin" for i in range(1, 6)], test=["test_batch.bin"],
               archives=[("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                          "c32a1d4ab5d03f1284b67883e8d87530")])
CIFAR100 = dict(title="CIFAR-100", subdir="cifar100", inner="cifar-100-binary",
                labels=[("coarse label", 20), ("fine label", 100)],
                train=["train.bin"], test=["test.bin"],
                archives=[("cifar-100-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                           "03b5dce01913d631647c71ecec9e9cb8")])


def parse_records(raw, label_bytes, name="CIFAR data"):
    """Split a binary CIFAR file into images ``uint8 [N, 3, 32, 32]`` and label bytes
    ``uint8 [N, label_bytes]``; record r occupies bytes [r·L, (r+1)·L), L = label_bytes + 3072."""
    record = label_bytes + IMAGE_BYTES
    if len(raw) == 0 or len(raw) % record:
        raise DataError(f"{name} is truncated or not a binary CIFAR file: {len(raw)} bytes is not a "
                        f"positive multiple of the {record}-byte record")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return table[:, label_bytes:].reshape(-1, 3, 32, 32), table[:, :label_bytes]


def _read(spec, data_dir, train, download):
    files = spec["train"] if train else spec["test"]
    root = locate(spec["title"], spec["subdir"], spec["inner"], spec["train"] + spec["test"],
                  spec["archives"], data_dir, download)
    images, labels = [], []
    for name in files:
        path = root / name
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e}") from None
        im, lab = parse_records(raw, len(spec["labels"]), str(path))
        for (what, n), values in zip(spec["labels"], lab.T):   # checked per file, to name it
            if values.max() >= n:
                raise DataError(f"{path}: {spec['title']} {what} {values.max()} out of range 0–{n - 1}: "
                                f"not a {spec['title']} binary file")
        images.append(im)
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def load_cifar10(data_dir=None, train=True, download=True):
    """CIFAR-10 images ``uint8 [N, 3, 32, 32]`` (channel-major, RGB) and labels ``int64 [N]``.

    N = 50000 for ``train`` (data_batch_1…5 in order), 10000 for the test split.
    """
    images, labels = _read(CIFAR10, data_dir, train, download)
    return images, labels[:, 0].astype(np.int64)


def load_cifar100(data_dir=None, train=True, download=True, label="fine"):
    """CIFAR-100 images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]``: the 100 ``"fine"``
    classes (default) or the 20 ``"coarse"`` superclasses."""
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    images, labels = _read(CIFAR100, data_dir, train, download)
    return images, labels[:, 1 if label == "fine" else 0].astype(np.int64)


def normalize(images, dtype=np.float32):
    """x_c = (pixel/255 − mean_c)/std_c with the reference's CIFAR statistics; ``[N, 3, H, W]``."""
    return _normalize(images, CIFAR_MEAN, CIFAR_STD, dtype)
