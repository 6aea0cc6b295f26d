"""Every layer's hand-written backward against central finite differences, in float64.

Each test draws shapes, hyper-parameters and a seed with hypothesis, builds one layer, and asks
``minisnn.gradcheck.layer_gradients`` for the analytic gradient (the layer's ``backward`` on a
RANDOM upstream gradient dy, never all ones) and the numerical one of L = Σ dy·layer(x), for the
input and for every parameter. They must agree to a relative error (max abs difference divided
by the largest numerical entry) below a tolerance that only a correct derivation meets.

LIF neurons run their smooth stand-in F (``gradcheck.SmoothLIF``), so finite differences see the
same function whose derivative the surrogate backward computes. A detached reset is checked as
``gradcheck.smooth_network`` does it: ``frozen_reset`` holds the reset signal of a first
forward pass, which is then a constant for finite differences.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.gradcheck import SmoothLIF, layer_gradients, max_relative_error
from minisnn.layers import BNTT, LIF, BatchNorm, LayerNorm, Linear, Readout

# Smooth layers (Linear, norms, Readout): FD error is round-off only (~1e-9 here).
TOL_SMOOTH = 1e-6
# LIF: the triangle's stand-in is piecewise quadratic, so FD has an O(ε) error where an input
# sits within ε of one of its kinks; 1e-5 leaves room for that and nothing else.
TOL_LIF = 1e-5

# MINISNN_EXAMPLES raises the number of hypothesis examples for a longer soak run.
SETTINGS = settings(deadline=None, max_examples=int(os.environ.get("MINISNN_EXAMPLES", 20)))

seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 5)


def assert_all_match(results, tol, expected_names):
    """Every named gradient is present and its analytic and numerical values agree."""
    assert set(results) == set(expected_names)
    for name, (analytic, numeric) in results.items():
        assert analytic.shape == numeric.shape, name
        err = max_relative_error(analytic, numeric)
        assert err < tol, f"{name}: relative error {err:.3e} (max |numeric| {np.abs(numeric).max():.3e})"


def random_dy(rng, shape):
    """A random upstream gradient with entries of both signs and varied sizes."""
    return rng.normal(size=shape)


@st.composite
def surrogates(draw):
    """A surrogate spec of any kind with a random height and width."""
    name = draw(st.sampled_from(["triangle", "fast_sigmoid", "arctan"]))
    height = draw(st.floats(0.2, 1.5))
    width = draw(st.floats(0.2, 1.5))
    return {"name": name, "height": height, "width": width}


# ---------------------------------------------------------------------------------------- Linear

@SETTINGS
@given(T=dims, B=dims, n_in=dims, n_out=dims, bias=st.booleans(), seed=seeds)
def test_linear_backward_matches_finite_differences(T, B, n_in, n_out, bias, seed):
    """Linear: dx = dy·W, dW = Σ_{t,b} dyᵀ·x and db = Σ dy, for [T, B, in] inputs, with and
    without bias."""
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, bias=bias, rng=rng, dtype=np.float64)
    if bias:
        layer.bias.data[...] = rng.normal(size=n_out)
    x = rng.normal(size=(T, B, n_in))
    dy = random_dy(rng, (T, B, n_out))
    names = ["x", "weight"] + (["bias"] if bias else [])
    assert_all_match(layer_gradients(layer, x, dy), TOL_SMOOTH, names)


# ------------------------------------------------------------------------------------------- LIF

@SETTINGS
@given(T=st.integers(2, 6), B=st.integers(1, 3), shape=st.sampled_from([(4,), (3,), (2, 2, 2), (1, 3, 2)]),
       leak=st.floats(0.5, 1.0), threshold=st.floats(0.5, 2.0), reset=st.sampled_from(["soft", "hard"]),
       detach=st.booleans(), surrogate=surrogates(), seed=seeds)
def test_lif_smooth_backward_matches_finite_differences(T, B, shape, leak, threshold, reset, detach,
                                                        surrogate, seed):
    """LIF BPTT (lif_scan_backward): δu_t = g_t·σ'_t + λ·δu_{t+1}·∂v_t/∂u_t with the reset's
    ∂v/∂u for soft/hard and detached/attached resets, every surrogate kind, any leak and
    threshold, on [T, B, N] and [T, B, C, H, W] inputs."""
    rng = np.random.default_rng(seed)
    lif = SmoothLIF(LIF(leak=leak, threshold=threshold, reset=reset, detach_reset=detach, surrogate=surrogate))
    # currents around the threshold, so membranes visit the surrogate's support
    x = threshold * rng.uniform(-0.5, 1.5, size=(T, B) + shape)
    if detach:
        lif.frozen_reset = lif.forward(x).copy()
    dy = random_dy(rng, x.shape)
    results = layer_gradients(lif, x, dy)
    assert_all_match(results, TOL_LIF, ["x"])


@pytest.mark.parametrize("surrogate", ["triangle", "fast_sigmoid", "arctan"])
@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("detach", [True, False])
def test_lif_every_reset_mode_and_surrogate(reset, detach, surrogate):
    """Each reset path (soft/hard × detached/attached) with each surrogate at least once,
    whatever hypothesis draws: T = 6 steps, λ = 0.8, θ = 1.2, currents that cross the threshold."""
    rng = np.random.default_rng(11)
    lif = SmoothLIF(LIF(leak=0.8, threshold=1.2, reset=reset, detach_reset=detach,
                        surrogate={"name": surrogate, "height": 0.9, "width": 0.6}))
    x = 1.2 * rng.uniform(-0.2, 1.4, size=(6, 3, 4))
    if detach:
        lif.frozen_reset = lif.forward(x).copy()
    analytic, numeric = layer_gradients(lif, x, random_dy(rng, x.shape))["x"]
    assert max_relative_error(analytic, numeric) < TOL_LIF
    assert np.abs(numeric[0]).max() > 1e-2     # the first step's input reaches the loss


def test_lif_gradient_check_is_not_vacuous():
    """The LIF check above must see a non-zero gradient that couples time steps: with leak < 1
    the input at t = 0 influences later outputs, so ∂L/∂I_0 differs from g_0·σ'_0 alone."""
    rng = np.random.default_rng(0)
    lif = SmoothLIF(LIF(leak=0.8, threshold=1.0, reset="soft", detach_reset=False, surrogate="arctan"))
    x = rng.uniform(0.0, 1.5, size=(4, 2, 3))
    dy = random_dy(rng, x.shape)
    analytic, numeric = layer_gradients(lif, x, dy)["x"]
    assert max_relative_error(analytic, numeric) < TOL_LIF
    u0 = x[0]                                   # u_0 = λ·v_{−1} + I_0 with v_{−1} = 0
    local = dy[0] * lif.surrogate.grad(u0 / 1.0 - 1.0)
    assert np.abs(numeric[0] - local).max() > 1e-3


# ----------------------------------------------------------------------------------------- norms

# Every normalisation group holds at least 3 values (batch >= 3 for BN/BNTT, >= 3 channels for
# LayerNorm): with 2 values x̂ = ±√(σ²/(σ²+ε)) is nearly constant, ∂L/∂x is O(ε) and a
# comparison against finite differences would measure their round-off only.
norm_shapes = st.one_of(
    st.tuples(dims),                                            # [T, B, C]
    st.tuples(dims, st.integers(1, 3), st.integers(1, 3)),      # [T, B, C, H, W]
)


def norm_input(rng, T, B, shape):
    """Inputs with a per-channel offset and spread, so statistics are not trivial."""
    C = shape[0]
    offset = rng.normal(size=(1, 1, C) + (1,) * (len(shape) - 1))
    return offset + rng.uniform(0.5, 2.0) * rng.normal(size=(T, B) + shape)


@SETTINGS
@given(T=dims, extra=st.integers(0, 2), B=st.integers(3, 5), shape=norm_shapes, seed=seeds)
def test_bntt_train_backward_matches_finite_differences(T, extra, B, shape, seed):
    """BNTT in training mode: per-step batch statistics, dx = γ_t/√(σ²_t+ε)·(dy − mean(dy) −
    x̂·mean(dy·x̂)), dγ_t = Σ dy·x̂; a layer built for more steps than the input (early exit)
    gives zero gradient to the unused γ rows."""
    rng = np.random.default_rng(seed)
    layer = BNTT(T + extra, shape[0], dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=layer.gamma.shape)
    x = norm_input(rng, T, B, shape)
    dy = random_dy(rng, x.shape)
    results = layer_gradients(layer, x, dy, train=True)
    assert_all_match(results, TOL_SMOOTH, ["x", "gamma"])
    assert np.all(results["gamma"][0][T:] == 0)


@SETTINGS
@given(T=dims, extra=st.integers(0, 2), B=st.integers(1, 4), shape=norm_shapes, seed=seeds)
def test_bntt_eval_input_gradient_matches_finite_differences(T, extra, B, shape, seed):
    """BNTT in evaluation mode is the affine map γ_t·(x − r_mean_t)/√(r_var_t + ε): dx (used by
    FGSM) and dγ must be its exact derivatives."""
    rng = np.random.default_rng(seed)
    layer = BNTT(T + extra, shape[0], dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=layer.gamma.shape)
    layer.running_mean[...] = rng.normal(size=layer.running_mean.shape)
    layer.running_var[...] = rng.uniform(0.2, 2.0, size=layer.running_var.shape)
    x = norm_input(rng, T, B, shape)
    dy = random_dy(rng, x.shape)
    results = layer_gradients(layer, x, dy, train=False)
    assert_all_match(results, TOL_SMOOTH, ["x", "gamma"])
    assert np.all(results["gamma"][0][T:] == 0)


def test_bntt_eval_fills_gamma_gradient():
    """In evaluation mode γ_t still scales the output, so ∂L/∂γ_t = Σ dy·(x − r_mean)
    /√(r_var + ε) is non-zero and backward must fill γ.grad (the network contract)."""
    rng = np.random.default_rng(1)
    layer = BNTT(3, 2, dtype=np.float64)
    x = rng.normal(size=(3, 4, 2))
    dy = random_dy(rng, x.shape)
    analytic, numeric = layer_gradients(layer, x, dy, train=False)["gamma"]
    assert max_relative_error(analytic, numeric) < TOL_SMOOTH


@SETTINGS
@given(T=dims, B=st.integers(3, 5), shape=norm_shapes, train=st.booleans(), seed=seeds)
def test_batchnorm_backward_matches_finite_differences(T, B, shape, train, seed):
    """BatchNorm shared over time: one (γ, β, statistics) over T, batch and space. In training
    and in evaluation mode (running statistics) dx, dγ and dβ match finite differences."""
    rng = np.random.default_rng(seed)
    layer = BatchNorm(shape[0], dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=layer.gamma.shape)
    layer.beta.data[...] = rng.normal(size=layer.beta.shape)
    layer.running_mean[...] = rng.normal(size=layer.running_mean.shape)
    layer.running_var[...] = rng.uniform(0.2, 2.0, size=layer.running_var.shape)
    x = norm_input(rng, T, B, shape)
    dy = random_dy(rng, x.shape)
    results = layer_gradients(layer, x, dy, train=train)
    assert_all_match(results, TOL_SMOOTH, ["x", "gamma", "beta"])


@SETTINGS
@given(T=dims, B=dims, shape=st.one_of(st.tuples(st.integers(3, 6)),
                                       st.tuples(st.integers(3, 5), st.integers(1, 3), st.integers(1, 3))),
       train=st.booleans(), seed=seeds)
def test_layernorm_backward_matches_finite_differences(T, B, shape, train, seed):
    """LayerNorm normalises each sample at each step over its features: dx, dγ and dβ match
    finite differences, in training and evaluation mode alike."""
    rng = np.random.default_rng(seed)
    layer = LayerNorm(shape[0], dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=layer.gamma.shape)
    layer.beta.data[...] = rng.normal(size=layer.beta.shape)
    x = norm_input(rng, T, B, shape)
    dy = random_dy(rng, x.shape)
    assert_all_match(layer_gradients(layer, x, dy, train=train), TOL_SMOOTH, ["x", "gamma", "beta"])


# --------------------------------------------------------------------------------------- Readout

@SETTINGS
@given(T=dims, B=dims, n_in=dims, n_out=dims, seed=seeds)
def test_readout_backward_matches_finite_differences(T, B, n_in, n_out, seed):
    """Readout z = W·mean_t(o_t): dW = dzᵀ·ō, and every step gets ∂L/∂o_t = dz·W/T."""
    rng = np.random.default_rng(seed)
    layer = Readout(n_in, n_out, rng=rng, dtype=np.float64)
    x = rng.normal(size=(T, B, n_in))
    dz = random_dy(rng, (B, n_out))
    assert_all_match(layer_gradients(layer, x, dz), TOL_SMOOTH, ["x", "weight"])
