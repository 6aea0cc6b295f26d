"""Training-step benchmark of a convolutional SNN: forward + backward against the floor set by its GEMMs.

    python benchmarks/bench_conv.py                       # VGG9, B=16, T=25, 32×32 (the reference's CIFAR-10 setting)
    python benchmarks/bench_conv.py --model mnist-resnet  # ResNet-14 on MNIST, B=64, T=10
    python benchmarks/bench_conv.py --model mnist-sew-resnet  # with SEW blocks
    python benchmarks/bench_conv.py --model mnist-plain   # its plain twin
    python benchmarks/bench_conv.py --model mnist-vgg     # the six-BNTT VGG on MNIST, B=64, T=25
    python benchmarks/bench_conv.py --quick               # B=4, T=4: a smoke test in seconds
    python benchmarks/bench_conv.py --checkpoint results/mnist-sew-resnet-t4/checkpoint.npz --data-dir ../shared/data/mnist
                                                          # a trained network on real digits (its sparser spikes)

One step = Poisson input -> minisnn.training.train_step without an optimizer (forward, loss, backward, clear). Reported:

- the median seconds per step (after one warm-up step that also compiles the Numba kernels),
  and the seconds spent in each layer type (forward + backward, summed over the step);
- the GEMM floor: the very matrix products the step performs (same shapes, dtypes and memory
  layouts, chunk by chunk as Conv2d does them), re-run alone with NumPy on random arrays of
  the same shapes in the same process: no im2col, no neurons, no normalisation;
- the fraction of nonzero inputs of every convolution (below ``conv.EVENT_DENSITY`` it runs
  event-driven), which at initialisation is far higher than after training;
- the peak resident memory of the process (``resource.getrusage``), which, unlike tracemalloc,
  also sees the arrays allocated inside Numba kernels.
"""
import argparse
import os
import resource
import statistics
import sys
import time
from collections import defaultdict

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _threads_argument(argv):
    """The value of --threads, read before NumPy and Numba start their thread pools."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__" and _threads_argument(sys.argv[1:]):
    for _var in THREAD_VARIABLES:
        os.environ[_var] = _threads_argument(sys.argv[1:])

import minisnn  # noqa: E402,F401  before NumPy, as in training: sets OPENBLAS_THREAD_TIMEOUT
import numpy as np  # noqa: E402

from minisnn import models  # noqa: E402
from minisnn.checkpoint import load_network  # noqa: E402
from minisnn.layers.conv import EVENT_DENSITY  # noqa: E402
from minisnn.layers.linear import input_density  # noqa: E402
from minisnn.tasks import batch_rng, get_task  # noqa: E402
from minisnn.encoding import poisson  # noqa: E402
from minisnn.layers import Conv2d, Linear, Readout  # noqa: E402
from minisnn.training import train_step  # noqa: E402


class Clock:
    """Wall-clock and process CPU seconds together (CPU time is what a shared machine's
    other jobs cannot inflate; with one thread it is the work itself)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


class LayerTimer:
    """An observer of a training step's passes: the wall and CPU seconds between one layer's
    observe call and the next are that layer's, summed by layer type; every layer's input shape
    is recorded at its first (forward) call, for the GEMM list."""

    def __init__(self):
        self.shapes, self.seconds, self.density = {}, defaultdict(lambda: [0.0, 0.0]), {}
        self.clock = Clock()

    def start(self):
        self.clock = Clock()

    def __call__(self, i, layer, x, y):
        wall, cpu = self.clock.lap()
        if id(layer) not in self.shapes:
            self.shapes[id(layer)] = x.shape
            if isinstance(layer, Conv2d):
                self.density[id(layer)] = input_density(x.reshape(-1, int(np.prod(x.shape[2:]))))
        self.clock = Clock()
        self.seconds[type(layer).__name__][0] += wall
        self.seconds[type(layer).__name__][1] += cpu


# model -> (builder, input channels, input size, default batch, default T)
MODELS = {
    "vgg9": (lambda T, size: models.vgg9(T=T, input_size=size, dtype=np.float32), 3, 32, 16, 25),
    "mnist-vgg": (lambda T, size: models.mnist_vgg(T=T), 1, 28, 64, 25),
    "mnist-resnet": (lambda T, size: models.resnet(depth=14, T=T), 1, 28, 64, 10),
    "mnist-sew-resnet": (lambda T, size: models.resnet(depth=14, T=T, sew=True), 1, 28, 64, 10),
    "mnist-plain": (lambda T, size: models.resnet(depth=14, T=T, plain=True), 1, 28, 64, 10),
}


def gemm_list(net, shapes):
    """(layer type, shape of A, shape of B, A transposed?, B transposed?) for every product of one
    step, inside residual blocks too."""
    out = []
    for layer in net.modules():
        name = type(layer).__name__
        if isinstance(layer, Conv2d):
            T, B, C, H, W = shapes[id(layer)]
            ho, wo = layer.output_shape(H, W)
            K, M = C * layer.kernel_size ** 2, layer.out_channels
            for sl in layer._chunks(T * B, H, W):
                P = (sl.stop - sl.start) * ho * wo
                out += [(name, (M, K), (K, P), False, False),      # Y = W₂·X_col
                        (name, (M, P), (K, P), False, True),       # dW₂ = dY·X_colᵀ
                        (name, (M, K), (M, P), True, False)]       # dX_col = W₂ᵀ·dY
        elif isinstance(layer, (Linear, Readout)):
            shape = shapes[id(layer)]
            rows = int(np.prod(shape[:2])) if isinstance(layer, Linear) else shape[1]
            F, O = layer.in_features, layer.out_features
            out += [(name, (rows, F), (O, F), False, True),        # y = x·Wᵀ
                    (name, (rows, O), (rows, F), True, False),     # dW = dyᵀ·x
                    (name, (rows, O), (O, F), False, False)]       # dx = dy·W
    return out


def time_gemms(gemms, dtype, repeats, rng):
    """Median (wall, CPU) seconds to run all the products once, on random arrays of the same
    layouts; and the median CPU seconds per layer type."""
    operands = []
    for name, a_shape, b_shape, ta, tb in gemms:
        a = rng.random(a_shape, dtype=dtype)
        b = rng.random(b_shape, dtype=dtype)
        operands.append((name, a.T if ta else a, b.T if tb else b))
    walls, cpus, by_type = [], [], defaultdict(list)
    for _ in range(repeats + 1):
        clock, per_type = Clock(), defaultdict(float)
        for name, a, b in operands:
            c0 = time.process_time()
            a @ b
            per_type[name] += time.process_time() - c0
        wall, cpu = clock.lap()
        walls.append(wall)
        cpus.append(cpu)
        for name, t in per_type.items():
            by_type[name].append(t)
    per_type = {name: statistics.median(t[1:]) for name, t in by_type.items()}
    return (statistics.median(walls[1:]), statistics.median(cpus[1:])), per_type


def gemm_flops(gemms):
    return sum(2 * a[0] * a[1] * (b[0] if tb else b[1]) for _, a, b, ta, tb in gemms)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="vgg9")
    parser.add_argument("--batch", type=int, help="default: the model's (VGG9 16, the MNIST models 64; "
                                                  "a checkpoint's: its training batch)")
    parser.add_argument("--steps", "-T", type=int, dest="T", help="default: the model's (25; ResNets 10)")
    parser.add_argument("--size", type=int, help="input size (VGG9 only; default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None,
                        help="set OPENBLAS/OMP/MKL/NUMBA_NUM_THREADS (acts only when run as a script)")
    parser.add_argument("--quick", action="store_true", help="B=4, T=4: a smoke test")
    parser.add_argument("--checkpoint", help="time this trained network (its T; --model is ignored) on training "
                                             "digits of its task, read from --data-dir")
    parser.add_argument("--data-dir", help="the dataset folder, with --checkpoint")
    args = parser.parse_args(argv)
    build, channels, size, batch, T = MODELS[args.model]
    asked_batch = args.batch
    args.size = args.size or size
    args.batch, args.T = args.batch or batch, args.T or T
    if args.quick:
        args.batch, args.T, args.repeats = 4, 4, 2
    rng = np.random.default_rng(0)
    timer = LayerTimer()
    if args.checkpoint:
        if args.data_dir is None:
            parser.error("--checkpoint needs --data-dir (the network is timed on real inputs)")
        net, meta = load_network(args.checkpoint, trained=True)
        task = get_task(meta["config"]["dataset"])
        args.model, args.T = f"{args.checkpoint} ({task.name})", meta["config"]["T"]
        if asked_batch is None and not args.quick:
            args.batch = meta["config"]["batch_size"]            # the batch it was trained with
        images, labels = task.load(args.data_dir, True)
        idx = batch_rng(0, 0).permutation(len(images))[:args.batch]
        images, labels = images[idx].astype(np.float32), labels[idx]
        args.size = images.shape[-1]
        encode = task.encode
    else:
        net = build(args.T, args.size)
        images = rng.standard_normal((args.batch, channels, args.size, args.size)).astype(np.float32)
        labels = rng.integers(0, 10, args.batch)
        encode = poisson
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    walls, cpus = [], []
    for i in range(args.repeats + 1):
        if i == 1:
            timer.seconds.clear()
        clock = Clock()
        x = encode(images, args.T, rng)
        timer.start()
        train_step(net, None, x, labels, observe=timer)   # gradients only, no update
        wall, cpu = clock.lap()
        walls.append(wall)
        cpus.append(cpu)
    step = statistics.median(walls[1:]), statistics.median(cpus[1:])
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    gemms = gemm_list(net, timer.shapes)
    seconds = timer.seconds
    floor, floor_by_type = time_gemms(gemms, np.float32, args.repeats, rng)
    flops = gemm_flops(gemms)

    threads = {v: os.environ.get(v, "default") for v in THREAD_VARIABLES}
    print(f"{args.model} forward+backward, B={args.batch}, T={args.T}, {args.size}x{args.size}, float32, "
          f"median of {args.repeats} steps; {os.cpu_count()} CPUs, threads: "
          + ", ".join(f"{k.split('_')[0]}={v}" for k, v in threads.items()))
    print(f"{'':28s}{'wall s':>10s}{'CPU s':>10s}")
    print(f"{'step (forward+backward)':28s}{step[0]:10.3f}{step[1]:10.3f}")
    print(f"{'GEMM floor (same products)':28s}{floor[0]:10.3f}{floor[1]:10.3f}   {len(gemms)} GEMMs, "
          f"{flops / 1e9:.1f} GFLOP, {flops / floor[0] / 1e9:.0f} GFLOP/s wall")
    print(f"{'step / floor':28s}{step[0] / floor[0]:10.2f}{step[1] / floor[1]:10.2f}")
    print(f"{'peak RSS (MiB)':28s}{rss_peak / 1024:10.0f}   (before the first step: {rss_before / 1024:.0f})")
    density = list(timer.density.values())
    if density:
        print(f"{'conv input nonzeros':28s}" + " ".join(f"{d:.2f}" for d in density)
              + f"  ({sum(d < EVENT_DENSITY for d in density)} of {len(density)} below {EVENT_DENSITY}: event-driven)")
    print("per layer type (forward + backward, per step):")
    print(f"  {'':26s}{'wall s':>10s}{'CPU s':>10s}{'GEMM CPU s':>12s}")
    for name, (wall, cpu) in sorted(seconds.items(), key=lambda kv: -kv[1][1]):
        gemm = f"{floor_by_type[name]:12.3f}" if name in floor_by_type else ""
        print(f"  {name:26s}{wall / args.repeats:10.3f}{cpu / args.repeats:10.3f}{gemm}")
    return step, floor


if __name__ == "__main__":
    main()
