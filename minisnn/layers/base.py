"""Parameter and Layer: the two objects every layer is made of.

A layer maps a whole time-major sequence to a whole sequence, ``forward(x[T, B, ...]) -> y``,
keeping what its backward needs; ``backward(dy) -> dx`` adds into its parameters' ``.grad``.
"""
import numpy as np

from ..workspace import Workspace


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
        # what the layer keeps for its own backward (the LIF membrane, BNTT's x̂), reused from
        # call to call; never its outputs, which callers may keep
        self.workspace = Workspace()

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

    def sublayers(self):
        """The layers inside this one (a residual block's paths); none for a plain layer."""
        return []

    def with_layers(self, fn):
        """This layer with every plain layer in it replaced by ``fn(layer)``: ``fn(self)`` here; a
        block rebuilds itself around its mapped insides (``gradcheck.smooth_network`` uses it)."""
        return fn(self)

    def clear(self):
        """Drop what forward kept for backward (frees memory after a step)."""
        for name in [k for k in vars(self) if k.startswith("_saved")]:
            setattr(self, name, None)

    def __repr__(self):
        return type(self).__name__ + "()"
