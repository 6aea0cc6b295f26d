"""The MNIST IDX loader: formats, checksums, the search order, the download fallback and the
errors it raises on missing or corrupt files. Tiny IDX files are written by the tests; one test
reads the real files from ../shared/data/mnist when they are there."""
import gzip
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from minisnn.data import DataError, mnist

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
TRAIN_IMAGES, TRAIN_LABELS = mnist.FILES["train", "images"], mnist.FILES["train", "labels"]
TEST_IMAGES, TEST_LABELS = mnist.FILES["test", "images"], mnist.FILES["test", "labels"]

pytestmark = pytest.mark.usefixtures("isolated_home")


TINY_TRAIN, TINY_TEST = 30, 20      # the sizes of conftest's tiny dataset


@pytest.fixture
def tools(mnist_tools):
    assert (mnist_tools.n_train, mnist_tools.n_test) == (TINY_TRAIN, TINY_TEST)
    return mnist_tools


def accept(monkeypatch, hashes):
    monkeypatch.setattr(mnist, "SHA256", {**mnist.SHA256, **hashes})


def check_tiny(tools, images, labels, split):
    arrays = tools.tiny_arrays()
    n = TINY_TRAIN if split == "train" else TINY_TEST
    assert images.dtype == np.uint8 and images.shape == (n, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    np.testing.assert_array_equal(images, arrays[mnist.FILES[split, "images"]])
    np.testing.assert_array_equal(labels, np.arange(n) % 10)


# --- formats ---------------------------------------------------------------------------------

def test_idx_round_trip_of_one_and_three_dimensional_arrays(tools):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(mnist.parse_idx(tools.idx_bytes(labels)), labels)
    parsed = mnist.parse_idx(tools.idx_bytes(images))
    assert parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, images)
    # header: magic 0x00000803 then big-endian sizes
    assert tools.idx_bytes(images)[:16] == bytes.fromhex("00000803 00000002 00000003 00000004")


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_reads_gzipped_and_uncompressed_files(tools, tmp_path, monkeypatch, gz):
    accept(monkeypatch, tools.write_idx_files(tmp_path / "d", tools.tiny_arrays(), gz=gz))
    suffix = ".gz" if gz else ""
    assert (tmp_path / "d" / f"{TRAIN_IMAGES}{suffix}").is_file()
    check_tiny(tools, *mnist.load_mnist(tmp_path / "d", train=True), "train")
    check_tiny(tools, *mnist.load_mnist(str(tmp_path / "d"), train=False), "test")


def test_normalize_is_the_usual_mnist_standardisation():
    pixels = np.array([[0, 255], [128, 33]], dtype=np.uint8)
    x = mnist.normalize(pixels)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, (pixels / 255.0 - 0.1307) / 0.3081, rtol=1e-6)
    assert mnist.normalize(pixels, np.float64).dtype == np.float64


# --- where the files are looked for ------------------------------------------------------------

@pytest.mark.parametrize("where", ["data_dir", "data_dir/mnist", "env", "env/mnist", "cache", "cache/mnist"])
def test_search_locations(tools, tmp_path, monkeypatch, isolated_home, where):
    base = {"data_dir": tmp_path / "given", "env": tmp_path / "env",
            "cache": isolated_home / ".cache" / "minisnn"}[where.split("/")[0]]
    folder = base / "mnist" if where.endswith("/mnist") else base
    accept(monkeypatch, tools.write_idx_files(folder, tools.tiny_arrays(), gz=True))
    if where.startswith("env"):
        monkeypatch.setenv("MINISNN_DATA", str(base))
    data_dir = base if where.startswith("data_dir") else None
    assert mnist.find_file(TEST_LABELS, data_dir) == folder / f"{TEST_LABELS}.gz"
    check_tiny(tools, *mnist.load_mnist(data_dir, train=False), "test")


def test_search_order_is_data_dir_then_env_then_cache(tools, tmp_path, monkeypatch, isolated_home):
    given, env, cache = tmp_path / "given", tmp_path / "env", isolated_home / ".cache" / "minisnn" / "mnist"
    for folder in (given, env, cache):
        tools.write_idx_files(folder, tools.tiny_arrays(), gz=True)
    (given / "mnist").mkdir()
    tools.write_idx_files(given / "mnist", tools.tiny_arrays(), gz=False)
    monkeypatch.setenv("MINISNN_DATA", str(env))
    gz = f"{TRAIN_LABELS}.gz"
    assert mnist.find_file(TRAIN_LABELS, given) == given / gz          # the folder itself first
    (given / gz).unlink()
    assert mnist.find_file(TRAIN_LABELS, given) == given / "mnist" / TRAIN_LABELS  # then its mnist/
    (given / "mnist" / TRAIN_LABELS).unlink()
    assert mnist.find_file(TRAIN_LABELS, given) == env / gz            # then $MINISNN_DATA
    assert mnist.find_file(TRAIN_LABELS, None) == env / gz
    (env / gz).unlink()
    assert mnist.find_file(TRAIN_LABELS, given) == cache / gz          # then ~/.cache/minisnn
    dirs = mnist.search_dirs(given)
    assert dirs == [given, given / "mnist", env, env / "mnist", cache.parent, cache]


def test_missing_data_dir_is_an_error_even_when_other_copies_exist(tools, tmp_path, monkeypatch):
    env = tmp_path / "env"
    accept(monkeypatch, tools.write_idx_files(env, tools.tiny_arrays()))
    monkeypatch.setenv("MINISNN_DATA", str(env))
    missing = tmp_path / "typo"
    with pytest.raises(DataError, match=f"^--data-dir {re.escape(str(missing))} does not exist$"):
        mnist.load_mnist(missing)


# --- download fallback -------------------------------------------------------------------------

def test_failed_download_gives_a_clear_message(tmp_path, isolated_home):
    with pytest.raises(DataError) as info:
        mnist.load_mnist(None, train=True)
    message = str(info.value)
    assert message.startswith(f"MNIST file {TRAIN_IMAGES} not found locally and the download failed "
                              f"(network access is disabled in the tests)")
    assert "--data-dir DIR" in message and "MINISNN_DATA" in message and "~/.cache/minisnn/mnist" in message
    # nothing half-written is left in the cache
    assert list((isolated_home / ".cache" / "minisnn" / "mnist").iterdir()) == []


def test_empty_data_dir_falls_back_to_download(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="download failed.*--data-dir DIR.*MINISNN_DATA"):
        mnist.load_mnist(tmp_path / "empty", train=False)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(monkeypatch, files, requested):
    def urlopen(url, timeout=None):
        requested.append(url)
        name = url.rsplit("/", 1)[1]
        return FakeResponse(files[name])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)


def test_download_is_cached_and_verified(tools, monkeypatch, isolated_home):
    arrays = tools.tiny_arrays()
    files = {f"{name}.gz": gzip.compress(tools.idx_bytes(a)) for name, a in arrays.items()}
    accept(monkeypatch, {name: hashlib.sha256(tools.idx_bytes(a)).hexdigest() for name, a in arrays.items()})
    requested = []
    serve(monkeypatch, files, requested)
    check_tiny(tools, *mnist.load_mnist(None, train=True), "train")
    assert requested == [mnist.MIRROR + f"{TRAIN_IMAGES}.gz", mnist.MIRROR + f"{TRAIN_LABELS}.gz"]
    cache = isolated_home / ".cache" / "minisnn" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted([f"{TRAIN_IMAGES}.gz", f"{TRAIN_LABELS}.gz"])
    # the second time the cached files are used: no download
    check_tiny(tools, *mnist.load_mnist(None, train=True), "train")
    assert len(requested) == 2


def test_corrupt_download_fails_the_checksum(tools, monkeypatch, isolated_home):
    arrays = tools.tiny_arrays()
    accept(monkeypatch, {name: hashlib.sha256(tools.idx_bytes(a)).hexdigest() for name, a in arrays.items()})
    bad = bytearray(tools.idx_bytes(arrays[TEST_IMAGES]))
    bad[100] ^= 0xFF
    serve(monkeypatch, {f"{TEST_IMAGES}.gz": gzip.compress(bytes(bad))}, [])
    with pytest.raises(DataError, match=f"checksum mismatch for .*{TEST_IMAGES}.gz: the file is corrupt"):
        mnist.load_mnist(None, train=False)


# --- corrupt files -------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_checksum_mismatch(tools, tmp_path, monkeypatch, gz):
    arrays = tools.tiny_arrays()
    accept(monkeypatch, tools.write_idx_files(tmp_path, arrays, gz=gz))
    arrays[TRAIN_IMAGES] = arrays[TRAIN_IMAGES].copy()
    arrays[TRAIN_IMAGES][0, 0, 0] ^= 1                         # one bit flipped, same size
    tools.write_idx_files(tmp_path, {TRAIN_IMAGES: arrays[TRAIN_IMAGES]}, gz=gz)
    path = tmp_path / (f"{TRAIN_IMAGES}.gz" if gz else TRAIN_IMAGES)
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path, train=True)
    assert str(info.value) == (f"checksum mismatch for {path}: the file is corrupt or not the standard "
                               f"MNIST {TRAIN_IMAGES}")
    # verify=False skips the check and parses the (well-formed) file
    images, _ = mnist.load_mnist(tmp_path, train=True, verify=False)
    assert images[0, 0, 0] == arrays[TRAIN_IMAGES][0, 0, 0]


def test_truncated_uncompressed_file(tools, tmp_path, monkeypatch):
    hashes = tools.write_idx_files(tmp_path, tools.tiny_arrays(), gz=False)
    accept(monkeypatch, hashes)
    path = tmp_path / TEST_IMAGES
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="checksum mismatch"):
        mnist.load_mnist(tmp_path, train=False)
    # even when the checksum is not what stops it, the parser refuses the short file
    accept(monkeypatch, {TEST_IMAGES: hashlib.sha256(raw[:-100]).hexdigest()})
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path, train=False)
    assert str(info.value) == (f"{path} is truncated or corrupt: {len(raw) - 100} bytes, expected {len(raw)} "
                               f"for shape ({TINY_TEST}, 28, 28)")


def test_truncated_gzip_file(tools, tmp_path, monkeypatch):
    accept(monkeypatch, tools.write_idx_files(tmp_path, tools.tiny_arrays(), gz=True))
    path = tmp_path / f"{TRAIN_LABELS}.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match=f"^cannot read {re.escape(str(path))}: Compressed file ended"):
        mnist.load_mnist(tmp_path, train=True)


def test_bad_magic_number(tools, tmp_path, monkeypatch):
    hashes = tools.write_idx_files(tmp_path, tools.tiny_arrays(), gz=False)
    path = tmp_path / TRAIN_LABELS
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D                                               # float data instead of unsigned bytes
    path.write_bytes(bytes(raw))
    accept(monkeypatch, {**hashes, TRAIN_LABELS: hashlib.sha256(raw).hexdigest()})
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path, train=True)
    assert str(info.value) == f"{path} is not an unsigned-byte IDX file (bad magic number)"
    with pytest.raises(DataError, match="bad magic number"):
        mnist.parse_idx(b"PK\x03\x04 not an idx file")
    with pytest.raises(DataError, match="bad magic number"):
        mnist.parse_idx(b"\x00\x00")


def test_truncated_header():
    with pytest.raises(DataError, match=r"^labels is truncated \(incomplete header\)$"):
        mnist.parse_idx(b"\x00\x00\x08\x03\x00\x00\x00\x1e\x00", "labels")


def test_header_sizes_whose_product_overflows_int64():
    raw = bytes([0, 0, 0x08, 3]) + (2 ** 31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big")   # 2^64 bytes
    with pytest.raises(DataError, match=r"^labels is truncated or corrupt: 16 bytes, expected 18446744073709551632 "):
        mnist.parse_idx(raw, "labels")


def test_images_and_labels_of_different_lengths(tools, tmp_path, monkeypatch):
    arrays = tools.tiny_arrays()
    arrays[TRAIN_LABELS] = arrays[TRAIN_LABELS][:-1]
    accept(monkeypatch, tools.write_idx_files(tmp_path, arrays))
    with pytest.raises(DataError) as info:
        mnist.load_mnist(tmp_path, train=True)
    assert str(info.value) == (f"MNIST train images ({TINY_TRAIN}, 28, 28) and labels ({TINY_TRAIN - 1},) "
                               f"do not match")


def test_images_file_given_as_labels(tools, tmp_path, monkeypatch):
    arrays = tools.tiny_arrays()
    arrays[TEST_LABELS] = arrays[TEST_IMAGES]
    accept(monkeypatch, tools.write_idx_files(tmp_path, arrays))
    with pytest.raises(DataError, match=r"MNIST test images \(20, 28, 28\) and labels \(20, 28, 28\) do not match"):
        mnist.load_mnist(tmp_path, train=False)


# --- the real files ------------------------------------------------------------------------------

@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"{REAL_MNIST} is not there")
def test_real_mnist_files():
    sums = dict(line.split()[::-1] for line in (REAL_MNIST / "SHA256SUMS").read_text().splitlines() if line)
    assert sums == mnist.SHA256                                 # the built-in checksums are the published ones
    train_x, train_y = mnist.load_mnist(REAL_MNIST, train=True)  # verify=True: checksums pass
    test_x, test_y = mnist.load_mnist(REAL_MNIST, train=False)
    assert train_x.shape == (60000, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (10000, 28, 28) and test_x.dtype == np.uint8
    assert train_y.shape == (60000,) and test_y.shape == (10000,)
    for labels in (train_y, test_y):
        assert labels.min() == 0 and labels.max() == 9
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the normalisation constants are this training set's pixel mean and standard deviation
    assert abs(train_x.mean() / 255 - mnist.MEAN) < 1e-4 and abs(train_x.std() / 255 - mnist.STD) < 1e-4
