"""NIR files: minisnn → .nir → ``nir.read`` → minisnn with identical spikes, the CLI
(``python -m minisnn.export nir|spikes|verify``), hwmodel pricing a .nir graph with an HDF5 spikes
file exactly like the run file, a graph written by another tool, and (optional) snnTorch's NIR
importer. Needs the nir extra (nir, h5py); the plain-data side is tested in test_nir_graph.py."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

nir = pytest.importorskip("nir", reason="the NIR tests need the nir extra: pip install -e '.[nir]'")
pytest.importorskip("h5py", reason="the NIR tests need the nir extra: pip install -e '.[nir]'")

from hwmodel import energy  # noqa: E402
from hwmodel.counts import count_run  # noqa: E402
from hwmodel.nirgraph import NIRGraphError, read_any_run, read_nir_run  # noqa: E402
from hwmodel.runfile import read_run  # noqa: E402
from hwmodel.spikefile import SpikesFormatError, read_spikes  # noqa: E402
from minisnn import export, models  # noqa: E402
from minisnn.nir_graph import NIRError, from_graph  # noqa: E402
from test_nir_graph import conv_net, fc_net, poisson, randomise_bn, spikes_and_logits  # noqa: E402


def assert_same_spikes(net, other, x):
    (z, s), (z2, s2) = spikes_and_logits(net, x), spikes_and_logits(other, x)
    np.testing.assert_array_equal(z, z2)
    assert len(s) == len(s2)
    for a, b in zip(s, s2):
        np.testing.assert_array_equal(a, b)


@settings(deadline=None, max_examples=6)
@given(st.integers(0, 2 ** 31), st.sampled_from(["fc", "conv"]), st.sampled_from([np.float32, np.float64]))
def test_file_round_trip_gives_identical_spikes(tmp_path_factory, seed, shape, dtype):
    rng = np.random.default_rng(seed)
    if shape == "fc":
        net, in_shape = models.fc_snn([7, 11, 4], 4, norm="none", leak=0.95, threshold=0.5, reset="hard",
                                      dtype=dtype, seed=seed), (7,)
    else:
        net, in_shape = models.conv_snn([3, "P"], [5], 3, 3, 2, 8, norm="none", leak=0.9, threshold=0.4,
                                        reset="hard", dtype=dtype, seed=seed), (2, 8, 8)
    path = tmp_path_factory.mktemp("nir") / "net.nir"
    export.export_network(net, path, input_shape=in_shape)
    graph = nir.read(path)                                   # nir's own type checks pass
    assert isinstance(graph, nir.NIRGraph) and graph.metadata["dt"] == 1e-4
    back = export.import_nir(path)
    assert back.layers[0].weight.data.dtype == dtype
    assert_same_spikes(net, back, poisson(rng, (4, 3, *in_shape), 0.5).astype(dtype))


def test_another_dt_is_stored_and_read_back(tmp_path):
    net = fc_net([3, 4, 2], 2, leak=0.8)
    export.export_network(net, tmp_path / "a.nir", dt=1.0, input_shape=(3,))
    graph = export.read_nir(tmp_path / "a.nir")
    assert graph["metadata"]["dt"] == 1.0 and graph["nodes"]["lif_1"]["tau"][0] == pytest.approx(5.0)
    assert export.import_nir(tmp_path / "a.nir").lif_layers()[0].leak == 0.8
    # read with another dt, the same τ means another λ: dt is part of the graph's meaning
    assert export.import_nir(tmp_path / "a.nir", dt=0.5).lif_layers()[0].leak == pytest.approx(0.9)


def test_a_graph_written_by_another_tool(tmp_path):
    """snnTorch's convention (dt = 1e-4, τ = dt/(1 − β), r = τ/dt, β a float32), no metadata, per-neuron
    arrays, its Affine with a bias: read by minisnn and priced by hwmodel from raw spikes in HDF5."""
    beta = np.float32(0.9)
    rng = np.random.default_rng(0)
    w1, b1, w2 = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32), \
        rng.normal(size=(3, 5)).astype(np.float32)
    tau = np.full(5, 1e-4 / (1 - beta))
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([4])), nir.Affine(weight=w1, bias=b1),
        nir.LIF(tau=tau, r=tau / 1e-4, v_leak=np.zeros(5), v_threshold=np.full(5, 0.7), v_reset=np.zeros(5)),
        nir.Linear(weight=w2), nir.LIF(tau=tau[:3], r=tau[:3] / 1e-4, v_leak=np.zeros(3), v_threshold=np.ones(3)),
        nir.Output(output_type=np.array([3])))
    nir.write(tmp_path / "foreign.nir", graph)
    net = export.import_nir(tmp_path / "foreign.nir")
    assert [type(l).__name__ for l in net.layers] == ["Linear", "LIF", "Linear", "LIF"]
    assert net.lif_layers()[0].leak == pytest.approx(0.9, abs=1e-7) and net.lif_layers()[0].threshold == 0.7
    x = (rng.random((6, 8, 4)) < 0.5).astype(np.float32)
    _, kept = net.outputs(x, lambda i, layer: True)
    import h5py
    with h5py.File(tmp_path / "spikes.h5", "w") as f:
        f["format"], f["version"] = "nir-spikes", 1
        f["spikes/input"], f["spikes/lif"], f["spikes/lif_1"] = x, kept[1], kept[3]
    run = read_any_run(tmp_path / "foreign.nir", tmp_path / "spikes.h5")
    assert [l["kind"] for l in run.layers] == ["Linear", "LIF", "Linear", "LIF"] and run.n_samples == 8
    totals = count_run(run).totals()
    assert totals["synops"] == pytest.approx((5 * x.sum() + 3 * kept[1].sum()) / 8)
    assert totals["spikes"] == pytest.approx((kept[1].sum() + kept[3].sum()) / 8)


@pytest.mark.parametrize("norm", ["none", "bn"])
def test_nir_graph_and_hdf5_spikes_price_like_the_run_file(norm, tmp_path):
    rng = np.random.default_rng(2)
    net = conv_net(3, 3, 5, norm=norm)
    randomise_bn(net, rng)
    export.export_network(net, tmp_path / "net.nir", input_shape=(2, 8, 8))
    data = [(poisson(rng, (3, 4, 2, 8, 8), 0.4), rng.integers(0, 3, 4)) for _ in range(2)]
    export.record_spikes(net, data, tmp_path / "spikes.h5", run_path=tmp_path / "run.npz", input_shape=(2, 8, 8))
    a, b = read_nir_run(tmp_path / "net.nir", tmp_path / "spikes.h5"), read_run(tmp_path / "run.npz")
    assert count_run(a).totals() == count_run(b).totals()
    assert set(a.sources) == {"input", "L1", "X4", "L5"}           # the run format's names, as minisnn's
    assert a.meta["nir_sources"]["L1"] == ("lif_1" if norm == "none" else "lif_2")


def test_energy_cli_reads_a_nir_graph(tmp_path, capsys):
    try:
        energy.parse_args(["net.nir", "--spikes", "spikes.h5"])
    except SystemExit:
        capsys.readouterr()
        pytest.skip("hwmodel.energy has no --spikes option yet (issue #17: its lines go in energy.py)")
    rng = np.random.default_rng(4)
    net = fc_net([6, 9, 3], 3)
    export.export_network(net, tmp_path / "net.nir", input_shape=(6,))
    data = [(poisson(rng, (3, 4, 6)), rng.integers(0, 3, 4))]
    export.record_spikes(net, data, tmp_path / "spikes.h5", run_path=tmp_path / "run.npz", input_shape=(6,))
    assert energy.main([str(tmp_path / "net.nir"), "--spikes", str(tmp_path / "spikes.h5"), "--json"]) == 0
    via_nir = json.loads(capsys.readouterr().out)
    assert energy.main([str(tmp_path / "run.npz"), "--json"]) == 0
    via_run = json.loads(capsys.readouterr().out)
    assert via_nir["totals"] == via_run["totals"]


def snntorch_script():
    """validation/snntorch_nir.py as a module."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "validation" / "snntorch_nir.py"
    spec = importlib.util.spec_from_file_location("snntorch_nir", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def trained(tiny_mnist, tmp_path, capsys):
    """A tiny MNIST network trained with --reset hard --norm bn (T = 3, one epoch)."""
    from minisnn import train
    out = tmp_path / "out"
    assert train.main(["mnist", "--T", "3", "--epochs", "1", "--batch-size", "10", "--reset", "hard",
                       "--norm", "bn", "--data-dir", str(tiny_mnist), "--out", str(out)]) == 0
    capsys.readouterr()
    return out / "checkpoint.npz", tiny_mnist


def test_export_cli_writes_verifies_and_records(trained, tmp_path, capsys):
    ckpt, data = trained
    assert export.main(["nir", str(ckpt), str(tmp_path / "net.nir")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'net.nir'}: 6 NIR nodes (Input, Affine, LIF, ")
    rc = export.main(["verify", str(ckpt), str(tmp_path / "net.nir"), "--data-dir", str(data)])
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 20 and result["predictions_agree"] == 20 and result["layers"][0]["spikes"] > 0
    assert rc == (0 if result["identical"] else 1)
    # the fold rounds once (to float32): a membrane within round-off of θ may fire on one side only
    assert result["layers"][0]["differ"] <= 0.001 * 20 * 3 * 800
    assert export.main(["spikes", str(ckpt), str(tmp_path / "s.h5"), "--data-dir", str(data), "--subset", "9"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 9
    assert read_nir_run(tmp_path / "net.nir", tmp_path / "s.h5").n_samples == 9


def test_export_cli_errors_are_one_line(trained, tmp_path, capsys):
    ckpt, _ = trained
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    assert export.main(["verify", str(ckpt), str(tmp_path / "junk.nir")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'junk.nir'}: not a readable NIR graph")
    with pytest.raises(NIRError, match="no such file"):
        export.read_nir(tmp_path / "missing.nir")
    with pytest.raises(NIRGraphError, match=f"^{tmp_path / 'junk.nir'}: not a readable NIR graph"):
        read_any_run(tmp_path / "junk.nir", tmp_path / "s.h5")
    export.record_spikes(fc_net([3, 2, 2], 2), [(np.ones((2, 1, 3)), None)], tmp_path / "s.h5", input_shape=(3,))
    (tmp_path / "cut.h5").write_bytes((tmp_path / "s.h5").read_bytes()[:300])
    with pytest.raises(SpikesFormatError, match=f"^{tmp_path / 'cut.h5'}: not a readable spikes file"):
        read_spikes(tmp_path / "cut.h5")


def test_snntorch_importer_gives_minisnn_spikes(tmp_path):
    """snnTorch's importer (β = 1 − dt/τ with dt = 1e-4, reset to zero at once), run in float64, fires
    the same spikes as minisnn (it has no mapping for NIR's I: the readout's integrator is left out,
    validation/snntorch_nir.py averages the readout's Linear over the steps instead)."""
    pytest.importorskip("torch", reason="the snnTorch comparison needs torch")
    pytest.importorskip("snntorch", reason="the snnTorch comparison needs snntorch")
    pytest.importorskip("nirtorch", reason="snntorch.import_nir needs nirtorch")
    v = snntorch_script()
    net = fc_net([12, 16, 16, 4], 6, leak=0.9375, threshold=0.5)     # λ exact in float32, as snnTorch holds it
    for p in net.parameters():       # its importer takes every weight through torch.Tensor: float32
        p.data[...] = p.data.astype(np.float32)
    export.export_network(net, tmp_path / "net.nir", input_shape=(12,))
    graph = export.read_nir(tmp_path / "net.nir")
    cut, dropped = v.without_integrators(graph)
    assert dropped == ["integrator_4"]
    module = v.import_from_nir(nir.dict2NIRNode(cut)).to(v.torch.float64)
    rng = np.random.default_rng(0)
    batches = [(poisson(rng, (6, 5, 12), 0.5), None) for _ in range(2)]
    layers, diff, agree, samples = v.compare(from_graph(graph), module, batches, v.torch.float64)
    assert [e["differ"] for e in layers] == [0, 0] and all(e["minisnn"] > 0 for e in layers)
    assert diff < 1e-12 and agree == samples == 10
