"""Find a dataset on disk, or download its published archive, verify it and unpack it.

Search order (the same as MNIST's): the ``data_dir`` argument, then ``$MINISNN_DATA``, then
``~/.cache/minisnn``; each also with the dataset's own subfolder (e.g. ``cifar10/``). A folder
holds the dataset when every required file is under it, or under the archive's top folder
inside it (``cifar-10-batches-bin/``…). Failing that, a published archive lying in one of those
folders is verified and unpacked next to itself; failing that, it is downloaded into
``~/.cache/minisnn/<subfolder>``. Checksums are the ones the dataset's authors publish (MD5).
Every failure is a ``DataError`` whose message says what to do.
"""
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError


def cache_root():
    return Path.home() / ".cache" / "minisnn"


def search_bases(data_dir=None):
    """data_dir, $MINISNN_DATA, ~/.cache/minisnn — in that order."""
    if data_dir and not Path(data_dir).is_dir():
        raise DataError(f"data directory {data_dir} does not exist")
    bases = [Path(data_dir)] if data_dir else []
    if os.environ.get("MINISNN_DATA"):
        bases.append(Path(os.environ["MINISNN_DATA"]))
    bases.append(cache_root())
    return bases


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_members(names, dest):
    """Refuse archive members that would land outside ``dest`` (absolute paths, '..')."""
    root = Path(dest).resolve()
    for name in names:
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            raise DataError(f"archive member {name!r} would be written outside {dest}; refusing to unpack")


def extract(archive, dest):
    """Unpack a .tar.gz/.tgz/.tar or .zip archive into ``dest``: into a temporary folder inside it,
    moved into place once complete, so that an archive that fails half-way (corrupt, disk full)
    leaves no half-written files behind for ``locate`` to take for the dataset."""
    archive, dest = Path(archive), Path(dest)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=dest))
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _safe_members(z.namelist(), dest)
                z.extractall(tmp)
        else:
            try:
                t = tarfile.open(archive)
            except tarfile.ReadError:       # its message lists every compression tried, one per line
                raise DataError(f"cannot unpack {archive}: not a .zip, .tar.gz or .tar archive, "
                                "or a corrupt one") from None
            with t:
                members = [m for m in t.getmembers() if m.isfile() or m.isdir()]
                _safe_members([m.name for m in members], dest)
                t.extractall(tmp, members=members)
        for path in sorted(tmp.rglob("*")):            # each folder before what it holds
            target = dest / path.relative_to(tmp)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(path, target)
    # a corrupt member: zlib.error and EOFError from the decompressor are not OSErrors, and zipfile
    # answers a flipped compression-method or encryption flag with NotImplementedError, RuntimeError
    except (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError) as e:
        raise DataError(f"cannot unpack {archive}: {e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def one_line(error):
    """An exception's message on one line (some, e.g. tarfile's, span several)."""
    return " ".join(str(error).split())


def read_text(path):
    """A small text file of a dataset (UTF-8, a byte-order mark allowed), or a one-line
    ``DataError`` naming it."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise DataError(f"cannot read {path}: {one_line(e)}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not a text file ({e})") from None


def decoded_images(cache_file, labels, paths, shape, decode, cache=True):
    """``uint8 [len(paths), *shape]``: ``decode(path)`` of every image, or the cache when it holds
    exactly them (same labels, shape and dtype). A new cache is written through a .part file, so
    a failed write never leaves half a cache; in a read-only data folder it is decoded again next
    time."""
    stored = read_cache(cache_file, labels) if cache else None
    images = stored.get("images") if stored else None
    if images is not None and images.shape == (len(paths), *shape) and images.dtype == np.uint8:
        return images
    images = np.empty((len(paths), *shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = decode(path)
    if cache:
        part = cache_file.with_name(cache_file.name + ".part")
        try:
            with open(part, "wb") as f:
                np.savez(f, images=images, labels=labels)
            os.replace(part, cache_file)
        except OSError:
            try:
                part.unlink(missing_ok=True)
            except OSError:
                pass
    return images


def read_cache(path, labels):
    """The arrays of a decoded-data cache (an ``.npz`` a loader wrote beside the data) when it is
    there, readable and made for these ``labels``; otherwise None, and the caller decodes again."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except Exception:   # truncated, corrupt or foreign: a cache is only a cache, never an error
        return None
    return arrays if np.array_equal(arrays.get("labels"), labels) else None


def verify(path, md5):
    if md5 is not None and md5sum(path) != md5:
        raise DataError(f"checksum mismatch for {path}: the file is corrupt or not the published archive "
                        f"(expected MD5 {md5}); delete it and try again")


def download(url, target, md5, title):
    """Fetch ``url`` to ``target`` (through a .part file) and verify its MD5."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(part, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise DataError(f"{title} was not found locally and downloading {url} failed ({e}): {where_to_put(title, target.parent.name)}") from None
    try:
        verify(part, md5)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def where_to_put(title, subdir):
    return (f"put the {title} files in a folder and pass data_dir (--data-dir DIR), or set MINISNN_DATA, "
            f"or place them in ~/.cache/minisnn/{subdir}")


def locate(title, subdir, inner, required, archives, data_dir=None, download_ok=True):
    """The folder holding every path in ``required``, fetching the archives if need be.

    Parameters
    ----------
    title : dataset name for messages.
    subdir : the dataset's subfolder in each search base (``cifar10``).
    inner : the top folder the archives unpack to (``cifar-10-batches-bin``), or None.
    required : relative paths that must all exist in the returned folder.
    archives : ``[(file name, url, md5), …]`` that together unpack to ``inner``.
    """
    bases = search_bases(data_dir)
    folders = [d for base in bases for d in (base, base / subdir)]
    candidates = [c for d in folders for c in ((d, d / inner) if inner else (d,))]
    for c in candidates:
        if all((c / r).exists() for r in required):
            return c
    # archives already on disk (downloaded by hand), else download them into the cache
    for d in folders:
        if all((d / name).is_file() for name, _, _ in archives):
            for name, _, md5 in archives:
                verify(d / name, md5)
                extract(d / name, d)
            return _check_unpacked(title, d, inner, required)
    if not download_ok:
        raise DataError(f"{title} not found in {', '.join(map(str, folders))}: {where_to_put(title, subdir)}")
    dest = cache_root() / subdir
    for name, url, md5 in archives:
        if not (dest / name).is_file():
            download(url, dest / name, md5, title)
        else:
            verify(dest / name, md5)
        extract(dest / name, dest)
    return _check_unpacked(title, dest, inner, required)


def _check_unpacked(title, folder, inner, required):
    root = folder / inner if inner else folder
    missing = [r for r in required if not (root / r).exists()]
    if missing:
        raise DataError(f"{title}: the unpacked archive in {folder} lacks {missing[0]}")
    return root
