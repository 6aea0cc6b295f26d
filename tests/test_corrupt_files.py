"""Every file reader against corrupt files, the same way (issue #12, "bad files, everywhere").

Each row of READERS writes small valid files in the real format (``tiny_files.py``, the shipped
profiles) into a data folder and names the one file to corrupt and the call that reads it. That
file is then truncated at any offset, has bytes overwritten anywhere, is replaced by random bytes
(after a valid prefix, so that headers parse), or is emptied. The outcome must be one of

* it loads (a corruption may leave a file valid: a JPEG pixel, an unused header byte), or
* the reader's own exception, whose message is one line and names the file;

never another exception, never an unpickle (``np.load`` is always called with
``allow_pickle=False``), never a file written or changed outside the data folder, and nothing
left behind at all by a load that fails (no half-extracted archive, no cache). Where the loader
verifies a checksum (MNIST: the SHA-256 of each uncompressed IDX file; the published archives'
MD5s), a file whose content changed must fail it; where the data is checksummed or cached, a
load that succeeds returns exactly the original arrays.

The valid files are written once per reader; every example overwrites the one file, loads, and
puts the data folder back as it was. The CLIs come last: a corrupt file gives exit status 2 and
one ``error: ...`` line, no traceback.
"""
import contextlib
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hwmodel import energy
from hwmodel.profiles import PROFILE_DIR, ProfileError, load_profile
from hwmodel.runfile import RunFormatError, read_run, write_run
from hwmodel.spikefile import SpikesFormatError, read_spikes, write_spikes
from minisnn import models
from minisnn.checkpoint import CheckpointError, load_checkpoint, load_network, save_checkpoint
from minisnn.data import DataError, cifar, dvs, fetch, mnist
from minisnn.data.imagenette import load_imagenette
from minisnn.data.tinyimagenet import load_tinyimagenet
from tiny_files import (NETTE_WNIDS, WNIDS, make_imagenette, make_split, make_tree, random_events, tar_gz,
                        tiny_arrays, v2_bytes, v3_packet, v3_word, write_cifar10, write_idx_files)
from tiny_run import COUNTS, LAYERS, SOURCES

EXAMPLES = 10                    # hypothesis examples per reader and kind of corruption
TEST_IMAGES = mnist.FILES["test", "images"]


# --- the readers -------------------------------------------------------------------------------

@dataclass
class Reader:
    name: str
    make: object                 # make(folder) -> (file to corrupt, load()), valid files written
    error: type                  # the reader's own exception
    checksum: bool = False       # any change of the file must fail the loader's checksum
    exact: bool = False          # a load that succeeds returns the original arrays
    cache: bool = False          # the file is a cache: a bad one is decoded again, not an error
    zip: bool = False            # the file is a zip archive (.npz, .zip)

    def __str__(self):
        return self.name


@contextlib.contextmanager
def archives(spec, md5):
    """``spec``'s one archive with the checksum of our tiny archive (or none)."""
    name, url, _ = spec["archives"][0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(spec, "archives", [(name, url, md5)])
        yield


def make_mnist(gz, verify=True):
    def make(folder):
        write_idx_files(folder, tiny_arrays(), gz=gz)       # their checksums are accepted (`env`)
        return folder / (f"{TEST_IMAGES}.gz" if gz else TEST_IMAGES), \
            lambda: mnist.load_mnist(folder, train=False, verify=verify)
    return make


def make_cifar10(folder):
    write_cifar10(folder / "cifar-10-batches-bin", np.random.default_rng(0))
    return folder / "cifar-10-batches-bin" / "test_batch.bin", lambda: cifar.load_cifar10(folder, train=False)


def make_cifar100(folder):
    rng = np.random.default_rng(1)
    (folder / "cifar-100-binary").mkdir()
    for name, n in (("train.bin", 4), ("test.bin", 3)):
        (folder / "cifar-100-binary" / name).write_bytes(make_split(rng, n, [20, 100])[2])
    return folder / "cifar-100-binary" / "test.bin", \
        lambda: (cifar.load_cifar100(folder, train=False), cifar.load_cifar100(folder, train=False, label="coarse"))


def cifar10_archive(folder):
    src = folder.parent / f"{folder.name}-src"
    write_cifar10(src, np.random.default_rng(2))
    data = tar_gz({f"cifar-10-batches-bin/{p.name}": p.read_bytes() for p in sorted(src.iterdir())})
    shutil.rmtree(src)
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    return folder / "cifar-10-binary.tar.gz", hashlib.md5(data).hexdigest()


def make_cifar10_archive(folder):
    """The published archive, verified (MD5) before it is unpacked."""
    path, md5 = cifar10_archive(folder)

    def load():
        with archives(cifar.CIFAR10, md5):
            return cifar.load_cifar10(folder, train=False)
    return path, load


def make_tar_extract(folder):
    """The unpacker itself, on an archive no checksum protects."""
    path, _ = cifar10_archive(folder)
    return path, lambda: fetch.extract(path, folder)


def make_zip_extract(folder):
    make_tree(folder / "src" / "tiny-imagenet-200", np.random.default_rng(3))
    path = folder / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted((folder / "src").rglob("*")):
            z.write(p, p.relative_to(folder / "src"))
    shutil.rmtree(folder / "src")
    return path, lambda: fetch.extract(path, folder)


def make_tiny(target, cache=False):
    def make(folder):
        root = folder / "tiny-imagenet-200"
        make_tree(root, np.random.default_rng(4))

        def load():
            return (load_tinyimagenet(folder, train=True, cache=cache),
                    load_tinyimagenet(folder, train=False, cache=cache))
        load()                                           # with cache=True, this writes the caches
        return root / target, load
    return make


def make_nette(target, cache=False):
    """Imagenette: both splits, the training labels from the csv's noisy_labels_5 column."""
    def make(folder):
        root = folder / "imagenette2-160"
        make_imagenette(root, np.random.default_rng(6))

        def load():
            return (load_imagenette(folder, train=True, size=8, noise=5, cache=cache),
                    load_imagenette(folder, train=False, size=8, cache=cache))
        load()                                           # with cache=True, this writes the caches
        return root / target, load
    return make


def make_dvs(version, split_by, cache=False):
    def make(folder):
        rng = np.random.default_rng(5)
        for name in dvs.CLASSES:
            (folder / name).mkdir()
            for k in range(2):
                t, x, y, p = random_events(rng, 20)
                if version == 2:
                    data = v2_bytes(t, x, y, p)
                else:
                    words = [v3_word(int(xi), int(yi), int(pi)) for xi, yi, pi in zip(x, y, p)]
                    data = (b"#!AER-DAT3.1\r\n#!END-HEADER\r\n" + v3_packet(0, [(0x1234, 5)])
                            + v3_packet(1, list(zip(words[:12], t[:12].tolist())))
                            + v3_packet(1, list(zip(words[12:], t[12:].tolist())), overflow=1))
                (folder / name / f"cifar10_{name}_{k}.aedat").write_bytes(data)

        def load():
            return dvs.load_dvs_cifar10(folder, train=False, T=3, size=8, split_by=split_by, cache=cache)
        load()
        target = f"minisnn-frames-T3-S8-{split_by}.npz" if cache else "airplane/cifar10_airplane_0.aedat"
        return folder / target, load
    return make


def make_checkpoint(loader):
    def make(folder):
        path = folder / "checkpoint.npz"
        save_checkpoint(path, models.smnist_fc(T=2, hidden=4), config={"seed": 0}, progress={"epoch": 1})
        return path, lambda: loader(path)
    return make


def make_run(folder):
    path = write_run(folder / "run.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS,
                     meta={"dataset": "toy"}, n_labelled=2, n_correct=1)
    return path, lambda: read_run(path)


def make_spikes(folder):
    path = write_spikes(folder / "spikes.npz", T=2, n_samples=2, counts=COUNTS,
                        binary={k: v["binary"] for k, v in SOURCES.items()}, meta={"dataset": "toy"})
    return path, lambda: read_spikes(path)


def make_profile(folder):
    path = folder / "loihi.toml"
    shutil.copy(PROFILE_DIR / "loihi.toml", path)       # a shipped profile: every table is there
    return path, lambda: load_profile(path)


READERS = [
    Reader("mnist-idx.gz", make_mnist(gz=True), DataError, exact=True),
    Reader("mnist-idx", make_mnist(gz=False), DataError, checksum=True, exact=True),
    Reader("mnist-idx-unverified", make_mnist(gz=False, verify=False), DataError),
    Reader("cifar10-bin", make_cifar10, DataError),
    Reader("cifar100-bin", make_cifar100, DataError),
    Reader("cifar10-tar.gz", make_cifar10_archive, DataError, checksum=True),
    Reader("extract-tar.gz", make_tar_extract, DataError),
    Reader("extract-zip", make_zip_extract, DataError, zip=True),
    Reader("tinyimagenet-jpeg", make_tiny(f"train/{WNIDS[0]}/images/{WNIDS[0]}_0.JPEG"), DataError),
    Reader("tinyimagenet-wnids", make_tiny("wnids.txt"), DataError),
    Reader("tinyimagenet-annotations", make_tiny("val/val_annotations.txt"), DataError),
    Reader("tinyimagenet-cache", make_tiny("minisnn-val.npz", cache=True), DataError, exact=True, cache=True, zip=True),
    Reader("imagenette-jpeg", make_nette(f"train/{NETTE_WNIDS[0]}/{NETTE_WNIDS[0]}_0.JPEG"), DataError),
    Reader("imagenette-csv", make_nette("noisy_imagenette.csv"), DataError),
    Reader("imagenette-cache", make_nette("minisnn-val-8px.npz", cache=True), DataError, exact=True, cache=True,
           zip=True),
    Reader("dvs-aedat2", make_dvs(2, "number"), DataError),
    Reader("dvs-aedat3.1", make_dvs(3, "time"), DataError),
    Reader("dvs-cache", make_dvs(2, "number", cache=True), DataError, exact=True, cache=True, zip=True),
    Reader("checkpoint", make_checkpoint(load_checkpoint), CheckpointError, zip=True),
    Reader("checkpoint-network", make_checkpoint(load_network), CheckpointError, zip=True),
    Reader("run-file", make_run, RunFormatError, zip=True),
    Reader("spikes-file", make_spikes, SpikesFormatError, zip=True),
    Reader("profile-toml", make_profile, ProfileError),
]


# --- the environment and the checks --------------------------------------------------------------

class Violation(BaseException):
    """Raised by the spies below: not an ``Exception``, so no reader's ``except`` can swallow it."""


@dataclass
class Workspace:
    reader: Reader
    root: Path                   # the cwd during loads; holds HOME and every data folder
    folder: Path                 # the data folder
    target: Path                 # the file corrupted
    load: object
    original: bytes              # the valid target
    files: dict                  # the data folder's valid state: path -> bytes (None for a folder)
    reference: object            # what the valid files load to


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """HOME in an empty folder, no $MINISNN_DATA, no network, the tiny MNIST checksums accepted."""
    root = tmp_path_factory.mktemp("corrupt")
    with pytest.MonkeyPatch.context() as mp:
        (root / "home").mkdir()
        mp.setenv("HOME", str(root / "home"))
        mp.delenv("MINISNN_DATA", raising=False)

        def offline(*args, **kwargs):
            raise OSError("network access is disabled in the tests")
        mp.setattr(urllib.request, "urlopen", offline)
        hashes = write_idx_files(root / "mnist-checksums", tiny_arrays())
        shutil.rmtree(root / "mnist-checksums")
        mp.setattr(mnist, "SHA256", {**mnist.SHA256, **hashes})
        yield root


@pytest.fixture(scope="module")
def workspaces(env):
    """reader -> its Workspace, made on first use (hypothesis examples reuse it)."""
    made = {}

    def get(reader):
        if reader.name not in made:
            folder = env / reader.name
            shutil.rmtree(folder, ignore_errors=True)    # left by a failed preparation
            folder.mkdir()
            target, load = reader.make(folder)
            w = Workspace(reader, env, folder, target, load, target.read_bytes(), state(folder), None)
            try:
                with guarded(env):
                    w.reference = load()                 # the valid files load
            finally:
                restore(w)                               # e.g. the archive it unpacked
            made[reader.name] = w
        return made[reader.name]
    return get


def state(folder):
    return {p: (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def listing(root):
    """Every path under root with its size and modification time."""
    out = {}
    for p in root.rglob("*"):
        s = p.lstat()
        out[p] = (s.st_size, s.st_mtime_ns) if p.is_file() else None
    return out


@contextlib.contextmanager
def guarded(root):
    """cwd = root; np.load must be given allow_pickle=False; pickle must never load."""
    real_load = np.load

    def np_load(file, *args, **kwargs):
        if kwargs.get("allow_pickle") is not False:
            raise Violation(f"np.load({file!r}) without allow_pickle=False")
        return real_load(file, *args, **kwargs)

    def unpickle(*args, **kwargs):
        raise Violation("a reader unpickled data")

    with pytest.MonkeyPatch.context() as mp, contextlib.chdir(root):
        mp.setattr(np, "load", np_load)
        mp.setattr(pickle, "load", unpickle)
        mp.setattr(pickle, "loads", unpickle)
        yield


def restore(w):
    """Put the data folder back as it was made."""
    for p in sorted(w.folder.rglob("*"), reverse=True):          # children before their folders
        if p not in w.files:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p, data in w.files.items():
        if data is not None and p.read_bytes() != data:
            p.write_bytes(data)


def same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype


def attempt(w, content):
    """Load with ``content`` in place of the target; check the outcome. Returns "loads" or "error"."""
    w.target.write_bytes(content)
    before = listing(w.root)
    try:
        with guarded(w.root):
            try:
                result, outcome = w.load(), "loads"
            except w.reader.error as e:
                outcome, message = "error", str(e)
        changed = sorted({str(p) for p, _ in listing(w.root).items() ^ before.items()})
    finally:
        restore(w)
    outside = [p for p in changed if not p.startswith(f"{w.folder}{os.sep}")]
    assert not outside, f"{w.reader}: wrote outside the data folder: {outside}"
    if outcome == "error":
        assert len(message.splitlines()) == 1 and message == message.strip() and message, repr(message)
        assert str(w.target) in message, f"the message does not name {w.target}: {message!r}"
        assert not changed, f"{w.reader}: a failed load left {changed} behind"
    if w.reader.checksum and content != w.original:
        assert outcome == "error" and message.startswith(f"checksum mismatch for {w.target}"), \
            f"{w.reader}: a changed file passed the checksum"
    if outcome == "loads" and w.reader.exact:
        assert same(result, w.reference), f"{w.reader}: loaded different data from a corrupt file"
    return outcome


# --- corruptions ---------------------------------------------------------------------------------

def overwritten(raw, patches):
    out = bytearray(raw)
    for pos, data in patches:
        out[pos:pos + len(data)] = data[:len(raw) - pos]
    return bytes(out)


def truncations(raw):
    return st.integers(0, len(raw) - 1).map(lambda n: raw[:n])


def overwrites(raw):
    """1–3 runs of 1–8 bytes overwritten anywhere (the length stays)."""
    patch = st.tuples(st.integers(0, len(raw) - 1), st.binary(min_size=1, max_size=8))
    return st.lists(patch, min_size=1, max_size=3).map(lambda patches: overwritten(raw, patches))


def random_bytes(raw):
    """Random bytes after the first 0–64 bytes of the valid file (its magic number, its header)."""
    return st.tuples(st.integers(0, min(64, len(raw))), st.binary(min_size=1, max_size=600)).map(
        lambda t: raw[:t[0]] + t[1])


CORRUPTIONS = {"truncated": truncations, "overwritten": overwrites, "random": random_bytes}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("reader", READERS, ids=str)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupt_file_loads_or_raises_the_readers_error(workspaces, reader, corruption, data):
    w = workspaces(reader)
    attempt(w, data.draw(CORRUPTIONS[corruption](w.original), label=corruption))


def fixed(raw, kind):
    middle = len(raw) // 2
    return {"empty": b"", "half": raw[:middle], "zeros": bytes(len(raw)),
            "ff-in-the-middle": overwritten(raw, [(middle, b"\xff" * 8)]),
            "zeros-in-the-middle": overwritten(raw, [(middle, bytes(8))]),
            # in a gzip file (10-byte header): the first deflate block's type becomes 11, invalid
            "ff-after-10-bytes": overwritten(raw, [(10, b"\xff" * 8)])}[kind]


@pytest.mark.parametrize("kind", ["empty", "half", "zeros", "ff-in-the-middle", "zeros-in-the-middle",
                                  "ff-after-10-bytes"])
@pytest.mark.parametrize("reader", READERS, ids=str)
def test_fixed_corruptions(workspaces, reader, kind):
    """The same checks on a few fixed corruptions, run every time (hypothesis draws at random)."""
    w = workspaces(reader)
    outcome = attempt(w, fixed(w.original, kind))
    if kind == "empty" and not reader.cache:
        assert outcome == "error"


def zip_flagged(raw, kind):
    """Each central-directory entry with a flag bit set, or an unknown compression method: one
    byte per entry, which zipfile answers with RuntimeError or NotImplementedError."""
    out = bytearray(raw)
    entry = raw.find(b"PK\x01\x02")
    while entry >= 0:
        if kind == "method":
            out[entry + 10:entry + 12] = (99).to_bytes(2, "little")
        else:
            out[entry + 8] |= {"encrypted": 0x01, "patched": 0x20, "strong-encryption": 0x40}[kind]
        entry = raw.find(b"PK\x01\x02", entry + 4)
    return bytes(out)


@pytest.mark.parametrize("kind", ["encrypted", "patched", "strong-encryption", "method"])
@pytest.mark.parametrize("reader", [r for r in READERS if r.zip], ids=str)
def test_zip_flags(workspaces, reader, kind):
    w = workspaces(reader)
    outcome = attempt(w, zip_flagged(w.original, kind))
    assert outcome == "loads" if reader.cache else outcome == "error"


def test_corrupt_gzip_is_the_loaders_error(workspaces):
    """The bug of issue #12: bytes overwritten inside the deflate stream raise zlib.error."""
    w = workspaces(READERS[0])
    with pytest.raises(DataError) as info, guarded(w.root):
        try:
            w.target.write_bytes(fixed(w.original, "ff-after-10-bytes"))
            w.load()
        finally:
            restore(w)
    assert str(info.value) == (f"cannot read {w.target}: corrupt gzip data (Error -3 while decompressing data: "
                               f"invalid block type)")


# --- the command lines ---------------------------------------------------------------------------

def run_module(module, *argv, home):
    env = {k: v for k, v in os.environ.items() if k != "MINISNN_DATA"}
    env.update(HOME=str(home), NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_error_line(proc, expected=None):
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    if expected is not None:
        assert proc.stderr == f"error: {expected}\n"


def test_train_cli_on_a_corrupt_gzip(tmp_path):
    data = tmp_path / "data"
    write_idx_files(data, tiny_arrays())
    path = data / f"{mnist.FILES['train', 'images']}.gz"
    path.write_bytes(fixed(path.read_bytes(), "ff-after-10-bytes"))
    proc = run_module("minisnn.train", "smnist", "--data-dir", data, "--out", tmp_path / "out",
                      home=tmp_path / "home")
    assert_one_error_line(proc, f"cannot read {path}: corrupt gzip data (Error -3 while decompressing data: "
                                f"invalid block type)")


def corrupt_copy(src, dst, kind):
    raw = Path(src).read_bytes()
    if kind == "zip-encrypted":
        raw = zip_flagged(raw, "encrypted")
    elif kind == "zip-data":           # 8 bytes of the first member's (deflated or stored) data
        start = 30 + sum(int.from_bytes(raw[i:i + 2], "little") for i in (26, 28))
        raw = overwritten(raw, [(start, b"\xff" * 8)])
    else:
        raw = fixed(raw, kind)
    dst.write_bytes(raw)
    return dst


NPZ_KINDS = ["empty", "half", "zeros", "zip-encrypted", "zip-data"]


@pytest.fixture(scope="module")
def valid_files(env):
    folder = env / "cli"
    folder.mkdir()
    ckpt = folder / "checkpoint.npz"
    save_checkpoint(ckpt, models.smnist_fc(T=2, hidden=4), config={"seed": 0, "dataset": "smnist", "T": 2})
    return {"checkpoint": ckpt, "run": make_run(folder)[0], "profile": make_profile(folder)[0]}


def call(main, *argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_evaluate_cli_on_a_corrupt_checkpoint(valid_files, tmp_path, kind):
    from minisnn import evaluate
    bad = corrupt_copy(valid_files["checkpoint"], tmp_path / "checkpoint.npz", kind)
    rc, out, err = call(evaluate.main, bad, "--data-dir", tmp_path)
    assert (rc, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot read checkpoint {bad}: ") or err.startswith(f"error: {bad} is not"), err


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_energy_cli_on_a_corrupt_run_file(valid_files, tmp_path, kind):
    bad = corrupt_copy(valid_files["run"], tmp_path / "run.npz", kind)
    rc, out, err = call(energy.main, bad)
    assert (rc, out) == (2, "") and err.count("\n") == 1 and err.startswith(f"error: {bad}: "), err


@pytest.mark.parametrize("kind", ["empty", "half", "zeros", "ff-in-the-middle"])
def test_energy_cli_on_a_corrupt_profile(valid_files, tmp_path, kind):
    bad = corrupt_copy(valid_files["profile"], tmp_path / "loihi.toml", kind)
    rc, out, err = call(energy.main, valid_files["run"], "--profile", bad)
    assert (rc, out) == (2, "") and err.count("\n") == 1 and err.startswith(f"error: {bad}: "), err


def test_the_command_lines_print_no_traceback(valid_files, tmp_path):
    """As real processes: python -m minisnn.evaluate and python -m hwmodel.energy."""
    bad = corrupt_copy(valid_files["checkpoint"], tmp_path / "checkpoint.npz", "zip-data")
    assert_one_error_line(run_module("minisnn.evaluate", bad, "--data-dir", tmp_path, home=tmp_path))
    bad = corrupt_copy(valid_files["run"], tmp_path / "run.npz", "zip-data")
    assert_one_error_line(run_module("hwmodel.energy", bad, home=tmp_path))
    bad = corrupt_copy(valid_files["profile"], tmp_path / "bad.toml", "ff-in-the-middle")
    assert_one_error_line(run_module("hwmodel.energy", valid_files["run"], "--profile", bad, home=tmp_path))
