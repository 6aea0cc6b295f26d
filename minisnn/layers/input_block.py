"""Linear(1, H) → BNTT → LIF, the first layer of a pixel-sequence network, run as one scan.

With one input feature the current is rank one, w_n·x_tb, so BNTT's statistics of step t are
those of the pixels x_t scaled by w_n, and the LIF input is affine in the pixel:

    m_t = mean_b x_tb ,   v_t = mean_b (x_tb − m_t)²            (biased, as BNTT's)
    μ_tn = w_n·m_t ,   σ²_tn = w_n²·v_t ,   s_tn = √(σ²_tn + ε)
    I_tbn = γ_tn·(w_n·x_tb − μ_tn)/s_tn = a_tn·x_tb + c_tn ,   a = γ·w/s ,  c = −a·m_t

``kernels/input_lif.py`` scans the LIF neurons over that current without storing it. Run layer by
layer, the same step writes and reads the ``[T, B, H]`` Linear output, BNTT's x̂ and its output
(103 MB each for sMNIST at B = 128); backward, BNTT's input gradient and Linear's reading of it.
Backward needs only two batch sums of δ = ∂L/∂I per step and neuron, S1 = Σ_b δ and
S3 = Σ_b δ·x, which the backward scan returns:

    P_tn = Σ_b δ·x̂ = (w_n/s_tn)·(S3 − m_t·S1)
    ∂L/∂γ_tn = P_tn
    ∂L/∂w_n = Σ_{t,b} ∂L/∂(w_n x_tb)·x_tb = Σ_t γ_tn·ε·(S3 − m_t·S1)/s_tn³

(the second from BNTT's dx = γ/s·(δ − S1/B − x̂·P/B), summed against x: BN makes the current
independent of w's scale except through ε). Where someone looks inside (an observer of the
backward pass) or asks for ∂L/∂x, the intermediate gradients are computed from δ by those same
formulas.

The three layers stay layers — own parameters, running statistics, checkpoint names — and
``Sequential`` runs them this way only in training passes nobody observes (forward); every other
pass, and any other arrangement, runs them one by one. The results equal the layer-by-layer ones
to rounding (``tests/test_input_block.py``).
"""
import numpy as np

from ..kernels.events import NO_PATTERN, pattern_bytes
from ..kernels.input_lif import input_lif_backward, input_lif_forward, sample_blocks
from .lif import LIF, spike_gradient_rows
from .linear import Linear
from .norm import BNTT, EPS, update_running

SUMS = "input block sums"


def is_input_block(linear, bntt, lif):
    """Linear(1, H) without bias, then BNTT, then LIF: decided by exact layer type (a subclass,
    e.g. gradient checking's smooth LIF, runs layer by layer)."""
    return (type(linear) is Linear and linear.in_features == 1 and linear.bias is None
            and type(bntt) is BNTT and type(lif) is LIF)


def forward(linear, bntt, lif, x, as_bits=False):
    """Training forward of the three layers on x ``[T, B, 1]``: spikes ``[T, B, H]`` (a fresh
    array) and what ``backward`` needs. Updates BNTT's running statistics as its forward does.

    ``as_bits``: the spikes as their bits ``[T·B, ⌈H/8⌉]`` uint8 instead (for the next Linear's
    ``forward_from_bits``; ``kernels/events.py``), never written as floats."""
    T, B = x.shape[:2]
    bntt.check_input(x.shape[:2] + (linear.out_features,))
    dtype = linear.weight.data.dtype
    pixels = np.ascontiguousarray(x.reshape(T, B), dtype=dtype)
    p = pixels.astype(np.float64)
    m = p.mean(axis=1)
    v = ((p - m[:, None]) ** 2).mean(axis=1)
    w = linear.weight.data[:, 0].astype(np.float64)
    s = np.sqrt(w ** 2 * v[:, None] + EPS)                        # [T, H]
    a = bntt.gamma.data[:T].astype(np.float64) * w / s
    c = -a * m[:, None]
    update_running(bntt.running_mean[:T], bntt.running_var[:T], w * m[:, None], w ** 2 * v[:, None], B)
    H = linear.out_features
    membrane = lif.workspace.get("membrane", (T, B * H), dtype)
    cast = dtype.type
    if as_bits:
        spikes, pattern = np.empty((0, 0), dtype), np.empty((T * B, pattern_bytes(H)), np.uint8)
    else:
        spikes, pattern = np.empty((T, B * H), dtype), NO_PATTERN
    input_lif_forward(pixels, a.astype(dtype), c.astype(dtype), cast(lif.leak), cast(lif.threshold),
                      lif.reset == "hard", spikes, membrane, pattern)
    lif._saved_membrane = membrane
    return (pattern if as_bits else spikes.reshape(T, B, H)), (pixels, m, v, s)


def backward(linear, bntt, lif, saved, workspace, dy, observe=None, input_grad=True):
    """Backward of the three layers from ∂L/∂spikes ``dy`` ``[T, B, H]``: adds into γ's and w's
    ``.grad``; returns ∂L/∂x ``[T, B, 1]`` if ``input_grad``, else None. ``observe`` (as
    ``Sequential.backward`` calls it) sees the three layers' gradients, LIF's first."""
    pixels, m, v, s = saved
    T, B = pixels.shape
    H = linear.out_features
    membrane = lif._saved_membrane
    grad = spike_gradient_rows(dy, membrane.dtype)
    inside = input_grad or observe is not None
    delta = np.empty_like(membrane) if inside else membrane[:0]
    sums = workspace.get(SUMS, (sample_blocks(B), 2, T, H), np.float64)
    sg, cast = lif.surrogate, membrane.dtype.type
    input_lif_backward(grad, membrane, pixels, cast(lif.leak), cast(lif.threshold), lif.reset == "hard",
                       lif.detach_reset, sg.kind, cast(sg.height), cast(sg.width), sums, delta)
    S1, S3 = sums.sum(axis=0)
    w = linear.weight.data[:, 0].astype(np.float64)
    gamma = bntt.gamma.data[:T].astype(np.float64)
    centred = S3 - m[:, None] * S1
    P = w / s * centred
    bntt.gamma.grad[:T] += P.astype(bntt.gamma.grad.dtype)
    linear.weight.grad[:, 0] += (gamma * EPS * centred / s ** 3).sum(axis=0).astype(linear.weight.grad.dtype)
    if not inside:
        return None
    delta = delta.reshape(T, B, H)
    xhat = (w / s)[:, None, :] * (pixels - m[:, None])[:, :, None]
    d_linear = ((gamma / s)[:, None, :] * (delta - S1[:, None, :] / B - xhat * P[:, None, :] / B)).astype(delta.dtype)
    dx = (d_linear @ linear.weight.data)
    if observe is not None:
        observe(2, lif, dy, delta)
        observe(1, bntt, delta, d_linear)
        observe(0, linear, d_linear, dx if input_grad else None)
    return dx if input_grad else None
