"""``Sequential`` runs a tail LIF → Readout as one scan that never writes the spikes
(layers/lif_readout.py). It must compute exactly what the two layers compute one after the
other — same scores, same saved membrane, same gradients, bit for bit."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.gradcheck import smooth_network
from minisnn.layers import BNTT, LIF, Linear, Readout, lif_readout
from minisnn.losses import cross_entropy
from minisnn.network import Sequential


def build(T, sizes, norm, reset, detach, seed, dtype):
    """Linear → [BNTT] → LIF per hidden size, then Readout; sizes[0] = 1 makes the fused input block."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype))
        if norm:
            layers.append(BNTT(T, n_out, dtype=dtype))
            layers[-1].gamma.data[...] = rng.uniform(0.5, 2.0, (T, n_out))
        layers.append(LIF(leak=0.9, threshold=0.3, reset=reset, detach_reset=detach))
    layers.append(Readout(sizes[-2], sizes[-1], rng=rng, dtype=dtype))
    return layers


@settings(deadline=None, max_examples=30)
@given(T=st.integers(1, 7), B=st.integers(2, 5), sizes=st.sampled_from([(3, 4, 2), (1, 5, 3), (1, 4, 6, 2), (2, 7, 3, 3)]),
       norm=st.booleans(), reset=st.sampled_from(["soft", "hard"]), detach=st.booleans(), train=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_fused_tail_is_bit_identical_to_the_layers_one_after_the_other(T, B, sizes, norm, reset, detach, train,
                                                                        dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, sizes[0])) * 2).astype(dtype)
    labels = rng.integers(0, sizes[-1], B)
    results = []
    for fuse in (True, False):
        net = Sequential(*build(T, sizes, norm, reset, detach, seed, dtype), fuse_readout=fuse)
        if not train and norm:
            net.set_eval_stats("batch")
        z = net.forward(x, train=train)
        dz = cross_entropy(z, labels)[1]
        membrane = net.layers[-2].gradient_support()[0].copy()
        dx = net.backward(dz)
        results.append([z, membrane, dx] + [p.grad for p in net.parameters()])
    assert results[0][0].dtype == dtype
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_the_tail_is_fused_only_in_passes_nobody_observes(monkeypatch):
    """Unobserved passes (training and evaluation) take the fused tail; an observer sees the
    spikes layer by layer; ``fuse_readout=False``, a smooth LIF (a subclass) and a LIF that is
    the fused input block's own never fuse."""
    calls = []
    real = lif_readout.forward
    monkeypatch.setattr(lif_readout, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(0)
    x = rng.random((5, 3, 4)).astype(np.float32)
    net = Sequential(*build(5, (4, 6, 3), True, "soft", True, 0, np.float32))
    net.forward(x, train=True)
    net.forward(x, train=False)
    assert len(calls) == 2
    seen = []
    net.forward(x, train=True, observe=lambda i, layer, _, y: seen.append(i))
    assert len(calls) == 2 and seen == list(range(len(net.layers)))
    for other in (Sequential(*net.layers, fuse_readout=False), smooth_network(net)):
        other.forward(x, train=True)
    input_block = Sequential(*build(5, (1, 6, 3), True, "soft", True, 0, np.float32))
    input_block.forward(rng.random((5, 3, 1)).astype(np.float32), train=True)
    assert len(calls) == 2


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_time_mean_scan_equals_the_spikes_mean(reset):
    """The kernel's ō is the mean of the spikes ``lif_scan_forward`` writes, and its membrane theirs."""
    from minisnn.kernels.lif import lif_scan_forward, lif_scan_forward_mean
    from minisnn.kernels.reduce import time_mean
    rng = np.random.default_rng(1)
    current = (rng.standard_normal((9, 3000)) + 0.4).astype(np.float32)
    hard = reset == "hard"
    spikes, membrane = lif_scan_forward(current, np.float32(0.9), np.float32(1.0), hard,
                                        np.empty_like(current), np.empty_like(current))
    fused_membrane = np.empty_like(current)
    mean = lif_scan_forward_mean(current, np.float32(0.9), np.float32(1.0), hard, fused_membrane)
    np.testing.assert_array_equal(mean, time_mean(spikes))
    np.testing.assert_array_equal(fused_membrane, membrane)
    assert 0.05 < spikes.mean() < 0.95
