"""A Linear layer fed by LIF neurons computes ∂L/∂spikes only where the LIF's triangle surrogate
is nonzero (kernels/sparse_grad.py). The products it computes must equal BLAS's, the ones it
skips must be exactly those where LIF's backward multiplies by 0, and so every parameter's
gradient must be that of the dense backward (an observed backward runs dense)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn.kernels.sparse_grad import supported_input_grad
from minisnn.layers import BNTT, LIF, Linear, Readout
from minisnn.network import Sequential
from minisnn.surrogate import get_surrogate, surrogate_grad


@settings(deadline=None, max_examples=30)
@given(N=st.integers(1, 300), n_in=st.integers(1, 40), n_out=st.integers(1, 30), width=st.floats(0.05, 2.0),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_products_where_the_surrogate_is_nonzero_and_zeros_elsewhere(N, n_in, n_out, width, dtype, seed):
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal((N, n_out)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    u = (rng.standard_normal((N, n_in)) * 1.5 + 0.8).astype(dtype)
    sg, cast = get_surrogate("triangle", 0.3, width), np.dtype(dtype).type
    dx = np.full((N, n_in), np.nan, dtype=dtype)
    fraction = supported_input_grad(dy, np.ascontiguousarray(W.T), u, sg.kind, cast(0.9), cast(sg.height),
                                    cast(sg.width), dx)
    x = (u / cast(0.9)).astype(np.float64) - 1.0       # as the kernels compute it, in u's dtype
    active = np.array([surrogate_grad(sg.kind, v, cast(sg.height), cast(sg.width)) != 0
                       for v in x.ravel()]).reshape(x.shape)
    assert fraction == active.mean()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx[active], (dy @ W)[active], rtol=tol, atol=tol * np.abs(dy).max() * np.abs(W).max() * n_out)
    assert (dx[~active] == 0).all()


def network(T, H, reset, detach, width, seed):
    rng = np.random.default_rng(seed)
    lif = dict(leak=0.9, threshold=0.8, reset=reset, detach_reset=detach, surrogate={"name": "triangle",
                                                                                     "height": 0.3, "width": width})
    return Sequential(Linear(6, H, rng=rng, dtype=np.float64), BNTT(T, H, dtype=np.float64), LIF(**lif),
                      Linear(H, H, rng=rng, dtype=np.float64), BNTT(T, H, dtype=np.float64), LIF(**lif),
                      Readout(H, 3, rng=rng, dtype=np.float64))


@settings(deadline=None, max_examples=30)
@given(T=st.integers(1, 8), B=st.integers(2, 12), H=st.integers(1, 12), reset=st.sampled_from(["soft", "hard"]),
       detach=st.booleans(), width=st.floats(0.1, 0.6), seed=st.integers(0, 2**32 - 1))
def test_every_gradient_equals_the_dense_backward(T, B, H, reset, detach, width, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 6)) * 2
    dlogits = rng.standard_normal((B, 3))
    grads = []
    for observe in (None, lambda *args: None):     # an observer makes the backward dense
        net = network(T, H, reset, detach, width, seed)
        net.forward(x, train=True)
        net.zero_grad()
        dx = net.backward(dlogits, observe=observe)
        grads.append([dx] + [p.grad.copy() for p in net.parameters()])
    for sparse, dense in zip(*grads):
        np.testing.assert_allclose(sparse, dense, rtol=1e-10, atol=1e-13)


def test_the_sparse_product_runs_only_under_a_compact_surrogate_and_low_support():
    """fast_sigmoid is nowhere 0: no support is offered; a triangle wider than the membrane's
    spread covers most neurons: BLAS."""
    lif = LIF(surrogate="fast_sigmoid")
    lif.forward(np.ones((2, 3, 4)))
    assert lif.gradient_support() is None
    wide = LIF(surrogate={"name": "triangle", "width": 50.0})
    wide.forward(np.ones((2, 3, 4)))
    layer = Linear(4, 2)
    layer.forward(np.zeros((2, 3, 4), dtype=np.float32))
    dy = np.ones((2, 3, 2), dtype=np.float32)
    np.testing.assert_array_equal(layer.backward(dy, support=wide.gradient_support()),
                                  (dy.reshape(-1, 2) @ layer.weight.data).reshape(2, 3, 4))
