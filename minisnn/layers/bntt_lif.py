"""A BNTT layer directly followed by LIF neurons, run as a pair by ``Sequential``.

Run one after the other, BNTT writes its output y = γ_t·x̂ into a fresh ``[T, B, C, ...]`` array
that only the LIF scan reads, and in backward the LIF scan writes ∂L/∂I into a fresh array that
only BNTT's backward reads. Allocating and filling a fresh 100 MB array took 6.5 ms here against
3.0 ms for refilling a reused one: the kernel zeroes every new page first. As a pair, both live in a
``scratch`` buffer that the network reuses for every pair (they are dead once the pair's call
returns): I_t in forward, δu_t in backward. (Not in the membrane array itself: the kernels
would be correct in place, but LLVM's vectorised loops check that input and output do not
overlap and fall back to scalar code when they do.)

The same kernels run on the same numbers, so results are bit-identical to the unfused layers,
and the two stay separate layers (own parameters, running statistics, saved state), so
checkpoints, spike recording and analyses see the same network.
"""
import numpy as np

from ..kernels.lif import lif_scan_backward, lif_scan_forward
from ..kernels.norm import bntt_backward, bntt_forward
from .lif import LIF
from .norm import BNTT, EPS, _as_tbcs


def can_pair_forward(norm, lif, train):
    """BNTT then LIF, normalising by the batch's own statistics (training, or batch-statistics
    evaluation; with running statistics BNTT is a plain scale)."""
    return isinstance(norm, BNTT) and isinstance(lif, LIF) and norm.uses_batch_statistics(train)


def can_pair_backward(norm, lif):
    """BNTT then LIF whose last forward used batch statistics."""
    return (isinstance(norm, BNTT) and isinstance(lif, LIF) and norm._saved is not None
            and norm._saved[0] == "batch" and lif._saved_membrane is not None)


def bntt_lif_forward(norm, lif, x, train, scratch):
    """``lif.forward(norm.forward(x, train), train)`` without the intermediate array;
    ``scratch(shape, dtype)`` returns a reusable array."""
    norm.check_input(x)
    T = x.shape[0]
    x4 = np.ascontiguousarray(_as_tbcs(x))
    current = scratch((T, x4[0].size), x4.dtype)
    _, xhat, mean, var = bntt_forward(x4, norm.gamma.data[:T], EPS, current.reshape(x4.shape),
                                      norm.workspace("xhat", x4.shape, x4.dtype))
    norm.keep_batch(xhat, mean, var, train)
    leak, theta, hard, kind, h, w = lif.scalars(current.dtype)
    spikes, membrane = lif_scan_forward(current, leak, theta, hard, lif.smooth, kind, h, w,
                                        lif.frozen_reset_as(current), np.empty_like(current),
                                        lif.membrane_workspace(current.shape, current.dtype))
    return lif.keep(spikes, membrane, x.shape)


def bntt_lif_backward(norm, lif, dy, scratch):
    """``norm.backward(lif.backward(dy))`` without the intermediate array; dy = ∂L/∂o."""
    _, xhat, var, T = norm._saved
    membrane, spikes = lif._saved_membrane, lif._saved_spikes
    shape = dy.shape
    if dy.strides[0] == 0:   # the readout's gradient, the same at every step: pass one row
        dy = dy[:1]
    grad = np.ascontiguousarray(dy.reshape(dy.shape[0], -1), dtype=membrane.dtype)
    leak, theta, hard, kind, h, w = lif.scalars(membrane.dtype)
    du = lif_scan_backward(grad, membrane, spikes, leak, theta, hard, lif.detach_reset, kind, h, w,
                           scratch(membrane.shape, membrane.dtype))
    dx, dgamma = bntt_backward(du.reshape(xhat.shape), xhat, norm.gamma.data[:T], var, EPS, np.empty_like(xhat))
    norm.gamma.grad[:T] += dgamma.astype(norm.gamma.grad.dtype)
    return dx.reshape(shape)
