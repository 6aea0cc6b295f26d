"""Image augmentation and normalisation for ``[N, C, H, W]`` batches (as the reference's
torchvision ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()`` and ``Normalize``)."""
import numpy as np


def random_crop_flip(images, rng, padding=4, flip=True):
    """Pad every image with ``padding`` zero pixels on each side, cut a random H×W window out
    of it, and mirror it left–right with probability ½:

        out[n, c, i, j] = pad(x)[n, c, i + a_n, j' + b_n],  a_n, b_n ~ U{0, …, 2·padding},
        j' = W − 1 − j if flipped else j

    images ``[N, C, H, W]`` of any dtype (apply it to raw uint8 pixels, before ``normalize``,
    so the padding is black as in the reference); ``rng`` a ``numpy.random.Generator``.
    Returns a new array of the same shape and dtype.
    """
    images = np.asarray(images)
    N, C, H, W = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    offsets = rng.integers(0, 2 * padding + 1, size=(N, 2))
    flips = rng.random(N) < 0.5 if flip else np.zeros(N, dtype=bool)
    out = np.empty_like(images)
    for n in range(N):
        a, b = offsets[n]
        window = padded[n, :, a:a + H, b:b + W]
        out[n] = window[:, :, ::-1] if flips[n] else window
    return out


def normalize(images, mean, std, dtype=np.float32):
    """x_c = (pixel/255 − mean_c)/std_c for uint8 ``[N, C, H, W]`` images (channel axis 1)."""
    mean = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(1, -1, 1, 1)
    scale, shift = (1.0 / (255.0 * std)).astype(dtype), (mean / std).astype(dtype)   # x = p·scale − shift
    out = np.asarray(images).astype(dtype)
    out *= scale
    out -= shift
    return out
