"""hwmodel's pricing beyond the events, each count worked out by hand on run files built directly
in the format: normalisation at inference (BNTT explicit or folded, BatchNorm folded, LayerNorm),
constant ranges, the zero-skipping ANN, and the core mapping (cores, fit, packets, router hops,
the used cores' static power)."""
import json

import numpy as np
import pytest

from hwmodel import energy, mapping
from hwmodel.counts import count_run
from hwmodel.profiles import ProfileError, load_profile, parse_profile
from hwmodel.runfile import read_run, write_run
from test_hwmodel_counts import conv, flatten, lif, lin, pool


def norm(i, kind, shape, channels):
    return {"index": i, "kind": kind, "in_shape": shape, "out_shape": shape, "params": {"channels": channels}}


def make(tmp_path, layers, sources, counts, T, n, name="run.npz"):
    path = tmp_path / name
    write_run(path, T=T, n_samples=n, layers=layers, sources=sources, counts=counts)
    return read_run(path)


@pytest.fixture
def bntt_run(tmp_path):
    """Linear(3→2) → BNTT(2) → LIF(2) → Readout(2→2), T = 2, two samples (tiny_run's counts)."""
    layers = [lin(0, 3, 2, [3], [2], "input"), norm(1, "BNTT", [2], 2), lif(2, [2], "L2"),
              lin(3, 2, 2, [2], [2], "L2", kind="Readout")]
    sources = {"input": {"shape": [3], "binary": True}, "L2": {"shape": [2], "binary": True}}
    counts = {"input": np.array([[2, 0, 1], [0, 1, 0]]), "L2": np.array([[1, 0], [2, 1]])}
    return make(tmp_path, layers, sources, counts, T=2, n=2)


def test_bntt_is_one_multiply_add_per_element_and_step(bntt_run):
    counts = count_run(bntt_run)
    bntt = counts.layers[1]
    np.testing.assert_array_equal(bntt.norm_ops, [2, 2])          # 2 elements at each of 2 steps
    assert bntt.norm_channels == 2 and counts.totals()["norm_ops"] == 4
    cmos = load_profile("cmos45nm")
    explicit = energy.price(counts, cmos)
    # 31.0 pJ of tiny_run's events (test_hwmodel_profiles) + 4 multiply-adds × 4.6 pJ
    assert explicit.components["norm"] == pytest.approx(4 * 4.6)
    assert explicit.energy_pj == pytest.approx(31.0 + 18.4)
    folded = energy.price(counts, cmos, norm="fold")
    assert "norm" not in folded.components and folded.energy_pj == pytest.approx(31.0)
    assert folded.norm_param_loads == 3 * 2 * 2                   # leak, threshold, bias × 2 channels × T
    # --memory: the per-step table of 3·C·T = 12 fp32 words (< 8 KiB: 5 pJ per access), 6 loads per step
    # (tiny_run's own memory terms are 170 pJ: test_memory_aware_model_by_hand)
    with_memory = energy.price(counts, cmos, memory=True, norm="fold")
    assert with_memory.layer_pj[1] == pytest.approx(2 * 6 * 5.0)
    assert with_memory.components["memory"] == pytest.approx(170.0 + 60.0)
    # explicit: a_t and b_t of each channel read per step, 4 reads from a table of 2·C·T = 8 words
    assert energy.price(counts, cmos, memory=True).layer_pj[1] == pytest.approx(4 * 4.6 + 2 * 4 * 5.0)


def test_chips_without_a_norm_op_price_it_as_their_mac(bntt_run, tmp_path):
    counts = count_run(bntt_run)
    text = (tmp_path / "p.toml")
    text.write_text('[profile]\nname = "x"\n[energy.synop]\nvalue = 1.0\nunit = "pJ"\nstatus = "measured"\n'
                    'source = "lab notebook"\n[energy.mac]\nvalue = 7.0\nunit = "pJ"\nstatus = "measured"\n'
                    'source = "lab notebook"\n')
    res = energy.price(counts, load_profile(text))
    assert res.components["norm"] == pytest.approx(4 * 7.0)


def test_batchnorm_folds_and_layernorm_costs_three_per_element(tmp_path):
    for kind, per_element in (("BatchNorm", 0), ("LayerNorm", 3)):
        layers = [lin(0, 3, 2, [3], [2], "input"), norm(1, kind, [2], 2), lif(2, [2], "L2")]
        run = make(tmp_path, layers, {"input": {"shape": [3], "binary": True}, "L2": {"shape": [2], "binary": True}},
                   {"input": np.ones((2, 3), int), "L2": np.ones((2, 2), int)}, T=2, n=2, name=f"{kind}.npz")
        layer = count_run(run).layers[1]
        assert layer.total("norm_ops") == per_element * 2 * 2
        assert ("folded" in layer.note) == (kind == "BatchNorm")


def test_ranges_bound_the_total(bntt_run, tmp_path):
    counts = count_run(bntt_run)
    res = energy.price_all(counts, [load_profile("loihi")])["loihi"]
    # low end: every neuron update at the inactive 52 pJ instead of 81; no upper end (Table 2's minimum)
    assert res.energy_range[0] == pytest.approx(res.energy_pj - 4 * (81 - 52))
    assert res.energy_range[1] == float("inf")
    data = {"profile": {"name": "r"},
            "energy": {"synop": {"value": 1.0, "low": 0.5, "high": 2.0, "unit": "pJ", "status": "estimate",
                                 "source": "a range from the source"},
                       "mac": {"value": 4.0, "unit": "pJ", "status": "estimate", "source": "a single value"}}}
    ranged = energy.price_all(counts, [parse_profile(data)])["r"]
    # 8 synops per sample (tiny_run), everything else costs nothing here but 4 norm ops at the mac (4 pJ)
    assert ranged.energy_pj == pytest.approx(8 + 16)
    assert ranged.energy_range == pytest.approx((4 + 16, 16 + 16))


@pytest.mark.parametrize("edit,message", [
    ({"low": 2.0}, "low must satisfy"),
    ({"high": 0.5}, "high must be >= value"),
    ({"low": "x"}, "low must be a number"),
])
def test_bad_ranges(edit, message):
    synop = {"value": 1.0, "unit": "pJ", "status": "estimate", "source": "somewhere", **edit}
    mac = {"value": 1.0, "unit": "pJ", "status": "estimate", "source": "somewhere"}
    with pytest.raises(ProfileError, match=message):
        parse_profile({"profile": {"name": "r"}, "energy": {"synop": synop, "mac": mac}})


def test_bad_mapping():
    base = {"profile": {"name": "m"}, "energy": {k: {"value": 1.0, "unit": "pJ", "status": "estimate",
                                                     "source": "s"} for k in ("synop", "mac")}}
    count = lambda v: {"value": v, "unit": "count", "status": "design", "source": "data sheet"}
    with pytest.raises(ProfileError, match="needs all of"):
        parse_profile({**base, "mapping": {"neurons_per_core": count(256)}})
    with pytest.raises(ProfileError, match="positive whole number"):
        parse_profile({**base, "mapping": {"neurons_per_core": count(2.5), "synapses_per_core": count(10),
                                           "cores_per_chip": count(4)}})


def test_zero_skipping_ann_uses_the_measured_density_of_a_sequence(tmp_path):
    """An analogue first layer reads the recorded values: 3 of the 2·3·2 = 12 (step, position,
    sample) values are non-zero, so ρ = 1/4 there; the readout reads hidden activations at ρ."""
    layers = [lin(0, 3, 2, [3], [2], "input"), lif(1, [2], "L1"), lin(2, 2, 2, [2], [2], "L1", kind="Readout")]
    run = make(tmp_path, layers, {"input": {"shape": [3], "binary": False}, "L1": {"shape": [2], "binary": True}},
               {"input": np.array([[2, 0, 0], [0, 1, 0]]), "L1": np.array([[1, 0], [2, 1]])}, T=2, n=2)
    c = count_run(run, ann_density=0.3)
    assert c.layers[0].ann_macs == 6 and c.layers[0].ann_macs_skip == pytest.approx(6 * 0.25)
    assert c.layers[2].ann_macs_skip == pytest.approx(4 * 0.3)
    res = energy.price(c, load_profile("cmos45nm"))
    assert res.ann_skip_pj == pytest.approx((1.5 + 1.2) * 4.6) and res.ratio_skip > res.ratio
    with pytest.raises(ValueError, match="ann_density"):
        count_run(run, ann_density=0.0)


def chip(neurons, synapses, cores, fan_in=None, width=None, hops=True):
    c = lambda v: {"value": v, "unit": "count", "status": "design", "source": "data sheet"}
    pj = lambda v: {"value": v, "unit": "pJ", "status": "estimate", "source": "data sheet"}
    m = {"neurons_per_core": c(neurons), "synapses_per_core": c(synapses), "cores_per_chip": c(cores)}
    if fan_in:
        m["fan_in_per_core"] = c(fan_in)
    if width:
        m["mesh_width"] = c(width)
    e = {"synop": pj(1.0), "mac": pj(1.0), **({"hop_east_west": pj(3.0), "hop_north_south": pj(4.0)} if hops else {})}
    return parse_profile({"profile": {"name": "chip"}, "energy": e, "mapping": m,
                          "static": {"power": {"value": 8.0, "unit": "mW", "status": "measured", "source": "s"},
                                     "time_step": {"value": 1.0, "unit": "ms", "status": "measured", "source": "s"}}})


def test_linear_network_placement_and_hops_by_hand(tmp_path):
    """Linear(3→4) → LIF(4) → Readout(4→2) on 2 neurons per core, a 2-wide mesh, 4 cores per chip:
    LIF on cores 0–1 (neurons 0,1 → core 0; 2,3 → core 1), Readout on core 2 (row 1, col 0).
    Input spikes come from the host at core 0 and reach both LIF cores: 1 packet at 0 hops, 1 at 1 E-W hop.
    LIF spikes reach core 2: from core 0 one N-S hop, from core 1 one E-W + one N-S hop."""
    layers = [lin(0, 3, 4, [3], [4], "input"), lif(1, [4], "L1"), lin(2, 4, 2, [4], [2], "L1", kind="Readout")]
    counts = {"input": np.array([[2, 0, 1], [0, 1, 0]]),            # 4 input spikes over 2 samples
              "L1": np.array([[2, 0, 0, 0], [0, 0, 1, 1]])}         # 2 from core 0, 2 from core 1
    run = make(tmp_path, layers, {"input": {"shape": [3], "binary": True}, "L1": {"shape": [4], "binary": True}},
               counts, T=2, n=2)
    c = count_run(run)
    profile = chip(neurons=2, synapses=100, cores=4, width=2)
    m = mapping.place(run, c, profile)
    assert [(p.index, p.first_core, p.cores) for p in m.placements] == [(1, 0, 2), (2, 2, 1)]
    assert (m.cores, m.chips, m.fits) == (3, 1, True)
    t_in, t_out = m.traffic[0], m.traffic[2]
    assert t_in.packets.sum() == pytest.approx(4 * 2 / 2)         # 4 spikes × 2 cores, per sample
    assert t_in.hops_east_west.sum() == pytest.approx(4 * 1 / 2) and t_in.hops_north_south.sum() == 0
    assert t_out.packets.sum() == pytest.approx(4 / 2)
    assert t_out.hops_east_west.sum() == pytest.approx(2 / 2)       # the two spikes from core 1
    assert t_out.hops_north_south.sum() == pytest.approx(4 / 2)
    res = energy.price(c, profile, mapping=m)
    routing = 3.0 * (2 + 1) + 4.0 * 2
    assert res.components["routing"] == pytest.approx(routing)
    # static: 8 mW × (3 of 4 cores) × 1 ms × 2 steps, added (not inside the event energies)
    assert res.static_pj == pytest.approx(8.0 * 0.75 * 1.0 * 2 * 1e6) and res.static_added
    assert res.static_scope == "used cores"


def test_synapse_limit_chips_and_fan_in(tmp_path):
    """Linear(3→4): 12 synapses on 5 per core need 3 cores though 4 neurons fit in one; the
    readout's 8 synapses need 2 more (cores 3 and 4); at 2 cores per chip that is 3 chips; a
    fan-in of 3 > 2 axons does not fit."""
    layers = [lin(0, 3, 4, [3], [4], "input"), lif(1, [4], "L1"), lin(2, 4, 2, [4], [2], "L1", kind="Readout")]
    counts = {"input": np.array([[1, 0, 0], [0, 0, 0]]), "L1": np.array([[1, 1, 1, 1], [0, 0, 0, 0]])}
    run = make(tmp_path, layers, {"input": {"shape": [3], "binary": True}, "L1": {"shape": [4], "binary": True}},
               counts, T=2, n=1)
    m = mapping.place(run, count_run(run), chip(neurons=8, synapses=5, cores=2, fan_in=2, width=2))
    lif_place = m.placements[0]
    assert (lif_place.cores, lif_place.limit) == (3, "synapses") and m.placements[1].first_core == 3
    assert m.chips == 3 and not m.fits and "fan-in 3 > 2 axons" in lif_place.reason
    # neurons 0,1 → core 0; 2,3 → core 1 (⌈4/3⌉ = 2 per core), both on chip 0; the readout's
    # cores 3 and 4 are on chips 1 and 2: each of the 4 spikes crosses to both
    t = m.traffic[2]
    assert t.chip_crossings.sum() == pytest.approx(4 * 2)
    assert t.hops_east_west.sum() == 0                                 # no same-chip destination


def test_conv_destinations_and_pooled_sources(tmp_path):
    """Conv2d(1→1, k=1) on 1×2×2: position i reaches only output i. Two neurons per core: outputs
    0,1 on core 0 and 2,3 on core 1, so a spike at position 3 goes to core 1 only. Then
    AvgPool2d(2) → Flatten → Readout: the pooled value's source is the LIF neuron at the window's
    first position (neuron 0, core 0)."""
    layers = [conv(0, 1, 1, 1, 1, 0, [1, 2, 2], [1, 2, 2], "input"), lif(1, [1, 2, 2], "L1"),
              pool(2, 2, [1, 2, 2], [1, 1, 1], "L1"), flatten(3, [1, 1, 1]),
              lin(4, 1, 1, [1], [1], "X4", kind="Readout")]
    sources = {"input": {"shape": [1, 2, 2], "binary": True}, "L1": {"shape": [1, 2, 2], "binary": True},
               "X4": {"shape": [1], "binary": False}}
    counts = {"input": np.array([[[[0, 0], [0, 1]]]]), "L1": np.array([[[[1, 0], [0, 1]]]]),
              "X4": np.array([[1]])}
    run = make(tmp_path, layers, sources, counts, T=1, n=1)
    m = mapping.place(run, count_run(run), chip(neurons=2, synapses=100, cores=8, width=4))
    assert [(p.first_core, p.cores) for p in m.placements] == [(0, 2), (2, 1)]
    assert m.traffic[0].packets.sum() == 1 and m.traffic[0].hops_east_west.sum() == 1    # host core 0 → core 1
    assert m.traffic[4].packets.sum() == 1 and m.traffic[4].hops_east_west.sum() == 2    # core 0 → core 2


def test_cli_reports_mapping_ranges_and_fold(bntt_run, capsys):
    assert energy.main([bntt_run.path, "--per-layer", "--profile", "cmos45nm", "--profile", "loihi",
                        "--profile", "truenorth"]) == 0
    out = capsys.readouterr().out
    assert "Core mapping" in out and "Placement on loihi" in out and "≥ " in out
    assert "1 BNTT" in out and "ANN zero-skip (ρ = 0.5, assumed)" in out
    assert energy.main([bntt_run.path, "--json", "--bntt", "fold", "--ann-density", "0.25"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["options"]["bntt"] == "fold" and doc["options"]["ann_density"] == 0.25
    tn = doc["profiles"]["truenorth"]
    assert tn["static_scope"] == "used cores" and tn["static_pj"] == pytest.approx(42.0 * 2 / 4096 * 2 * 1e6)
    assert doc["profiles"]["loihi"]["constants"]["energy.synop"]["high"] is None      # unbounded
    assert doc["profiles"]["cmos45nm"]["mapping"] is None and doc["totals"]["norm_ops"] == 4


def test_cli_rejects_a_bad_density(bntt_run, capsys):
    with pytest.raises(SystemExit):
        energy.main([bntt_run.path, "--ann-density", "1.5"])
    assert "expected a fraction in (0, 1]" in capsys.readouterr().err
