"""The run file, format v1: round trip, atomic write, and a clear one-line error for every bad file."""
import json
import subprocess
import sys

import numpy as np
import pytest

from hwmodel import energy
from hwmodel.runfile import RunFormatError, read_run, write_run
from tiny_run import COUNTS, LAYERS

SOURCES = {"input": {"shape": [3], "binary": True, "origin": "input"},
           "L1": {"shape": [2], "binary": True, "origin": "spikes"}}


@pytest.fixture
def good(tmp_path):
    return write_run(tmp_path / "good.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS,
                     meta={"dataset": "toy"}, n_labelled=2, n_correct=1)


def arrays(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def rewrite(tmp_path, good, drop=(), **changes):
    a = arrays(good)
    for k in drop:
        del a[k]
    a.update(changes)
    out = tmp_path / "bad.npz"
    np.savez(out, **a)
    return out


def test_round_trip(good, tmp_path):
    run = read_run(good)
    assert (run.T, run.n_samples, run.accuracy) == (2, 2, 0.5)
    assert run.meta == {"dataset": "toy"} and [l["kind"] for l in run.layers] == ["Linear", "LIF", "Readout"]
    np.testing.assert_array_equal(run.counts["L1"], COUNTS["L1"])
    a = arrays(good)                                  # plain arrays only: loads without pickle
    assert str(a["format"]) == "minisnn-run" and int(a["version"]) == 1
    assert json.loads(str(a["layers"]))[0]["kind"] == "Linear"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]     # no temporary left behind


def test_write_refuses_bad_data_and_leaves_nothing(tmp_path):
    with pytest.raises(RunFormatError, match="negative"):
        write_run(tmp_path / "x.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES,
                  counts={**COUNTS, "L1": -COUNTS["L1"]})
    assert list(tmp_path.iterdir()) == []


def expect_error(path, pattern):
    with pytest.raises(RunFormatError, match=pattern) as info:
        read_run(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_key(tmp_path, good):
    expect_error(rewrite(tmp_path, good, drop=["T"]), "missing key 'T'")
    expect_error(rewrite(tmp_path, good, drop=["counts_L1"]), "missing key 'counts_L1'")


def test_wrong_version_and_format(tmp_path, good):
    expect_error(rewrite(tmp_path, good, version=np.array(2)), "unsupported run-format version 2")
    expect_error(rewrite(tmp_path, good, format=np.array("something-else")), "format is 'something-else'")


def test_negative_and_non_finite_counts(tmp_path, good):
    expect_error(rewrite(tmp_path, good, counts_L1=np.array([[1, -1], [0, 0]])), "negative")
    expect_error(rewrite(tmp_path, good, counts_L1=np.array([[1.0, np.nan], [0, 0]])), "non-finite")
    expect_error(rewrite(tmp_path, good, counts_L1=np.array([[1.0, np.inf], [0, 0]])), "non-finite")
    expect_error(rewrite(tmp_path, good, counts_L1=np.array([[3, 0], [0, 0]])), "exceeds n_samples")
    expect_error(rewrite(tmp_path, good, n_samples=np.array(-1)), "'n_samples' must be >= 1")


def test_shapes_that_disagree(tmp_path, good):
    expect_error(rewrite(tmp_path, good, counts_L1=np.zeros((3, 2), int)), r"counts have shape \[3, 2\]")
    layers = json.loads(json.dumps(LAYERS))
    layers[2]["in_shape"] = [3]
    expect_error(rewrite(tmp_path, good, layers=np.array(json.dumps(layers))), "disagrees with the output of layer 1")
    layers = json.loads(json.dumps(LAYERS))
    layers[0]["params"]["out_features"] = 5
    expect_error(rewrite(tmp_path, good, layers=np.array(json.dumps(layers))), "out_features=5")


def test_conv_geometry_is_checked(tmp_path):
    layer = {"index": 0, "kind": "Conv2d", "in_shape": [1, 4, 4], "out_shape": [2, 4, 4], "input": "input",
             "params": {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1}}
    with pytest.raises(RunFormatError, match=r"expected \[2, 2, 2\]"):
        write_run(tmp_path / "c.npz", T=1, n_samples=1, layers=[layer],
                  sources={"input": {"shape": [1, 4, 4], "binary": True}}, counts={"input": np.zeros((1, 1, 4, 4))})


def test_unknown_layer_and_bad_json(tmp_path, good):
    layers = json.loads(json.dumps(LAYERS))
    layers[1]["kind"] = "Mystery"
    expect_error(rewrite(tmp_path, good, layers=np.array(json.dumps(layers))), "unknown layer kind 'Mystery'")
    expect_error(rewrite(tmp_path, good, layers=np.array("[not json")), "'layers' is not valid JSON")
    layers = json.loads(json.dumps(LAYERS))
    layers[0]["input"] = "nowhere"
    expect_error(rewrite(tmp_path, good, layers=np.array(json.dumps(layers))), "'nowhere' is not among")


def test_pickled_object_arrays_are_refused(tmp_path, good):
    bad = rewrite(tmp_path, good, meta=np.array([{"evil": 1}], dtype=object))
    expect_error(bad, "pickled objects")


def test_not_a_run_file(tmp_path):
    expect_error(tmp_path / "absent.npz", "no such file")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    expect_error(junk, "not a .npz archive")


@pytest.mark.parametrize("change", ["version", "negative", "missing", "pickle"])
def test_cli_reports_one_line_and_exits_nonzero(tmp_path, good, change, capsys):
    bad = {"version": lambda: rewrite(tmp_path, good, version=np.array(7)),
           "negative": lambda: rewrite(tmp_path, good, counts_input=np.array([[-2, 0, 1], [0, 1, 0]])),
           "missing": lambda: tmp_path / "nothing.npz",
           "pickle": lambda: rewrite(tmp_path, good, layers=np.array([None], dtype=object))}[change]()
    assert energy.main([str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_cli_as_a_module_has_no_traceback(tmp_path, good):
    bad = rewrite(tmp_path, good, version=np.array(7))
    r = subprocess.run([sys.executable, "-m", "hwmodel.energy", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"error: {bad}: unsupported run-format version 7 (this hwmodel reads version 1)"
