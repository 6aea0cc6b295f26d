"""``Sequential`` runs a pixel-sequence network's first layer, Linear(1, H) → BNTT → LIF, as one
scan over a current it never stores (layers/input_block.py). In float64 it must compute what the
three layers compute one by one (``fuse_input=False``) — spikes, logits, running statistics,
every parameter's gradient, ∂L/∂x and what an observer of the backward pass sees — to rounding,
with random upstream gradients."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn import models
from minisnn.gradcheck import smooth_network
from minisnn.layers import BNTT, LIF, Linear, Readout
from minisnn.network import Sequential
from minisnn.training import train_step

RTOL, ATOL = 1e-9, 1e-12


def build(T, H, reset, detach, surrogate, leak, seed, fuse_input, dtype=np.float64):
    rng = np.random.default_rng(seed)
    layers = [Linear(1, H, rng=rng, dtype=dtype), BNTT(T, H, dtype=dtype),
              LIF(leak=leak, threshold=0.7, reset=reset, detach_reset=detach, surrogate=surrogate),
              Linear(H, 5, rng=rng, dtype=dtype), BNTT(T, 5, dtype=dtype), LIF(leak=leak, threshold=0.7),
              Readout(5, 3, rng=rng, dtype=dtype)]
    layers[1].gamma.data[...] = rng.uniform(0.3, 2.0, (T, H))
    return Sequential(*layers, fuse_input=fuse_input)


@settings(deadline=None, max_examples=30)
@given(T=st.integers(1, 7), B=st.integers(2, 40), H=st.integers(1, 9), reset=st.sampled_from(["soft", "hard"]),
       detach=st.booleans(), surrogate=st.sampled_from(["triangle", "fast_sigmoid", "arctan"]),
       leak=st.floats(0.5, 1.0), input_grad=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_fused_input_block_equals_the_layers_one_by_one(T, B, H, reset, detach, surrogate, leak, input_grad, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((T, B, 1)) * 3 - 0.5            # pixels, varied per step (B ≥ 2: a variance)
    dlogits = rng.standard_normal((B, 3))
    results = []
    for fuse in (True, False):
        net = build(T, H, reset, detach, surrogate, leak, seed, fuse)
        net.zero_grad()
        logits = net.forward(x, train=True)
        assert (net._input_saved is not None) == fuse
        dx = net.backward(dlogits, input_grad=input_grad)
        results.append([logits, net.layers[1].running_mean, net.layers[1].running_var,
                        *[p.grad.copy() for p in net.parameters()]] + ([dx] if input_grad else []))
        if not input_grad:
            assert dx is None
    for fused, reference in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=RTOL, atol=ATOL)


@settings(deadline=None, max_examples=10)
@given(T=st.integers(1, 5), B=st.integers(2, 20), H=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_an_observer_of_the_backward_pass_sees_the_same_gradients(T, B, H, seed):
    """Forward unobserved (fused), backward observed (as the surrogate sweep does): LIF's,
    BNTT's and Linear's input gradients are those of the layers one by one."""
    rng = np.random.default_rng(seed)
    x = rng.random((T, B, 1))
    dlogits = rng.standard_normal((B, 3))
    seen = []
    for fuse in (True, False):
        net = build(T, H, "soft", True, "triangle", 0.9, seed, fuse)
        net.forward(x, train=True)
        kept = {}
        net.backward(dlogits, observe=lambda i, layer, dy, dx: kept.setdefault(i, (dy.copy(), dx.copy())),
                     input_grad=True)
        seen.append(kept)
    assert sorted(seen[0]) == sorted(seen[1])
    for i in seen[1]:
        for a, b in zip(seen[0][i], seen[1][i]):
            np.testing.assert_allclose(np.broadcast_to(a, b.shape), b, rtol=RTOL, atol=ATOL)


def test_only_the_exact_arrangement_in_training_unobserved_is_fused():
    """A smooth LIF (gradient checks), a bias, more than one input feature, evaluation or an
    observer: layer by layer."""
    T, B, H = 4, 6, 3
    x = np.random.default_rng(0).random((T, B, 1))
    net = build(T, H, "soft", True, "triangle", 0.9, 0, True)
    assert net._input_block
    assert not smooth_network(net)._input_block
    assert not Sequential(Linear(2, H), BNTT(T, H), LIF(), Readout(H, 2))._input_block
    assert not Sequential(Linear(1, H, bias=True), BNTT(T, H), LIF(), Readout(H, 2))._input_block
    net.forward(x, train=False)
    assert net._input_saved is None
    net.forward(x, train=True, observe=lambda *a: None)
    assert net._input_saved is None
    net.forward(x, train=True)
    assert net._input_saved is not None
    net.clear()
    assert net._input_saved is None and net.layers[2]._saved_membrane is None


@settings(deadline=None, max_examples=20)
@given(T=st.integers(1, 6), B=st.integers(2, 30), H=st.integers(2, 40), event_driven=st.sampled_from(["auto", True, False]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_spikes_handed_to_the_next_linear_as_bits_change_nothing(T, B, H, event_driven, dtype, seed):
    """The fused block writing its spikes as bits for the Linear after it (``input_bits``) gives
    the same logits, statistics and gradients bit for bit as the block writing float spikes, on
    the event-driven path and on BLAS's (the bits unpacked)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, 1)) * 3 - 0.5).astype(dtype)
    dlogits = rng.standard_normal((B, 3)).astype(dtype)
    results = []
    for bits in (True, False):
        layers = build(T, H, "soft", True, "triangle", 0.9, seed, True, dtype=dtype).layers
        layers[3].event_driven = event_driven
        net = Sequential(*layers, input_bits=bits)
        assert net._input_bits == bits
        net.zero_grad()
        logits = net.forward(x, train=True)
        if bits and event_driven is True:
            assert layers[3]._saved_pattern is not None and layers[3]._saved_x is None
        net.backward(dlogits, input_grad=False)
        results.append([logits, layers[4].running_mean, *[p.grad.copy() for p in net.parameters()]])
    for with_bits, with_floats in zip(*results):
        np.testing.assert_array_equal(with_bits, with_floats)


def test_a_bntt_built_for_fewer_steps_refuses_the_input():
    net = build(3, 4, "soft", True, "triangle", 0.9, 0, True)
    with pytest.raises(ValueError, match="3 time steps"):
        net.forward(np.zeros((5, 2, 1)), train=True)


def test_smnist_training_steps_in_float32_match_the_layers_one_by_one():
    """Three SGD steps of the real sMNIST network (short sequences): the same loss, to float32
    rounding, and the same weights after them."""
    from minisnn.optim import SGD
    rng = np.random.default_rng(1)
    x = rng.random((60, 32, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    runs = []
    for fuse in (True, False):
        net = Sequential(*models.smnist_fc(T=60).layers, fuse_input=fuse)
        opt = SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        losses = [train_step(net, opt, x, y)[0] for _ in range(3)]
        runs.append((losses, [p.data.copy() for p in net.parameters()]))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-4)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
