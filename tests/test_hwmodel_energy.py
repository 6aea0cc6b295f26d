"""The CLI ``python -m hwmodel.energy``: the JSON contract of ../shared/DESIGN.md, the tables, options."""
import json
import subprocess
import sys

import pytest

from hwmodel import energy
from hwmodel.profiles import builtin_names
from hwmodel.runfile import write_run
from tiny_run import COUNTS, LAYERS, SOURCES

CONTRACT = ("synops", "macs", "dense_ops", "neuron_updates", "spikes", "energy_pj")


@pytest.fixture
def run_path(tmp_path):
    return write_run(tmp_path / "run.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS,
                     meta={"dataset": "toy"}, n_labelled=2, n_correct=2)


def cli_json(capsys, *args):
    assert energy.main([*map(str, args), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_json_contract_as_a_module(run_path):
    """Exactly what checks outside the repository run: one JSON object on stdout."""
    r = subprocess.run([sys.executable, "-m", "hwmodel.energy", str(run_path), "--json"],
                       capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout)
    totals = doc["totals"]
    assert set(CONTRACT) <= set(totals)
    assert {k: totals[k] for k in CONTRACT[:-1]} == {"synops": 8.0, "macs": 0.0, "dense_ops": 20.0,
                                                     "neuron_updates": 4.0, "spikes": 2.0}
    assert set(totals["energy_pj"]) == set(builtin_names())
    assert totals["energy_pj"]["cmos45nm"] == pytest.approx(31.0)
    # 516.2 by hand (test_hwmodel_profiles) + routing: the LIF's 2 spikes per sample each cross one
    # east-west router to the Readout's core (core 0 -> core 1): 2 × 3.0 pJ
    assert totals["energy_pj"]["loihi"] == pytest.approx(516.2 + 6.0)


def test_json_layers_and_profiles(run_path, capsys):
    doc = cli_json(capsys, run_path, "--profile", "cmos45nm", "--profile", "loihi")
    assert doc["run"]["accuracy"] == 1.0 and doc["run"]["T"] == 2 and doc["run"]["meta"] == {"dataset": "toy"}
    assert list(doc["totals"]["energy_pj"]) == ["cmos45nm", "loihi"]
    layers = doc["layers"]
    assert [l["kind"] for l in layers] == ["Linear", "LIF", "Readout"]
    assert sum(l["synops"] for l in layers) == doc["totals"]["synops"]
    for name in ("cmos45nm", "loihi"):
        assert sum(l["energy_pj"][name] for l in layers) == pytest.approx(doc["totals"]["energy_pj"][name])
    p = doc["profiles"]["loihi"]
    assert p["ann_profile"] == "cmos45nm" and p["ann_energy_pj"] == pytest.approx(46.0)
    assert p["ratio"] == pytest.approx(522.2 / 46.0)
    assert p["energy_range_pj"][0] == pytest.approx(522.2 - 4 * (81 - 52)) and p["energy_range_pj"][1] is None
    assert p["mapping"]["cores"] == 2 and p["mapping"]["hops_east_west"] == pytest.approx(2.0)
    assert p["constants"]["energy.synop"]["status"] == "pre-silicon"
    rate = doc["profiles"]["cmos45nm"]["break_even_spike_rate"]
    assert rate == pytest.approx(0.5 * (46 - 25.6) / 5.4)


def test_per_timestep_sums_to_totals(run_path, capsys):
    doc = cli_json(capsys, run_path, "--per-timestep")
    per = doc["per_timestep"]
    for key in CONTRACT[:-1]:
        assert len(per[key]) == 2 and sum(per[key]) == pytest.approx(doc["totals"][key])
    for name, values in per["energy_pj"].items():
        assert sum(values) == pytest.approx(doc["totals"]["energy_pj"][name])


def test_memory_option(run_path, capsys):
    plain = cli_json(capsys, run_path)["totals"]["energy_pj"]
    mem = cli_json(capsys, run_path, "--memory")["totals"]["energy_pj"]
    assert mem["cmos45nm"] == pytest.approx(201.0) and mem["loihi"] == pytest.approx(plain["loihi"])


def test_user_profile_file(run_path, tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text('[profile]\nname = "mine"\n[energy.synop]\nvalue = 1.0\nunit = "pJ"\nstatus = "measured"\n'
                    'source = "bench measurement"\n[energy.mac]\nvalue = 3.0\nunit = "pJ"\nstatus = "measured"\n'
                    'source = "bench measurement"\n')
    doc = cli_json(capsys, run_path, "--profile", path, "--profile", "cmos45nm")
    assert doc["totals"]["energy_pj"]["mine"] == pytest.approx(8.0)
    assert doc["profiles"]["mine"]["ann_energy_pj"] == pytest.approx(30.0)     # ann_profile = "self"


def test_text_report_and_plot(run_path, tmp_path, capsys):
    png = tmp_path / "energy.png"
    assert energy.main([str(run_path), "--plot", str(png), "--per-timestep"]) == 0
    text = capsys.readouterr().out
    for needle in ("Events per sample", "Energy per inference", "SNN / ANN", "break-even rate",
                   "Davies et al.", "Merolla et al.", "Horowitz", "pre-silicon", "Per time step", "accuracy 100.00 %"):
        assert needle in text, needle
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_profile_on_the_cli(run_path, capsys):
    assert energy.main([str(run_path), "--profile", "nosuchchip"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'nosuchchip'") and len(err.strip().splitlines()) == 1


def test_ann_passes_for_a_sequence(run_path, tmp_path, capsys):
    """meta sequential = true: the equivalent ANN runs once per step (T = 2 passes of 10 MACs)."""
    from hwmodel.runfile import read_run
    run = read_run(run_path)
    seq = write_run(tmp_path / "seq.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS,
                    meta={"sequential": True})
    doc = cli_json(capsys, seq, "--profile", "cmos45nm")
    assert doc["totals"]["ann_macs"] == 20 and doc["options"]["ann_passes"] == 2
    assert doc["profiles"]["cmos45nm"]["ann_energy_pj"] == pytest.approx(20 * 4.6)
    assert cli_json(capsys, seq, "--ann-passes", "1")["totals"]["ann_macs"] == 10
    assert cli_json(capsys, run_path, "--ann-passes", "T")["totals"]["ann_macs"] == 20
    assert "sequential" not in run.meta                              # absent: a static input, one pass
