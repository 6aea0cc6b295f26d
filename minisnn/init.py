"""Weight initialisation, as in the reference code."""
import numpy as np


def xavier_uniform(shape, gain=2.0, rng=None, dtype=np.float32):
    """W ~ U[−a, a],  a = gain·√(6 / (fan_in + fan_out)).

    ``shape`` is ``[out, in]`` or ``[C_out, C_in, kh, kw]``; fan counts include the kernel area.
    """
    rng = np.random.default_rng(rng)
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
