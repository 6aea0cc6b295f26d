"""Parameter and Layer: the two objects every layer is made of.

A layer maps a whole time-major sequence to a whole sequence, ``forward(x[T, B, ...]) -> y``,
keeping what its backward needs; ``backward(dy) -> dx`` adds into its parameters' ``.grad``.
"""
import numpy as np


class Parameter:
    """A trainable array and the gradient accumulated into it."""

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Layer:
    """Base class: no parameters, no buffers, identity bookkeeping."""

    def __init__(self):
        self._params = {}
        self._buffers = {}
        self._workspace = {}

    def workspace(self, name, shape, dtype):
        """An array for something the layer keeps for its own backward (the LIF membrane, the
        normalised x̂), reused from call to call while shape and dtype match: a fresh
        100 MB array costs as much in page faults as the arithmetic that fills it. Never used
        for outputs, which callers may keep. Held until the layer is deleted."""
        buf = self._workspace.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = self._workspace[name] = np.empty(shape, dtype=dtype)
        return buf

    def forward(self, x, train=True):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def named_parameters(self):
        """(name, Parameter) pairs of this layer, in a fixed order."""
        return list(self._params.items())

    def buffers(self):
        """Non-trainable state saved with the model (e.g. running statistics)."""
        return self._buffers

    def clear(self):
        """Drop what forward kept for backward (frees memory after a step)."""
        for name in [k for k in vars(self) if k.startswith("_saved")]:
            setattr(self, name, None)

    def __repr__(self):
        return type(self).__name__ + "()"
