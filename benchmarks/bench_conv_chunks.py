"""Dense convolutions by the size of their im2col chunk: what ``layers/conv.CHUNK_ELEMENTS`` should be.

    python benchmarks/bench_conv_chunks.py [--chunks 23,20] [--rounds 10] [--repeats 5]

``Conv2d`` builds the column matrix of a few images at a time (a chunk of about
``CHUNK_ELEMENTS`` elements) and multiplies it at once. For each chunk size given as a power of
two (elements), the forward and backward of four dense (im2col + BLAS) convolutions of the MNIST
ResNet at T·B = 256 (16 channels on 28×28, 32 on 14×14, 64 on 7×7, and 16 → 32 with stride 2)
are timed, the sizes alternating round after round so that the machine's drift hits them alike;
printed: the median over rounds of the four layers' summed median time, and the minimum.
"""
import argparse

import minisnn  # noqa: F401  before NumPy (OPENBLAS_THREAD_TIMEOUT)
import numpy as np

from bench_step import median_time  # (this folder is on sys.path when run as a script)
from minisnn.layers import conv as conv_module
from minisnn.layers.conv import Conv2d

LAYERS = ((16, 16, 28, 1), (32, 32, 14, 1), (64, 64, 7, 1), (16, 32, 28, 2))   # (in, out, size, stride)


def setups(images=256, T=4, seed=0):
    rng = np.random.default_rng(seed)
    built = []
    for c_in, c_out, size, stride in LAYERS:
        layer = Conv2d(c_in, c_out, stride=stride, rng=rng)
        layer.event_driven = False
        x = rng.standard_normal((T, images // T, c_in, size, size)).astype(np.float32)
        dy = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
        built.append((layer, x, dy))
    return built


def layer_seconds(layer, x, dy, repeats):
    """Median seconds of one forward + backward (after a warm-up: compilation, workspace growth)."""
    return median_time(lambda: (layer.forward(x), layer.backward(dy)), repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunks", default="23,20", help="log2 of CHUNK_ELEMENTS, comma-separated (default 23,20)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    sizes = [1 << int(c) for c in args.chunks.split(",")]
    built = setups()
    totals = {size: [] for size in sizes}
    saved = conv_module.CHUNK_ELEMENTS
    try:
        for _ in range(args.rounds):
            for size in sizes:
                conv_module.CHUNK_ELEMENTS = size
                totals[size].append(sum(layer_seconds(*b, args.repeats) for b in built))
    finally:
        conv_module.CHUNK_ELEMENTS = saved
    print(f"four dense convolutions, forward + backward, T·B = 256, float32; {args.rounds} alternating rounds")
    for size, t in totals.items():
        print(f"  chunk 2^{size.bit_length() - 1} elements ({size * 4 / 2 ** 20:g} MiB): "
              f"median {1000 * np.median(t):.1f} ms, min {1000 * min(t):.1f} ms")


if __name__ == "__main__":
    main()
