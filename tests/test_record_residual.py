"""Recording and counting residual networks: a block's two paths become one layer list with
``after`` links and an ``Add``; every recorded spike count is the network's own, and hwmodel counts
and places the blocks (the identity shortcut as one connection per neuron)."""
import json

import numpy as np
import pytest

from hwmodel import energy, mapping
from hwmodel.counts import count_run
from hwmodel.profiles import load_profile
from hwmodel.runfile import RunFormatError, read_run, write_run
from minisnn import models
from minisnn.encoding import poisson
from minisnn.layers import LIF
from minisnn.record import record_run


def inner_spikes(net, x):
    """Every LIF layer's spike counts per step and neuron, in data order, from the network itself."""
    found = []

    def keep(path, layer, _, y):
        if isinstance(layer, LIF):
            found.append(np.count_nonzero(y, axis=1))

    net.forward(x, train=False, observe=keep)
    net.clear()
    return found


@pytest.mark.parametrize("sew", [False, True])
def test_a_recorded_resnet_holds_every_neurons_spikes(tmp_path, sew):
    net = models.resnet(depth=8, T=3, widths=(4, 8, 8), sew=sew)
    rng = np.random.default_rng(0)
    x = poisson(rng.random((5, 1, 28, 28)).astype(np.float32) * 2 - 0.5, 3, rng)
    record_run(net, [(x, np.arange(5) % 10)], tmp_path / "run.npz")
    run = read_run(tmp_path / "run.npz")
    lif = [e for e in run.layers if e["kind"] == "LIF"]
    # observe order is main, shortcut, neuron: the same as the run's LIF order
    expected = inner_spikes(net, x)
    assert len(lif) == len(expected) == 1 + 2 * 3
    for e, spikes in zip(lif, expected):
        np.testing.assert_array_equal(run.counts[e["output"]].reshape(spikes.shape), spikes)
    adds = [e for e in run.layers if e["kind"] == "Add"]
    assert len(adds) == 3
    identity = adds[0]                       # the first block keeps its width: an identity shortcut
    assert identity["input"] is not None and adds[1]["input"] is None      # the others project
    if sew:                                  # spikes + shortcut: the next conv reads non-binary sums
        after_block = run.layers[identity["index"] + 1]
        assert not run.sources[after_block["input"]]["binary"]
    counts = count_run(run)
    add = counts.layers[identity["index"]]
    src = run.counts[identity["input"]].reshape(3, -1)
    np.testing.assert_allclose(add.synops, src.sum(axis=1) / 5)            # fan-out 1 per non-zero
    assert counts.totals()["neuron_updates"] == 3 * sum(int(np.prod(e["out_shape"])) for e in lif)


def test_resnet_energy_and_mapping(tmp_path, capsys):
    net = models.resnet(depth=8, T=2, widths=(4, 8, 8))
    rng = np.random.default_rng(1)
    x = poisson(rng.random((4, 1, 28, 28)).astype(np.float32) * 2 - 0.5, 2, rng)
    record_run(net, [(x, None)], tmp_path / "run.npz")
    run = read_run(tmp_path / "run.npz")
    counts = count_run(run)
    m = mapping.place(run, counts, load_profile("loihi"))
    add = next(e for e in run.layers if e["kind"] == "Add")
    neuron = m.placements[[p.index for p in m.placements].index(add["index"] + 1)]
    # conv 4→4 3×3 on 28×28 plus the identity: fan-in 4·9 + 1; synapses: the conv's plus one per neuron
    conv_b = run.layers[add["params"]["operands"][0] - 1]
    assert conv_b["kind"] == "Conv2d" and neuron.fan_in == 4 * 9 + 1
    assert neuron.synapses == int(counts.layers[conv_b["index"]].dense_ops[0]) + 4 * 28 * 28
    assert add["index"] in m.traffic                                       # the identity's spikes travel
    assert energy.main([str(tmp_path / "run.npz"), "--json", "--profile", "cmos45nm", "--profile", "loihi"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["energy_pj"]["loihi"] > 0 and doc["profiles"]["loihi"]["mapping"]["fits"]


LAYERS = [
    {"index": 0, "kind": "Linear", "in_shape": [2], "out_shape": [2], "input": "input",
     "params": {"in_features": 2, "out_features": 2}},
    {"index": 1, "kind": "Add", "in_shape": [2], "out_shape": [2], "input": "input", "params": {"operands": [0, -1]}},
    {"index": 2, "kind": "LIF", "in_shape": [2], "out_shape": [2], "output": "L2", "params": {}},
]
SOURCES = {"input": {"shape": [2], "binary": True}, "L2": {"shape": [2], "binary": True}}
COUNTS = {"input": np.array([[2, 1], [0, 1]]), "L2": np.array([[1, 0], [1, 1]])}


def test_identity_shortcut_by_hand(tmp_path):
    """y = LIF(W·x + x) on 2 inputs, T = 2, two samples: the Linear does (2+1)·2 + 1·2 = 8
    synops per 2 samples, the identity one per non-zero input, (3 + 1)/2 = 2 per sample; the
    equivalent ANN adds 2 per pass."""
    run = read_run(write_run(tmp_path / "run.npz", T=2, n_samples=2, layers=LAYERS, sources=SOURCES, counts=COUNTS))
    c = count_run(run)
    assert c.layers[0].total("synops") == 4 and c.layers[1].total("synops") == 2
    assert c.layers[1].ann_macs == 2 and c.layers[1].dense_ops.sum() == 4


@pytest.mark.parametrize("edit,message", [
    (lambda l: l[1]["params"].update(operands=[0]), "needs params.operands"),
    (lambda l: l[1]["params"].update(operands=[0, 2]), "not an earlier layer"),
    (lambda l: l[0].update(after=1), "not an earlier layer"),
    (lambda l: l[1].update(input="nope"), "is not a recorded source"),
])
def test_bad_branches_are_refused(tmp_path, edit, message):
    layers = json.loads(json.dumps(LAYERS))
    edit(layers)
    with pytest.raises(RunFormatError, match=message):
        write_run(tmp_path / "bad.npz", T=2, n_samples=2, layers=layers, sources=SOURCES, counts=COUNTS)
