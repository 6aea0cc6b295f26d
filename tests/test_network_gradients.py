"""Whole networks: the hand-derived BPTT of ``Sequential.backward`` against finite differences.

``models.fc_snn`` builds Linear -> norm -> LIF blocks and a Readout, in float64. Inside
``gradcheck.network_gradients`` every LIF runs its smooth stand-in (detached resets frozen at the
point of the check), and the gradient of the softmax cross-entropy w.r.t. the input and EVERY
parameter must match central differences. Hypothesis draws the norm (BNTT, BN, LN, none), the
reset (soft/hard, detached/attached), depth, T, B, widths, leak, threshold, the surrogate and
its shape, and the seed; the labels are random.
"""
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn import models
from minisnn.gradcheck import max_relative_error, network_gradients

# Relative error (to the array's largest numerical entry): the triangle stand-in's kinks add at
# most O(ε) where a membrane sits within ε of one; a wrong derivation is off by O(1).
TOL = 1e-5
# Absolute floor: central differences with ε = 1e-6 on a cross-entropy of size O(1) carry a
# round-off of ~1e-10. Where a whole gradient array is tiny (a narrow triangle surrogate that
# few membranes reach) the relative error measures that round-off, so an array also passes if
# it is within 1e-9 of the numerical one everywhere -- still far below any real error there.
ROUNDOFF = 1e-9

# MINISNN_EXAMPLES raises the number of hypothesis examples for a longer soak run.
EXAMPLES = int(os.environ.get("MINISNN_EXAMPLES", 20))


@st.composite
def surrogates(draw):
    """A surrogate spec of any kind with a random height and width."""
    name = draw(st.sampled_from(["triangle", "fast_sigmoid", "arctan"]))
    return {"name": name, "height": draw(st.floats(0.2, 1.5)), "width": draw(st.floats(0.3, 1.5))}


def check_network(norm, reset, detach, T, B, sizes, leak, threshold, surrogate, seed):
    """Build the network, draw input and labels, and compare every gradient."""
    rng = np.random.default_rng(seed)
    net = models.fc_snn(sizes, T, norm=norm, reset=reset, detach_reset=detach, leak=leak,
                        threshold=threshold, surrogate=surrogate, dtype=np.float64, seed=seed)
    # non-trivial affine parameters, so their gradients are not those of the identity
    for name, p in net.named_parameters():
        if name.endswith("gamma"):
            p.data[...] = rng.uniform(0.5, 1.5, size=p.shape)
        elif name.endswith("beta"):
            p.data[...] = rng.normal(scale=0.3, size=p.shape)
    x = threshold * rng.uniform(-0.5, 1.5, size=(T, B, sizes[0]))
    labels = rng.integers(0, sizes[-1], size=B)

    results = network_gradients(net, x, labels)

    expected = {"x"} | {name for name, _ in net.named_parameters()}
    assert set(results) == expected
    for name, (analytic, numeric) in results.items():
        assert analytic.shape == numeric.shape, name
        assert analytic.dtype == np.float64, name
        err = max_relative_error(analytic, numeric)
        abs_err = np.abs(analytic - numeric).max()
        assert err < TOL or abs_err < ROUNDOFF, \
            f"{name}: relative error {err:.3e}, absolute {abs_err:.3e} (max |numeric| {np.abs(numeric).max():.3e})"
    return results


@settings(deadline=None, max_examples=EXAMPLES)
@given(norm=st.sampled_from(models.NORMS), reset=st.sampled_from(["soft", "hard"]), detach=st.booleans(),
       T=st.integers(1, 4), B=st.integers(3, 4), n_in=st.integers(2, 3),
       hidden=st.lists(st.integers(3, 5), min_size=1, max_size=2), n_out=st.integers(2, 3),
       leak=st.floats(0.5, 1.0), threshold=st.floats(0.5, 2.0), surrogate=surrogates(),
       seed=st.integers(0, 2**32 - 1))
def test_network_backward_matches_finite_differences(norm, reset, detach, T, B, n_in, hidden, n_out,
                                                     leak, threshold, surrogate, seed):
    """Sequential.backward of any fc_snn (every norm, reset mode and surrogate): ∂CE/∂x and
    ∂CE/∂θ for every parameter equal central differences of the smooth network."""
    check_network(norm, reset, detach, T, B, [n_in, *hidden, n_out], leak, threshold, surrogate, seed)


# n_in >= 2 and B >= 3 above: LayerNorm after Linear(1, n) is invariant to the scale of a scalar
# input (up to ε), and BN over 2 values nearly so; there ∂L/∂x is O(ε) and finite differences
# would compare round-off with round-off.


def test_every_configuration_once():
    """Each (norm, reset, detach) combination at least once, whatever hypothesis draws, on a
    two-hidden-layer network whose gradients are far from zero."""
    for norm in models.NORMS:
        for reset in ("soft", "hard"):
            for detach in (True, False):
                results = check_network(norm, reset, detach, T=3, B=3, sizes=[2, 4, 3, 3], leak=0.8,
                                        threshold=1.0, surrogate={"name": "arctan", "height": 1.0,
                                                                  "width": 0.5}, seed=7)
                # the input gradient is not vacuous: it reaches x through both LIF layers
                assert np.abs(results["x"][1]).max() > 1e-3


def test_training_skips_only_the_unread_input_gradient():
    """backward(input_grad=False), what train_step uses, gives every parameter the same gradient
    as the full backward (bit for bit) and returns None instead of ∂L/∂x."""
    from minisnn.encoding import poisson
    from minisnn.losses import cross_entropy
    rng = np.random.default_rng(5)
    for net, x in [(models.mnist_fc(T=3, hidden=(12,)), poisson(rng.random((4, 784)).astype(np.float32), 3, rng)),
                   (models.mnist_conv(T=2), poisson(rng.random((3, 1, 28, 28)).astype(np.float32), 2, rng))]:
        grads = []
        for input_grad in (True, False):
            _, dz = cross_entropy(net.forward(x, train=True), np.arange(x.shape[1]) % 10)
            net.zero_grad()
            dx = net.backward(dz, input_grad=input_grad)
            assert (dx is None) == (not input_grad)
            grads.append([p.grad.copy() for p in net.parameters()])
            net.clear()
        for a, b in zip(*grads):
            np.testing.assert_array_equal(a, b)
