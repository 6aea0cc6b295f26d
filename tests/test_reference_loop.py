"""The engine against a plain per-time-step loop written from docs/design.md, with the REAL spike.

Finite differences cannot check the engine with its true Heaviside spike (they only see the
smooth stand-in). Here the engine runs exactly as in training (real spikes, no ``SmoothLIF``) and its
logits, spikes, and the gradients of the input and of every parameter must equal those of an
independent reference: a loop over time steps in plain NumPy that uses none of minisnn's
kernels, with the BPTT written out by hand, time step by time step in reverse order:

    forward, for t = 0 … T−1, for each hidden layer l:
        h_t = W_l·a_t                                   (a_t: input, or spikes of layer l−1)
        BNTT: μ_t, σ²_t over the batch at step t (biased), I_t = γ_t·(h_t − μ_t)/√(σ²_t + ε)
        u_t = λ·v_{t−1} + I_t,  o_t = [u_t > θ],  v_t = u_t − θ·o_t (soft) or u_t·(1 − o_t) (hard)
    z = W_r·(1/T)·Σ_t o_t ;  L = softmax cross-entropy (mean over the batch) or Σ c·z
    backward, for t = T−1 … 0, for l from the top down:
        g_t = ∂L/∂o_t  (from the readout, or from layer l+1 at the same step)
        δu_t = g_t·σ'(u_t) + λ·δu_{t+1}·∂v_t/∂u_t ,   σ'(u) = f(u/θ − 1)/θ
        ∂v_t/∂u_t = 1 | 1 − θσ' (soft, detached | attached),  1 − o_t | 1 − o_t − u_t·σ' (hard)
        BNTT backward by the staged chain rule through μ_t and σ²_t (not the compact formula)

Agreement is required to 1e-10 relative to each gradient's scale, in float64.
"""
import math
import zlib

import numpy as np
import pytest

from minisnn import models
from minisnn.layers import BNTT, LIF, Linear, Readout
from minisnn.losses import cross_entropy

EPS = 1e-4
TOL = 1e-10


# ----------------------------------------------------------------------- the reference, by hand

def surrogate_derivative(name, height, width, x):
    """f(x) ≈ dH/dx at x = u/θ − 1, written from the formulas (not minisnn.surrogate)."""
    if name == "triangle":
        return height * np.maximum(0.0, 1.0 - np.abs(x) / width)
    if name == "fast_sigmoid":
        return height / (1.0 + np.abs(x) / width) ** 2
    if name == "arctan":
        return height / (1.0 + (x / width) ** 2)
    raise ValueError(name)


def reference(x, weights, gammas, readout, leak, theta, reset, detach, surrogate, loss):
    """Forward and hand-written BPTT, one time step at a time.

    weights: hidden Linear weights [out, in]; gammas: BNTT γ [T, C] per hidden layer, or None
    for no normalisation; readout: [K, N]; surrogate: (name, height, width); loss: a function
    z -> (L, ∂L/∂z). Returns logits, per-layer spikes [T, B, C], dx, dW per layer, dγ per layer,
    dW_readout.
    """
    T, B, _ = x.shape
    L = len(weights)
    name, height, width = surrogate

    # forward
    v = [np.zeros((B, W.shape[0])) for W in weights]
    cache = [[None] * L for _ in range(T)]
    spikes = [np.zeros((T, B, W.shape[0])) for W in weights]
    total = np.zeros((B, weights[-1].shape[0]))
    for t in range(T):
        a = x[t]
        for l in range(L):
            h = a @ weights[l].T
            if gammas[l] is not None:
                mu = h.mean(axis=0)
                var = ((h - mu) ** 2).mean(axis=0)
                I = gammas[l][t] * (h - mu) / np.sqrt(var + EPS)
            else:
                mu = var = None
                I = h
            u = leak * v[l] + I
            o = (u > theta).astype(float)
            v[l] = u - theta * o if reset == "soft" else u * (1.0 - o)
            cache[t][l] = (a, h, mu, var, u, o)
            spikes[l][t] = o
            a = o
        total += a
    mean_spikes = total / T
    z = mean_spikes @ readout.T
    _, dz = loss(z)

    # backward
    d_readout = dz.T @ mean_spikes
    g_top = dz @ readout / T                       # ∂L/∂o_t of the last hidden layer, every t
    dW = [np.zeros_like(W) for W in weights]
    dgamma = [None if g is None else np.zeros_like(g) for g in gammas]
    dx = np.zeros_like(x)
    du_next = [np.zeros((B, W.shape[0])) for W in weights]
    for t in reversed(range(T)):
        g = g_top
        for l in reversed(range(L)):
            a, h, mu, var, u, o = cache[t][l]
            s = surrogate_derivative(name, height, width, u / theta - 1.0) / theta
            if reset == "soft":
                dv_du = np.ones_like(u) if detach else 1.0 - theta * s
            else:
                dv_du = 1.0 - o if detach else 1.0 - o - u * s
            du = g * s + leak * du_next[l] * dv_du
            du_next[l] = du
            if gammas[l] is not None:
                inv = 1.0 / np.sqrt(var + EPS)
                xhat = (h - mu) * inv
                dgamma[l][t] = (du * xhat).sum(axis=0)
                dxhat = du * gammas[l][t]
                dvar = (dxhat * (h - mu)).sum(axis=0) * (-0.5) * inv ** 3
                dmu = -(dxhat * inv).sum(axis=0) + dvar * (-2.0 * (h - mu)).mean(axis=0)
                dh = dxhat * inv + dvar * 2.0 * (h - mu) / B + dmu / B
            else:
                dh = du
            dW[l] += dh.T @ a
            g = dh @ weights[l]
        dx[t] = g
    return z, spikes, dx, dW, dgamma, d_readout


def reference_cross_entropy(labels):
    """L = −(1/B)·Σ log softmax(z)[y], with ∂L/∂z = (softmax − onehot)/B, element by element."""
    def loss(z):
        B, K = z.shape
        dz = np.zeros_like(z)
        total = 0.0
        for b in range(B):
            m = max(z[b])
            exps = [math.exp(zk - m) for zk in z[b]]
            s = sum(exps)
            total -= (z[b, labels[b]] - m) - math.log(s)
            for k in range(K):
                dz[b, k] = (exps[k] / s - (k == labels[b])) / B
        return total / B, dz
    return loss


def linear_functional(c):
    """L = Σ c·z, so ∂L/∂z = c: an arbitrary upstream gradient at the logits."""
    return lambda z: (float((c * z).sum()), c.copy())


# ---------------------------------------------------------------------------------- the checks

def close(actual, expected, what):
    scale = max(np.abs(expected).max(), 1e-300)
    err = np.abs(actual - expected).max() / scale
    assert err < TOL, f"{what}: relative difference {err:.3e}"


CASES = [
    # norm,   reset,  detach, surrogate (name, height, width)
    ("bntt", "soft", True, ("triangle", 0.3, 1.0)),
    ("bntt", "soft", False, ("triangle", 0.3, 1.0)),
    ("bntt", "hard", True, ("triangle", 0.3, 1.0)),
    ("bntt", "hard", False, ("triangle", 0.3, 1.0)),
    ("bntt", "soft", False, ("fast_sigmoid", 0.8, 0.3)),
    ("bntt", "hard", False, ("arctan", 1.0, 0.5)),
    ("bntt", "soft", True, ("arctan", 1.0, 1.0 / math.pi)),
    ("none", "soft", True, ("triangle", 0.3, 1.0)),
    ("none", "soft", False, ("fast_sigmoid", 1.0, 0.1)),
    ("none", "hard", False, ("triangle", 0.5, 0.7)),
    ("none", "hard", True, ("arctan", 0.7, 0.4)),
]


@pytest.mark.parametrize("loss_kind", ["cross_entropy", "linear"])
@pytest.mark.parametrize("norm, reset, detach, surrogate", CASES,
                         ids=[f"{n}-{r}-{'detached' if d else 'attached'}-{s[0]}" for n, r, d, s in CASES])
def test_engine_equals_reference_loop(norm, reset, detach, surrogate, loss_kind):
    """With the true step function, the engine's logits, spikes of every LIF layer, ∂L/∂x and
    ∂L/∂(every parameter) equal the per-time-step reference to 1e-10, for soft/hard and
    detached/attached resets, BNTT or no normalisation, several surrogates, and both a
    cross-entropy with random labels and a random linear functional of the logits."""
    T, B, sizes = 6, 5, [3, 7, 6, 4]
    leak, theta = 0.9, 0.8
    rng = np.random.default_rng(zlib.crc32(repr((norm, reset, detach, surrogate, loss_kind)).encode()))
    name, height, width = surrogate
    net = models.fc_snn(sizes, T, norm=norm, reset=reset, detach_reset=detach, leak=leak, threshold=theta,
                        surrogate={"name": name, "height": height, "width": width},
                        dtype=np.float64, seed=int(rng.integers(2**31)))
    linears = [layer for layer in net.layers if isinstance(layer, Linear)]
    norms = [layer for layer in net.layers if isinstance(layer, BNTT)]
    readout = net.layers[-1]
    assert isinstance(readout, Readout) and len(linears) == 2
    for layer in norms:
        layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=layer.gamma.shape)
    x = rng.normal(size=(T, B, sizes[0]))
    labels = rng.integers(0, sizes[-1], size=B)
    c = rng.normal(size=(B, sizes[-1]))
    ref_loss = reference_cross_entropy(labels) if loss_kind == "cross_entropy" else linear_functional(c)

    gammas = [layer.gamma.data.copy() for layer in norms] if norm == "bntt" else [None, None]
    z_ref, spikes_ref, dx_ref, dW_ref, dgamma_ref, dreadout_ref = reference(
        x, [W.weight.data.copy() for W in linears], gammas, readout.weight.data.copy(),
        leak, theta, reset, detach, surrogate, ref_loss)

    net.zero_grad()
    z, spikes = net.outputs(x.copy(), LIF, train=True)
    if loss_kind == "cross_entropy":
        loss, dz = cross_entropy(z, labels)
        assert loss == pytest.approx(ref_loss(z_ref)[0], rel=1e-12)
    else:
        dz = c.copy()
    dx = net.backward(dz)

    close(z, z_ref, "logits")
    for o, o_ref in zip(spikes.values(), spikes_ref):
        np.testing.assert_array_equal(o, o_ref)
        # the case is not degenerate: neurons both fire and stay silent
        assert 0.02 < o_ref.mean() < 0.98
    close(dx, dx_ref, "dx")
    for layer, g in zip(linears, dW_ref):
        close(layer.weight.grad, g, "hidden weight")
    for layer, g in zip(norms, dgamma_ref):
        close(layer.gamma.grad, g, "BNTT gamma")
    close(readout.weight.grad, dreadout_ref, "readout weight")
    assert np.abs(dx_ref).max() > 1e-4   # gradients reach the input through both LIF layers


def test_reference_reset_paths_differ():
    """The four reset modes give different input gradients here, so each case above holds the
    engine to its own reset path rather than to one shared by all."""
    T, B, sizes = 6, 5, [3, 7, 6, 4]
    rng = np.random.default_rng(3)
    net = models.fc_snn(sizes, T, norm="bntt", dtype=np.float64, seed=3)
    x = rng.normal(size=(T, B, sizes[0]))
    weights = [net.layers[i].weight.data for i in (0, 3)]
    gammas = [np.ones((T, 7)), np.ones((T, 6))]
    loss = reference_cross_entropy(rng.integers(0, 4, size=B))
    grads = []
    for reset in ("soft", "hard"):
        for detach in (True, False):
            grads.append(reference(x, weights, gammas, net.layers[-1].weight.data, 0.9, 0.8, reset, detach,
                                   ("triangle", 0.3, 1.0), loss)[2])
    for i in range(4):
        for j in range(i):
            assert np.abs(grads[i] - grads[j]).max() > 1e-3 * np.abs(grads[i]).max()
