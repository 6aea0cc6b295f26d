"""One full training step of ``smnist_fc`` (forward, backward, SGD), against its GEMM floor.

    python benchmarks/bench_step.py [--T 784] [--batch 128] [--repeats 7]

Prints the median seconds per step (and, for comparison, with BNTT and LIF run separately
instead of as the pair ``Sequential`` makes of them, with the first Linear, BNTT and LIF one
by one instead of as the fused input block, with the fused block writing float spikes instead of
bits for the Linear after it, and with the last LIF writing its spikes for the
readout instead of their time mean), per-layer medians (each layer alone, unfused), the median time of the step's matrix
products alone (the same shapes, run with NumPy in the same process: the floor no design can
beat), their ratio, and the step's peak memory (high-water mark of the process RSS, measured in
a fresh child process so nothing else inflates it).
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import minisnn  # noqa: F401  before NumPy, as in training: sets OPENBLAS_THREAD_TIMEOUT (minisnn/__init__.py)
import numpy as np


def median_time(fn, repeats):
    fn()  # warm-up (and Numba compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def build(T, B, dtype=np.float32):
    from minisnn import models
    from minisnn.optim import SGD
    net = models.smnist_fc(T=T, dtype=dtype)
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.random((T, B, 1), dtype=np.float32).astype(dtype)
    y = rng.integers(0, 10, B)
    return net, opt, x, y


def training_step(net, opt, x, y):
    from minisnn.training import train_step
    train_step(net, opt, x, y)


def gemm_floor(net, T, B):
    """The step's matrix products alone: forward, dW and dx of every Linear, on same-shaped arrays."""
    from minisnn.layers import Linear, Readout
    rng = np.random.default_rng(1)
    products = []
    for layer in net.layers:
        if isinstance(layer, Linear):
            W = layer.weight.data
            x = rng.random((T * B, layer.in_features), dtype=np.float32)
            dy = rng.random((T * B, layer.out_features), dtype=np.float32)
            products += [(x, W.T), (dy.T, x), (dy, W)]
        elif isinstance(layer, Readout):
            W = layer.weight.data
            xm = rng.random((B, layer.in_features), dtype=np.float32)
            dz = rng.random((B, layer.out_features), dtype=np.float32)
            products += [(xm, W.T), (dz.T, xm), (dz, W)]
    return lambda: [a @ b for a, b in products]


def per_layer(net, x, y, repeats):
    """Median forward and backward seconds of every layer: the time between one layer's
    ``observe`` call and the next, in the network's own passes (pairs included)."""
    from minisnn.losses import cross_entropy
    fwd = {i: [] for i in range(len(net.layers))}
    bwd = {i: [] for i in range(len(net.layers))}
    clock = [0.0]

    def timer(seconds):
        def observe(i, layer, x, y):
            now = time.perf_counter()
            seconds[i].append(now - clock[0])
            clock[0] = now
        return observe

    for r in range(repeats + 1):
        clock[0] = time.perf_counter()
        logits = net.forward(x, train=True, observe=timer(fwd))
        _, g = cross_entropy(logits, y)
        clock[0] = time.perf_counter()
        net.backward(g, observe=timer(bwd))
        net.clear()
    return [(repr(layer), float(np.median(fwd[i][1:])), float(np.median(bwd[i][1:])))
            for i, layer in enumerate(net.layers)]


def peak_memory_child(T, B):
    """Peak RSS (MiB) of a fresh process that builds the network and runs two training steps.

    Read from the child's ``VmHWM`` (the high-water mark of its own address space), not from
    ``getrusage``: Linux carries ``ru_maxrss`` across fork and exec, so a child started by a big
    parent reports at least the parent's RSS at the fork (this benchmark used to print its own
    parent's 1.3–1.5 GiB that way)."""
    code = (f"import sys; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); import bench_step as b;"
            f"net, opt, x, y = b.build({T}, {B}); b.training_step(net, opt, x, y); b.training_step(net, opt, x, y);"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=784)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    net, opt, x, y = build(args.T, args.batch)
    step = median_time(lambda: training_step(net, opt, x, y), args.repeats)
    from minisnn.network import Sequential
    unpaired = Sequential(*net.layers, pair=False)   # BNTT and LIF each with its own fresh output
    step_unpaired = median_time(lambda: training_step(unpaired, opt, x, y), args.repeats)
    unfused = Sequential(*net.layers, fuse_input=False)   # the first Linear, BNTT and LIF one by one
    step_unfused = median_time(lambda: training_step(unfused, opt, x, y), args.repeats)
    float_spikes = Sequential(*net.layers, input_bits=False)   # the input block writes float spikes for the Linear
    step_float_spikes = median_time(lambda: training_step(float_spikes, opt, x, y), args.repeats)
    spiking_tail = Sequential(*net.layers, fuse_readout=False)   # the last LIF writes its spikes for the readout
    step_spiking_tail = median_time(lambda: training_step(spiking_tail, opt, x, y), args.repeats)
    floor = median_time(gemm_floor(net, args.T, args.batch), args.repeats)
    layers = per_layer(net, x, y, args.repeats)
    from minisnn.layers import LIF
    densities = [float(s.mean()) for s in net.outputs(x, LIF, train=True)[1].values()]
    net.clear()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = peak_memory_child(args.T, args.batch)
    result = {"T": args.T, "batch": args.batch, "dtype": "float32", "step_s": step, "step_unpaired_s": step_unpaired,
              "step_input_layer_by_layer_s": step_unfused,
              "step_input_spikes_as_floats_s": step_float_spikes, "step_readout_layer_by_layer_s": step_spiking_tail,
              "gemm_floor_s": floor,
              "ratio": step / floor, "peak_rss_mib": peak, "layers": layers,
              "spike_density": densities}
    if args.json:
        print(json.dumps(result))
        return
    print(f"smnist_fc training step, T={args.T}, B={args.batch}, float32, median of {args.repeats}")
    print(f"  {'layer':58s} {'forward s':>10s} {'backward s':>10s}")
    for name, f, b in layers:
        print(f"  {name[:58]:58s} {f:10.4f} {b:10.4f}")
    print("spike density of each LIF layer (the next layer's input): "
          + ", ".join(f"{d:.3f}" for d in densities))
    print(f"step (forward + backward + SGD): {step:.3f} s   "
          f"(BNTT and LIF run separately, not as a pair: {step_unpaired:.3f} s; "
          f"the input Linear, BNTT and LIF one by one, not fused: {step_unfused:.3f} s; "
          f"the input block's spikes as floats, not bits, for the Linear: {step_float_spikes:.3f} s; "
          f"the last LIF and the readout one by one, not fused: {step_spiking_tail:.3f} s)")
    print(f"GEMM floor (same products alone): {floor:.3f} s   ratio {step / floor:.2f}x")
    print(f"peak memory of a training step (fresh process RSS): {peak:.0f} MiB "
          f"(this process, after all runs: {baseline_rss:.0f} MiB)")


if __name__ == "__main__":
    main()
