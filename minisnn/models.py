"""The paper's networks. Every builder records its arguments in ``net.spec`` so a checkpoint
can rebuild the same network."""
import numpy as np

from .layers import BNTT, LIF, BatchNorm, LayerNorm, Linear, Readout
from .network import Sequential

NORMS = ("bntt", "bn", "ln", "none")


def norm_layer(norm, T, channels, dtype):
    """The normalisation placed between a synaptic layer and its LIF neurons (or None)."""
    if norm == "bntt":
        return BNTT(T, channels, dtype=dtype)
    if norm == "bn":
        return BatchNorm(channels, dtype=dtype)
    if norm == "ln":
        return LayerNorm(channels, dtype=dtype)
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


def fc_snn(sizes, T, norm="bntt", leak=0.99, threshold=1.0, surrogate="triangle", reset="soft",
           detach_reset=True, dtype=np.float32, seed=0, spec=None):
    """FC(sizes[0], sizes[1]) - … - Readout(sizes[-2], sizes[-1]), each hidden block
    Linear -> norm -> LIF; no biases; Xavier-uniform (gain 2) weights."""
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype))
        nl = norm_layer(norm, T, n_out, dtype)
        if nl is not None:
            layers.append(nl)
        layers.append(LIF(leak=leak, threshold=threshold, reset=reset, detach_reset=detach_reset,
                          surrogate=surrogate))
    layers.append(Readout(sizes[-2], sizes[-1], rng=rng, dtype=dtype))
    return Sequential(*layers, spec=spec)


def _spec(name, **kwargs):
    kwargs["dtype"] = np.dtype(kwargs["dtype"]).name
    surrogate = kwargs["surrogate"]
    kwargs["surrogate"] = surrogate if isinstance(surrogate, (str, dict)) else surrogate.to_dict()
    return {"model": name, **kwargs}


def smnist_fc(T=784, hidden=256, norm="bntt", leak=0.99, threshold=1.0, surrogate="triangle",
              reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """The paper's sequential-MNIST network FC(1,256)-FC(256,256)-FC(256,10): one pixel per step."""
    args = dict(T=T, hidden=hidden, norm=norm, leak=leak, threshold=threshold, surrogate=surrogate,
                reset=reset, detach_reset=detach_reset, dtype=dtype, seed=seed)
    return fc_snn([1, hidden, hidden, 10], T, norm, leak, threshold, surrogate, reset, detach_reset,
                  dtype, seed, spec=_spec("smnist_fc", **args))


def mnist_fc(T=25, hidden=(800,), norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle",
             reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """Static MNIST with Poisson input: FC(784, hidden…)-FC(hidden, 10)."""
    hidden = [int(h) for h in np.atleast_1d(hidden)]
    args = dict(T=T, hidden=hidden, norm=norm, leak=leak, threshold=threshold, surrogate=surrogate,
                reset=reset, detach_reset=detach_reset, dtype=dtype, seed=seed)
    return fc_snn([784, *hidden, 10], T, norm, leak, threshold, surrogate, reset, detach_reset,
                  dtype, seed, spec=_spec("mnist_fc", **args))


BUILDERS = {"smnist_fc": smnist_fc, "mnist_fc": mnist_fc}


def build(spec):
    """Rebuild a network from its ``spec`` (as stored in a checkpoint)."""
    spec = dict(spec)
    name = spec.pop("model", None)
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[name](**spec)
