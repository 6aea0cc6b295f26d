"""Hardware profiles: the shipped numbers, each profile's arithmetic on a run priced by hand,
the memory-aware model, and a clear error for a bad profile file."""
from pathlib import Path

import numpy as np
import pytest

from hwmodel import energy
from hwmodel.counts import count_run
from hwmodel.profiles import PROFILE_DIR, STATUSES, ProfileError, builtin_names, load_profile, load_profiles
from hwmodel.runfile import read_run, write_run
from tiny_run import COUNTS, LAYERS, SOURCES

# Linear(3→2) → LIF(2) → Readout(2→2), T = 2, two samples (worked out in test_hwmodel_counts):
# per sample, input-driven synops 4, readout synops 4, neuron updates 4, spikes 2, ANN MACs 10.

# energy per sample (pJ), by hand:  synops 8, neuron updates 4 (2 of them firing), spikes 2
BY_HAND = {
    "cmos45nm": 8 * 0.9 + 4 * 5.5 + 2 * 0.9,                 # 31.0
    "cmos45nm_int32": 8 * 0.1 + 4 * 3.3 + 2 * 0.1,           # 14.2
    "cmos45nm_int8": 8 * 0.03 + 4 * 0.26 + 2 * 0.03,         # 1.34
    "loihi": 8 * 23.6 + 4 * 81 + 2 * 1.7,                   # 516.2: every update active (a leaky neuron with input)
    "truenorth": 8 * 26.0,                                   # all-in figure; static shown, not added
    "spinnaker": 8 * 13300 + 4 * 26000,                      # 210 400
    "spinnaker2": 8 * 450 + 4 * 2190,                        # 12 360
}
ANN_BY_HAND = {"cmos45nm": 10 * 4.6, "cmos45nm_int32": 10 * 3.2, "cmos45nm_int8": 10 * 0.23}


@pytest.fixture
def counts(tmp_path):
    path = write_run(tmp_path / "run.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS)
    return count_run(read_run(path))


def test_builtin_profiles_cite_every_constant():
    names = builtin_names()
    assert names[:7] == ["cmos45nm", "cmos45nm_int32", "cmos45nm_int8", "loihi", "truenorth", "spinnaker",
                         "spinnaker2"]
    for p in load_profiles():
        assert p.name == load_profile(p.name).name and p.title and p.summary
        for _, c in p.constants():
            assert c.status in STATUSES and len(c.source) > 10 and c.value >= 0


def test_published_numbers():
    cmos = load_profile("cmos45nm")
    ref = {c.key: c.value for c in cmos.reference.values()}
    assert cmos.e("synop") == ref["fp32_add"] == 0.9
    assert cmos.e("mac") == pytest.approx(ref["fp32_mult"] + ref["fp32_add"]) == 4.6
    assert [cmos.memory[k].value for k in ("sram_8kb", "sram_32kb", "sram_1mb")] == [10, 20, 100]
    assert (ref["int8_add"], ref["int8_mult"], ref["int32_add"], ref["int32_mult"]) == (0.03, 0.2, 0.1, 3.1)
    assert load_profile("cmos45nm_int8").e("mac") == pytest.approx(0.23)
    assert load_profile("cmos45nm_int32").e("mac") == pytest.approx(3.2)
    loihi = load_profile("loihi")
    assert (loihi.e("synop"), loihi.e("neuron_update"), loihi.e("spike")) == (23.6, 81, 1.7)
    assert loihi.energy["neuron_update"].bound("low") == 52                    # the inactive figure
    assert loihi.energy["synop"].bound("high") == float("inf")                 # Table 2's minimum
    assert (loihi.e("hop_east_west"), loihi.e("hop_north_south")) == (3.0, 4.0)
    assert loihi.energy["synop"].status == "pre-silicon"
    assert (loihi.m("neurons_per_core"), loihi.m("cores_per_chip")) == (1024, 128)
    tn = load_profile("truenorth")
    assert tn.e("synop") == 26 and tn.static_in_events and tn.static["time_step"].value == 1.0
    assert "not a marginal" in tn.energy["synop"].note
    assert (tn.m("neurons_per_core"), tn.m("fan_in_per_core"), tn.m("cores_per_chip")) == (256, 256, 4096)
    assert (load_profile("spinnaker").e("synop"), load_profile("spinnaker").e("neuron_update")) == (13300, 26000)
    assert (load_profile("spinnaker2").e("synop"), load_profile("spinnaker2").e("neuron_update")) == (450, 2190)


@pytest.mark.parametrize("name", list(BY_HAND))
def test_each_profile_arithmetic(counts, name):
    res = energy.price_all(counts, [load_profile(name)])[name]
    assert res.energy_pj == pytest.approx(BY_HAND[name])
    assert res.ann_pj == pytest.approx(ANN_BY_HAND.get(name, 10 * 4.6))    # neuromorphic: ANN on cmos45nm
    assert res.ratio == pytest.approx(BY_HAND[name] / res.ann_pj)
    assert sum(res.layer_pj) == pytest.approx(res.dynamic_pj)
    assert res.per_step_pj.sum() == pytest.approx(res.energy_pj)


def test_truenorth_static_is_shown_not_added(counts):
    res = energy.price_all(counts, [load_profile("truenorth")])["truenorth"]
    assert res.static_pj == pytest.approx(42.0 * 1.0 * 2 * 1e6)     # 42 mW × 1 ms × T = 2 steps, in pJ
    assert not res.static_added and res.energy_pj == pytest.approx(208.0)


def test_builtin_profile_reports_its_package_path_not_this_machines():
    assert load_profile("loihi").path == str(Path("hwmodel", "profiles", "loihi.toml"))


def test_static_power_is_added_when_not_in_events(counts, tmp_path):
    text = (PROFILE_DIR / "truenorth.toml").read_text()
    path = tmp_path / "tn_marginal.toml"
    path.write_text(text.replace("static_in_events = true", "static_in_events = false")
                    .replace('name = "truenorth"', 'name = "tn_marginal"'))
    res = energy.price_all(counts, [load_profile(path)])["tn_marginal"]
    assert res.static_added and res.energy_pj == pytest.approx(208.0 + 84e6)
    np.testing.assert_allclose(res.per_step_pj, [4 * 26 + 42e6, 4 * 26 + 42e6])


def test_break_even_rate(counts):
    res = energy.price_all(counts, [load_profile("cmos45nm")])["cmos45nm"]
    # fixed: input-driven synops 4·0.9 + neuron updates 4·5.5 = 25.6; spike-driven: 4·0.9 + 2·0.9 = 5.4
    assert (res.fixed_pj, res.spike_driven_pj) == pytest.approx((25.6, 5.4))
    rate, _ = res.break_even()
    assert rate == pytest.approx(0.5 * (46 - 25.6) / 5.4)
    assert res.energy_at_rate(rate) == pytest.approx(res.ann_pj)
    assert res.energy_at_rate(0.5) == pytest.approx(res.energy_pj)              # the measured point
    loihi = energy.price_all(counts, [load_profile("loihi")])["loihi"]
    assert loihi.break_even()[0] == 0.0                                        # fixed costs alone exceed the ANN


def test_memory_aware_model_by_hand(counts):
    """fp32 words; every memory here is < 8 KiB, so one access costs 10 pJ·32/64 = 5 pJ.
    Linear: 4 synops × (weight 5 + potential read & write 10) = 60; LIF: 4 updates × 10 + 2 spikes × 5
    = 50; Readout: 4 × 15 = 60 -> 170 pJ on top of 31. ANN: Linear 6 MACs × (5 + 5) + 2 outputs × 5
    = 70; Readout 4 × 10 + 2 × 5 = 50 -> 46 + 120 = 166 pJ."""
    res = energy.price_all(counts, [load_profile("cmos45nm"), load_profile("loihi")], memory=True)
    assert res["cmos45nm"].components["memory"] == pytest.approx(170.0)
    assert res["cmos45nm"].energy_pj == pytest.approx(201.0)
    assert res["cmos45nm"].ann_pj == pytest.approx(166.0)
    assert res["loihi"].energy_pj == pytest.approx(BY_HAND["loihi"])           # memory already in its events
    assert res["loihi"].ann_pj == pytest.approx(166.0)


GOOD_TOML = """
[profile]
name = "mychip"
title = "My chip"
ann_profile = "cmos45nm"

[energy.synop]
value = 2.0
unit = "pJ"
status = "measured"
source = "our lab, 2024"

[energy.mac]
value = 5.0
unit = "pJ"
status = "derived"
source = "our lab, 2024"
"""


def test_user_profile(counts, tmp_path):
    path = tmp_path / "mychip.toml"
    path.write_text(GOOD_TOML)
    res = energy.price_all(counts, [load_profile(str(path))])["mychip"]
    assert res.energy_pj == pytest.approx(8 * 2.0)
    assert res.ann_profile == "cmos45nm" and res.ann_pj == pytest.approx(46.0)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace('source = "our lab, 2024"\n', "", 1), "missing 'source'"),
    (lambda t: t.replace('status = "measured"', 'status = "rumour"'), "status must be one of"),
    (lambda t: t.replace('unit = "pJ"', 'unit = "nJ"', 1), "unit must be 'pJ'"),
    (lambda t: t.replace("value = 2.0", "value = -2.0"), "finite number >= 0"),
    (lambda t: t.replace("[energy.synop]", "[energy.synapse]"), "unknown constant"),
    (lambda t: t.replace("[energy.mac]", "[energy.spike]"), "needs 'mac'"),
    (lambda t: t.replace('title = "My chip"', "title = [1"), "not valid TOML"),
    (lambda t: t.replace('title = "My chip"', 'colour = "red"'), "unknown key 'colour'"),
])
def test_bad_profiles(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(GOOD_TOML))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_unknown_profile_name_lists_the_builtins():
    with pytest.raises(ProfileError, match="built in: cmos45nm"):
        load_profile("nosuchchip")
