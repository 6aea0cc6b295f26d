"""Input encoders: images to time-major ``[T, B, ...]`` sequences."""
import numpy as np

POISSON_SCALE = 2.0   # the reference code's: a normalised value x spikes with probability min(1, |x|/2)


def pixel_sequence(images):
    """Sequential MNIST: one pixel per time step, row by row.

    images ``[B, H, W]`` (or ``[B, H·W]``) -> ``[T = H·W, B, 1]`` analogue input.
    """
    flat = images.reshape(images.shape[0], -1)
    return np.ascontiguousarray(flat.T[:, :, None])


def pixel_sequence_backward(images, ds):
    """∂L/∂x from ∂L/∂s ``[T, B, 1]``: s_{t,b} = x_{b,t}, so ∂L/∂x_{b,t} = ∂L/∂s_{t,b}."""
    return ds[:, :, 0].T.reshape(images.shape)


def direct(images, T):
    """Direct (analogue) input: the normalised image itself at every step,

        s_t = x,   t = 1 … T

    so the first synaptic layer computes the same current each step and its LIF does the
    encoding (the input of Fang et al. 2021's SEW ResNets). images ``[B, ...]`` -> ``[T, B, ...]``.
    """
    images = np.asarray(images)
    return np.ascontiguousarray(np.broadcast_to(images, (T,) + images.shape))


def direct_backward(images, ds):
    """∂L/∂x from ∂L/∂s ``[T, B, ...]``: every s_t is x, so ∂L/∂x = Σ_t ∂L/∂s_t."""
    return ds.sum(axis=0).reshape(images.shape)


def poisson(images, T, rng, scale=POISSON_SCALE):
    """The reference's signed Poisson rate code, a fresh draw at every step:

        s_t = sign(x)·[scale·r_t ≤ |x|],   r_t ~ U[0, 1)

    so a pixel of normalised value x spikes with probability min(1, |x|/scale). images
    ``[B, ...]`` -> spikes ``[T, B, ...]`` in {−1, 0, 1}, same dtype as images.
    """
    images = np.asarray(images)
    r = rng.random((T,) + images.shape, dtype=np.float32 if images.dtype == np.float32 else np.float64)
    return (np.sign(images) * (scale * r <= np.abs(images))).astype(images.dtype)


def poisson_rate(images, scale=POISSON_SCALE):
    """E[s_t] = sign(x)·min(1, |x|/scale): the rate code's expectation."""
    return np.sign(images) * np.minimum(1.0, np.abs(images) / scale)


def poisson_backward(images, ds, scale=POISSON_SCALE):
    """∂L/∂x from ∂L/∂s ``[T, B, ...]`` through the expectation (a spike has no derivative: a
    straight-through estimate, forward on the sampled spikes):

        ∂L/∂x = Σ_t ∂L/∂s_t · ∂E[s_t]/∂x = Σ_t ∂L/∂s_t · [|x| < scale]/scale
    """
    return ds.sum(axis=0).reshape(images.shape) * (np.abs(images) < scale) / scale
