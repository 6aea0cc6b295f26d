"""A BNTT layer directly followed by LIF neurons, run as a pair by ``Sequential``.

Run one after the other, BNTT writes its output y = γ_t·x̂ into a fresh ``[T, B, C, ...]`` array
that only the LIF scan reads, and in backward the LIF scan writes ∂L/∂I into a fresh array that
only BNTT's backward reads. Allocating and filling a fresh 100 MB array took 6.5 ms here against
3.0 ms for refilling a reused one: the kernel zeroes every new page first. As a pair, both live in a
``scratch`` buffer that the network reuses for every pair (they are dead once the pair's call
returns): I_t in forward, δu_t in backward. (Not in the membrane array itself: the kernels
would be correct in place, but LLVM's vectorised loops check that input and output do not
overlap and fall back to scalar code when they do.)

The pair calls the layers' own forward and backward, only handing them that buffer as ``out``,
so the results are bit-identical to running them one after the other, and the two stay separate
layers (own parameters, running statistics, saved state): checkpoints, spike recording and
analyses see the same network.
"""
from .lif import LIF
from .norm import BNTT


def can_pair_forward(norm, lif, train):
    """BNTT then LIF, normalising by the batch's own statistics (training, or batch-statistics
    evaluation; with running statistics BNTT is a plain scale)."""
    return isinstance(norm, BNTT) and isinstance(lif, LIF) and norm.uses_batch_statistics(train)


def can_pair_backward(norm, lif):
    """BNTT then LIF whose last forward used batch statistics."""
    return (isinstance(norm, BNTT) and isinstance(lif, LIF) and norm._saved is not None
            and norm._saved[0] == "batch" and lif._saved_membrane is not None)


def bntt_lif_forward(norm, lif, x, train, scratch):
    """``lif.forward(norm.forward(x, train), train)`` with BNTT's output in ``scratch(shape, dtype)``,
    a reused array, instead of a new one."""
    return lif.forward(norm.forward(x, train, out=scratch(x.shape, x.dtype)), train)


def bntt_lif_backward(norm, lif, dy, scratch):
    """``norm.backward(lif.backward(dy))`` with ∂L/∂I in ``scratch(shape, dtype)`` instead of a new
    array; dy = ∂L/∂o."""
    return norm.backward(lif.backward(dy, out=scratch(dy.shape, lif._saved_membrane.dtype)))
