"""Event-driven products against BLAS, by input density: where ``Linear`` should switch.

    python benchmarks/bench_events.py [--rows 100352] [--features 256] [--repeats 5]

For inputs with a given fraction of nonzeros (spikes: 0/1), prints the median milliseconds of
y = x·Wᵀ and dW = dyᵀ·x done densely by NumPy (BLAS) and event by event (kernels/events.py),
and their ratio; the default shape is the hidden layer of the sMNIST network at T = 784, B = 128.
``layers/linear.py`` takes the event path below ``EVENT_DENSITY``.
"""
import argparse
import json

import numpy as np

from bench_step import median_time   # this folder is on sys.path when run as a script


def median_ms(fn, repeats):
    return 1e3 * median_time(fn, repeats)


def main(argv=None):
    from minisnn.kernels.events import NO_PATTERN, event_matmul, event_weight_grad, grad_chunks
    from minisnn.layers.linear import EVENT_DENSITY
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=784 * 128)
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--densities", default="0.02,0.05,0.1,0.15,0.2,0.3,0.5")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n, f = args.rows, args.features
    W = rng.standard_normal((f, f)).astype(np.float32)
    Wt = np.ascontiguousarray(W.T)
    dy = rng.standard_normal((n, f)).astype(np.float32)
    y = np.empty((n, f), dtype=np.float32)
    rows = []
    for density in map(float, args.densities.split(",")):
        x = (rng.random((n, f)) < density).astype(np.float32)
        rows.append({"density": density,
                     "forward_blas_ms": median_ms(lambda: x @ W.T, args.repeats),
                     "forward_events_ms": median_ms(lambda: event_matmul(x, Wt, y, NO_PATTERN),
                                                    args.repeats),
                     "dW_blas_ms": median_ms(lambda: dy.T @ x, args.repeats),
                     "dW_events_ms": median_ms(lambda: event_weight_grad(dy, x, grad_chunks(n, f, f, 4), NO_PATTERN), args.repeats)})
    if args.json:
        print(json.dumps({"rows": n, "features": f, "event_density": EVENT_DENSITY, "results": rows}))
        return
    print(f"x [{n}, {f}] (0/1), W [{f}, {f}], float32, median of {args.repeats}; "
          f"Linear uses events below density {EVENT_DENSITY}")
    print(f"  {'density':>8s} {'fwd BLAS':>9s} {'fwd events':>11s} {'ratio':>6s} {'dW BLAS':>8s} "
          f"{'dW events':>10s} {'ratio':>6s}   (ms; ratio = events / BLAS)")
    for r in rows:
        print(f"  {r['density']:8.2f} {r['forward_blas_ms']:9.1f} {r['forward_events_ms']:11.1f} "
              f"{r['forward_events_ms'] / r['forward_blas_ms']:6.2f} {r['dW_blas_ms']:8.1f} "
              f"{r['dW_events_ms']:10.1f} {r['dW_events_ms'] / r['dW_blas_ms']:6.2f}")


if __name__ == "__main__":
    main()
