"""Input encoders: images to time-major ``[T, B, ...]`` sequences."""
import numpy as np


def pixel_sequence(images):
    """Sequential MNIST: one pixel per time step, row by row.

    images ``[B, H, W]`` (or ``[B, H·W]``) -> ``[T = H·W, B, 1]`` analogue input.
    """
    flat = images.reshape(images.shape[0], -1)
    return np.ascontiguousarray(flat.T[:, :, None])


def poisson(images, T, rng, scale=2.0):
    """The reference's signed Poisson rate code, a fresh draw at every step:

        s_t = sign(x)·[scale·r_t ≤ |x|],   r_t ~ U[0, 1)

    so a pixel of normalised value x spikes with probability min(1, |x|/scale). images
    ``[B, ...]`` -> spikes ``[T, B, ...]`` in {−1, 0, 1}, same dtype as images.
    """
    images = np.asarray(images)
    r = rng.random((T,) + images.shape, dtype=np.float32 if images.dtype == np.float32 else np.float64)
    return (np.sign(images) * (scale * r <= np.abs(images))).astype(images.dtype)


def poisson_rate(images, scale=2.0):
    """E[s_t] = sign(x)·min(1, |x|/scale): the rate code's expectation (used for FGSM)."""
    return np.sign(images) * np.minimum(1.0, np.abs(images) / scale)


def direct(images, T):
    """Direct (constant-current) coding: the same analogue image at every step."""
    images = np.asarray(images)
    return np.ascontiguousarray(np.broadcast_to(images, (T,) + images.shape))
