"""DVS-CIFAR10 (CIFAR10-DVS, Li et al. 2017) from its published event files, binned into frames.

The dataset is ten zip archives, one per class (figshare 4724671); each unpacks to
``<class>/cifar10_<class>_<k>.aedat``, k = 0…999: the events a 128×128 DVS recorded while a
CIFAR-10 image moved on a screen. An event is (t, x, y, p): time in µs, pixel, polarity
(1 = ON, brightness up; 0 = OFF). Two file formats are read:

AEDAT 2.0 (the dataset's files; jAER, DVS128): ``#``-prefixed text header lines, then
big-endian pairs ``<uint32 address><uint32 timestamp>``. DVS128 address bits:

    raw polarity = a & 1,   raw x = (a >> 1) & 0x7F,   raw y = (a >> 8) & 0x7F

and, as in SpikingJelly/events-tfds so that the objects stand upright,
``x = 127 − raw y``, ``y = 127 − raw x``, ``p = 1 − raw polarity``.

AEDAT 3.1 (cAER/DV): text header ending ``#!END-HEADER``, then little-endian packets: a 28-byte
header ``int16 type, int16 source, int32 eventSize, int32 tsOffset, int32 tsOverflow,
int32 capacity, int32 number, int32 valid`` and ``capacity × eventSize`` bytes of events.
Polarity packets (type 1) hold 8-byte events ``<uint32 data><int32 timestamp>`` with

    valid = d & 1,   p = (d >> 1) & 1,   y = (d >> 2) & 0x7FFF,   x = (d >> 17) & 0x7FFF,
    t = tsOverflow·2³¹ + timestamp.

Frames: the events of a recording are split into T bins, each pixel's events are counted per
polarity, and the 128×128 grid is pooled to size×size by summing (pixel x goes to ⌊x·size/128⌋).
"""
import math
import re

import numpy as np

from .errors import DataError
from .fetch import locate, read_cache

SENSOR = 128
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FIGSHARE = {"airplane": (7712788, "0afd5c4bf9ae06af762a77b180354fdd"),
             "automobile": (7712791, "8438dfeba3bc970c94962d995b1b9bdd"),
             "bird": (7712794, "a9c207c91c55b9dc2002dc21c684d785"),
             "cat": (7712812, "52c63c677c2b15fa5146a8daf4d56687"),
             "deer": (7712815, "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
             "dog": (7712818, "f379ebdf6703d16e0a690782e62639c3"),
             "frog": (7712842, "cad6ed91214b1c7388a5f6ee56d08803"),
             "horse": (7712851, "e7cbbf77bec584ffbf913f00e682782a"),
             "ship": (7712836, "41c7bd7d6b251be82557c6cce9a7d5c9"),
             "truck": (7712839, "89f3922fd147d9aeff89e76a2b0b70a7")}
ARCHIVES = [(f"{c}.zip", f"https://ndownloader.figshare.com/files/{fid}", md5) for c, (fid, md5) in _FIGSHARE.items()]
TRAIN_FRACTION = 0.9


def _split_header(raw, path):
    """(version string, offset of the first data byte) of an AEDAT file."""
    pos, version = 0, None
    while pos < len(raw) and raw[pos:pos + 1] == b"#":
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end + 1
        line = raw[pos:end].strip()
        if line.startswith(b"#!AER-DAT"):
            version = line[len(b"#!AER-DAT"):].decode("ascii", "replace")
        pos = end
        if line == b"#!END-HEADER":
            break
    if version is None:
        raise DataError(f"{path} has no '#!AER-DAT' header line: not an AEDAT file")
    return version, pos


def _events_v2(data, path):
    if len(data) % 8:
        raise DataError(f"{path}: AEDAT 2.0 data of {len(data)} bytes is not a whole number of 8-byte events")
    pairs = np.frombuffer(data, dtype=">u4").reshape(-1, 2)
    addr, t = pairs[:, 0], pairs[:, 1].astype(np.int64)
    raw_p, raw_x, raw_y = addr & 1, (addr >> 1) & 0x7F, (addr >> 8) & 0x7F
    return t, (SENSOR - 1 - raw_y).astype(np.int64), (SENSOR - 1 - raw_x).astype(np.int64), (1 - raw_p).astype(np.int64)


def _events_v3(data, path):
    ts, xs, ys, ps = [], [], [], []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 28:
            raise DataError(f"{path}: truncated AEDAT 3.1 packet header at byte {pos}")
        etype, _, esize, ts_offset, overflow, capacity, number, _ = np.frombuffer(
            data, dtype="<i2,<i2,<i4,<i4,<i4,<i4,<i4,<i4", count=1, offset=pos)[0].tolist()
        body = capacity * esize
        if esize <= 0 or capacity < 0 or len(data) - pos - 28 < body:     # (capacity < 0 would loop back)
            raise DataError(f"{path}: truncated or malformed AEDAT 3.1 packet at byte {pos}")
        if etype == 1:                                         # polarity events
            if esize < 8 or not 0 <= ts_offset <= esize - 4 or not 0 <= number <= capacity:
                raise DataError(f"{path}: malformed AEDAT 3.1 polarity packet at byte {pos}")
            rec = np.frombuffer(data, dtype=np.uint8, count=number * esize, offset=pos + 28).reshape(number, esize)
            d = rec[:, 0:4].copy().view("<u4")[:, 0]
            stamp = rec[:, ts_offset:ts_offset + 4].copy().view("<i4")[:, 0].astype(np.int64)
            if overflow < 0 or (stamp < 0).any():               # 31-bit timestamps and a wrap counter
                raise DataError(f"{path}: negative timestamp in the AEDAT 3.1 polarity packet at byte {pos}")
            valid = (d & 1) == 1
            ts.append(stamp[valid] + (np.int64(overflow) << 31))
            ps.append(((d[valid] >> 1) & 1).astype(np.int64))
            ys.append(((d[valid] >> 2) & 0x7FFF).astype(np.int64))
            xs.append(((d[valid] >> 17) & 0x7FFF).astype(np.int64))
        pos += 28 + body
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(ts), cat(xs), cat(ys), cat(ps)


def read_aedat(path):
    """Events of an AEDAT 2.0 or 3.1 file: ``(t, x, y, p)``, int64 arrays (t in µs, p ∈ {0, 1})."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    version, start = _split_header(raw, path)
    if version.startswith("2"):
        return _events_v2(raw[start:], path)
    if version.startswith("3"):
        return _events_v3(raw[start:], path)
    raise DataError(f"{path}: AEDAT version {version!r} is not supported (2.0 and 3.1 are)")


def events_to_frames(t, x, y, p, T, size, split_by="number", sensor=SENSOR):
    """Event counts ``uint8 [T, 2, size, size]`` (saturating at 255); channel = polarity.

    Event i (in time order) falls into bin
        ⌊i·T/n⌋                       split_by="number" (equal event counts), or
        ⌊(t_i − t_0)·T/(t_last − t_0 + 1)⌋   split_by="time" (equal durations),
    and into pixel (⌊y·size/sensor⌋, ⌊x·size/sensor⌋).
    """
    if split_by not in ("number", "time"):
        raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
    n = len(t)
    counts = np.zeros(T * 2 * size * size, dtype=np.int64)
    if n:
        order = np.argsort(t, kind="stable")
        t, x, y, p = t[order], x[order], y[order], p[order]
        if split_by == "number":
            frame = np.arange(n, dtype=np.int64) * T // n
        elif t[-1] - t[0] < np.iinfo(np.int64).max // T:
            frame = (t - t[0]) * T // (t[-1] - t[0] + 1)
        else:   # (t − t_0)·T would overflow int64: a span of 2^63/T µs only comes from a corrupt file
            frame = np.minimum(((t - t[0]) / (t[-1] - t[0] + 1.0) * T).astype(np.int64), T - 1)
        keep = (x >= 0) & (x < sensor) & (y >= 0) & (y < sensor)
        idx = ((frame * 2 + p) * size + y * size // sensor) * size + x * size // sensor
        counts = np.bincount(idx[keep], minlength=counts.size)
    return np.minimum(counts, 255).astype(np.uint8).reshape(T, 2, size, size)


def _recording_index(path):
    m = re.search(r"(\d+)\D*$", path.stem)
    return (int(m.group(1)) if m else -1, path.name)


def list_recordings(root):
    """(paths, labels, is_train): per class, files in index order; the first ⌊0.9·n⌋ train."""
    paths, labels, train = [], [], []
    for label, name in enumerate(CLASSES):
        files = sorted((root / name).glob("*.aedat"), key=_recording_index)
        if not files:
            raise DataError(f"no .aedat files in {root / name}")
        n_train = math.floor(TRAIN_FRACTION * len(files))
        paths += files
        labels += [label] * len(files)
        train += [True] * n_train + [False] * (len(files) - n_train)
    return paths, np.array(labels, dtype=np.int64), np.array(train)


def load_dvs_cifar10(data_dir=None, train=True, T=20, size=64, split_by="number", download=True, cache=True):
    """DVS-CIFAR10 frames ``uint8 [N, T, 2, size, size]`` (event counts) and labels ``int64 [N]``.

    The dataset has no official split: per class, recordings 0…⌊0.9·n⌋−1 train, the rest
    (900…999) test. The binned frames of every recording are cached beside the data as
    ``minisnn-frames-T{T}-S{size}-{split_by}.npz`` (when the folder is writable).
    Feed a batch to a network as ``as_input(frames[idx])``.
    """
    root = locate("DVS-CIFAR10", "dvs_cifar10", None, list(CLASSES), ARCHIVES, data_dir, download)
    paths, labels, is_train = list_recordings(root)
    cache_file = root / f"minisnn-frames-T{T}-S{size}-{split_by}.npz"
    stored = read_cache(cache_file, labels) if cache else None
    frames = stored.get("frames") if stored else None
    if frames is None or frames.shape != (len(paths), T, 2, size, size) or frames.dtype != np.uint8:
        frames = np.empty((len(paths), T, 2, size, size), dtype=np.uint8)
        for i, path in enumerate(paths):
            frames[i] = events_to_frames(*read_aedat(path), T, size, split_by)
        if cache:
            try:
                np.savez(cache_file, frames=frames, labels=labels)
            except OSError:
                pass
    select = is_train if train else ~is_train
    return frames[select], labels[select]


def as_input(frames, dtype=np.float32):
    """``[B, T, 2, H, W]`` frames -> the time-major network input ``[T, B, 2, H, W]``."""
    return np.ascontiguousarray(np.asarray(frames).transpose(1, 0, 2, 3, 4), dtype=dtype)
