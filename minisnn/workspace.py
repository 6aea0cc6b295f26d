"""Workspace: reused arrays for intermediates whose lifetime the owner controls.

Allocating and filling a fresh 100 MB array costs about twice refilling a reused one (the
kernel zeroes every new page first: 6.5 against 3.0 ms here), so arrays that are rewritten every
step — what a layer keeps for its own backward, the current between a BNTT and its LIF, a
convolution's column matrix — come from a workspace instead of ``np.empty``:

    buf = workspace.get("membrane", shape, dtype)

returns a C-contiguous array of that shape, a view of one flat buffer per (name, dtype) that
grows to the largest request and is kept until the workspace is dropped. Two names never share
memory; one name returns the same memory every call, so an owner asks for a name only for data
that is dead (or rewritten) by the time it asks again. Outputs that callers may keep are never
taken from a workspace.
"""
import numpy as np


class Workspace:
    """Named reusable buffers (see the module docstring)."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype):
        """A ``shape``/``dtype`` array backed by the buffer ``name`` (contents undefined)."""
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        size = int(np.prod(shape))
        key = (name, dtype.str)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = self._buffers[key] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def owns(self, array):
        """True when ``array`` lives in one of this workspace's buffers."""
        return any(np.shares_memory(array, buf) for buf in self._buffers.values())

    def nbytes(self):
        return sum(buf.nbytes for buf in self._buffers.values())
