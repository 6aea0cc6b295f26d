"""Small valid files in the datasets' real published formats, shared by the loader tests and the
corruption tests (test_corrupt_files.py): MNIST IDX, CIFAR binary batches and their .tar.gz,
Tiny-ImageNet's and Imagenette's folder layouts with real JPEGs (and Imagenette's
noisy_imagenette.csv), DVS AEDAT 2.0 and 3.1 recordings."""
import gzip
import hashlib
import io
import struct
import tarfile

import numpy as np
from PIL import Image

from minisnn.data import mnist

# --- MNIST IDX ---------------------------------------------------------------------------------

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


# --- CIFAR binary --------------------------------------------------------------------------------

def record_bytes(labels, image):
    """One record: the label byte(s), then the red, green and blue 32×32 planes, row-major."""
    return bytes(np.asarray(labels, dtype=np.uint8)) + b"".join(bytes(image[c].reshape(-1)) for c in range(3))


def make_split(rng, n, label_values):
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = np.stack([rng.integers(0, v, n) for v in label_values], axis=1)
    raw = b"".join(record_bytes(labels[i], images[i]) for i in range(n))
    return images, labels, raw


def write_cifar10(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    for i in range(1, 6):
        im, lab, raw = make_split(rng, i, [10])       # batches of 1, 2, …, 5 records
        (folder / f"data_batch_{i}.bin").write_bytes(raw)
        train_images.append(im)
        train_labels.append(lab[:, 0])
    im, lab, raw = make_split(rng, 3, [10])
    (folder / "test_batch.bin").write_bytes(raw)
    return (np.concatenate(train_images), np.concatenate(train_labels)), (im, lab[:, 0])


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- Tiny-ImageNet -------------------------------------------------------------------------------

WNIDS = ["n09999999", "n01443537", "n02094433"]          # wnids.txt order is not sorted


def blocky(rng, grey=False):
    """A 64×64 image of flat 8×8 blocks: JPEG at quality 100 keeps it within a few levels."""
    blocks = rng.integers(0, 256, (8, 8) if grey else (8, 8, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8) if grey else (8, 8, 1), dtype=np.uint8))


def write_jpeg(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=100, subsampling=0)


def make_tree(root, rng):
    """A tiny-imagenet-200 tree: 3 classes × 2 training images, 4 validation images."""
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    originals = {}
    for w in WNIDS:
        for k in range(2):
            p = root / "train" / w / "images" / f"{w}_{k}.JPEG"
            originals[p] = blocky(rng, grey=(w == WNIDS[1] and k == 1))
            write_jpeg(p, originals[p])
    lines = []
    for k, w in enumerate([WNIDS[2], WNIDS[0], WNIDS[2], WNIDS[1]]):
        p = root / "val" / "images" / f"val_{k}.JPEG"
        originals[p] = blocky(rng)
        write_jpeg(p, originals[p])
        lines.append(f"val_{k}.JPEG\t{w}\t0\t3\t60\t62")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return originals


# --- Imagenette ----------------------------------------------------------------------------------

NETTE_WNIDS = ["n03888257", "n01440764", "n02979186"]    # three of the ten, not in sorted order
NETTE_SHAPES = [(20, 30), (26, 20)]                       # (H, W): landscape, portrait; shorter side 20
NETTE_HEADER = "path,noisy_labels_0,noisy_labels_1,noisy_labels_5,noisy_labels_25,noisy_labels_50,is_valid"
NOISE_LEVELS = (0, 1, 5, 25, 50)


def blocks(rng, h, w, grey=False):
    """An h×w image (h, w even) of flat 2×2 blocks."""
    shape = (h // 2, w // 2) if grey else (h // 2, w // 2, 3)
    return np.kron(rng.integers(0, 256, shape, dtype=np.uint8), np.ones((2, 2) if grey else (2, 2, 1), np.uint8))


def noisy_wnid(wnid, k, r):
    """Row r's label at noise level k: the folder's, except that for k > 0 one row in three
    (which ones depends on k) has the next class."""
    if k == 0 or (r + k) % 3:
        return wnid
    return NETTE_WNIDS[(NETTE_WNIDS.index(wnid) + 1) % len(NETTE_WNIDS)]


def nette_csv(labels, rng=None):
    """The text of noisy_imagenette.csv for {relative path: {noise level: wnid}} (rows shuffled by rng)."""
    rels = list(labels)
    if rng is not None:
        rels = [rels[i] for i in rng.permutation(len(rels))]
    rows = [",".join([rel] + [labels[rel][k] for k in NOISE_LEVELS] + [str(rel.startswith("val/"))])
            for rel in rels]
    return "\n".join([NETTE_HEADER] + rows) + "\n"


def make_imagenette(root, rng, csv=True):
    """An imagenette2-160 tree: per class 2 training and 1 validation JPEG, landscape (20×30) and
    portrait (26×20) in turn, one of them greyscale, and noisy_imagenette.csv listing them all
    (rows shuffled). Returns {relative path: pixels written} and {relative path: {noise: wnid}}."""
    root.mkdir(parents=True, exist_ok=True)
    originals, labels, r = {}, {}, 0
    for split, n in (("train", 2), ("val", 1)):
        for w in NETTE_WNIDS:
            for k in range(n):
                rel = f"{split}/{w}/{w}_{k}.JPEG"
                originals[rel] = blocks(rng, *NETTE_SHAPES[r % 2], grey=(r == 1))
                write_jpeg(root / rel, originals[rel])
                labels[rel] = {level: noisy_wnid(w, level, r) for level in NOISE_LEVELS}
                r += 1
    if csv:
        (root / "noisy_imagenette.csv").write_text(nette_csv(labels, rng))
    return originals, labels


# --- DVS AEDAT -----------------------------------------------------------------------------------

V2_HEADER = (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
             b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
             b"# Timestamps tick is 1 us\r\n")
V3_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def v2_bytes(t, x, y, p):
    """Encode events (x, y, p in the loader's convention) as DVS128 AEDAT 2.0 records."""
    out = bytearray(V2_HEADER)
    for ti, xi, yi, pi in zip(t, x, y, p):
        raw_x, raw_y, raw_p = 127 - yi, 127 - xi, 1 - pi
        out += struct.pack(">II", (raw_y << 8) | (raw_x << 1) | raw_p, ti)
    return bytes(out)


def random_events(rng, n):
    t = np.sort(rng.integers(0, 1_000_000, n))
    return t, rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)


def v3_packet(etype, events, overflow=0):
    """A packet: 28-byte header, then 8-byte events (data word, timestamp)."""
    body = b"".join(struct.pack("<Ii", d, ts) for d, ts in events)
    n = len(events)
    return struct.pack("<hhiiiiii", etype, 1, 8, 4, overflow, n, n, n) + body


def v3_word(x, y, p, valid=1):
    """The data word of an AEDAT 3.1 polarity event."""
    return (x << 17) | (y << 2) | (p << 1) | valid
