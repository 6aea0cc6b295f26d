"""hwmodel counting, checked against counts worked out by hand (and brute force) on run files
built directly in the format — no network needed, so Conv2d/pooling need not exist in minisnn."""
import itertools

import numpy as np
import pytest

from hwmodel import geometry
from hwmodel.counts import count_run
from hwmodel.runfile import read_run, write_run


def lin(i, n_in, n_out, in_shape, out_shape, source, kind="Linear"):
    return {"index": i, "kind": kind, "in_shape": in_shape, "out_shape": out_shape, "input": source,
            "params": {"in_features": n_in, "out_features": n_out}}


def lif(i, shape, out):
    return {"index": i, "kind": "LIF", "in_shape": shape, "out_shape": shape, "output": out, "params": {}}


def conv(i, cin, cout, k, s, p, in_shape, out_shape, source):
    return {"index": i, "kind": "Conv2d", "in_shape": in_shape, "out_shape": out_shape, "input": source,
            "params": {"in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": s, "padding": p}}


def pool(i, k, in_shape, out_shape, source, s=None):
    return {"index": i, "kind": "AvgPool2d", "in_shape": in_shape, "out_shape": out_shape, "input": source,
            "params": {"kernel_size": k, "stride": k if s is None else s}}


def flatten(i, in_shape):
    return {"index": i, "kind": "Flatten", "in_shape": in_shape, "out_shape": [int(np.prod(in_shape))]}


def make(tmp_path, layers, sources, counts, T, n, name="run.npz"):
    path = tmp_path / name
    write_run(path, T=T, n_samples=n, layers=layers, sources=sources, counts=counts)
    return read_run(path)


def tiny_linear_run(tmp_path, binary=True):
    """Linear(3→2) → LIF(2) → Readout(2→2), T = 2, two samples.

    input nonzeros per (t, i): t0 [2, 0, 1], t1 [0, 1, 0];   LIF spikes: t0 [1, 0], t1 [2, 1]
    """
    layers = [lin(0, 3, 2, [3], [2], "input"), lif(1, [2], "L1"), lin(2, 2, 2, [2], [2], "L1", kind="Readout")]
    sources = {"input": {"shape": [3], "binary": binary, "origin": "input"},
               "L1": {"shape": [2], "binary": True, "origin": "spikes"}}
    counts = {"input": np.array([[2, 0, 1], [0, 1, 0]]), "L1": np.array([[1, 0], [2, 1]])}
    return make(tmp_path, layers, sources, counts, T=2, n=2)


def test_tiny_linear_network_by_hand(tmp_path):
    c = count_run(tiny_linear_run(tmp_path))
    linear, neurons, readout = c.layers
    # Linear: events t0 = 3, t1 = 1, fan-out 2, over 2 samples -> 3 and 1 per sample
    np.testing.assert_allclose(linear.synops, [3.0, 1.0])
    np.testing.assert_allclose(linear.macs, [0.0, 0.0])
    np.testing.assert_allclose(linear.dense_ops, [6.0, 6.0])          # 3×2 connections every step
    assert linear.ann_macs == 6
    # LIF: 2 neurons updated each step; spikes 1/2 and 3/2 per sample
    np.testing.assert_allclose(neurons.neuron_updates, [2.0, 2.0])
    np.testing.assert_allclose(neurons.spikes, [0.5, 1.5])
    assert neurons.spike_rate == pytest.approx(0.5)
    # Readout: a synaptic layer at every step on the spikes: (1·2)/2 and (3·2)/2
    np.testing.assert_allclose(readout.synops, [1.0, 3.0])
    assert readout.ann_macs == 4
    t = c.totals()
    # zero-skipping ANN: the first layer reads its (image) input densely, the readout reads
    # hidden ReLU activations at the assumed density 0.5: 6 + 0.5·4
    assert t == pytest.approx({"synops": 8.0, "macs": 0.0, "dense_ops": 20.0, "neuron_updates": 4.0, "spikes": 2.0,
                               "norm_ops": 0.0, "ann_macs": 10.0, "ann_macs_skip": 8.0, "spike_rate": 0.5,
                               "input_events": 2.0})
    np.testing.assert_allclose(c.per_timestep("synops"), [4.0, 4.0])


def test_non_binary_first_layer_counts_macs(tmp_path):
    c = count_run(tiny_linear_run(tmp_path, binary=False))
    np.testing.assert_allclose(c.layers[0].macs, [3.0, 1.0])     # effective MACs: non-zero inputs only
    np.testing.assert_allclose(c.layers[0].synops, [0.0, 0.0])
    assert c.totals()["synops"] == 4.0 and c.totals()["macs"] == 4.0
    assert not c.input_binary


def test_conv_padding_stride_and_borders_by_hand(tmp_path):
    """Conv2d(1→2, k=3, s=2, p=1) on 4×4 -> 2×2. Along an axis output 0 reads rows {-1,0,1}
    (row -1 is padding) and output 1 reads {1,2,3}, so the row fan-outs are [1, 2, 1, 1].
    Spikes at the corners (0,0), (0,3), (3,3) and at (1,1):
        2·1·1 + 2·1·1 + 2·1·1 + 2·2·2 = 14 synops."""
    counts = np.zeros((1, 1, 4, 4), dtype=np.int64)
    for h, w in [(0, 0), (0, 3), (3, 3), (1, 1)]:
        counts[0, 0, h, w] = 1
    layers = [conv(0, 1, 2, 3, 2, 1, [1, 4, 4], [2, 2, 2], "input")]
    run = make(tmp_path, layers, {"input": {"shape": [1, 4, 4], "binary": True}}, {"input": counts}, T=1, n=1)
    layer = count_run(run).layers[0]
    assert layer.synops.tolist() == [14.0]
    np.testing.assert_array_equal(geometry.axis_fanout(4, 3, 2, 1), [1, 2, 1, 1])
    # dense: per axis 2 + 3 in-bounds taps (outputs 0 and 1) -> 5·5 taps × 2 output channels
    assert layer.dense_ops.tolist() == [50.0] and layer.ann_macs == 50
    assert layer.n_weights == 2 * 1 * 3 * 3


def brute_force_conv_events(x, cout, k, s, p):
    """Σ over outputs of the number of non-zero inputs under the kernel (zeros outside)."""
    C, H, W = x.shape
    ho, wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    total = 0
    for o, i, j in itertools.product(range(cout), range(ho), range(wo)):
        for c, a, b in itertools.product(range(C), range(k), range(k)):
            h, w = i * s - p + a, j * s - p + b
            if 0 <= h < H and 0 <= w < W and x[c, h, w] != 0:
                total += 1
    return total, (cout, ho, wo)


@pytest.mark.parametrize("C,H,W,cout,k,s,p", [(1, 5, 5, 2, 3, 1, 1), (2, 6, 7, 3, 3, 2, 1), (1, 7, 5, 1, 5, 3, 2),
                                               (2, 4, 4, 2, 2, 2, 0), (1, 6, 6, 1, 3, 2, 0)])
def test_conv_matches_brute_force(tmp_path, C, H, W, cout, k, s, p):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    T, n = 3, 4
    spikes = (rng.random((T, n, C, H, W)) < 0.3).astype(np.int64)
    expected = np.zeros(T)
    for t, b in itertools.product(range(T), range(n)):
        events, out_shape = brute_force_conv_events(spikes[t, b], cout, k, s, p)
        expected[t] += events / n
    layers = [conv(0, C, cout, k, s, p, [C, H, W], list(out_shape), "input")]
    run = make(tmp_path, layers, {"input": {"shape": [C, H, W], "binary": True}}, {"input": spikes.sum(axis=1)}, T, n)
    layer = count_run(run).layers[0]
    np.testing.assert_allclose(layer.synops, expected)
    dense, _ = brute_force_conv_events(np.ones((C, H, W)), cout, k, s, p)
    assert layer.ann_macs == dense


def pooled_run(tmp_path, head):
    """LIF [1,4,4] → AvgPool2d(2) → [1,2,2] → head. Spikes at (0,0), (0,1), (3,3) in one sample:
    window (0,0) holds 2 spikes (value 0.5), window (1,1) one (0.25): 2 non-zero pooled values."""
    spikes = np.zeros((1, 1, 4, 4), dtype=np.int64)
    for h, w in [(0, 0), (0, 1), (3, 3)]:
        spikes[0, 0, h, w] = 1
    pooled = np.array([[[[1, 0], [0, 1]]]])
    layers = [lif(0, [1, 4, 4], "L0"), pool(1, 2, [1, 4, 4], [1, 2, 2], "L0")] + head
    sources = {"input": {"shape": [1, 4, 4], "binary": False}, "L0": {"shape": [1, 4, 4], "binary": True},
               "X": {"shape": [1, 2, 2], "binary": False, "origin": "spikes"}}
    return make(tmp_path, layers, sources, {"input": np.ones((1, 1, 4, 4), int), "L0": spikes, "X": pooled}, 1, 1)


def test_pool_then_linear_unfolded_and_folded(tmp_path):
    run = pooled_run(tmp_path, [flatten(2, [1, 2, 2]), lin(3, 4, 3, [4], [3], "X")])
    plain = count_run(run).layers[3]
    assert plain.macs.tolist() == [6.0] and plain.synops.tolist() == [0.0]   # 2 pooled non-zeros × 3
    assert plain.dense_ops.tolist() == [12.0]
    folded = count_run(run, fold_pool=True)
    f = folded.layers[3]
    assert f.synops.tolist() == [9.0] and f.macs.tolist() == [0.0]          # 3 spikes × 3 outputs
    assert f.dense_ops.tolist() == [48.0]                                     # 16 pixels × 3
    assert f.ann_macs == 12                                                   # the architecture is unchanged
    assert "folded" in folded.layers[1].note


def test_pool_then_conv_folded(tmp_path):
    """Conv(1→1, k=3, p=1) on the 2×2 pooled map: every pooled position feeds both outputs along
    each axis (fan-out 4). Unfolded: 2 pooled non-zeros × 4 = 8 MACs. Folded: a pixel reaches the
    union of what its window reaches, 4 outputs: 3 spikes × 4 = 12 synops."""
    run = pooled_run(tmp_path, [conv(2, 1, 1, 3, 1, 1, [1, 2, 2], [1, 2, 2], "X")])
    assert count_run(run).layers[2].macs.tolist() == [8.0]
    folded = count_run(run, fold_pool=True).layers[2]
    assert folded.synops.tolist() == [12.0] and folded.macs.tolist() == [0.0]


@pytest.mark.parametrize("H,pk,ps,k,s,p", [(6, 2, 2, 3, 1, 1), (7, 3, 2, 3, 2, 1), (5, 3, 1, 2, 1, 0)])
def test_folded_fanout_matches_brute_force(H, pk, ps, k, s, p):
    hp = geometry.out_size(H, pk, ps, 0)
    ho = geometry.out_size(hp, k, s, p)
    fan = geometry.folded_fanout({"kernel_size": pk, "stride": ps}, (1, H, H), "Conv2d",
                                 {"in_channels": 1, "out_channels": 2, "kernel_size": k, "stride": s, "padding": p},
                                 (1, hp, hp))
    for h, w in itertools.product(range(H), range(H)):
        reached = set()
        for qh, qw in itertools.product(range(hp), range(hp)):
            if not (qh * ps <= h < qh * ps + pk and qw * ps <= w < qw * ps + pk):
                continue
            for oh, ow in itertools.product(range(ho), range(ho)):
                if oh * s - p <= qh < oh * s - p + k and ow * s - p <= qw < ow * s - p + k:
                    reached.add((oh, ow))
        assert fan[0, h, w] == 2 * len(reached), (h, w)


def test_pool_on_non_binary_input_is_not_folded(tmp_path):
    layers = [pool(0, 2, [1, 4, 4], [1, 2, 2], "input"), flatten(1, [1, 2, 2]), lin(2, 4, 1, [4], [1], "X")]
    sources = {"input": {"shape": [1, 4, 4], "binary": False}, "X": {"shape": [1, 2, 2], "binary": False}}
    run = make(tmp_path, layers, sources, {"input": np.ones((1, 1, 4, 4), int), "X": np.ones((1, 1, 2, 2), int)}, 1, 1)
    c = count_run(run, fold_pool=True)
    assert c.layers[2].macs.tolist() == [4.0]
    assert any("not folded" in n for n in c.notes)
