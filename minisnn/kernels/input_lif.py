"""LIF scans driven by a current that is affine in a one-feature input, never stored.

The first layer of a pixel-sequence network, Linear(1, H) → BNTT → LIF (``layers/input_block.py``),
feeds its neurons the current I_tbn = a_tn·x_tb + c_tn: one pixel x_tb per sample and step,
and a scale and shift per step and neuron. The forward scan computes I on the fly from x
``[T, B]`` and a, c ``[T, H]`` (1.2 MB at T = 784, H = 256) instead of reading a ``[T, B, H]``
current (103 MB at B = 128) that three layers would have written and read. The backward scan
returns, instead of ∂L/∂I, its sums over the batch that BNTT's and Linear's gradients are made
of. The per-neuron arithmetic is the LIF scans' own (``kernels/lif.py``).

Arrays ``[T, B·H]`` are laid out as the LIF layer's (sample-major: neuron n of sample b at
b·H + n). Each parallel task takes ``SAMPLES`` whole samples, so the batch sums of a task are its
own (``[blocks, 2, T, H]``, summed in a fixed order afterwards: the same on every machine).
"""
import numpy as np
from numba import njit, prange

from .events import pack_bits
from .lif import integrate_fire, membrane_grad

SAMPLES = 16    # samples per parallel task: their state (2 × 16 × 256 floats) stays in L1


@njit(cache=True)
def sample_blocks(batch):
    """Number of parallel tasks (and of partial sums) for a batch of ``batch`` samples."""
    return (batch + SAMPLES - 1) // SAMPLES


@njit(parallel=True, cache=True)
def input_lif_forward(x, scale, shift, leak, threshold, hard_reset, spikes, membrane, pattern):
    """``lif_scan_forward`` with the current I_tbn = a_tn·x_tb + c_tn.

    x ``[T, B]``, scale a and shift c ``[T, H]`` (the dtype of the scan); writes the membrane u
    into the given ``[T, B·H]`` array, and the spikes o either into ``spikes`` ``[T, B·H]`` or,
    when ``pattern`` has rows, as bits into ``pattern`` ``[T·B, ⌈H/8⌉]`` (row t·B + b: the
    pattern ``events.event_matmul`` would make of them for the next Linear) and not at all as
    floats (``spikes`` is then not touched).
    """
    T, B = x.shape
    H = scale.shape[1]
    bits = pattern.shape[0] > 0
    for blk in prange(sample_blocks(B)):
        b0 = blk * SAMPLES
        b1 = min(b0 + SAMPLES, B)
        v = np.zeros((b1 - b0) * H, dtype=membrane.dtype)
        row = np.empty(H, dtype=membrane.dtype)     # one sample's spikes, packed into bits at once
        for t in range(T):
            a, c = scale[t], shift[t]
            for b in range(b0, b1):
                xb = x[t, b]
                state = v[(b - b0) * H:(b - b0 + 1) * H]
                u_out = membrane[t, b * H:(b + 1) * H]
                o_out = row if bits else spikes[t, b * H:(b + 1) * H]
                for n in range(H):
                    u_out[n], o_out[n], state[n] = integrate_fire(state[n], a[n] * xb + c[n], leak,
                                                                  threshold, hard_reset)
                if bits:
                    pack_bits(row, pattern[t * B + b])
    return membrane


@njit(parallel=True, cache=True)
def input_lif_backward(grad_spikes, membrane, x, leak, threshold, hard_reset, detach_reset,
                       kind, height, width, sums, grad_current):
    """``lif_scan_backward`` (hard reset recomputed from u) that also sums ∂L/∂I over the batch.

        S1_tn = Σ_b ∂L/∂I_tbn ,   S3_tn = Σ_b ∂L/∂I_tbn·x_tb

    grad_spikes ``[T, B·H]`` (or one row for every step), membrane ``[T, B·H]``, x ``[T, B]``.
    Writes task k's partial sums into ``sums[k, 0]`` and ``sums[k, 1]`` (``[blocks, 2, T, H]``
    float64; every cell written) and, if ``grad_current`` has rows, ∂L/∂I ``[T, B·H]`` too.
    """
    T, B = x.shape
    H = membrane.shape[1] // B
    same_every_step = grad_spikes.shape[0] == 1
    write = grad_current.shape[0] > 0
    for blk in prange(sample_blocks(B)):
        b0 = blk * SAMPLES
        b1 = min(b0 + SAMPLES, B)
        du_next = np.zeros((b1 - b0) * H, dtype=membrane.dtype)
        s1 = np.empty(H)
        s3 = np.empty(H)
        for t in range(T - 1, -1, -1):
            g_t = grad_spikes[0 if same_every_step else t]
            s1[:] = 0.0
            s3[:] = 0.0
            for b in range(b0, b1):
                xb = np.float64(x[t, b])
                g, u_in = g_t[b * H:(b + 1) * H], membrane[t, b * H:(b + 1) * H]
                state = du_next[(b - b0) * H:(b - b0 + 1) * H]
                for n in range(H):
                    u = u_in[n]
                    o = (1.0 if u > threshold else 0.0) if hard_reset else 0.0
                    du = membrane_grad(g[n], u, o, state[n], leak, threshold, hard_reset, detach_reset,
                                       kind, height, width)
                    state[n] = du
                    s1[n] += du
                    s3[n] += du * xb
                if write:
                    grad_current[t, b * H:(b + 1) * H] = state
            sums[blk, 0, t] = s1
            sums[blk, 1, t] = s3
    return sums
