"""One sMNIST training step in minisnn against the same network in snnTorch.

    python benchmarks/bench_vs_snntorch.py [--T 784] [--batch-size 128] [--rounds 5] [--repeats 3]
                                           [--threads N] [--layerwise] [--stock-leaky] [--check]

The network is the paper's sequential-MNIST net, ``models.smnist_fc`` with the smnist task's
settings (``tasks.TASKS["smnist"]``: leak 0.99, batch 128, SGD lr 0.1, momentum 0.9, weight decay
1e-4; threshold 1, soft reset, triangle surrogate h = 0.3, w = 1):

    FC(1,256) → BNTT → LIF → FC(256,256) → BNTT → LIF → Readout(256,10) (the time mean of the spikes)

snnTorch gets the same network: ``nn.Linear`` (no bias), ``snn.BatchNormTT1d`` (ε = 1e-4, as
minisnn's BNTT), ``snn.Leaky(beta, threshold, reset_mechanism="subtract")``, the readout
``nn.Linear`` on the time mean of the spikes, ``F.cross_entropy`` and ``torch.optim.SGD`` (the same
update as ``minisnn.optim.SGD``). One timed step is forward, loss, backward and the SGD update, on
the same uniform random input (float32) in both.

Two things in snnTorch differ from minisnn and are adjusted:

- *The surrogate.* minisnn's triangle is dH/du ≈ (h/θ)·max(0, 1 − |u/θ − 1|/w). snnTorch has no
  such function: ``snntorch.surrogate.triangular`` returns +θ·grad below the threshold and −θ·grad
  at or above it (``surrogate.Triangular.backward``) — a sign step of unbounded support, the
  derivative of a tent, not a tent. The script passes snnTorch a 10-line ``autograd.Function``
  (``TriangleSpike``) with minisnn's triangle as ``spike_grad``, the way snnTorch documents custom
  surrogates (its ``surrogate.custom_surrogate`` forces float32 spikes, which the float64 check
  cannot use).
- *The reset.* ``snn.Leaky`` subtracts the threshold after the decay, u_t = β·u_{t−1} + I_t −
  θ·o_{t−1}; minisnn's soft reset decays the reset membrane, u_t = β·(u_{t−1} − θ·o_{t−1}) + I_t.
  ``MinisnnLeaky`` is ``snn.Leaky`` with that one line (``_base_sub``) changed: the same ops, so the
  same cost. ``--stock-leaky`` times the unmodified class instead; ``--check`` shows both.

By default snnTorch runs the way its tutorials write a network: one Python loop over time
steps, every layer inside it. ``--layerwise`` runs each stateless layer once over the whole
sequence (``[T·B, in]``, as minisnn does), looping over time only for BNTT and LIF: fewer,
larger calls, a stronger baseline.

Each library runs in its own fresh process (the script calls itself with ``--worker``), the two
alternating round by round (minisnn first in even rounds, snnTorch first in odd ones), each with
the same thread count (``--threads``: ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``torch.set_num_threads``). A worker runs
``--warmup`` steps (Numba compilation, first-touch allocations), untimed, then ``--repeats``
timed steps, and reports their median. The script prints each round's two medians and their
ratio, then the median over rounds of each library's medians and the median of the per-round
ratios.

``--check`` first runs one tiny batch in float64 through both (minisnn's initial weights copied
into the torch model) and prints the loss and the maximum relative difference of every gradient.

Needs torch and snnTorch (optional; not needed by minisnn or its tests): without them the script
says so in one line and exits 0.
"""
import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time

import minisnn  # noqa: F401  before NumPy, as in training: sets OPENBLAS_THREAD_TIMEOUT (minisnn/__init__.py)
import numpy as np

OPTIONAL = ("torch", "snntorch")
LIBRARIES = ("minisnn", "snntorch")


def missing_packages():
    """The optional packages this script needs that are not installed."""
    return [name for name in OPTIONAL if importlib.util.find_spec(name) is None]


def settings():
    """The smnist task's training settings and ``smnist_fc``'s neuron defaults, as one dict."""
    from minisnn import models, surrogate, tasks
    defaults = tasks.TASKS["smnist"].defaults
    signature = inspect.signature(models.smnist_fc).parameters
    tri = surrogate.get_surrogate(signature["surrogate"].default)
    if tri.name != "triangle" or signature["reset"].default != "soft":
        raise ValueError("smnist_fc's defaults are no longer the soft-reset triangle this comparison ports")
    from minisnn.layers.norm import EPS
    return {"leak": defaults["leak"], "batch_size": defaults["batch_size"], "lr": defaults["lr"],
            "momentum": defaults["momentum"], "weight_decay": defaults["weight_decay"],
            "threshold": signature["threshold"].default, "hidden": signature["hidden"].default,
            "height": tri.height, "width": tri.width, "eps": EPS}


def inputs(T, B, dtype=np.float32, seed=0):
    """The benchmark's batch: uniform pixels ``[T, B, 1]`` and labels ``[B]`` (as bench_step.py)."""
    rng = np.random.default_rng(seed)
    return rng.random((T, B, 1)).astype(dtype), rng.integers(0, 10, B)


# --- the snnTorch network ---------------------------------------------------------------------

def torch_classes():
    """``TriangleSpike``, ``MinisnnLeaky`` and ``SMNISTNet``, defined once torch is importable."""
    import snntorch as snn
    import torch
    import torch.nn as nn

    class TriangleSpike(torch.autograd.Function):
        """o = H(x), x = u − θ (strict, as minisnn); backward (h/θ)·max(0, 1 − |x|/(θ·w))."""

        @staticmethod
        def forward(ctx, x, threshold, height, width):
            ctx.save_for_backward(x)
            ctx.constants = threshold, height, width
            return (x > 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            threshold, height, width = ctx.constants
            return grad * (height / threshold) * torch.clamp(1 - x.abs() / (threshold * width), min=0), None, None, None

    class MinisnnLeaky(snn.Leaky):
        """``snn.Leaky`` with minisnn's soft reset: u_t = β·(u_{t−1} − θ·o_{t−1}) + I_t (the reset
        o_{t−1} is snnTorch's own, detached, as minisnn's ``detach_reset``)."""

        def _base_sub(self, input_):
            return self.beta.clamp(0, 1) * (self.mem - self.reset * self.threshold) + input_

    class SMNISTNet(nn.Module):
        """smnist_fc in snnTorch: Linear → BatchNormTT1d → Leaky, twice, then the readout."""

        def __init__(self, T, s, leaky=MinisnnLeaky, layerwise=False, dtype=torch.float32):
            super().__init__()
            h, th = s["hidden"], s["threshold"]
            # β as a tensor of the model's dtype: snnTorch stores a Python float as a float32
            # buffer, and 0.99 rounded to float32 would stay rounded in a float64 model
            beta = lambda: torch.tensor(s["leak"], dtype=dtype)   # noqa: E731
            spike = lambda x: TriangleSpike.apply(x, th, s["height"], s["width"])   # noqa: E731
            self.fc1 = nn.Linear(1, h, bias=False)
            self.bn1 = snn.BatchNormTT1d(h, T, eps=s["eps"])
            self.lif1 = leaky(beta=beta(), threshold=th, spike_grad=spike, reset_mechanism="subtract")
            self.fc2 = nn.Linear(h, h, bias=False)
            self.bn2 = snn.BatchNormTT1d(h, T, eps=s["eps"])
            self.lif2 = leaky(beta=beta(), threshold=th, spike_grad=spike, reset_mechanism="subtract")
            self.fc3 = nn.Linear(h, 10, bias=False)
            self.layerwise = layerwise

        def forward(self, x, spikes=None):
            """x ``[T, B, 1]`` -> logits ``[B, 10]``; ``spikes`` (a list) receives both layers'
            spike trains ``[T, B, hidden]``."""
            T = x.shape[0]
            if self.layerwise:
                s1 = self._scan(self.lif1, self.bn1, self.fc1(x))
                s2 = self._scan(self.lif2, self.bn2, self.fc2(s1))
            else:   # the snnTorch tutorials' loop: every layer inside one loop over time
                mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
                out1, out2 = [], []
                for t in range(T):
                    spk1, mem1 = self.lif1(self.bn1[t](self.fc1(x[t])), mem1)
                    spk2, mem2 = self.lif2(self.bn2[t](self.fc2(spk1)), mem2)
                    if spikes is not None:   # kept only for --check: a timed step does not pay for it
                        out1.append(spk1)
                    out2.append(spk2)
                s2 = torch.stack(out2)
                s1 = torch.stack(out1) if spikes is not None else None
            if spikes is not None:
                spikes += [s1, s2]
            return self.fc3(s2.mean(0))

        @staticmethod
        def _scan(lif, bn, current):
            mem, out = lif.reset_mem(), []
            # unbind, not current[t]: the backward of each index op would build a zero tensor of
            # the whole sequence's size, T times over
            for t, step in enumerate(current.unbind(0)):
                spk, mem = lif(bn[t](step), mem)
                out.append(spk)
            return torch.stack(out)

    return TriangleSpike, MinisnnLeaky, SMNISTNet


def copy_weights(net, model):
    """minisnn's smnist_fc parameters into the torch ``SMNISTNet`` (Linear W, BNTT γ_t)."""
    import torch
    with torch.no_grad():
        for fc, i in ((model.fc1, 0), (model.fc2, 3), (model.fc3, 6)):
            fc.weight.copy_(torch.from_numpy(net.layers[i].weight.data))
        for bn, i in ((model.bn1, 1), (model.bn2, 4)):
            gamma = torch.from_numpy(net.layers[i].gamma.data)
            for t, layer in enumerate(bn):
                layer.weight.copy_(gamma[t])


def torch_gradients(model):
    """The torch gradients under minisnn's parameter names (BNTT's γ_t stacked to ``[T, C]``)."""
    import torch
    return {"0.weight": model.fc1.weight.grad, "1.gamma": torch.stack([b.weight.grad for b in model.bn1]),
            "3.weight": model.fc2.weight.grad, "4.gamma": torch.stack([b.weight.grad for b in model.bn2]),
            "6.weight": model.fc3.weight.grad}


# --- --check: the same computation ------------------------------------------------------------

def check(s, T, B, layerwise):
    """Loss and gradients of one float64 batch in minisnn and in snnTorch from the same weights.

    Returns a list of (variant, loss minisnn, loss torch, {parameter: max relative difference},
    spikes that differ, spikes in all).
    """
    import snntorch as snn
    import torch
    import torch.nn.functional as F
    from minisnn import models
    from minisnn.layers import LIF
    from minisnn.training import train_step
    _, MinisnnLeaky, SMNISTNet = torch_classes()
    net = models.smnist_fc(T=T, hidden=s["hidden"], leak=s["leak"], threshold=s["threshold"], dtype=np.float64)
    x, y = inputs(T, B, np.float64, seed=1)
    _, spikes = net.outputs(x, LIF, train=True)
    ours = np.concatenate([spikes[i].ravel() for i in sorted(spikes)])
    net.clear()
    loss, _ = train_step(net, None, x, y)
    grads = {name: p.grad.copy() for name, p in net.named_parameters()}
    rows = []
    for variant, leaky in (("MinisnnLeaky", MinisnnLeaky), ("snn.Leaky", snn.Leaky)):
        model = SMNISTNet(T, s, leaky, layerwise, dtype=torch.float64).double()
        copy_weights(net, model)
        recorded = []
        logits = model(torch.from_numpy(x), spikes=recorded)
        t_loss = F.cross_entropy(logits, torch.from_numpy(y))
        t_loss.backward()
        theirs = torch.cat([r.detach().reshape(-1) for r in recorded]).numpy()
        diff = {name: float(np.max(np.abs(g.numpy() - grads[name])) / max(np.max(np.abs(grads[name])), 1e-300))
                for name, g in torch_gradients(model).items()}
        rows.append((variant, loss, t_loss.item(), diff, int(np.sum(ours != theirs)), ours.size))
    return rows


# --- workers: one library, one process --------------------------------------------------------

def minisnn_worker(s, T, B, warmup, repeats):
    """Seconds of each timed minisnn training step (train_step: forward, backward, SGD)."""
    from minisnn import models
    from minisnn.optim import SGD
    from minisnn.training import train_step
    net = models.smnist_fc(T=T, hidden=s["hidden"], leak=s["leak"], threshold=s["threshold"])
    opt = SGD(net.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    x, y = inputs(T, B)
    for _ in range(warmup):
        train_step(net, opt, x, y)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        train_step(net, opt, x, y)
        times.append(time.perf_counter() - t0)
    return times


def snntorch_worker(s, T, B, warmup, repeats, threads, layerwise, stock_leaky):
    """Seconds of each timed snnTorch training step (forward, cross-entropy, backward, SGD)."""
    import snntorch as snn
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    _, MinisnnLeaky, SMNISTNet = torch_classes()
    model = SMNISTNet(T, s, snn.Leaky if stock_leaky else MinisnnLeaky, layerwise)
    opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    x, y = inputs(T, B)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def run_worker(library, args, s):
    """One fresh process timing ``library``; returns its step times (seconds)."""
    env = dict(os.environ)
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(args.threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", library, "--settings", json.dumps(s),
           "--T", str(args.T), "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    cmd += ["--layerwise"] * args.layerwise + ["--stock-leaky"] * args.stock_leaky
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {library} worker failed (exit {out.returncode}): {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])["times"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=784)
    p.add_argument("--batch-size", type=int, help="default: the smnist task's (128)")
    p.add_argument("--rounds", type=int, default=5, help="alternating pairs of worker processes")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per worker")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per worker (Numba compilation)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both libraries")
    p.add_argument("--layerwise", action="store_true", help="snnTorch: stateless layers once over all steps")
    p.add_argument("--stock-leaky", action="store_true", help="snnTorch: time the unmodified snn.Leaky")
    p.add_argument("--check", action="store_true", help="first compare loss and gradients on one float64 batch")
    p.add_argument("--check-T", type=int, default=50)
    p.add_argument("--check-batch", type=int, default=8)
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    missing = missing_packages()
    if missing:
        names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
        print(f"bench_vs_snntorch: skipped, {names} not installed "
              f"(optional: pip install torch snntorch)")
        return 0
    if args.worker:
        s = json.loads(args.settings)
        B = args.batch_size
        if args.worker == "minisnn":
            times = minisnn_worker(s, args.T, B, args.warmup, args.repeats)
        else:
            times = snntorch_worker(s, args.T, B, args.warmup, args.repeats, args.threads, args.layerwise,
                                    args.stock_leaky)
        print(json.dumps({"times": times}))
        return 0
    try:
        s = settings()
        args.batch_size = args.batch_size or s["batch_size"]
        if min(args.T, args.batch_size, args.rounds, args.repeats, args.threads) < 1 or args.warmup < 0:
            raise ValueError("--T, --batch-size, --rounds, --repeats and --threads must be positive")
        checked = check(s, args.check_T, args.check_batch, args.layerwise) if args.check else None
        rounds = []
        for r in range(args.rounds):
            order = LIBRARIES if r % 2 == 0 else LIBRARIES[::-1]
            medians = {lib: float(np.median(run_worker(lib, args, s))) for lib in order}
            rounds.append(medians)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ratios = [m["snntorch"] / m["minisnn"] for m in rounds]
    summary = {lib: float(np.median([m[lib] for m in rounds])) for lib in LIBRARIES}
    snntorch_style = "layerwise" if args.layerwise else "per-step loop"
    leaky = "snn.Leaky" if args.stock_leaky else "MinisnnLeaky"
    if args.json:
        print(json.dumps({"T": args.T, "batch": args.batch_size, "threads": args.threads,
                          "snntorch_style": snntorch_style, "leaky": leaky, "rounds": rounds, "ratios": ratios, "median_s": summary,
                          "median_ratio": float(np.median(ratios)),
                          "check": None if checked is None else [
                              {"variant": v, "loss_minisnn": a, "loss_torch": b, "max_rel_diff": d,
                               "spikes_differing": n, "spikes": total} for v, a, b, d, n, total in checked]}))
        return 0
    if checked is not None:
        print(f"check: one float64 batch, T={args.check_T}, B={args.check_batch}, minisnn's initial weights in both")
        print(f"  {'snnTorch neuron':14s} {'loss minisnn':>14s} {'loss snnTorch':>14s} {'spikes differing':>18s}  "
              "max relative gradient difference")
        for variant, a, b, diff, n, total in checked:
            grads = ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
            print(f"  {variant:14s} {a:14.10f} {b:14.10f} {f'{n} of {total}':>18s}  {grads}")
    print(f"smnist_fc training step, T={args.T}, B={args.batch_size}, float32, {args.threads} threads; "
          f"snnTorch: {snntorch_style}, {leaky}; median of {args.repeats} steps per process, "
          f"{args.warmup} warm-up step(s) excluded")
    print(f"  {'round':>5s} {'first':>9s} {'minisnn s':>10s} {'snnTorch s':>11s} {'ratio':>7s}")
    for r, (m, ratio) in enumerate(zip(rounds, ratios)):
        print(f"  {r + 1:5d} {next(iter(m)):>9s} {m['minisnn']:10.3f} {m['snntorch']:11.3f} {ratio:6.2f}x")
    print(f"median over {args.rounds} rounds: minisnn {summary['minisnn']:.3f} s, "
          f"snnTorch {summary['snntorch']:.3f} s; median of the per-round ratios {np.median(ratios):.2f}x "
          "(snnTorch / minisnn)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
