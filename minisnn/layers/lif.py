"""Leaky integrate-and-fire neurons: the only recurrent thing in a feed-forward SNN."""
import numpy as np

from ..kernels.lif import lif_scan_backward, lif_scan_forward
from ..surrogate import get_surrogate
from .base import Layer

class LIF(Layer):
    """LIF neurons scanned over time (equations in ``kernels/lif.py``).

    x ``[T, B, ...]`` input currents -> spikes ``[T, B, ...]`` (0/1, or the smooth stand-in when
    ``smooth`` is set for gradient checks). The state starts at zero for every sequence.

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
        self.smooth = False          # gradient checks: F(x) in place of H(x)
        self.frozen_reset = None     # gradient checks: fixed r_t, a detached reset made explicit
        self._saved_spikes = self._saved_membrane = None
        self.last_spikes = None      # kept after forward for recording and analyses

    def forward(self, x, train=True):
        shape = x.shape
        current = np.ascontiguousarray(x.reshape(shape[0], -1))
        leak, theta, hard, kind, h, w = self.scalars(current.dtype)
        spikes, membrane = lif_scan_forward(current, leak, theta, hard, self.smooth, kind, h, w,
                                            self.frozen_reset_as(current), np.empty_like(current),
                                            self.membrane_workspace(current.shape, current.dtype))
        return self.keep(spikes, membrane, shape)

    # The pieces of forward that the BNTT + LIF pair (layers/bntt_lif.py) shares.
    def scalars(self, dtype):
        """λ, θ, hard reset?, surrogate kind, height, width, as the kernels take them."""
        cast = np.dtype(dtype).type
        sg = self.surrogate
        return cast(self.leak), cast(self.threshold), self.reset == "hard", sg.kind, cast(sg.height), cast(sg.width)

    def frozen_reset_as(self, like):
        """``frozen_reset`` shaped and typed like ``like``, or an empty array (none)."""
        if self.frozen_reset is None:
            return np.zeros((0,) * like.ndim, dtype=like.dtype)
        return np.ascontiguousarray(self.frozen_reset.reshape(like.shape), dtype=like.dtype)

    def membrane_workspace(self, shape, dtype):
        """The reused ``[T, N]`` array the membrane u is kept in for backward."""
        return self.workspace("membrane", (shape[0], int(np.prod(shape[1:]))), dtype)

    def keep(self, spikes, membrane, shape):
        """Save o and u ``[T, N]`` for backward; return the spikes shaped as the input."""
        T = shape[0]
        self._saved_spikes, self._saved_membrane = spikes.reshape(T, -1), membrane.reshape(T, -1)
        self.last_spikes = spikes.reshape(shape)
        return self.last_spikes

    def backward(self, dy):
        """∂L/∂I from ∂L/∂o by the reverse-time scan ``lif_scan_backward``."""
        shape = dy.shape
        membrane = self._saved_membrane
        if dy.strides[0] == 0:   # the readout's gradient, the same at every step: pass one row
            dy = dy[:1]
        grad = np.ascontiguousarray(dy.reshape(dy.shape[0], -1), dtype=membrane.dtype)
        leak, theta, hard, kind, h, w = self.scalars(membrane.dtype)
        dx = lif_scan_backward(grad, membrane, self._saved_spikes, leak, theta, hard,
                               self.detach_reset, kind, h, w, np.empty_like(membrane))
        return dx.reshape(shape)

    def __repr__(self):
        return (f"LIF(leak={self.leak:g}, threshold={self.threshold:g}, reset={self.reset!r}, "
                f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r})")
