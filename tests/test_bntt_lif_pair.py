"""``Sequential`` runs BNTT followed by LIF as a pair that keeps the intermediate current in a
reused workspace (layers/bntt_lif.py). It must compute exactly what the two layers compute one
after the other — same spikes, same saved state, same gradients, bit for bit — in every mode."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.layers import BNTT, LIF, Linear, Readout
from minisnn.losses import cross_entropy
from minisnn.network import Sequential


def build(T, C, shape, reset, detach, surrogate, seed, dtype):
    rng = np.random.default_rng(seed)
    layers = [BNTT(T, C, dtype=dtype), LIF(leak=0.9, threshold=0.8, reset=reset, detach_reset=detach,
                                           surrogate=surrogate)]
    layers[0].gamma.data[...] = rng.uniform(0.5, 2.0, (T, C))
    if len(shape) == 0:   # fully connected: add a readout so the upstream gradient is the broadcast one
        layers.append(Readout(C, 3, rng=rng, dtype=dtype))
    return Sequential(*layers)


@settings(deadline=None, max_examples=25)
@given(T=st.integers(1, 6), B=st.integers(2, 5), C=st.integers(1, 5),
       shape=st.sampled_from([(), (2,), (2, 3)]), reset=st.sampled_from(["soft", "hard"]),
       detach=st.booleans(), surrogate=st.sampled_from(["triangle", "fast_sigmoid", "arctan"]),
       smooth=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_pair_is_bit_identical_to_the_layers_one_after_the_other(T, B, C, shape, reset, detach, surrogate,
                                                                  smooth, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((T, B, C) + shape) * 2 + 0.5).astype(dtype)
    nets = [build(T, C, shape, reset, detach, surrogate, seed, dtype) for _ in range(2)]
    nets[1].fuse = False
    labels = rng.integers(0, 3, B)
    dy_spikes = rng.standard_normal(x.shape).astype(dtype)
    outs, grads = [], []
    for net in nets:
        net.layers[1].smooth = smooth
        out = net.forward(x, train=True)
        dy = cross_entropy(out, labels)[1] if len(shape) == 0 else dy_spikes
        outs.append((out, net.layers[1].last_spikes, net.layers[0].running_mean, net.layers[0].running_var))
        grads.append([net.backward(dy)] + [p.grad for p in net.parameters()])
    for a, b in zip(outs[0] + tuple(grads[0]), outs[1] + tuple(grads[1])):
        np.testing.assert_array_equal(a, b)
    assert nets[0].layers[1].last_spikes.dtype == dtype


def test_pair_is_used_only_with_batch_statistics():
    """Training, or evaluation with batch statistics, pairs the layers; evaluation with running
    statistics runs them separately (and still agrees with the unpaired network)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    net = Sequential(Linear(5, 6, rng=rng, dtype=np.float64), BNTT(4, 6, dtype=np.float64), LIF(),
                     Readout(6, 2, rng=rng, dtype=np.float64))
    net.forward(x, train=True)
    assert net._scratch_buffer is not None
    fresh = Sequential(*net.layers[:1], BNTT(4, 6, dtype=np.float64), LIF(), net.layers[3])
    fresh.forward(x, train=False)
    assert fresh._scratch_buffer is None


def test_pair_backward_after_unpaired_forward_and_the_reverse():
    """Both keep the same state, so either backward may follow either forward."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4, 3))
    dy = rng.standard_normal((5, 4, 3))
    results = []
    for fuse_forward, fuse_backward in [(True, True), (True, False), (False, True), (False, False)]:
        net = Sequential(BNTT(5, 3, dtype=np.float64), LIF(threshold=0.5))
        net.fuse = fuse_forward
        net.forward(x, train=True)
        net.fuse = fuse_backward
        results.append((net.backward(dy), net.layers[0].gamma.grad.copy()))
    for dx, dgamma in results[1:]:
        np.testing.assert_array_equal(dx, results[0][0])
        np.testing.assert_array_equal(dgamma, results[0][1])
    assert np.abs(results[0][0]).max() > 0


@pytest.mark.parametrize("mode", ["batch", "running"])
def test_out_arrays_receive_the_same_values_as_new_ones(mode):
    """BNTT.forward(out=) and LIF.backward(out=), which the pair uses, write into ``out`` exactly
    what they would return as a new array, in both BNTT modes."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5))
    dy = rng.standard_normal((4, 3, 5))
    norm, lif = BNTT(4, 5, dtype=np.float64), LIF(threshold=0.5)
    norm.eval_stats = mode
    norm.running_mean[...] = rng.normal(size=(4, 5))
    fresh = norm.forward(x, train=False)
    out = np.full(x.size, np.nan)
    written = norm.forward(x, train=False, out=out)
    np.testing.assert_array_equal(written, fresh)
    np.testing.assert_array_equal(out.reshape(x.shape), fresh)
    lif.forward(fresh)
    new_dx = lif.backward(dy)
    out = np.full(x.size, np.nan)
    np.testing.assert_array_equal(lif.backward(dy, out=out), new_dx)
    np.testing.assert_array_equal(out.reshape(x.shape), new_dx)
