"""Event-driven products (kernels/events.py) against NumPy's dense products, and the Linear layer
that uses them: the same numbers up to float rounding, for any input, in both precisions."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.gradcheck import layer_gradients, max_relative_error
from minisnn.kernels.events import (NO_PATTERN, ROWS, bits_matmul, event_matmul, event_weight_grad, grad_chunks,
                                    pack_bits, pattern_bytes)
from minisnn.layers import Linear
from minisnn.layers.linear import EVENT_DENSITY

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def sparse_input(rng, shape, density, dtype, binary):
    """Zeros with a given fraction of nonzeros: spikes (1) or arbitrary signed values."""
    mask = rng.random(shape) < density
    values = np.ones(shape) if binary else rng.normal(size=shape)
    return (mask * values).astype(dtype)


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2 * ROWS + 7), n_in=st.integers(1, 40), n_out=st.integers(1, 40),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), binary=st.booleans(), chunks=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_event_products_match_dense_products(N, n_in, n_out, density, binary, chunks, dtype, seed):
    rng = np.random.default_rng(seed)
    x = sparse_input(rng, (N, n_in), density, dtype, binary)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    dy = rng.normal(size=(N, n_out)).astype(dtype)
    y = np.full((N, n_out), np.nan, dtype=dtype)
    assert not event_matmul(x, np.ascontiguousarray(W.T), y, NO_PATTERN)
    dWt = event_weight_grad(dy, x, chunks, NO_PATTERN)
    assert y.dtype == dtype and dWt.dtype == dtype and dWt.shape == (n_in, n_out)
    dense_y = x.astype(np.float64) @ W.T.astype(np.float64)
    dense_dW = dy.T.astype(np.float64) @ x.astype(np.float64)
    scale_y = max(np.abs(x).sum(axis=1).max() * np.abs(W).max(), 1e-30)
    scale_dW = max(np.abs(dy).sum() * np.abs(x).max(), 1e-30)
    assert np.abs(y - dense_y).max() / scale_y < TOL[dtype]
    assert np.abs(dWt.T - dense_dW).max() / scale_dW < TOL[dtype]


def test_event_products_by_hand():
    x = np.array([[0, 1, 0], [2, 0, -1], [0, 0, 0]], dtype=np.float64)
    W = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float64)   # [out, in]
    y = np.empty((3, 2))
    pattern = np.zeros((3, 1), dtype=np.uint8)
    assert not event_matmul(x, np.ascontiguousarray(W.T), y, pattern)      # 2 and −1 are not spikes
    np.testing.assert_array_equal(y, [[2, 5], [2 - 3, 8 - 6], [0, 0]])
    np.testing.assert_array_equal(pattern[:, 0], [0b010, 0b101, 0])
    dy = np.array([[1, 10], [100, 1000], [7, 7]], dtype=np.float64)
    for chunks in (1, 2, 3):
        np.testing.assert_array_equal(event_weight_grad(dy, x, chunks, NO_PATTERN).T, [[200, 1, -100], [2000, 10, -1000]])


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2 * ROWS + 7), n_in=st.integers(1, 40), n_out=st.integers(1, 20),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), chunks=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_spikes_kept_as_bits_give_the_same_gradient_bit_for_bit(N, n_in, n_out, density, chunks, dtype, seed):
    """For binary x, event_matmul's bits are x's nonzeros (packed little-endian per byte), and the
    weight gradient from them equals the one from x itself exactly, not just to rounding."""
    rng = np.random.default_rng(seed)
    x = sparse_input(rng, (N, n_in), density, dtype, binary=True)
    W = rng.normal(size=(n_out, n_in)).astype(dtype)
    dy = rng.normal(size=(N, n_out)).astype(dtype)
    pattern = np.zeros((N, pattern_bytes(n_in)), dtype=np.uint8)
    y = np.empty((N, n_out), dtype=dtype)
    assert event_matmul(x, np.ascontiguousarray(W.T), y, pattern)
    np.testing.assert_array_equal(pattern, np.packbits(x != 0, axis=1, bitorder="little"))
    np.testing.assert_array_equal(event_weight_grad(dy, x[:0], chunks, pattern), event_weight_grad(dy, x, chunks, NO_PATTERN))


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 2 * ROWS + 7), n_in=st.integers(1, 40), n_out=st.integers(1, 20),
       density=st.sampled_from([0.0, 0.05, 0.3, 1.0]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_the_product_from_bits_alone_equals_the_product_from_the_spikes_bit_for_bit(N, n_in, n_out, density, dtype, seed):
    """bits_matmul sees only a binary x's bits (as pack_bits writes them a row at a time) and
    must make event_matmul's y exactly."""
    rng = np.random.default_rng(seed)
    x = sparse_input(rng, (N, n_in), density, dtype, binary=True)
    Wt = np.ascontiguousarray(rng.normal(size=(n_out, n_in)).astype(dtype).T)
    y = np.empty((N, n_out), dtype=dtype)
    event_matmul(x, Wt, y, NO_PATTERN)
    pattern = np.full((N, pattern_bytes(n_in)), 0xFF, dtype=np.uint8)     # pack_bits must not need zeros
    for n in range(N):
        pack_bits(x[n], pattern[n])
    np.testing.assert_array_equal(pattern, np.packbits(x != 0, axis=1, bitorder="little"))
    y_bits = np.full((N, n_out), np.nan, dtype=dtype)
    bits_matmul(pattern, Wt, y_bits)
    np.testing.assert_array_equal(y_bits, y)


def test_linear_keeps_spikes_as_bits_and_other_inputs_as_they_are():
    rng = np.random.default_rng(1)
    layer = Linear(64, 16, rng=rng)
    layer.event_driven = True
    dy = rng.normal(size=(10, 8, 16)).astype(np.float32)
    spikes = sparse_input(rng, (10, 8, 64), 0.1, np.float32, binary=True)
    layer.forward(spikes)
    assert layer._saved_x is None and layer._saved_pattern.shape == (80, 8)
    dx = layer.backward(dy)
    from_bits = layer.weight.grad.copy()
    layer.weight.grad[...] = 0
    layer.forward(spikes * np.float32(2))                 # not binary: x itself is kept
    assert layer._saved_pattern is None and layer._saved_x is not None
    layer.backward(dy / np.float32(2))
    np.testing.assert_array_equal(layer.weight.grad, from_bits)   # 2·(dy/2) = dy: exactly the same sums
    assert dx.shape == spikes.shape
    layer.clear()
    assert layer._saved_pattern is None


def test_gradient_chunks_depend_on_shapes_only():
    """Enough rows per chunk, at most GRAD_CHUNKS, partials within 64 MiB; at least one."""
    assert grad_chunks(100352, 256, 256, 4) == 16
    assert grad_chunks(5000, 256, 256, 4) == 4
    assert grad_chunks(16, 2048, 1024, 4) == 1
    assert grad_chunks(100000, 2048, 1024, 4) == 8     # 8 × 8 MiB
    assert grad_chunks(100000, 8192, 8192, 4) == 1


@settings(deadline=None, max_examples=20)
@given(T=st.integers(1, 4), B=st.integers(1, 4), n_in=st.integers(2, 6), n_out=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_event_driven_linear_backward_matches_finite_differences(T, B, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(n_in, n_out, bias=bias, rng=rng, dtype=np.float64)
    layer.event_driven = True
    x = sparse_input(rng, (T, B, n_in), 0.4, np.float64, binary=False)
    dy = rng.normal(size=(T, B, n_out))
    results = layer_gradients(layer, x, dy)
    assert layer._saved_events
    for name, (analytic, numeric) in results.items():
        assert max_relative_error(analytic, numeric) < 1e-6, name


def test_linear_chooses_events_for_sparse_spikes_and_blas_for_dense_input():
    rng = np.random.default_rng(0)
    layer = Linear(64, 32, rng=rng)
    spikes = sparse_input(rng, (20, 16, 64), EVENT_DENSITY / 3, np.float32, binary=True)
    dense = rng.random((20, 16, 64), dtype=np.float32)
    dy = rng.normal(size=(20, 16, 32)).astype(np.float32)
    results = {}
    for name, x in [("spikes", spikes), ("dense", dense)]:
        for mode in ("auto", False):
            layer.event_driven = mode
            layer.weight.grad[...] = 0
            y = layer.forward(x)
            dx = layer.backward(dy)
            results[name, mode] = (layer._saved_events, y, dx, layer.weight.grad.copy())
    assert results["spikes", "auto"][0] and not results["dense", "auto"][0]
    assert not results["spikes", False][0]
    for a, b in zip(results["spikes", "auto"][1:], results["spikes", False][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_event_driven_needs_matching_dtypes():
    """A float64 input to a float32 layer takes NumPy's (upcasting) product, as before."""
    layer = Linear(8, 4, rng=np.random.default_rng(0))
    layer.event_driven = True
    x = np.zeros((2, 3, 8))
    x[0, 0, 1] = 1.0
    y = layer.forward(x)
    assert not layer._saved_events and y.dtype == np.float64
