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
import re
from pathlib import Path

import numpy as np

from .errors import DataError
from .fetch import decoded_images, locate, read_text

TITLE, SUBDIR, INNER = "Tiny-ImageNet", "tinyimagenet", "tiny-imagenet-200"
ARCHIVES = [("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
             "90528d7ca1a48142e341f4ef8d21d0de")]
REQUIRED = ["wnids.txt", "train", "val/images", "val/val_annotations.txt"]
SIZE = 64
# the per-channel statistics commonly used for Tiny-ImageNet
TINY_MEAN = (0.4802, 0.4481, 0.3975)
TINY_STD = (0.2302, 0.2265, 0.2262)


def read_jpeg(path, size=None):
    """Decode one image to ``uint8 [3, H, W]`` (RGB, channel-major). With ``size`` (W, H), an image
    of another size is refused before it is decoded (a corrupt header may claim a giant one)."""
    from PIL import Image   # Pillow: a dependency of matplotlib
    try:
        with Image.open(path) as im:
            if size is not None and im.size != tuple(size):
                raise DataError(f"{path} is {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]}")
            pixels = np.asarray(im.convert("RGB"))
    # what Pillow raises for a corrupt file: OSError (UnidentifiedImageError, truncated data),
    # DecompressionBombError (a header that claims a giant image; not an OSError), and ValueError
    # or SyntaxError from some of its format plugins
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {e}") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def class_ids(root):
    """The wnids of ``wnids.txt`` in sorted order: label k is ``class_ids(root)[k]``."""
    path = root / "wnids.txt"
    wnids = sorted(set(read_text(path).split()))
    if not wnids:
        raise DataError(f"{path} lists no classes")
    for w in wnids:   # each names a folder: never a path, a NUL byte or a glob pattern
        if not re.fullmatch(r"[A-Za-z0-9_-]+", w):
            raise DataError(f"{path}: {w[:40]!r} is not a class id (a WordNet id such as n01443537)")
    return wnids


def list_split(root, train):
    """(image paths, labels) of the train or validation split, in a fixed order."""
    wnids = class_ids(root)
    index = {w: k for k, w in enumerate(wnids)}
    if train:
        pairs = []
        for w in wnids:
            folder = root / "train" / w / "images"
            images = sorted(folder.glob("*.JPEG"))
            if not images:
                raise DataError(f"{folder} holds no .JPEG images of class {w}, listed in {root / 'wnids.txt'}")
            pairs += [(p, index[w]) for p in images]
    else:
        pairs = []
        path, images = root / "val" / "val_annotations.txt", root / "val" / "images"
        for i, line in enumerate(read_text(path).splitlines(), 1):
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in index:
                raise DataError(f"{path}: cannot read line {i}, {line[:80]!r} (unknown wnid? the classes are "
                                f"those of {root / 'wnids.txt'})")
            if Path(fields[0]).name != fields[0] or not (images / fields[0]).is_file():
                raise DataError(f"{path}: line {i} names {fields[0][:80]!r}, which is not an image in {images}")
            pairs.append((images / fields[0], index[fields[1]]))
        if not pairs:
            raise DataError(f"{path} lists no images")
    return [p for p, _ in pairs], np.array([k for _, k in pairs], dtype=np.int64)


def load_tinyimagenet(data_dir=None, train=True, download=True, cache=True):
    """Tiny-ImageNet images ``uint8 [N, 3, 64, 64]`` and labels ``int64 [N]`` (200 classes).

    ``train=False`` gives the labelled validation split (the usual test set).
    """
    root = locate(TITLE, SUBDIR, INNER, REQUIRED, ARCHIVES, data_dir, download)
    paths, labels = list_split(root, train)
    cache_file = root / f"minisnn-{'train' if train else 'val'}.npz"
    return decoded_images(cache_file, labels, paths, (3, SIZE, SIZE), lambda p: read_jpeg(p, (SIZE, SIZE)), cache), labels
