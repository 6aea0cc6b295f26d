"""NIR interoperability without the nir package: minisnn ⇄ a graph as plain data
(``minisnn/nir_graph.py``), the LIF mapping against NIR's Euler step, every refusal, the spikes
file and hwmodel's run of a graph (``hwmodel/nirgraph.py``), and ``--reset`` on the trainer.
The file I/O with nir and h5py, and snnTorch's importer, are in test_nir.py."""
import copy
import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel import report
from hwmodel.counts import count_run
from hwmodel.energy import price_all
from hwmodel.nirgraph import NIRGraphError, read_any_run, run_from_graph
from hwmodel.profiles import load_profiles
from hwmodel.runfile import RunFormatError, read_run
from hwmodel.spikefile import SpikesFormatError, read_spikes, write_spikes
from minisnn import export, models
from minisnn.layers import LIF, BatchNorm
from minisnn.nir_graph import DT, NIRError, from_graph, leak_from, lif_node, to_graph
from minisnn.training import TrainConfig, UsageError, recipe_changes

F64 = np.float64


def spikes_and_logits(net, x):
    z, kept = net.outputs(x, LIF)
    return z, [kept[i] for i in sorted(kept)]


def poisson(rng, shape, p=0.3):
    return (np.sign(rng.normal(size=shape)) * (rng.random(shape) < p)).astype(F64)


def randomise_bn(net, rng):
    """Statistics, γ and β far from their initial values, so the fold is not the identity."""
    for layer in net.norm_layers():
        layer.running_mean[:] = rng.normal(size=layer.running_mean.shape)
        layer.running_var[:] = rng.random(layer.running_var.shape) + 0.2
        layer.gamma.data[:] = rng.random(layer.gamma.data.shape) + 0.5
        layer.beta.data[:] = 0.3 * rng.normal(size=layer.beta.data.shape)


def fc_net(sizes, T, norm="none", leak=0.9, threshold=0.5, seed=0):
    return models.fc_snn(sizes, T, norm=norm, leak=leak, threshold=threshold, reset="hard", dtype=F64, seed=seed)


def conv_net(T, channels, hidden, norm="none", seed=0, size=8):
    return models.conv_snn([channels, "P"], [hidden], 3, T, 2, size, norm=norm, leak=0.9, threshold=0.4,
                           reset="hard", dtype=F64, seed=seed)


# --- the LIF mapping --------------------------------------------------------------------------------

@settings(deadline=None, max_examples=200)
@given(st.floats(0.0, 1.0, exclude_max=True), st.sampled_from([1e-4, 1.0, 1e-3, 0.37]))
def test_leak_comes_back_and_one_euler_step_is_the_leak(leak, dt):
    """Bit for bit where 1 − λ is exact (λ ≥ 1/2: every leak minisnn's tasks use, and λ = 0);
    below, several λ round to the same τ, and the one read back is within 2⁻⁵² (an ulp of 1 − λ)."""
    node = lif_node(leak, 1.0, (3,), dt)
    tau, r = node["tau"][0], node["r"][0]
    if leak >= 0.5 or leak == 0.0:
        assert leak_from(tau, dt) == leak
    else:
        assert abs(leak_from(tau, dt) - leak) <= 2.0 ** -52
    assert 1.0 - dt / tau == pytest.approx(leak, abs=1e-12) and r * dt / tau == pytest.approx(1.0, rel=1e-12)


def nir_lif_reference(node, current, dt):
    """NIR's LIF, τ·dv/dt = (v_leak − v) + r·I, z = [v > v_threshold], v → v_reset, one forward-Euler
    step of dt per step, written from NIR's equations (not minisnn's)."""
    v, out, mem = np.zeros(current.shape[1:]), [], []
    for I in current:
        if node["type"] == "LIF":
            v = v + dt / node["tau"] * (node["v_leak"] - v + node["r"] * I)
        else:
            v = v + dt * node["r"] * I
        mem.append(v.copy())
        z = v > node["v_threshold"]
        out.append(z.astype(F64))
        v = np.where(z, node["v_reset"], v)
    return np.array(out), np.array(mem)


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2 ** 31), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), st.sampled_from([0.3, 1.0]))
def test_minisnn_hard_reset_is_one_euler_step_of_nir_lif(seed, leak, threshold):
    """Same order (integrate, fire strictly above θ, reset to 0, in one step). Spikes agree wherever
    the membrane is not within round-off of θ (the two formulas round differently)."""
    rng = np.random.default_rng(seed)
    current = rng.normal(0.4, 0.6, size=(40, 50))
    lif = LIF(leak=leak, threshold=threshold, reset="hard")
    ours = lif.forward(current.copy(), train=False)
    u = lif._saved_membrane
    theirs, v = nir_lif_reference(lif_node(leak, threshold, current.shape[1:]), current, DT)
    near = np.abs(u - threshold) <= 1e-9             # each neuron, up to its first near-tie
    cut = np.where(near.any(axis=0), near.argmax(axis=0), len(current))
    valid = np.arange(len(current))[:, None] < cut[None, :]
    np.testing.assert_array_equal(ours[valid], theirs[valid])
    np.testing.assert_allclose(u[valid], v[valid], rtol=0, atol=1e-9)
    assert ours.sum() > 0


def test_a_current_of_exactly_theta_does_not_spike_on_either_side():
    lif = LIF(leak=0.0, threshold=1.0, reset="hard")
    current = np.array([[1.0], [1.0 + 1e-12]])
    theirs, _ = nir_lif_reference(lif_node(0.0, 1.0, (1,)), current, DT)
    np.testing.assert_array_equal(lif.forward(current, train=False)[:, 0], [0.0, 1.0])
    np.testing.assert_array_equal(theirs[:, 0], [0.0, 1.0])


# --- minisnn → graph → minisnn ----------------------------------------------------------------------

@settings(deadline=None, max_examples=15)
@given(st.integers(0, 2 ** 31), st.lists(st.integers(1, 12), min_size=1, max_size=3), st.integers(1, 6),
       st.sampled_from([0.0, 0.8, 0.95, 1.0]))
def test_fc_network_round_trip_gives_identical_spikes_and_logits(seed, hidden, T, leak):
    rng = np.random.default_rng(seed)
    net = fc_net([7, *hidden, 4], T, leak=leak, seed=seed)
    graph = to_graph(net, (7,))
    kinds = [n["type"] for n in graph["nodes"].values()]
    assert kinds == ["Input"] + ["Linear", "IF" if leak == 1.0 else "LIF"] * len(hidden) + ["Linear", "I", "Output"]
    back = from_graph(copy.deepcopy(graph))
    x = poisson(rng, (T, 5, 7))
    z, s = spikes_and_logits(net, x)
    z2, s2 = spikes_and_logits(back, x)
    np.testing.assert_array_equal(z, z2)
    for a, b in zip(s, s2):
        np.testing.assert_array_equal(a, b)
    assert [(l.leak, l.threshold, l.reset) for l in back.lif_layers()] == [(leak, 0.5, "hard")] * len(hidden)


@settings(deadline=None, max_examples=8)
@given(st.integers(0, 2 ** 31), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3))
def test_conv_network_round_trip_gives_identical_spikes(seed, channels, hidden, T):
    rng = np.random.default_rng(seed)
    net = conv_net(T, channels, hidden, seed=seed)
    graph = to_graph(net, (2, 8, 8))
    assert [n["type"] for n in graph["nodes"].values()] == [
        "Input", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Linear", "LIF", "Linear", "I", "Output"]
    back = from_graph(graph)
    x = poisson(rng, (T, 3, 2, 8, 8), 0.5)
    (z, s), (z2, s2) = spikes_and_logits(net, x), spikes_and_logits(back, x)
    np.testing.assert_array_equal(z, z2)
    for a, b in zip(s, s2):
        np.testing.assert_array_equal(a, b)


@settings(deadline=None, max_examples=8)
@given(st.integers(0, 2 ** 31), st.sampled_from(["fc", "conv"]), st.sampled_from(["running", "calibrated"]))
def test_batchnorm_folds_exactly_into_an_affine_node(seed, shape, stats):
    """W' = s·W, b' = s·(b − μ) + β: the currents into every LIF equal the BN network's to round-off,
    and a second round trip changes nothing."""
    rng = np.random.default_rng(seed)
    net = fc_net([6, 9, 3], 4, norm="bn", seed=seed) if shape == "fc" else conv_net(3, 3, 5, norm="bn", seed=seed)
    randomise_bn(net, rng)
    for layer in net.norm_layers():
        layer.calibrated_mean[:] = layer.running_mean + 0.1
        layer.calibrated_var[:] = layer.running_var * 1.5
    net.set_eval_stats(stats)
    in_shape = (6,) if shape == "fc" else (2, 8, 8)
    graph = to_graph(net, in_shape)
    assert "Affine" in [n["type"] for n in graph["nodes"].values()] or shape == "conv"
    back = from_graph(graph)
    assert not any(isinstance(l, BatchNorm) for l in back.layers)
    x = poisson(rng, (3, 4, *in_shape), 0.5)
    _, into = net.outputs(x, lambda i, layer: i + 1 < len(net.layers) and isinstance(net.layers[i + 1], LIF))
    _, into2 = back.outputs(x, lambda i, layer: i + 1 < len(back.layers) and isinstance(back.layers[i + 1], LIF))
    for a, b in zip([into[i] for i in sorted(into)], [into2[i] for i in sorted(into2)]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    again = to_graph(back, in_shape)
    for node, other in zip(ordered(graph), ordered(again)):
        assert node.keys() == other.keys()
        for key in node:
            np.testing.assert_array_equal(node[key], other[key])


def ordered(graph):
    """The nodes in chain order (names differ once the BatchNorm layers are gone)."""
    edges = dict(graph["edges"])
    order = ["input"]
    while order[-1] in edges:
        order.append(edges[order[-1]])
    return [graph["nodes"][n] for n in order]


# --- refusals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm, reset, expected", [
    ("none", "soft", "layer 1: soft reset (v = u − θ·o) has no NIR equivalent: NIR's LIF resets to v_reset; "
                     "train with --reset hard"),
    ("bntt", "hard", "layer 1: BNTT has its own γ_t and statistics at every time step, but a NIR node is the "
                     "same at every step; train with --norm bn or --norm none"),
    ("ln", "hard", "layer 1: LayerNorm divides by each sample's own statistics, which no NIR node computes; "
                   "train with --norm bn or --norm none"),
])
def test_what_nir_cannot_express_is_refused_in_one_line(norm, reset, expected):
    net = models.fc_snn([5, 4, 3], 3, norm=norm, reset=reset)
    with pytest.raises(NIRError) as e:
        to_graph(net, (5,))
    assert str(e.value) == "cannot export to NIR: " + expected and "\n" not in str(e.value)


def test_every_problem_is_named_in_the_one_line():
    with pytest.raises(NIRError) as e:
        to_graph(models.fc_snn([5, 4, 4, 3], 3, norm="bntt", reset="soft"), (5,))
    message = str(e.value)
    assert "\n" not in message and "layers 1, 4: BNTT" in message and "layers 2, 5: soft reset" in message


def test_batch_statistics_and_residual_blocks_are_refused():
    net = fc_net([5, 4, 3], 3, norm="bn")
    net.set_eval_stats("batch")
    with pytest.raises(NIRError, match="layer 1: BatchNorm with batch statistics depends on the batch"):
        to_graph(net, (5,))
    res = models.resnet(8, T=2, widths=(2, 2, 2), input_size=8, norm="none", reset="hard")
    with pytest.raises(NIRError, match="residual blocks are not exported"):
        to_graph(res, (1, 8, 8))


def graph_with(**changes):
    """A small exported graph with one node's params changed ({node: {key: value}})."""
    graph = to_graph(fc_net([3, 2, 2], 2), (3,))
    for node, params in changes.items():
        graph["nodes"][node].update(params)
    return graph


@pytest.mark.parametrize("change, message", [
    ({"lif_1": {"v_reset": np.full(2, 0.5)}}, "node 'lif_1' (LIF): v_reset ≠ 0"),
    ({"lif_1": {"v_leak": np.full(2, 0.1)}}, "node 'lif_1' (LIF): v_leak ≠ 0"),
    ({"lif_1": {"tau": np.array([1e-3, 2e-3])}}, "node 'lif_1' (LIF): tau differs between neurons (2 values)"),
    ({"lif_1": {"tau": np.full(2, 1e-5)}}, "τ = 1e-05 is below dt = 0.0001"),
    ({"lif_1": {"type": "CubaLIF"}}, "node 'lif_1' (CubaLIF): minisnn has no layer for this node type"),
    ({"integrator_2": {"type": "LI"}}, "minisnn's readout integrates without a leak"),
])
def test_graphs_minisnn_cannot_run_exactly_are_refused(change, message):
    with pytest.raises(NIRError) as e:
        from_graph(graph_with(**change))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_branches_and_cycles_are_refused():
    graph = to_graph(fc_net([3, 2, 2], 2), (3,))
    branched = copy.deepcopy(graph)
    branched["edges"].append(("input", "readout_2"))
    with pytest.raises(NIRError, match="node 'input' feeds two nodes"):
        from_graph(branched)
    with pytest.raises(NIRGraphError, match="branches"):
        run_from_graph(branched, None)


def test_a_foreign_input_gain_becomes_the_threshold():
    """r ≠ τ/dt (gain g = r·dt/τ): v/g follows minisnn's u with θ/g, the same spikes."""
    graph = graph_with(lif_1={"r": np.full(2, 2.0 / (1 - 0.9))})
    (lif,) = from_graph(graph).lif_layers()
    assert lif.threshold == pytest.approx(0.25) and lif.leak == 0.9


def test_missing_nir_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(NIRError, match=r"^install the nir extra: pip install -e '\.\[nir\]'$"):
        export.write_nir("unused.nir", {})
    with pytest.raises(RunFormatError, match="needs the nir package"):
        read_any_run("graph.nir", "spikes.npz")


# --- hwmodel: a graph and its spikes price like the run file ------------------------------------------

def recorded(net, in_shape, tmp_path, rng, T=3, batches=2):
    data = [(poisson(rng, (T, 4, *in_shape), 0.4), rng.integers(0, 3, 4)) for _ in range(batches)]
    spikes, run = tmp_path / "spikes.npz", tmp_path / "run.npz"
    export.record_spikes(net, data, spikes, run_path=run, meta={"dataset": "toy"}, input_shape=in_shape)
    return to_graph(net, in_shape), read_spikes(spikes), read_run(run)


def priced(run):
    counts = count_run(run)
    return counts, price_all(counts, load_profiles(None))


def without_zero_parts(profiles):
    """The profiles' JSON without energy components of 0 pJ (a BatchNorm layer, folded, adds a
    "norm" part of 0 to the run file's; the graph has the BatchNorm folded and no such part)."""
    return {n: {**p, "components_pj": {k: v for k, v in p["components_pj"].items() if v}} for n, p in profiles.items()}


NUMBERS = ("kind", "in_shape", "out_shape", "binary_input", "synops", "macs", "dense_ops", "neuron_updates",
           "spikes", "ann_macs", "spike_rate", "energy_pj")


@pytest.mark.parametrize("shape, norm", [("fc", "none"), ("fc", "bn"), ("conv", "none"), ("conv", "bn")])
def test_graph_and_spikes_price_exactly_like_the_run_file(shape, norm, tmp_path):
    rng = np.random.default_rng(3)
    # 20 channels of 8×8: 1280 neurons, more than one core of a chip (the mapping's routing is priced)
    net = fc_net([6, 9, 3], 3, norm=norm) if shape == "fc" else conv_net(3, 20, 5, norm=norm)
    randomise_bn(net, rng)
    in_shape = (6,) if shape == "fc" else (2, 8, 8)
    graph, spikes, run = recorded(net, in_shape, tmp_path, rng)
    nir_run = run_from_graph(graph, spikes, path="graph.nir")
    (c1, e1), (c2, e2) = priced(nir_run), priced(run)
    assert c1.totals() == c2.totals() and c1.totals()["spikes"] > 0
    assert {n: r.energy_pj for n, r in e1.items()} == {n: r.energy_pj for n, r in e2.items()}
    j1, j2 = report.to_json(nir_run, c1, e1), report.to_json(run, c2, e2)
    assert j1["totals"] == j2["totals"] and without_zero_parts(j1["profiles"]) == without_zero_parts(j2["profiles"])
    names = NUMBERS + (("input", "index") if norm == "none" else ())     # the run format's source names too
    keep = lambda doc: [{k: v for k, v in l.items() if k in names} for l in doc["layers"]
                        if l["kind"] not in ("BatchNorm",)]
    assert keep(j1) == keep(j2)
    assert (nir_run.accuracy, nir_run.n_samples, nir_run.T) == (run.accuracy, run.n_samples, run.T)
    text = report.to_text(nir_run, c1, e1)
    if norm == "none":      # the same table, row for row (the header names the files)
        assert text.split("\n", 2)[2] == report.to_text(run, c2, e2).split("\n", 2)[2]


def test_raw_spikes_give_the_same_counts(tmp_path):
    rng = np.random.default_rng(0)
    raw = {"input": poisson(rng, (3, 5, 4)), "lif_1": (rng.random((3, 5, 6)) < 0.3).astype(np.uint8)}
    np.savez(tmp_path / "raw.npz", format="nir-spikes", version=1, **{f"spikes/{k}": v for k, v in raw.items()})
    s = read_spikes(tmp_path / "raw.npz")
    assert s.n_samples == 5 and s.T == 3 and s.binary == {"input": True, "lif_1": True}
    np.testing.assert_array_equal(s.counts["lif_1"], (raw["lif_1"] != 0).sum(axis=1))


@pytest.mark.parametrize("case, message", [
    ("format", "format is 'other', expected 'nir-spikes'"),
    ("binary", "missing key 'binary/input'"),
    ("too many", "counts of node 'input' must lie in [0, n_samples = 2]"),
    ("pickle", "refused to unpickle"),
])
def test_bad_spikes_files_are_one_line(case, message, tmp_path):
    keys = {"format": "nir-spikes", "version": 1, "T": 2, "n_samples": 2, "counts/input": np.ones((2, 3), int),
            "binary/input": True}
    if case == "format":
        keys["format"] = "other"
    elif case == "binary":
        del keys["binary/input"]
    elif case == "too many":
        keys["counts/input"] = np.full((2, 3), 3)
    elif case == "pickle":
        keys["meta"] = np.array([{"a": 1}], dtype=object)
    np.savez(tmp_path / "s.npz", **keys)
    with pytest.raises(SpikesFormatError) as e:
        read_spikes(tmp_path / "s.npz")
    assert message in str(e.value) and str(e.value).startswith(str(tmp_path / "s.npz")) and "\n" not in str(e.value)


def test_recording_must_cover_what_is_counted(tmp_path):
    rng = np.random.default_rng(1)
    net = conv_net(2, 2, 3)
    graph, spikes, _ = recorded(net, (2, 8, 8), tmp_path, rng, T=2, batches=1)
    for node, message in (("lif_1", "no entry for node 'lif_1' (LIF)"),
                          ("flatten_3", "no entry for node 'avgpool2d_2' (AvgPool2d), whose output node 'linear_4'")):
        partial = copy.deepcopy(spikes)
        del partial.counts[node]
        with pytest.raises(NIRGraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run_from_graph(graph, partial)
    extra = copy.deepcopy(spikes)
    extra.counts["ghost"], extra.binary["ghost"] = spikes.counts["lif_1"], True
    with pytest.raises(NIRGraphError, match=r"entries for \['ghost'\], which are not nodes"):
        run_from_graph(graph, extra)
    delay = copy.deepcopy(graph)
    delay["nodes"]["lif_1"] = {"type": "Delay", "delay": np.ones(1)}
    with pytest.raises(NIRGraphError, match="node 'lif_1' \\(Delay\\): the run format has no layer"):
        run_from_graph(delay, spikes)


def test_dispatch_on_the_path(tmp_path):
    with pytest.raises(RunFormatError, match="give its recording with --spikes"):
        read_any_run(tmp_path / "graph.nir")
    with pytest.raises(RunFormatError, match="--spikes goes with a NIR graph"):
        read_any_run(tmp_path / "run.npz", tmp_path / "spikes.npz")


def test_write_spikes_refuses_inconsistent_data(tmp_path):
    with pytest.raises(SpikesFormatError, match="binary must name exactly the nodes of counts"):
        write_spikes(tmp_path / "s.npz", T=1, n_samples=1, counts={"input": np.ones((1, 2), int)}, binary={})
    assert not list(tmp_path.iterdir())


# --- the trainer's --reset -----------------------------------------------------------------------------

def test_reset_is_part_of_the_recipe_and_old_checkpoints_were_soft():
    _, cfg = TrainConfig("mnist", reset="hard").resolve()
    assert cfg["reset"] == "hard"
    with pytest.raises(UsageError, match="--reset must be one of soft, hard, got 'half'"):
        TrainConfig("mnist", reset="half").resolve()
    _, soft = TrainConfig("mnist").resolve()
    old = {k: v for k, v in soft.items() if k != "reset"}        # written before --reset existed
    assert recipe_changes(old, soft) == {} and recipe_changes(old, cfg) == {"reset": ("soft", "hard")}


def test_trained_hard_reset_network_exports_and_prices_the_same(tiny_mnist, tmp_path, capsys):
    """python -m minisnn.train --reset hard → checkpoint (spec and config say hard) → spikes file and
    run file of one pass (python -m minisnn.export spikes) → the same numbers both ways."""
    from minisnn import train
    from minisnn.checkpoint import load_network
    out = tmp_path / "out"
    assert train.main(["mnist", "--T", "3", "--epochs", "1", "--batch-size", "10", "--reset", "hard",
                       "--norm", "bn", "--data-dir", str(tiny_mnist), "--out", str(out)]) == 0
    net, meta = load_network(out / "checkpoint.npz")
    assert meta["config"]["reset"] == meta["spec"]["reset"] == "hard"
    assert {l.reset for l in net.lif_layers()} == {"hard"}
    capsys.readouterr()
    spikes, run = tmp_path / "spikes.npz", tmp_path / "run.npz"
    assert export.main(["spikes", str(out / "checkpoint.npz"), str(spikes), "--data-dir", str(tiny_mnist),
                        "--record", str(run), "--batch-size", "7"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_samples"] == 20 and "lif_2" in summary["nodes"]
    net, _ = export.load_for_export(out / "checkpoint.npz")
    nir_run = run_from_graph(to_graph(net, (784,)), read_spikes(spikes), path="graph.nir")
    (c1, e1), (c2, e2) = priced(nir_run), priced(read_run(run))
    assert c1.totals() == c2.totals() and {n: r.energy_pj for n, r in e1.items()} == \
        {n: r.energy_pj for n, r in e2.items()}
    assert nir_run.meta["bn_stats"] == "calibrated" and nir_run.meta["dataset"] == "mnist"


def test_export_cli_refuses_a_soft_reset_checkpoint_in_one_line(tiny_mnist, tmp_path, capsys):
    from minisnn import train
    out = tmp_path / "out"
    assert train.main(["mnist", "--T", "2", "--epochs", "1", "--batch-size", "10", "--norm", "none",
                       "--data-dir", str(tiny_mnist), "--out", str(out)]) == 0
    capsys.readouterr()
    assert export.main(["spikes", str(out / "checkpoint.npz"), str(tmp_path / "s.npz"),
                        "--data-dir", str(tiny_mnist)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot export to NIR: layer 1: soft reset")
    assert not (tmp_path / "s.npz").exists()
