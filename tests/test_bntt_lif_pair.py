"""``Sequential`` runs BNTT followed by LIF as a pair that keeps the intermediate current in its
workspace (layers/bntt_lif.py). It must compute exactly what the two layers compute one
after the other — same spikes, same saved state, same gradients, bit for bit — in every mode."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.gradcheck import smooth_network
from minisnn.layers import BNTT, LIF, BatchNorm, Linear, Readout
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
       smooth=st.booleans(), train=st.booleans(), eval_stats=st.sampled_from(["running", "batch"]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_pair_is_bit_identical_to_the_layers_one_after_the_other(T, B, C, shape, reset, detach, surrogate,
                                                                  smooth, train, eval_stats, dtype, seed):
    """Paired and unpaired networks (``pair=False``) agree bit for bit in training and in both
    evaluation modes, with real or smooth spikes (``gradcheck.SmoothLIF`` is a LIF, so it pairs)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((T, B, C) + shape) * 2 + 0.5).astype(dtype)
    nets = []
    for pair in (True, False):
        net = build(T, C, shape, reset, detach, surrogate, seed, dtype)
        net = smooth_network(net) if smooth else net
        nets.append(Sequential(*net.layers, pair=pair))
    assert nets[0]._paired == {0} and nets[1]._paired == set()
    labels = rng.integers(0, 3, B)
    dy_spikes = rng.standard_normal(x.shape).astype(dtype)
    outs, grads = [], []
    for net in nets:
        net.set_eval_stats(eval_stats)
        out, spikes = net.outputs(x, LIF, train=train)
        dy = cross_entropy(out, labels)[1] if len(shape) == 0 else dy_spikes
        outs.append((out, spikes[1], net.layers[0].running_mean, net.layers[0].running_var))
        grads.append([net.backward(dy)] + [p.grad for p in net.parameters()])
    for a, b in zip(outs[0] + tuple(grads[0]), outs[1] + tuple(grads[1])):
        np.testing.assert_array_equal(a, b)
    assert outs[0][1].dtype == dtype


def test_pairing_is_decided_by_layer_type_when_the_network_is_built():
    """Only BNTT directly followed by LIF pairs, and the current lives in the network's workspace
    (not a fresh array) in training and in evaluation alike."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    net = Sequential(Linear(5, 6, rng=rng, dtype=np.float64), BNTT(4, 6, dtype=np.float64), LIF(),
                     Linear(6, 6, rng=rng, dtype=np.float64), LIF(), BatchNorm(6, dtype=np.float64), LIF(),
                     Readout(6, 2, rng=rng, dtype=np.float64))
    assert net._paired == {1}
    for train in (True, False):
        currents = {}
        net.forward(x, train=train, observe=lambda i, layer, _, y: currents.setdefault(i, y))
        assert net.workspace.owns(currents[1])              # BNTT's output: the pair's buffer
        assert not any(net.workspace.owns(currents[i]) for i in currents if i != 1)
        net.clear()


def test_outputs_copies_what_lives_in_the_workspace():
    """``outputs`` hands back arrays that survive the next pass."""
    rng = np.random.default_rng(3)
    net = Sequential(BNTT(4, 3, dtype=np.float64), LIF(threshold=0.5))
    x1, x2 = rng.standard_normal((2, 4, 5, 3))
    _, kept = net.outputs(x1, BNTT, train=True)
    first = kept[0].copy()
    net.forward(x2, train=True)
    np.testing.assert_array_equal(kept[0], first)
    assert not net.workspace.owns(kept[0])


def test_backward_observer_sees_every_layer_in_reverse_with_its_gradient():
    rng = np.random.default_rng(4)
    net = Sequential(Linear(5, 6, rng=rng, dtype=np.float64), BNTT(4, 6, dtype=np.float64), LIF(threshold=0.3),
                     Readout(6, 2, rng=rng, dtype=np.float64))
    x = rng.standard_normal((4, 3, 5))
    _, dlogits = cross_entropy(net.forward(x), rng.integers(0, 2, 3))
    seen = []
    dx = net.backward(dlogits, observe=lambda i, layer, dy, dx: seen.append((i, dy.shape, dx.copy())))
    assert [i for i, _, _ in seen] == [3, 2, 1, 0]
    np.testing.assert_array_equal(seen[-1][2], dx)
    assert seen[0][1] == (3, 2) and seen[1][1] == (4, 3, 6)


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
