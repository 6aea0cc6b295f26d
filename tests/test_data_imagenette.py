"""Imagenette loader on tiny trees in the published imagenette2-160 layout: real JPEGs (and PNG
bytes under a .JPEG name where a test needs exact pixels), a noisy_imagenette.csv."""
import numpy as np
import pytest
from PIL import Image

from minisnn.data import DataError, fetch
from minisnn.data.imagenette import MAX_SIDE, load_imagenette
from tiny_files import NETTE_WNIDS, NOISE_LEVELS, blocks, make_imagenette, tar_gz, write_jpeg

BILINEAR = Image.Resampling.BILINEAR
ORDER = sorted(NETTE_WNIDS)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))


def tree(path, seed=0, csv=True):
    return make_imagenette(path / "imagenette2-160", np.random.default_rng(seed), csv=csv)


def rels(split):
    """The split's files in the loader's order: sorted classes, sorted names."""
    n = 2 if split == "train" else 1
    return [f"{split}/{w}/{w}_{k}.JPEG" for w in ORDER for k in range(n)]


def decoded(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_png(path, pixels):
    """Lossless pixels in a file named .JPEG (Pillow opens by content, as ImageNet's odd PNGs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def test_reads_both_splits_in_sorted_class_order(tmp_path):
    originals, _ = tree(tmp_path)
    root = tmp_path / "imagenette2-160"
    images, labels = load_imagenette(tmp_path, train=True, size=8)
    assert images.shape == (6, 3, 8, 8) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    for img, rel in zip(images, rels("train")):
        pixels = decoded(root / rel)                       # 20×30 → 8×12, or 26×20 → 8×10, then the centre
        h, w = pixels.shape[:2]
        new = (int(8 * w / h), 8) if w > h else (8, int(8 * h / w))
        resized = np.asarray(Image.fromarray(pixels).resize(new, BILINEAR))
        top, left = (resized.shape[0] - 8) // 2, (resized.shape[1] - 8) // 2
        np.testing.assert_array_equal(img, resized[top:top + 8, left:left + 8].transpose(2, 0, 1))
        if originals[rel].ndim == 2:                       # greyscale, expanded to RGB
            assert np.array_equal(img[0], img[1]) and np.array_equal(img[1], img[2])
    images, labels = load_imagenette(tmp_path, train=False, size=8)
    assert images.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(labels, [0, 1, 2])
    assert load_imagenette(tmp_path, train=False)[0].shape == (3, 3, 64, 64)     # the default size


@pytest.mark.parametrize("shape, size, resized, window", [
    ((16, 25), 16, None, (slice(0, 16), slice(4, 20))),       # shorter side already 16: only the centre, ⌊9/2⌋ = 4
    ((26, 16), 16, None, (slice(5, 21), slice(0, 16))),       # portrait: top ⌊10/2⌋ = 5
    ((32, 67), 16, (33, 16), (slice(0, 16), slice(8, 24))),   # long side ⌊16·67/32⌋ = ⌊33.5⌋ = 33, left ⌊17/2⌋
    ((50, 20), 8, (8, 20), (slice(6, 14), slice(0, 8))),      # portrait shrunk: 8×20, top 6
    ((10, 12), 16, (19, 16), (slice(0, 16), slice(1, 17))),   # enlarged: ⌊16·12/10⌋ = 19, left 1
])
def test_resize_shorter_side_then_centre_crop(tmp_path, shape, size, resized, window):
    pixels = np.random.default_rng(1).integers(0, 256, shape + (3,), dtype=np.uint8)
    root = tmp_path / "imagenette2-160"
    for split in ("train", "val"):
        write_png(root / split / "n01440764" / "n01440764_0.JPEG", pixels)
    image = load_imagenette(tmp_path, size=size, cache=False)[0][0]
    expected = pixels if resized is None else np.asarray(Image.fromarray(pixels).resize(resized, BILINEAR))
    np.testing.assert_array_equal(image, expected[window].transpose(2, 0, 1))


def test_noisy_labels_from_the_csv(tmp_path):
    _, table = tree(tmp_path)
    clean = {split: load_imagenette(tmp_path, train=split == "train", size=4)[1] for split in ("train", "val")}
    for k in NOISE_LEVELS:
        for split in ("train", "val"):
            labels = load_imagenette(tmp_path, train=split == "train", size=4, noise=k)[1]
            np.testing.assert_array_equal(labels, [ORDER.index(table[r][k]) for r in rels(split)])
            if k == 0:
                np.testing.assert_array_equal(labels, clean[split])
    assert not np.array_equal(load_imagenette(tmp_path, size=4, noise=5)[1], clean["train"])
    with pytest.raises(ValueError, match="noise must be one of 0, 1, 5, 25, 50"):
        load_imagenette(tmp_path, size=4, noise=10)
    (tmp_path / "imagenette2-160" / "noisy_imagenette.csv").unlink()
    np.testing.assert_array_equal(load_imagenette(tmp_path, size=4)[1], clean["train"])   # no csv: folder labels
    with pytest.raises(DataError, match="noise=25 needs the noisy labels of .*noisy_imagenette.csv"):
        load_imagenette(tmp_path, size=4, noise=25)


def edit_csv(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_csv_is_cross_checked_with_the_folders(tmp_path):
    _, table = tree(tmp_path)
    root = tmp_path / "imagenette2-160"
    csv = root / "noisy_imagenette.csv"
    load = lambda **kw: load_imagenette(tmp_path, size=4, cache=False, **kw)   # noqa: E731
    gone = root / rels("train")[1]
    gone.rename(tmp_path / "aside.JPEG")                       # listed in the csv, not on disk
    with pytest.raises(DataError, match=rf"^{csv} lists '{rels('train')[1]}', which is not an image in"):
        load()
    load(train=False)                                          # the other split is not affected
    load(use_csv=False)                                        # and the check can be turned off
    (tmp_path / "aside.JPEG").rename(gone)
    write_jpeg(root / "train" / ORDER[0] / "extra.JPEG", blocks(np.random.default_rng(2), 20, 20))
    with pytest.raises(DataError, match=rf"^{csv} does not list {root}/train/{ORDER[0]}/extra.JPEG"):
        load()
    (root / "train" / ORDER[0] / "extra.JPEG").unlink()
    rel = rels("train")[0]
    wnid = rel.split("/")[1]
    good = csv.read_text()
    edit_csv(csv, f"{rel},{wnid}", f"{rel},{ORDER[2]}")         # noisy_labels_0 is not the folder's class
    with pytest.raises(DataError, match=rf"^{csv}: line \d+: noisy_labels_0 of '{rel}' is {ORDER[2]}, not its folder"):
        load()
    csv.write_text(good)
    line = next(x for x in good.splitlines() if x.startswith(rel))
    edit_csv(csv, line, line[:-len("False")] + "True")          # a training image marked valid
    with pytest.raises(DataError, match=rf"^{csv}: line \d+: '{rel}' is in train/ but is_valid is True"):
        load()
    csv.write_text(good.replace(f",{table[rel][50]},False", ",n00000000,False", 1))
    with pytest.raises(DataError, match=r"noisy_labels_50 'n00000000' is not a class"):
        load()
    csv.write_text(good.replace("noisy_labels_25", "noisy_labels_20"))
    with pytest.raises(DataError, match=rf"^{csv} has no column 'noisy_labels_25'"):
        load()
    csv.write_text(good + good.splitlines()[1] + "\n")          # a row twice
    with pytest.raises(DataError, match=r"repeats"):
        load()
    csv.write_text(good.replace("train/", "../", 1))
    with pytest.raises(DataError, match=r"not train/<wnid>/<file>"):
        load()


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    home = tmp_path / "home" / ".cache" / "minisnn" / "imagenette"     # each base with the dataset's folder
    env, given = tmp_path / "env", tmp_path / "given" / "imagenette"
    for seed, base in enumerate((home, env, given)):
        tree(base, seed=seed)
    direct = {b: load_imagenette(b / "imagenette2-160", size=4, cache=False)[0] for b in (home, env, given)}
    assert not np.array_equal(direct[home], direct[env]) and not np.array_equal(direct[env], direct[given])
    monkeypatch.setenv("MINISNN_DATA", str(env))
    np.testing.assert_array_equal(load_imagenette(tmp_path / "given", size=4)[0], direct[given])
    np.testing.assert_array_equal(load_imagenette(size=4)[0], direct[env])
    monkeypatch.delenv("MINISNN_DATA")
    np.testing.assert_array_equal(load_imagenette(size=4)[0], direct[home])


def test_missing_dataset_is_one_line_naming_the_ways_to_provide_it(tmp_path):
    with pytest.raises(DataError) as info:
        load_imagenette(download=False)
    message = str(info.value)
    assert message.startswith("Imagenette not found in ") and "\n" not in message
    assert "--data-dir" in message and "MINISNN_DATA" in message and "~/.cache/minisnn/imagenette" in message
    with pytest.raises(DataError) as info:
        load_imagenette()
    message = str(info.value)
    assert "\n" not in message and "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz" in message
    assert "failed (offline)" in message
    with pytest.raises(DataError, match="does not exist"):
        load_imagenette(tmp_path / "nowhere")


def test_the_archive_is_unpacked_in_place(tmp_path):
    src = tmp_path / "src"
    tree(src)
    members = {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    data = tmp_path / "data"
    data.mkdir()
    (data / "imagenette2-160.tgz").write_bytes(tar_gz(members))
    images, labels = load_imagenette(data, size=4)
    np.testing.assert_array_equal(images, load_imagenette(src, size=4, cache=False)[0])
    assert (data / "imagenette2-160" / "noisy_imagenette.csv").is_file()
    assert not (tmp_path / "home").exists()                          # nothing written outside the data folder


def test_cache_is_written_per_size_and_shared_by_every_noise_level(tmp_path):
    tree(tmp_path)
    root = tmp_path / "imagenette2-160"
    first = load_imagenette(tmp_path, train=False, size=8)
    assert (root / "minisnn-val-8px.npz").is_file() and not list(root.glob("*.part"))
    (root / rels("val")[0]).write_bytes(b"broken")                  # the cache answers now
    second = load_imagenette(tmp_path, train=False, size=8, noise=50)
    np.testing.assert_array_equal(first[0], second[0])
    with np.load(root / "minisnn-val-8px.npz", allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["labels"], first[1])    # folder labels
    with pytest.raises(DataError, match=rf"^cannot decode image {root / rels('val')[0]}: "):
        load_imagenette(tmp_path, train=False, size=8, cache=False)
    with pytest.raises(DataError, match="cannot decode image"):
        load_imagenette(tmp_path, train=False, size=4)              # another size: decoded again


def test_bad_trees_and_images(tmp_path):
    tree(tmp_path)
    root = tmp_path / "imagenette2-160"
    load = lambda **kw: load_imagenette(tmp_path, size=4, cache=False, **kw)   # noqa: E731
    big = root / "train" / ORDER[1] / f"{ORDER[1]}_0.JPEG"
    saved = big.read_bytes()
    write_png(big, np.zeros((2, MAX_SIDE + 1, 3), np.uint8))
    with pytest.raises(DataError, match=rf"^{big} is {MAX_SIDE + 1}x2: not an Imagenette-160 image"):
        load()
    big.write_bytes(saved)
    (root / "val" / ORDER[2]).rename(tmp_path / "aside")
    with pytest.raises(DataError, match=rf"{root / 'val'} has no folder {ORDER[2]}"):
        load(train=False)
    (tmp_path / "aside").rename(root / "val" / ORDER[2])
    (root / "val" / "n99999999").mkdir()
    with pytest.raises(DataError, match="is not a class of the training split"):
        load()
    (root / "val" / "n99999999").rmdir()
    for p in (root / "val" / ORDER[0]).iterdir():
        p.unlink()
    with pytest.raises(DataError, match=rf"{root / 'val' / ORDER[0]} holds no .JPEG images"):
        load(train=False)
