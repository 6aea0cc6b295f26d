"""Imagenette (fast.ai's 10-class subset of ImageNet), 160-px version, from its published layout
(``imagenette2-160.tgz``):

    imagenette2-160/train/<wnid>/<name>.JPEG     the training split (9469 images published)
    imagenette2-160/val/<wnid>/<name>.JPEG       the validation split (3925), the usual test set
    imagenette2-160/noisy_imagenette.csv         path,noisy_labels_0,noisy_labels_1,noisy_labels_5,
                                                 noisy_labels_25,noisy_labels_50,is_valid

with ``path`` relative to ``imagenette2-160/`` (``train/n02979186/n02979186_9036.JPEG``), the
labels as wnids and ``is_valid`` ``True`` for the validation split. The 160-px version has each
image's shorter side resized to 160 (aspect ratio kept), so the images differ in width or height.

Classes: class k is the k-th wnid of the sorted class folders of ``train/`` (an image-folder
loader's numbering); ``val/`` must hold the same folders. Images are listed in sorted path order.
The csv, when present (``use_csv``), is cross-checked against the folders: every row's
``is_valid`` must agree with its path's split, ``noisy_labels_0`` with its folder, and the csv's
rows of the split loaded must be exactly that split's files. ``noise=1|5|25|50`` takes the labels
from the csv's ``noisy_labels_<noise>`` column (the row's own, in either split); ``noise=0`` (the
default) is the folder label.

Decoding (Pillow): the header's size is checked first (no side above ``MAX_SIDE`` px: a corrupt
header may claim a giant image), then the image is converted to RGB and brought to a square
``size`` × ``size`` (default ``SIZE`` = 64):

    an image W × H with shorter side s = min(W, H) and longer side l is resized with Pillow's
    bilinear filter (antialiased when shrinking) so that its shorter side is ``size`` and its
    longer side ⌊size·l/s⌋ (torchvision's ``Resize(size)`` arithmetic); an image whose shorter side
    is already ``size`` is not resampled. Then the centred window is cut out:
    top = ⌊(H' − size)/2⌋, left = ⌊(W' − size)/2⌋ of the resized W' × H' image.

EXIF orientation is not applied (as torchvision's image folders). The decoded split is cached
beside the data as ``minisnn-<split>-<size>px.npz`` (folder labels, so every ``noise`` shares it)
when the folder is writable.

Download: the archive fast.ai publishes, unpacked as ``fetch.py`` does. No MD5 is checked,
because no checksum is known for certain: the archive has been re-uploaded, and the MD5s recorded
for it disagree (fastai's ``fastai/data/checks.txt`` has held e28cd4207d545c64f2372bcb64753d01 and
c475f8f7617a200ba35b9facc48443c3 in different versions, torchvision's ``Imagenette`` dataset
e793b78cc4c9e9a4ccc0c1155377a412). The unpacked tree is checked instead, file by file, as above.
"""
import csv
import io
import re

import numpy as np

from .errors import DataError
from .fetch import decoded_images, locate, one_line, read_text

TITLE, SUBDIR, INNER = "Imagenette", "imagenette", "imagenette2-160"
URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
ARCHIVES = [("imagenette2-160.tgz", URL, None)]   # no MD5: see the module docstring
REQUIRED = ["train", "val"]
CSV = "noisy_imagenette.csv"
NOISE_LEVELS = (0, 1, 5, 25, 50)
COLUMNS = ("path",) + tuple(f"noisy_labels_{k}" for k in NOISE_LEVELS) + ("is_valid",)
SIZE = 64
MAX_SIDE = 1024        # a bound on a header's claim, not the data's: the images' shorter side is 160
# the ten published classes, in label order (the sorted wnids)
CLASSES = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
           "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
           "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
           "n03888257": "parachute"}
# Imagenette's own channel statistics are not measured here (the dataset is not on the development
# machines): these are ImageNet-1k's (torchvision's standard normalisation), of which it is a subset.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_image(path, size=SIZE):
    """Decode one image to ``uint8 [3, size, size]`` by the rule of the module docstring."""
    from PIL import Image   # Pillow
    try:
        with Image.open(path) as im:
            w, h = im.size
            if max(w, h) > MAX_SIDE or min(w, h) < 1:
                raise DataError(f"{path} is {w}x{h}: not an Imagenette-160 image (at most {MAX_SIDE} px a side)")
            im = im.convert("RGB")                 # decodes
        short, long = min(w, h), max(w, h)
        if short != size:
            new_long = int(size * long / short)
            im = im.resize((size, new_long) if w <= h else (new_long, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(im)
    # what Pillow raises for a corrupt file: OSError (UnidentifiedImageError, truncated data),
    # DecompressionBombError (a header that claims a giant image; not an OSError), and ValueError
    # or SyntaxError from some of its format plugins
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {one_line(e)}") from None
    H, W = pixels.shape[:2]
    top, left = (H - size) // 2, (W - size) // 2
    return np.ascontiguousarray(pixels[top:top + size, left:left + size].transpose(2, 0, 1))


def _folders(path):
    try:
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise DataError(f"cannot list {path}: {one_line(e)}") from None


def class_ids(root):
    """The sorted class folders of ``train/``: label k is ``class_ids(root)[k]``; ``val/`` must
    hold the same ones."""
    train, val = root / "train", root / "val"
    wnids = _folders(train)
    if not wnids:
        raise DataError(f"{train} holds no class folders")
    for w in wnids:   # each names a folder and a csv label: never a glob pattern or odd characters
        if not re.fullmatch(r"[A-Za-z0-9_-]+", w):
            raise DataError(f"{train / w[:40]} is not a class folder (a WordNet id such as n01440764)")
    other = _folders(val)
    for w in wnids:
        if w not in other:
            raise DataError(f"{val} has no folder {w}, a class of {train}")
    for w in other:
        if w not in wnids:
            raise DataError(f"{val / w[:40]} is not a class of the training split ({train})")
    return wnids


def read_csv(path, wnids):
    """``noisy_imagenette.csv`` as {relative path: {noise level: label}}, every row checked: its
    path is ``train/<wnid>/<file>`` or ``val/<wnid>/<file>`` of a class in ``wnids``, ``is_valid``
    agrees with the split, every label is a class and ``noisy_labels_0`` the folder's."""
    index = {w: k for k, w in enumerate(wnids)}
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    table = {}
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty: expected the header {','.join(COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path} has no column {missing[0][:40]!r}: expected the header {','.join(COLUMNS)}")
        col = {c: header.index(c) for c in COLUMNS}
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: line {line} has {len(row)} fields, the header {len(header)}")
            rel = row[col["path"]]
            parts = rel.split("/")
            if (len(parts) != 3 or parts[0] not in ("train", "val") or parts[1] not in index
                    or parts[2] in ("", ".", "..")):
                raise DataError(f"{path}: line {line} names {rel[:80]!r}, not train/<wnid>/<file> or "
                                f"val/<wnid>/<file> of a class folder of {path.parent / 'train'}")
            valid = row[col["is_valid"]]
            if valid not in ("True", "False"):
                raise DataError(f"{path}: line {line}: is_valid is {valid[:20]!r}, not True or False")
            if (valid == "True") != (parts[0] == "val"):
                raise DataError(f"{path}: line {line}: {rel[:80]!r} is in {parts[0]}/ but is_valid is {valid}")
            labels = {}
            for k in NOISE_LEVELS:
                w = row[col[f"noisy_labels_{k}"]]
                if w not in index:
                    raise DataError(f"{path}: line {line}: noisy_labels_{k} {w[:40]!r} is not a class "
                                    f"(the class folders of {path.parent / 'train'})")
                labels[k] = index[w]
            if labels[0] != index[parts[1]]:
                raise DataError(f"{path}: line {line}: noisy_labels_0 of {rel[:80]!r} is "
                                f"{wnids[labels[0]]}, not its folder's class")
            if rel in table:
                raise DataError(f"{path}: line {line} repeats {rel[:80]!r}")
            table[rel] = labels
    except csv.Error as e:
        raise DataError(f"{path}: not a CSV file (line {reader.line_num}: {one_line(e)})") from None
    return table


def list_split(root, train, noise=0, use_csv=True):
    """(image paths, folder labels, labels) of the train or validation split, in sorted path order;
    the labels are the folder labels for ``noise=0``, else the csv's ``noisy_labels_<noise>``."""
    if noise not in NOISE_LEVELS:
        raise ValueError(f"noise must be one of {', '.join(map(str, NOISE_LEVELS))} (percent), got {noise!r}")
    split = "train" if train else "val"
    wnids = class_ids(root)
    paths, folder_labels = [], []
    for k, w in enumerate(wnids):
        folder = root / split / w
        try:
            images = sorted(p for p in folder.glob("*.JPEG") if p.is_file())
        except OSError as e:
            raise DataError(f"cannot list {folder}: {one_line(e)}") from None
        if not images:
            raise DataError(f"{folder} holds no .JPEG images of class {w}")
        paths += images
        folder_labels += [k] * len(images)
    folder_labels = np.array(folder_labels, dtype=np.int64)
    csv_path = root / CSV
    if not use_csv or not csv_path.is_file():
        if noise:
            raise DataError(f"noise={noise} needs the noisy labels of {csv_path}, which is not there"
                            if use_csv else f"noise={noise} needs the noisy labels of {csv_path} (use_csv=False)")
        return paths, folder_labels, folder_labels
    table = read_csv(csv_path, wnids)
    rels = [f"{split}/{p.parent.name}/{p.name}" for p in paths]
    unlisted = [r for r in rels if r not in table]
    if unlisted:
        raise DataError(f"{csv_path} does not list {root / unlisted[0]}: the csv and the {split} folders "
                        "disagree (use_csv=False ignores the csv)")
    on_disk = set(rels)
    absent = sorted(r for r in table if r.startswith(f"{split}/") and r not in on_disk)
    if absent:
        raise DataError(f"{csv_path} lists {absent[0][:80]!r}, which is not an image in {root / split}: the csv "
                        f"and the {split} folders disagree (use_csv=False ignores the csv)")
    labels = np.array([table[r][noise] for r in rels], dtype=np.int64)
    return paths, folder_labels, labels


def load_imagenette(data_dir=None, train=True, size=SIZE, noise=0, download=True, cache=True, use_csv=True):
    """Imagenette images ``uint8 [N, 3, size, size]`` and labels ``int64 [N]`` (10 classes).

    ``train=False`` gives the validation split (the usual test set). ``noise`` (0, 1, 5, 25 or 50):
    the percentage of noisy labels, from ``noisy_imagenette.csv``; 0 is the folder labels.
    ``use_csv=False`` ignores the csv (no cross-check, no noisy labels).
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    root = locate(TITLE, SUBDIR, INNER, REQUIRED, ARCHIVES, data_dir, download)
    paths, folder_labels, labels = list_split(root, train, noise, use_csv)
    cache_file = root / f"minisnn-{'train' if train else 'val'}-{size}px.npz"
    # the cache holds the folder labels, so every noise level shares it
    images = decoded_images(cache_file, folder_labels, paths, (3, size, size), lambda p: read_image(p, size), cache)
    return images, labels
