"""A BNTT layer directly followed by LIF neurons: a pair that shares its intermediate.

Run one after the other, BNTT writes its output y = γ_t·x̂ into a fresh ``[T, B, C, ...]`` array
that only the LIF scan reads, and in backward the LIF scan writes ∂L/∂I into a fresh array that
only BNTT's backward reads. Allocating and filling a fresh 100 MB array took 6.5 ms here against
3.0 ms for refilling a reused one: the kernel zeroes every new page first. So ``Sequential``
gives both the buffer ``PAIR_CURRENT`` of its workspace, which every pair reuses (it is dead
once the pair's call returns): I_t in forward (``BNTT.forward(out=)``), δu_t in backward
(``LIF.backward(out=)``). (Not the membrane array itself: the kernels would be correct in place,
but LLVM's vectorised loops check that input and output do not overlap and fall back to scalar
code when they do.)

The layers' own forward and backward run unchanged, only writing into that buffer, so the results
are bit-identical to fresh arrays, and the two stay separate layers (own parameters, running
statistics, saved state): checkpoints, recording and analyses see the same network.
"""
from .lif import LIF
from .norm import BNTT

PAIR_CURRENT = "bntt-lif current"


def is_pair(first, second):
    """BNTT then LIF: decided by layer type, once, when the network is built."""
    return isinstance(first, BNTT) and isinstance(second, LIF)
