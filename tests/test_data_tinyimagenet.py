"""Tiny-ImageNet loader on a tiny tree in the published layout, with real JPEG files."""
import numpy as np
import pytest
from PIL import Image

from minisnn.data import DataError, fetch
from minisnn.data.tinyimagenet import load_tinyimagenet
from tiny_files import WNIDS, make_tree, write_jpeg

@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))


def decoded(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)


def test_reads_train_and_val_exactly(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    originals = make_tree(root, np.random.default_rng(0))
    order = sorted(WNIDS)
    images, labels = load_tinyimagenet(tmp_path, train=True)
    assert images.shape == (6, 3, 64, 64) and images.dtype == np.uint8 and labels.dtype == np.int64
    expected_paths = [root / "train" / w / "images" / f"{w}_{k}.JPEG" for w in order for k in range(2)]
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    for img, p in zip(images, expected_paths):
        np.testing.assert_array_equal(img, decoded(p))                         # the decoder's pixels, exactly
        original = originals[p] if originals[p].ndim == 3 else np.repeat(originals[p][..., None], 3, 2)
        assert np.abs(img.astype(int) - original.transpose(2, 0, 1)).max() <= 3   # and the image written
    images, labels = load_tinyimagenet(root, train=False)
    np.testing.assert_array_equal(labels, [order.index(w) for w in [WNIDS[2], WNIDS[0], WNIDS[2], WNIDS[1]]])
    for k, img in enumerate(images):
        np.testing.assert_array_equal(img, decoded(root / "val" / "images" / f"val_{k}.JPEG"))


def test_cache_is_written_and_reused(tmp_path):
    root = tmp_path / "tinyimagenet" / "tiny-imagenet-200"
    make_tree(root, np.random.default_rng(1))
    first = load_tinyimagenet(tmp_path, train=False)
    assert (root / "minisnn-val.npz").is_file()
    (root / "val" / "images" / "val_0.JPEG").write_bytes(b"broken")      # the cache answers now
    second = load_tinyimagenet(tmp_path, train=False)
    np.testing.assert_array_equal(first[0], second[0])
    with pytest.raises(DataError, match="cannot decode"):
        load_tinyimagenet(tmp_path, train=False, cache=False)


def test_errors(tmp_path):
    with pytest.raises(DataError, match="tiny-imagenet-200.zip"):
        load_tinyimagenet()
    root = tmp_path / "tiny-imagenet-200"
    make_tree(root, np.random.default_rng(2))
    write_jpeg(root / "train" / WNIDS[0] / "images" / "odd.JPEG", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="expected 64x64"):
        load_tinyimagenet(root, cache=False)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="unknown wnid"):
        load_tinyimagenet(root, train=False, cache=False)
