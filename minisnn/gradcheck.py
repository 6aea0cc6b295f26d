"""Hold hand-derived gradients to central finite differences.

Finite differences cannot see a surrogate gradient, so ``smooth_spikes`` swaps every LIF's
step H for its smooth stand-in F (with F' = the surrogate exactly). A detached reset is a
stop-gradient; ``smooth_spikes`` makes it explicit by freezing the reset signal r_t at its
value at the point of the check, so the function finite differences see is exactly the one
whose gradient the detached backward computes.
"""
from contextlib import contextmanager

import numpy as np

from .losses import cross_entropy


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


@contextmanager
def smooth_spikes(net, x):
    """Within the block, every LIF of ``net`` uses its smooth stand-in, and detached resets are
    frozen at their values for input ``x`` (run once here, in training mode)."""
    lifs = net.lif_layers()
    for lif in lifs:
        lif.smooth, lif.frozen_reset = True, None
    try:
        net.forward(x, train=True)
        for lif in lifs:
            if lif.detach_reset:
                lif.frozen_reset = lif.last_spikes.copy()
        yield net
    finally:
        for lif in lifs:
            lif.smooth, lif.frozen_reset = False, None


def network_gradients(net, x, labels, eps=1e-6):
    """Analytic and numerical gradients of the cross-entropy loss of ``net`` (smooth spikes)
    w.r.t. the input and every parameter: ``{name: (analytic, numeric)}``."""
    x = np.array(x, dtype=np.float64)
    with smooth_spikes(net, x):
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
