"""LIF scans: forward in time order, backward in reverse, parallel over neurons.

Arrays are ``[T, N]`` with N = batch × neurons, C-contiguous. Each thread takes a block of
``BLOCK`` adjacent neurons and scans all T steps for them. At every step the block's rows are
taken as 1-D contiguous slices, so the inner loop is a plain unit-stride loop that LLVM turns
into SIMD code (indexing ``a[t, n]`` with a shifted state index defeats that, 3–6× slower).
The block's state stays in L1; no two threads touch the same cell.
"""
import numpy as np
from numba import njit, prange

from ..surrogate import surrogate_grad

BLOCK = 1024


@njit(cache=True, inline="always")
def integrate_fire(v, current, leak, threshold, hard_reset):
    """One step of one neuron: (u_t, o_t, v_t) from v_{t−1} and I_t (equations below)."""
    u = leak * v + current
    o = 1.0 if u > threshold else 0.0
    if hard_reset:
        return u, o, u * (1.0 - o)
    return u, o, u - threshold * o


@njit(cache=True, inline="always")
def membrane_grad(g, u, o, du_next, leak, threshold, hard_reset, detach_reset, kind, height, width):
    """One reverse step of one neuron: δu_t from g_t = ∂L/∂o_t, u_t, the reset's o_t (hard reset
    only) and δu_{t+1} (equations in ``lif_scan_backward``)."""
    sg = surrogate_grad(kind, u / threshold - 1.0, height, width) / threshold
    if hard_reset:
        dv_du = 1.0 - o
        if not detach_reset:
            dv_du -= u * sg
    elif detach_reset:
        dv_du = 1.0
    else:
        dv_du = 1.0 - threshold * sg
    return g * sg + leak * du_next * dv_du


@njit(parallel=True, cache=True)
def lif_scan_forward(current, leak, threshold, hard_reset, spikes, membrane):
    """Integrate, fire, reset over T steps.

        u_t = λ·v_{t-1} + I_t,   v_{-1} = 0
        o_t = H(u_t − θ)                         (strict: no spike at u_t = θ)
        v_t = u_t − θ·o_t        (soft)    or    v_t = u_t·(1 − o_t)   (hard)

    Writes spikes o and membrane u (what the backward scan needs) into the given ``[T, N]``
    arrays and returns them. (Gradient checks run a smooth stand-in for H instead:
    ``minisnn.gradcheck.SmoothLIF``.)
    """
    T, N = current.shape
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        v = np.zeros(n1 - n0, dtype=current.dtype)
        for t in range(T):
            cur, u_out, o_out = current[t, n0:n1], membrane[t, n0:n1], spikes[t, n0:n1]
            for i in range(n1 - n0):
                u_out[i], o_out[i], v[i] = integrate_fire(v[i], cur[i], leak, threshold, hard_reset)
    return spikes, membrane


@njit(parallel=True, cache=True)
def lif_scan_forward_mean(current, leak, threshold, hard_reset, membrane):
    """``lif_scan_forward`` for the last neurons before the readout, which reads only the spikes'
    time mean:  ō_n = (1/T)·Σ_t o_tn, accumulated in float64 exactly as ``reduce.time_mean`` does.

    Writes the membrane u into ``membrane`` ``[T, N]`` (backward needs it), never the spikes, and
    returns ō ``[N]`` in the current's dtype.
    """
    T, N = current.shape
    out = np.empty(N, dtype=current.dtype)
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        v = np.zeros(n1 - n0, dtype=current.dtype)
        acc = np.zeros(n1 - n0)
        for t in range(T):
            cur, u_out = current[t, n0:n1], membrane[t, n0:n1]
            for i in range(n1 - n0):
                u_out[i], o, v[i] = integrate_fire(v[i], cur[i], leak, threshold, hard_reset)
                acc[i] += o
        for i in range(n1 - n0):
            out[n0 + i] = acc[i] / T
    return out


@njit(parallel=True, cache=True)
def lif_scan_backward(grad_spikes, membrane, reset, leak, threshold, hard_reset, detach_reset,
                      kind, height, width, grad_current):
    """BPTT through the LIF recursion, from t = T−1 down to 0.

        σ'_t = f(u_t/θ − 1)/θ                                  (surrogate of do_t/du_t)
        δu_t = g_t·σ'_t + λ·δu_{t+1}·∂v_t/∂u_t ,   δu_T = 0
        ∂v_t/∂u_t = 1              soft, detached      1 − θ·σ'_t            soft, attached
                    1 − o_t        hard, detached      1 − o_t − u_t·σ'_t    hard, attached
        ∂L/∂I_t = δu_t

    ``grad_spikes`` g ``[T, N]`` is ∂L/∂o from the layer above; a single row ``[1, N]`` stands
    for the same g at every step (the readout's gradient). The hard reset's o_t is recomputed
    from the membrane, o_t = H(u_t − θ), exactly as the forward scan decided it, when ``reset``
    has no rows; otherwise ``reset`` ``[T, N]`` gives the reset signal (a smooth stand-in's, in
    gradient checks). Writes ∂L/∂I into ``grad_current`` ``[T, N]`` and returns it.
    """
    T, N = membrane.shape
    same_every_step = grad_spikes.shape[0] == 1
    recompute = reset.shape[0] == 0
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        du_next = np.zeros(n1 - n0, dtype=grad_current.dtype)
        for t in range(T - 1, -1, -1):
            g = grad_spikes[0 if same_every_step else t, n0:n1]
            u_in, out = membrane[t, n0:n1], grad_current[t, n0:n1]
            o_in = u_in if recompute else reset[t, n0:n1]
            for i in range(n1 - n0):
                u = u_in[i]
                o = ((1.0 if u > threshold else 0.0) if recompute else o_in[i]) if hard_reset else 0.0
                du = membrane_grad(g[i], u, o, du_next[i], leak, threshold, hard_reset, detach_reset,
                                   kind, height, width)
                out[i] = du
                du_next[i] = du
    return grad_current
