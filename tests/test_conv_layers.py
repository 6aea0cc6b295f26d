"""Conv2d, AvgPool2d, Flatten and BNTT on 4-D inputs: forward against direct definitions,
backward against central finite differences (float64, random upstream gradients)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.gradcheck import layer_gradients, max_relative_error
from minisnn.kernels.im2col import col2im, im2col
from minisnn.layers import BNTT, AvgPool2d, Conv2d, Flatten
from minisnn.layers import conv as conv_module

TOL = 1e-5
SETTINGS = settings(max_examples=12, deadline=None)


def direct_conv(x, w, stride, padding, bias=None):
    """y[t, b, o, i, j] = Σ_{c,a,b'} W[o,c,a,b']·x_pad[t, b, c, s·i+a, s·j+b'] by explicit windows."""
    k = w.shape[2]
    xp = np.pad(x, [(0, 0)] * 3 + [(padding, padding)] * 2)
    ho = (xp.shape[3] - k) // stride + 1
    wo = (xp.shape[4] - k) // stride + 1
    y = np.zeros(x.shape[:2] + (w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, :, stride * i:stride * i + k, stride * j:stride * j + k]
            y[..., i, j] = np.einsum("tbcuv,ocuv->tbo", patch, w)
    if bias is not None:
        y += bias[:, None, None]
    return y


def direct_avgpool(x, k, s):
    ho, wo = (x.shape[3] - k) // s + 1, (x.shape[4] - k) // s + 1
    y = np.zeros(x.shape[:3] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[..., i, j] = x[..., s * i:s * i + k, s * j:s * j + k].mean(axis=(-2, -1))
    return y


def assert_gradients(results, tol=TOL):
    for name, (analytic, numeric) in results.items():
        assert analytic.shape == numeric.shape, name
        err = max_relative_error(analytic, numeric)
        assert err < tol, f"{name}: max relative error {err:.2e}"


conv_cases = st.fixed_dictionaries(dict(
    T=st.integers(1, 3), B=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
    k=st.sampled_from([1, 2, 3, 5]), stride=st.integers(1, 3), padding=st.integers(0, 2),
    H=st.integers(3, 7), W=st.integers(3, 7), bias=st.booleans(), seed=st.integers(0, 2**16)))


@SETTINGS
@given(conv_cases)
def test_conv_forward_and_gradients(case):
    k, p = case["k"], case["padding"]
    if case["H"] + 2 * p < k or case["W"] + 2 * p < k:
        return
    rng = np.random.default_rng(case["seed"])
    layer = Conv2d(case["c_in"], case["c_out"], k, case["stride"], p, bias=case["bias"], rng=rng, dtype=np.float64)
    if layer.bias is not None:
        layer.bias.data[...] = rng.standard_normal(case["c_out"])
    x = rng.standard_normal((case["T"], case["B"], case["c_in"], case["H"], case["W"]))
    y = layer.forward(x)
    expected = direct_conv(x, layer.weight.data, case["stride"], p, None if layer.bias is None else layer.bias.data)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    assert_gradients(layer_gradients(layer, x, dy))


@SETTINGS
@given(conv_cases, st.sampled_from([0.0, 0.1, 0.4, 1.0]))
def test_event_driven_conv_forward_and_gradients(case, density):
    """The event path (kernels/event_conv.py) against the direct sum and finite differences, for
    any values (not only spikes), every kernel size, stride and padding drawn."""
    k, p = case["k"], case["padding"]
    if case["H"] + 2 * p < k or case["W"] + 2 * p < k:
        return
    rng = np.random.default_rng(case["seed"])
    layer = Conv2d(case["c_in"], case["c_out"], k, case["stride"], p, bias=case["bias"], rng=rng, dtype=np.float64)
    layer.event_driven = True
    shape = (case["T"], case["B"], case["c_in"], case["H"], case["W"])
    x = (rng.random(shape) < density) * rng.standard_normal(shape)
    y = layer.forward(x)
    assert layer._saved_events
    expected = direct_conv(x, layer.weight.data, case["stride"], p, None if layer.bias is None else layer.bias.data)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    assert_gradients(layer_gradients(layer, x, dy))


def test_conv_chooses_events_for_sparse_spikes_and_im2col_for_dense_input():
    rng = np.random.default_rng(4)
    layer = Conv2d(4, 6, 3, 1, 1, rng=rng)
    spikes = (rng.random((3, 4, 4, 9, 9)) < conv_module.EVENT_DENSITY / 3).astype(np.float32)
    dense = rng.random((3, 4, 4, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((3, 4, 6, 9, 9)).astype(np.float32)
    results = {}
    for name, x in [("spikes", spikes), ("dense", dense)]:
        for mode in ("auto", False):
            layer.event_driven = mode
            layer.weight.grad[...] = 0
            y = layer.forward(x)
            results[name, mode] = (layer._saved_events, y, layer.backward(dy), layer.weight.grad.copy())
    assert results["spikes", "auto"][0] and not results["dense", "auto"][0] and not results["spikes", False][0]
    for a, b in zip(results["spikes", "auto"][1:], results["spikes", False][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_chunking_gives_the_same_result(monkeypatch):
    """Several GEMM chunks (tiny CHUNK_ELEMENTS) give the same outputs and gradients as one."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2, 6, 5))
    dy = rng.standard_normal((3, 4, 3, 3, 3))
    out = []
    for chunk in (conv_module.CHUNK_ELEMENTS, 50):
        monkeypatch.setattr(conv_module, "CHUNK_ELEMENTS", chunk)
        layer = Conv2d(2, 3, 3, 2, 1, rng=np.random.default_rng(0), dtype=np.float64)
        y = layer.forward(x)
        out.append((y, layer.backward(dy), layer.weight.grad.copy()))
    assert len(Conv2d(2, 3, 3, 2, 1)._chunks(12, 6, 5)) > 1
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv_gradient_accumulates_and_float32_runs():
    rng = np.random.default_rng(2)
    layer = Conv2d(2, 4, rng=rng)
    assert (layer.kernel_size, layer.stride, layer.padding, layer.bias) == (3, 1, 1, None)
    assert layer.weight.data.shape == (4, 2, 3, 3) and layer.weight.data.dtype == np.float32
    x = (rng.random((2, 3, 2, 8, 8)) < 0.3).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (2, 3, 4, 8, 8) and y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert dx.dtype == np.float32
    g1 = layer.weight.grad.copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * g1, rtol=1e-6)
    layer.clear()
    assert layer._saved_x is None


def test_im2col_col2im_are_adjoint():
    """⟨col2im(D), x⟩ = ⟨D, im2col(x)⟩ for every shape, stride and padding tried."""
    rng = np.random.default_rng(3)
    for N, C, H, W, k, s, p in [(2, 3, 5, 7, 3, 1, 1), (1, 2, 6, 5, 3, 2, 2), (2, 1, 3, 3, 3, 3, 4), (1, 2, 5, 4, 2, 2, 0)]:
        x = rng.standard_normal((N, C, H, W))
        ho, wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        cols = im2col(x, k, s, p, np.full((C * k * k, N * ho * wo), np.nan))
        d = rng.standard_normal(cols.shape)
        dx = col2im(d, k, s, p, np.full_like(x, np.nan))
        assert abs(np.sum(d * cols) - np.sum(dx * x)) < 1e-10


def test_conv_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Conv2d(3, 4, kernel_size=0)
    with pytest.raises(ValueError):
        Conv2d(3, 4).forward(np.zeros((1, 1, 2, 4, 4)))
    with pytest.raises(ValueError):
        Conv2d(1, 1, kernel_size=5, padding=0).forward(np.zeros((1, 1, 1, 3, 3)))


pool_cases = st.fixed_dictionaries(dict(
    T=st.integers(1, 3), B=st.integers(1, 2), C=st.integers(1, 3), k=st.integers(1, 3),
    stride=st.one_of(st.none(), st.integers(1, 3)), H=st.integers(3, 7), W=st.integers(3, 7),
    seed=st.integers(0, 2**16)))


@SETTINGS
@given(pool_cases)
def test_avgpool_forward_and_gradients(case):
    rng = np.random.default_rng(case["seed"])
    layer = AvgPool2d(case["k"], case["stride"])
    x = rng.standard_normal((case["T"], case["B"], case["C"], case["H"], case["W"]))
    y = layer.forward(x)
    np.testing.assert_allclose(y, direct_avgpool(x, layer.kernel_size, layer.stride), rtol=1e-12, atol=1e-12)
    assert_gradients(layer_gradients(layer, x, rng.standard_normal(y.shape)))


def test_avgpool_tiling_path_and_global_pool():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 8, 8))
    y = AvgPool2d(2).forward(x)
    np.testing.assert_allclose(y, direct_avgpool(x, 2, 2), rtol=1e-12)
    g = AvgPool2d(8).forward(x)
    np.testing.assert_allclose(g[..., 0, 0], x.mean(axis=(3, 4)), rtol=1e-12)
    assert_gradients(layer_gradients(AvgPool2d(2), x[:1, :2, :2], rng.standard_normal((1, 2, 2, 4, 4))))


def test_flatten_round_trip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5, 6))
    layer = Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 3, 120)
    np.testing.assert_array_equal(y[1, 2, (3 * 5 + 2) * 6 + 4], x[1, 2, 3, 2, 4])
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(dy), dy.reshape(x.shape))


@SETTINGS
@given(st.integers(1, 3), st.integers(2, 3), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**16))
def test_bntt_on_feature_maps(T, B, C, S, seed):
    """BNTT over channels of [T, B, C, H, W]: statistics per (t, c) over batch and space."""
    rng = np.random.default_rng(seed)
    layer = BNTT(T, C, dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, (T, C))
    x = rng.standard_normal((T, B, C, S, S + 1)) * 2 + 1
    y = layer.forward(x)
    mean = x.mean(axis=(1, 3, 4), keepdims=True)
    var = x.var(axis=(1, 3, 4), keepdims=True)
    expected = layer.gamma.data[:, None, :, None, None] * (x - mean) / np.sqrt(var + 1e-4)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert_gradients(layer_gradients(layer, x, rng.standard_normal(y.shape)))
