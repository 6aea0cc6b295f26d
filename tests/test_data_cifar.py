"""CIFAR-10/100 binary loaders on tiny files written in the published formats; search order,
archive verification and unpacking, offline failure; augmentation and normalisation."""
import hashlib
import io

import numpy as np
import pytest

from minisnn.data import DataError, augment, cifar, fetch
from tiny_files import make_split, tar_gz, write_cifar10


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No real ~/.cache or $MINISNN_DATA, and no network: every download attempt fails."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINISNN_DATA", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.setattr(fetch.urllib.request, "urlopen", offline)


def test_cifar10_reads_binary_batches_exactly(tmp_path):
    rng = np.random.default_rng(0)
    (train_x, train_y), (test_x, test_y) = write_cifar10(tmp_path / "cifar-10-batches-bin", rng)
    images, labels = cifar.load_cifar10(tmp_path, train=True)
    assert images.dtype == np.uint8 and images.shape == (15, 3, 32, 32)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, train_x)
    np.testing.assert_array_equal(labels, train_y)
    images, labels = cifar.load_cifar10(tmp_path / "cifar-10-batches-bin", train=False)
    np.testing.assert_array_equal(images, test_x)
    np.testing.assert_array_equal(labels, test_y)
    # red plane first: pixel (row 2, col 3) of the green plane is byte 1 + 1024 + 2·32 + 3
    raw = (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    assert images[0, 1, 2, 3] == raw[1 + 1024 + 2 * 32 + 3]


def test_cifar100_fine_and_coarse_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    tr_x, tr_y, raw = make_split(rng, 4, [20, 100])
    (folder / "train.bin").write_bytes(raw)
    te_x, te_y, raw = make_split(rng, 2, [20, 100])
    (folder / "test.bin").write_bytes(raw)
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path))          # found via $MINISNN_DATA/cifar100/
    images, fine = cifar.load_cifar100(train=True)
    np.testing.assert_array_equal(images, tr_x)
    np.testing.assert_array_equal(fine, tr_y[:, 1])
    images, coarse = cifar.load_cifar100(train=False, label="coarse")
    np.testing.assert_array_equal(images, te_x)
    np.testing.assert_array_equal(coarse, te_y[:, 0])


def cifar10_archive(tmp_path, rng):
    src = tmp_path / "src"
    expected = write_cifar10(src, rng)
    members = {f"cifar-10-batches-bin/{p.name}": p.read_bytes() for p in sorted(src.iterdir())}
    return tar_gz(members), expected


def test_archive_on_disk_is_verified_and_unpacked(tmp_path, monkeypatch):
    data, (train, _) = cifar10_archive(tmp_path, np.random.default_rng(2))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    name, url, _ = cifar.CIFAR10["archives"][0]
    monkeypatch.setitem(cifar.CIFAR10, "archives", [(name, url, hashlib.md5(data).hexdigest())])
    images, labels = cifar.load_cifar10(folder)
    np.testing.assert_array_equal(images, train[0])
    assert (folder / "cifar-10-batches-bin" / "data_batch_5.bin").is_file()

    (folder / "cifar-10-binary.tar.gz").write_bytes(data[:-1] + b"x")    # corrupt archive
    for p in (folder / "cifar-10-batches-bin").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="checksum mismatch"):
        cifar.load_cifar10(folder)


def test_download_goes_to_cache_and_is_verified(tmp_path, monkeypatch):
    data, (train, _) = cifar10_archive(tmp_path, np.random.default_rng(3))
    name, url, _ = cifar.CIFAR10["archives"][0]
    monkeypatch.setitem(cifar.CIFAR10, "archives", [(name, url, hashlib.md5(data).hexdigest())])
    requested = []

    def serve(u, timeout=None):
        requested.append(u)
        return io.BytesIO(data)
    monkeypatch.setattr(fetch.urllib.request, "urlopen", serve)
    images, _ = cifar.load_cifar10()
    assert requested == [url]
    np.testing.assert_array_equal(images, train[0])
    assert (tmp_path / "home" / ".cache" / "minisnn" / "cifar10" / name).is_file()

    monkeypatch.setitem(cifar.CIFAR100, "archives", [("x.tar.gz", "https://example.org/x", "0" * 32)])
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda u, timeout=None: io.BytesIO(b"not it"))
    with pytest.raises(DataError, match="checksum mismatch"):
        cifar.load_cifar100()
    assert not list((tmp_path / "home" / ".cache" / "minisnn" / "cifar100").iterdir())


def test_offline_error_is_one_clear_line(tmp_path):
    with pytest.raises(DataError) as err:
        cifar.load_cifar10()
    message = str(err.value)
    assert "\n" not in message and "cifar-10-binary.tar.gz" in message
    assert "--data-dir" in message and "MINISNN_DATA" in message and "~/.cache/minisnn/cifar10" in message
    with pytest.raises(DataError, match="does not exist"):
        cifar.load_cifar10(tmp_path / "typo")


def test_truncated_file_and_bad_labels(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10(folder, rng)
    raw = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        cifar.load_cifar10(tmp_path, train=False)
    (folder / "test_batch.bin").write_bytes(bytes([42]) + raw[1:])
    with pytest.raises(DataError, match="out of range"):
        cifar.load_cifar10(tmp_path, train=False)


def test_random_crop_flip_is_a_padded_window():
    rng = np.random.default_rng(5)
    images = rng.integers(1, 256, (6, 3, 8, 8), dtype=np.uint8)
    out = augment.random_crop_flip(images, np.random.default_rng(6), padding=2)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n in range(6):
        windows = [w for a in range(5) for b in range(5)
                   for w in (padded[n, :, a:a + 8, b:b + 8], padded[n, :, a:a + 8, b:b + 8][:, :, ::-1])]
        assert any(np.array_equal(out[n], w) for w in windows)
    assert np.array_equal(augment.random_crop_flip(images, rng, padding=0, flip=False), images)
    # over many draws every offset and both orientations occur
    many = augment.random_crop_flip(np.repeat(images[:1], 400, axis=0), np.random.default_rng(7), padding=2)
    seen = {next(i for i, w in enumerate([padded[0, :, a:a + 8, b:b + 8][:, :, ::s] for a in range(5)
                                          for b in range(5) for s in (1, -1)]) if np.array_equal(m, w)) for m in many}
    assert len(seen) == 50


def test_normalize_uses_the_reference_statistics():
    images = np.array([0, 255, 128], dtype=np.uint8).reshape(1, 3, 1, 1)
    x = cifar.normalize(images)
    expected = [(0 - 0.4914) / 0.2023, (1 - 0.4822) / 0.1994, (128 / 255 - 0.4465) / 0.2010]
    np.testing.assert_allclose(x.reshape(-1), expected, rtol=1e-6)
    assert x.dtype == np.float32
