"""DVS-CIFAR10: AEDAT 2.0 and 3.1 files written byte by byte, read back exactly; binning into
frames; the loader on a tiny tree in the published layout."""
import struct

import numpy as np
import pytest

from minisnn.data import DataError, dvs, fetch
from tiny_files import V2_HEADER, V3_HEADER, random_events, v2_bytes, v3_packet


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))


def test_aedat2_single_event_bit_layout(tmp_path):
    # raw x = 5, raw y = 3, raw polarity 1 (OFF): address 0x0000030B, timestamp 42 µs
    path = tmp_path / "one.aedat"
    path.write_bytes(V2_HEADER + bytes.fromhex("0000030b" "0000002a"))
    t, x, y, p = dvs.read_aedat(path)
    assert (t.tolist(), x.tolist(), y.tolist(), p.tolist()) == ([42], [124], [122], [0])


def test_aedat2_round_trip(tmp_path):
    events = random_events(np.random.default_rng(0), 500)
    path = tmp_path / "rec.aedat"
    path.write_bytes(v2_bytes(*events))
    for got, want in zip(dvs.read_aedat(path), events):
        np.testing.assert_array_equal(got, want)
    path.write_bytes(v2_bytes(*events)[:-3])
    with pytest.raises(DataError, match="8-byte events"):
        dvs.read_aedat(path)
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="not an AEDAT file"):
        dvs.read_aedat(path)


def test_aedat31_polarity_packets(tmp_path):
    def word(x, y, p, valid=1):
        return (x << 17) | (y << 2) | (p << 1) | valid
    data = (V3_HEADER
            + v3_packet(0, [(0x1234, 5)])                                   # special events: skipped
            + v3_packet(1, [(word(3, 4, 1), 10), (word(100, 7, 0), 20), (word(9, 9, 1, valid=0), 25)])
            + v3_packet(1, [(word(127, 0, 0), 7)], overflow=1))
    path = tmp_path / "v31.aedat"
    path.write_bytes(data)
    t, x, y, p = dvs.read_aedat(path)
    assert t.tolist() == [10, 20, (1 << 31) + 7]
    assert (x.tolist(), y.tolist(), p.tolist()) == ([3, 100, 127], [4, 7, 0], [1, 0, 0])
    path.write_bytes(data[:-4])
    with pytest.raises(DataError, match="truncated"):
        dvs.read_aedat(path)


def test_malformed_aedat31_packets(tmp_path):
    path = tmp_path / "bad.aedat"
    good = v3_packet(1, [(3 << 17 | 1, 10)])
    for packet, message in [
            (good[:16] + struct.pack("<iii", -4, 1, 1) + good[28:], "malformed AEDAT 3.1 packet"),  # capacity < 0
            (good[:16] + struct.pack("<iii", 1, 2, 2) + good[28:], "malformed AEDAT 3.1 polarity"),  # number > capacity
            (good[:4] + struct.pack("<i", 2) + good[8:], "malformed AEDAT 3.1 polarity packet"),    # 2-byte events
            (good[:-4] + struct.pack("<i", -1), "negative timestamp")]:
        path.write_bytes(V3_HEADER + packet)
        with pytest.raises(DataError, match=message):
            dvs.read_aedat(path)


def test_time_bins_of_a_huge_time_span():
    """(t − t0)·T overflows int64 here (t up to the largest AEDAT 3.1 time, 2^62 − 1): still 3 bins."""
    t = np.array([0, 2 ** 61, 2 ** 62 - 1])
    frames = dvs.events_to_frames(t, np.zeros(3, int), np.zeros(3, int), np.ones(3, int), T=3, size=1, split_by="time")
    np.testing.assert_array_equal(frames[:, 1, 0, 0], [1, 1, 1])


def test_events_to_frames_by_number_and_time():
    t = np.array([0, 1, 2, 100])
    x = np.array([0, 127, 64, 63])
    y = np.array([0, 0, 64, 127])
    p = np.array([1, 0, 1, 1])
    frames = dvs.events_to_frames(t, x, y, p, T=2, size=2, split_by="number")    # bins 0, 0, 1, 1
    expected = np.zeros((2, 2, 2, 2), np.uint8)
    expected[0, 1, 0, 0] = expected[0, 0, 0, 1] = expected[1, 1, 1, 1] = expected[1, 1, 1, 0] = 1
    np.testing.assert_array_equal(frames, expected)
    frames = dvs.events_to_frames(t, x, y, p, T=2, size=2, split_by="time")      # bins 0, 0, 0, 1
    expected[1, 1, 1, 1], expected[0, 1, 1, 1] = 0, 1
    np.testing.assert_array_equal(frames, expected)
    many = dvs.events_to_frames(np.arange(300), np.zeros(300, int), np.zeros(300, int), np.ones(300, int), 1, 4)
    assert many[0, 1, 0, 0] == 255 and many.sum() == 255
    assert dvs.events_to_frames(*(np.zeros(0, int),) * 4, T=3, size=4).shape == (3, 2, 4, 4)


def test_loader_reads_the_published_layout(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "dvs_cifar10"
    expected = {}
    for c in dvs.CLASSES:
        (root / c).mkdir(parents=True)
        for k in (0, 2, 10):                                         # numeric, not text, order
            events = random_events(rng, 50)
            (root / c / f"cifar10_{c}_{k}.aedat").write_bytes(v2_bytes(*events))
            expected[c, k] = dvs.events_to_frames(*events, T=4, size=8)
    frames, labels = dvs.load_dvs_cifar10(tmp_path, train=True, T=4, size=8)
    assert frames.shape == (20, 4, 2, 8, 8) and frames.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 2))
    for i, (c, k) in enumerate((c, k) for c in dvs.CLASSES for k in (0, 2)):
        np.testing.assert_array_equal(frames[i], expected[c, k])
    test_frames, test_labels = dvs.load_dvs_cifar10(tmp_path, train=False, T=4, size=8)
    np.testing.assert_array_equal(test_labels, np.arange(10))
    np.testing.assert_array_equal(test_frames, np.stack([expected[c, 10] for c in dvs.CLASSES]))
    assert (root / "minisnn-frames-T4-S8-number.npz").is_file()
    x = dvs.as_input(test_frames[:3])
    assert x.shape == (4, 3, 2, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x[2, 1], test_frames[1, 2])


def test_offline_error_names_the_archives():
    with pytest.raises(DataError) as err:
        dvs.load_dvs_cifar10()
    assert "airplane.zip" in str(err.value) or "figshare" in str(err.value)
    assert "MINISNN_DATA" in str(err.value) and "\n" not in str(err.value)
