"""Leaky integrate-and-fire neurons: the only recurrent thing in a feed-forward SNN."""
import numpy as np

from ..kernels.lif import lif_scan_backward, lif_scan_forward, lif_scan_forward_mean
from ..surrogate import get_surrogate
from .base import Layer


def spike_gradient_rows(dy, dtype):
    """∂L/∂o ``[T, B, ...]`` as the backward scans take it, ``[T, N]`` in ``dtype``; the readout's
    gradient, the same at every step (a stride-0 view), as its one row ``[1, N]``."""
    rows = dy[:1] if dy.strides[0] == 0 else dy
    return np.ascontiguousarray(rows.reshape(rows.shape[0], -1), dtype=dtype)


class LIF(Layer):
    """LIF neurons scanned over time (equations in ``kernels/lif.py``).

    x ``[T, B, ...]`` input currents -> spikes ``[T, B, ...]`` (0/1, a fresh array). The state
    starts at zero for every sequence.

    Parameters
    ----------
    leak : λ in u_t = λ·v_{t−1} + I_t.
    threshold : θ; a spike when u_t > θ.
    reset : "soft" (v = u − θ·o) or "hard" (v = u·(1 − o)).
    detach_reset : drop the reset's dependence on u from the gradient (the reference's choice).
    surrogate : name, dict or Surrogate for dH/dx.
    """

    def __init__(self, leak=0.99, threshold=1.0, reset="soft", detach_reset=True, surrogate="triangle"):
        super().__init__()
        if reset not in ("soft", "hard"):
            raise ValueError(f"reset must be 'soft' or 'hard', got {reset!r}")
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.leak, self.threshold = float(leak), float(threshold)
        self.reset, self.detach_reset = reset, bool(detach_reset)
        self.surrogate = get_surrogate(surrogate)
        self._saved_membrane = None     # the spikes are not kept: backward recomputes o_t = H(u_t − θ)

    def forward(self, x, train=True):
        shape = x.shape
        current = np.ascontiguousarray(x.reshape(shape[0], -1))
        cast = current.dtype.type
        spikes, membrane = lif_scan_forward(current, cast(self.leak), cast(self.threshold), self.reset == "hard",
                                            np.empty_like(current),
                                            self.workspace.get("membrane", current.shape, current.dtype))
        self._saved_membrane = membrane
        return spikes.reshape(shape)

    def forward_time_mean(self, x):
        """The spikes' time mean ō ``[B, ...]`` = mean_t forward(x), without the spikes ever
        written (``layers/lif_readout.py``); keeps what ``backward`` needs, as ``forward`` does."""
        shape = x.shape
        current = np.ascontiguousarray(x.reshape(shape[0], -1))
        cast = current.dtype.type
        membrane = self.workspace.get("membrane", current.shape, current.dtype)
        mean = lif_scan_forward_mean(current, cast(self.leak), cast(self.threshold), self.reset == "hard", membrane)
        self._saved_membrane = membrane
        return mean.reshape(shape[1:])

    def _reset_signal(self, like):
        """The o_t of the reset for backward: none kept (the kernel recomputes it from u)."""
        return like[:0]

    def backward(self, dy, out=None):
        """∂L/∂I from ∂L/∂o by the reverse-time scan ``lif_scan_backward``, written into ``out``
        (an array of the input's size and dtype, e.g. a workspace buffer) or a new array."""
        shape = dy.shape
        membrane = self._saved_membrane
        grad = spike_gradient_rows(dy, membrane.dtype)
        cast = membrane.dtype.type
        sg = self.surrogate
        dx = np.empty_like(membrane) if out is None else out.reshape(membrane.shape)
        if dx.dtype != membrane.dtype:
            raise ValueError(f"LIF.backward: out has dtype {dx.dtype}, the layer ran in {membrane.dtype}")
        lif_scan_backward(grad, membrane, self._reset_signal(membrane), cast(self.leak), cast(self.threshold),
                          self.reset == "hard", self.detach_reset, sg.kind, cast(sg.height), cast(sg.width), dx)
        return dx.reshape(shape)

    def gradient_support(self):
        """What the layer above needs to compute ∂L/∂o only where this layer's backward uses it
        (``kernels/sparse_grad.py``): (membrane ``[T, B·neurons]``, kind, θ, height, width), the
        last four as the backward scan takes them; None when the surrogate is nowhere 0 or no
        forward is saved."""
        membrane = self._saved_membrane
        if not self.surrogate.compact or membrane is None:
            return None
        cast, sg = membrane.dtype.type, self.surrogate
        return membrane, sg.kind, cast(self.threshold), cast(sg.height), cast(sg.width)

    def __repr__(self):
        return (f"LIF(leak={self.leak:g}, threshold={self.threshold:g}, reset={self.reset!r}, "
                f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r})")
