"""LIF scans: forward in time order, backward in reverse, parallel over neurons.

Arrays are ``[T, N]`` with N = batch × neurons, C-contiguous. Each thread takes a block of
``BLOCK`` adjacent neurons and scans all T steps for them: the inner loop runs over contiguous
memory, the block's state stays in L1, and a block of one memory page keeps the row-to-row jumps
(N floats apart) from costing a TLB miss per few neurons. No two threads touch the same cell.
"""
import numpy as np
from numba import njit, prange

from ..surrogate import surrogate_grad, surrogate_smooth

BLOCK = 1024


@njit(parallel=True, cache=True)
def lif_scan_forward(current, leak, threshold, hard_reset, smooth, kind, height, width, frozen_reset):
    """Integrate, fire, reset over T steps.

        u_t = λ·v_{t-1} + I_t,   v_{-1} = 0
        o_t = H(u_t − θ)                         (strict; or F(u_t/θ − 1) when ``smooth``)
        v_t = u_t − θ·r_t        (soft)    or    v_t = u_t·(1 − r_t)   (hard),   r_t = o_t

    ``frozen_reset`` (``[T, N]``, or ``[0, 0]`` for none) replaces r_t by fixed values: a
    detached reset made explicit, so finite differences can check the detached gradient.

    Returns spikes o ``[T, N]`` and membrane u ``[T, N]`` (what the backward scan needs).
    """
    T, N = current.shape
    spikes = np.empty_like(current)
    membrane = np.empty_like(current)
    use_frozen = frozen_reset.shape[0] > 0
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        v = np.zeros(n1 - n0, dtype=current.dtype)
        for t in range(T):
            for n in range(n0, n1):
                u = leak * v[n - n0] + current[t, n]
                if smooth:
                    o = surrogate_smooth(kind, u / threshold - 1.0, height, width)
                else:
                    o = 1.0 if u > threshold else 0.0
                r = frozen_reset[t, n] if use_frozen else o
                if hard_reset:
                    v[n - n0] = u * (1.0 - r)
                else:
                    v[n - n0] = u - threshold * r
                membrane[t, n] = u
                spikes[t, n] = o
    return spikes, membrane


@njit(parallel=True, cache=True)
def lif_scan_backward(grad_spikes, membrane, spikes, leak, threshold, hard_reset, detach_reset,
                      kind, height, width):
    """BPTT through the LIF recursion, from t = T−1 down to 0.

        σ'_t = f(u_t/θ − 1)/θ                                  (surrogate of do_t/du_t)
        δu_t = g_t·σ'_t + λ·δu_{t+1}·∂v_t/∂u_t ,   δu_T = 0
        ∂v_t/∂u_t = 1              soft, detached      1 − θ·σ'_t            soft, attached
                    1 − o_t        hard, detached      1 − o_t − u_t·σ'_t    hard, attached
        ∂L/∂I_t = δu_t

    ``grad_spikes`` g ``[T, N]`` is ∂L/∂o from the layer above. Returns ∂L/∂I ``[T, N]``.
    """
    T, N = grad_spikes.shape
    grad_current = np.empty_like(grad_spikes)
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        du_next = np.zeros(n1 - n0, dtype=grad_spikes.dtype)
        for t in range(T - 1, -1, -1):
            for n in range(n0, n1):
                u = membrane[t, n]
                sg = surrogate_grad(kind, u / threshold - 1.0, height, width) / threshold
                if hard_reset:
                    dv_du = 1.0 - spikes[t, n]
                    if not detach_reset:
                        dv_du -= u * sg
                elif detach_reset:
                    dv_du = 1.0
                else:
                    dv_du = 1.0 - threshold * sg
                du = grad_spikes[t, n] * sg + leak * du_next[n - n0] * dv_du
                grad_current[t, n] = du
                du_next[n - n0] = du
    return grad_current
