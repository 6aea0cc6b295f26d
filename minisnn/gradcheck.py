"""Hold hand-derived gradients to central finite differences.

Finite differences cannot see a surrogate gradient, so ``smooth_network`` swaps every LIF's
step H for its smooth stand-in F (with F' = the surrogate exactly; ``SmoothLIF``). A detached
reset is a stop-gradient; ``smooth_network`` makes it explicit by freezing the reset signal r_t
at its value at the point of the check. Production layers carry none of this.
"""
import numpy as np

from .layers import LIF
from .losses import cross_entropy
from .network import Sequential


def numerical_gradient(f, x, eps=1e-6):
    """∂f/∂x by central differences, (f(x + ε·e_i) − f(x − ε·e_i)) / 2ε, perturbing x in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        f_plus = f()
        flat[i] = orig - eps
        f_minus = f()
        flat[i] = orig
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def max_relative_error(analytic, numeric):
    """max |a − n| / max(max|n|, 1e-12): one number per array, scaled by the gradient's size."""
    scale = max(np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def layer_gradients(layer, x, dy, train=True, eps=1e-6):
    """Analytic and numerical gradients of L = Σ dy·layer(x) w.r.t. x and every parameter.

    Returns ``{name: (analytic, numeric)}`` with name "x" for the input.
    """
    x = np.array(x, dtype=np.float64)
    for _, p in layer.named_parameters():
        p.grad[...] = 0
    layer.forward(x, train=train)
    results = {"x": [layer.backward(dy)]}
    for name, p in layer.named_parameters():
        results[name] = [p.grad.copy()]

    def loss():
        return float(np.sum(dy * layer.forward(x, train=train)))

    results["x"].append(numerical_gradient(loss, x, eps))
    for name, p in layer.named_parameters():
        results[name].append(numerical_gradient(loss, p.data, eps))
    return {k: tuple(v) for k, v in results.items()}


class SmoothLIF(LIF):
    """A LIF layer whose spike is the surrogate's smooth stand-in F (``Surrogate.smooth``), for
    finite differences; the backward scan is LIF's own. ``frozen_reset`` (``[T, B, ...]`` or
    None) replaces the reset signal r_t = o_t by fixed values: a detached reset made explicit.

        u_t = λ·v_{t−1} + I_t,   o_t = F(u_t/θ − 1),   v_t = u_t − θ·r_t  or  u_t·(1 − r_t)

    A NumPy loop over t: gradient checks run it on a few neurons only.
    """

    def __init__(self, lif, frozen_reset=None):
        super().__init__(lif.leak, lif.threshold, lif.reset, lif.detach_reset, lif.surrogate)
        self.frozen_reset = frozen_reset

    def forward(self, x, train=True):
        current = x.reshape(x.shape[0], -1)
        spikes, membrane = np.empty_like(current), np.empty_like(current)
        frozen = None if self.frozen_reset is None else self.frozen_reset.reshape(current.shape)
        v = np.zeros_like(current[0])
        for t in range(len(current)):
            u = self.leak * v + current[t]
            o = self.surrogate.smooth(u / self.threshold - 1.0)
            r = o if frozen is None else frozen[t]
            v = u * (1.0 - r) if self.reset == "hard" else u - self.threshold * r
            membrane[t], spikes[t] = u, o
        self._saved_reset, self._saved_membrane = spikes, membrane
        return spikes.reshape(x.shape)

    def _reset_signal(self, like):
        """The smooth o_t: the hard reset's ∂v/∂u = 1 − o_t uses the stand-in's own spikes."""
        return self._saved_reset


def smooth_network(net, x=None):
    """A copy of ``net`` sharing its layers and parameters, with every LIF (inside residual blocks
    too) replaced by a ``SmoothLIF``. With ``x``, detached resets are frozen at their values for
    input ``x`` (run once here, in training mode), so the function finite differences see is
    exactly the one whose gradient the detached backward computes."""
    smooth = Sequential(*[layer.with_layers(lambda l: SmoothLIF(l) if isinstance(l, LIF) else l)
                          for layer in net.layers], spec=net.spec)
    if x is not None:
        spikes = {}
        smooth.forward(x, train=True, observe=lambda i, layer, _, y: spikes.__setitem__(id(layer), y.copy())
                       if isinstance(layer, LIF) else None)
        for layer in smooth.lif_layers():
            if layer.detach_reset:
                layer.frozen_reset = spikes[id(layer)]
        smooth.clear()
    return smooth


def network_gradients(net, x, labels, eps=1e-6):
    """Analytic and numerical gradients of the cross-entropy loss of ``net`` (smooth spikes)
    w.r.t. the input and every parameter: ``{name: (analytic, numeric)}``."""
    x = np.array(x, dtype=np.float64)
    net = smooth_network(net, x)
    net.zero_grad()
    _, dlogits = cross_entropy(net.forward(x, train=True), labels)
    results = {"x": [net.backward(dlogits)]}
    params = dict(net.named_parameters())
    for name, p in params.items():
        results[name] = [p.grad.copy()]

    def loss():
        return cross_entropy(net.forward(x, train=True), labels)[0]

    results["x"].append(numerical_gradient(loss, x, eps))
    for name, p in params.items():
        results[name].append(numerical_gradient(loss, p.data, eps))
    return {k: tuple(v) for k, v in results.items()}
