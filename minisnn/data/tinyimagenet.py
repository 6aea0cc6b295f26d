"""Tiny-ImageNet-200 from its published folder layout (``tiny-imagenet-200.zip``):

    tiny-imagenet-200/wnids.txt                              the 200 class ids, one per line
    tiny-imagenet-200/train/<wnid>/images/<wnid>_<k>.JPEG    500 training images per class
    tiny-imagenet-200/val/images/val_<k>.JPEG                10000 validation images
    tiny-imagenet-200/val/val_annotations.txt                "<file>\t<wnid>\t<x0>\t<y0>\t<x1>\t<y1>"

(the test split has no labels and is not read). Images are 64×64 RGB JPEGs (a few are
greyscale and are expanded to RGB). Class k is the k-th wnid in sorted order — the order of
the sorted class folders, as an image-folder loader would number them. JPEG decoding uses
Pillow, which matplotlib already depends on. Decoding 100 000 files takes a while, so the
decoded split is cached beside the data as ``minisnn-<split>.npz`` when the folder is writable.
"""
import numpy as np

from .errors import DataError
from .fetch import locate

TITLE, SUBDIR, INNER = "Tiny-ImageNet", "tinyimagenet", "tiny-imagenet-200"
ARCHIVES = [("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
             "90528d7ca1a48142e341f4ef8d21d0de")]
REQUIRED = ["wnids.txt", "train", "val/images", "val/val_annotations.txt"]
SIZE = 64
# the per-channel statistics commonly used for Tiny-ImageNet
TINY_MEAN = (0.4802, 0.4481, 0.3975)
TINY_STD = (0.2302, 0.2265, 0.2262)


def read_jpeg(path):
    """Decode one image to ``uint8 [3, H, W]`` (RGB, channel-major)."""
    from PIL import Image   # Pillow: a dependency of matplotlib
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
    except OSError as e:
        raise DataError(f"cannot decode image {path}: {e}") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def class_ids(root):
    """The wnids of ``wnids.txt`` in sorted order: label k is ``class_ids(root)[k]``."""
    wnids = sorted({w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()})
    if not wnids:
        raise DataError(f"{root / 'wnids.txt'} lists no classes")
    return wnids


def list_split(root, train):
    """(image paths, labels) of the train or validation split, in a fixed order."""
    wnids = class_ids(root)
    index = {w: k for k, w in enumerate(wnids)}
    if train:
        pairs = [(p, index[w]) for w in wnids for p in sorted((root / "train" / w / "images").glob("*.JPEG"))]
    else:
        pairs = []
        for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in index:
                raise DataError(f"val_annotations.txt: cannot read line {line!r} (unknown wnid?)")
            pairs.append((root / "val" / "images" / fields[0], index[fields[1]]))
    if not pairs:
        raise DataError(f"no {'training' if train else 'validation'} images under {root}")
    return [p for p, _ in pairs], np.array([k for _, k in pairs], dtype=np.int64)


def load_tinyimagenet(data_dir=None, train=True, download=True, cache=True):
    """Tiny-ImageNet images ``uint8 [N, 3, 64, 64]`` and labels ``int64 [N]`` (200 classes).

    ``train=False`` gives the labelled validation split (the usual test set).
    """
    root = locate(TITLE, SUBDIR, INNER, REQUIRED, ARCHIVES, data_dir, download)
    paths, labels = list_split(root, train)
    cache_file = root / f"minisnn-{'train' if train else 'val'}.npz"
    if cache and cache_file.is_file():
        with np.load(cache_file) as stored:
            if len(stored["labels"]) == len(labels) and np.array_equal(stored["labels"], labels):
                return stored["images"], labels
    images = np.empty((len(paths), 3, SIZE, SIZE), dtype=np.uint8)
    for i, path in enumerate(paths):
        pixels = read_jpeg(path)
        if pixels.shape != (3, SIZE, SIZE):
            raise DataError(f"{path} is {pixels.shape[2]}x{pixels.shape[1]}, expected {SIZE}x{SIZE}")
        images[i] = pixels
    if cache:
        try:
            np.savez(cache_file, images=images, labels=labels)
        except OSError:
            pass                                   # read-only data folder: decode again next time
    return images, labels
