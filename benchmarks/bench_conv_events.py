"""Event-driven convolution against im2col + BLAS, by input density: where ``Conv2d`` should switch.

    python benchmarks/bench_conv_events.py [--images 640] [--repeats 5] [--threads N]

For spike inputs (0/1) with a given fraction of nonzeros, one Conv2d's forward and backward
(which includes the dense input gradient in both modes) with ``event_driven`` True and False,
median milliseconds and their ratio, on the three stages of the MNIST ResNet at T·B = 640
images (16 channels on 28×28, 32 on 14×14, 64 on 7×7; 3×3, stride 1). ``layers/conv.py`` takes
the event path below ``EVENT_DENSITY``.
"""
import argparse
import json
import os
import sys

if __name__ == "__main__" and "--threads" in sys.argv:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = _n

import minisnn  # noqa: E402,F401  before NumPy (OPENBLAS_THREAD_TIMEOUT)
import numpy as np  # noqa: E402

from bench_step import median_time  # noqa: E402  (this folder is on sys.path when run as a script)

STAGES = ((16, 28), (32, 14), (64, 7))       # (channels, size) of the ResNet's three stages


def layer_ms(conv, x, dy, events, repeats):
    conv.event_driven = events

    def step():
        conv.forward(x)
        conv.backward(dy)
        conv.clear()

    return 1e3 * median_time(step, repeats)


def main(argv=None):
    from minisnn.layers import Conv2d
    from minisnn.layers.conv import EVENT_DENSITY
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=640, help="T·B images (default: T = 10, B = 64)")
    p.add_argument("--densities", default="0.02,0.05,0.1,0.15,0.2,0.3")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", help="OpenBLAS/OpenMP/Numba threads (read before NumPy starts)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for channels, size in STAGES:
        conv = Conv2d(channels, channels, 3, 1, 1, rng=rng)
        dy = rng.standard_normal((args.images, 1, channels, size, size)).astype(np.float32)
        for density in map(float, args.densities.split(",")):
            x = (rng.random((args.images, 1, channels, size, size)) < density).astype(np.float32)
            rows.append({"channels": channels, "size": size, "density": density,
                         "dense_ms": layer_ms(conv, x, dy, False, args.repeats),
                         "events_ms": layer_ms(conv, x, dy, True, args.repeats)})
    if args.json:
        print(json.dumps({"images": args.images, "event_density": EVENT_DENSITY, "results": rows}))
        return
    print(f"Conv2d C→C 3×3, {args.images} images, 0/1 input, float32, forward + backward, median of "
          f"{args.repeats}; Conv2d uses events below density {EVENT_DENSITY}")
    print(f"  {'layer':>14s} {'density':>8s} {'im2col+BLAS':>12s} {'events':>8s} {'ratio':>6s}   (ms; ratio = events / dense)")
    for r in rows:
        print(f"  {r['channels']:>5d} on {r['size']:>2d}×{r['size']:<2d} {r['density']:8.2f} {r['dense_ms']:12.1f} "
              f"{r['events_ms']:8.1f} {r['events_ms'] / r['dense_ms']:6.2f}")


if __name__ == "__main__":
    main()
