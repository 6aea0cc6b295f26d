"""NeuroBench's own workload metrics against hwmodel's counts, on the same trained networks.

    python validation/neurobench_check.py [CHECKPOINT ...] [--samples 256] [--batch-size 64]
                                          [--data-dir DIR] [--threads N] [--json]

For each checkpoint (default: the committed ``results/mnist``, ``results/mnist-conv`` and
``results/smnist`` checkpoints) the first ``--samples`` test images are encoded once, by minisnn's
own evaluation encoder (``evaluate.test_batches``: image i with ``batch_rng(seed, EVAL_KEY, i)``),
and the same arrays go to both tools:

- **hwmodel**: ``record.record_run`` (the network in evaluation mode, the normalisation
  statistics evaluation uses by default, ``evaluate.default_bn_stats``) → ``hwmodel.counts.count_run``.
- **NeuroBench**: a PyTorch port of the network, run through NeuroBench's ``Benchmark`` with its
  ``SNNTorchModel`` wrapper (one call per time step, the input batch-first ``[B, T, ...]``), the
  ``ChooseMaxCount`` post-processor and the metrics ``SynapticOperations`` (Effective_MACs,
  Effective_ACs, Dense), ``ActivationSparsity``, ``MembraneUpdates``, ``ClassificationAccuracy``
  and the static ``ConnectionSparsity``.

The port, layer by layer: Linear and Conv2d become ``nn.Linear`` / ``nn.Conv2d`` with the same
weights; BNTT becomes ``snn.BatchNormTT1d`` / ``BatchNormTT2d`` (ε = 1e-4) in eval mode, holding
the checkpoint's statistics of each step (calibrated or running, whichever minisnn evaluates
with); LIF becomes ``snn.Leaky`` (``init_hidden=True``) with minisnn's soft reset
u_t = λ·(u_{t−1} − θ·o_{t−1}) + I_t (stock ``snn.Leaky`` subtracts θ after the decay); AvgPool2d and
Flatten become their torch twins; the Readout becomes an ``nn.Linear`` applied to the spikes at
every step, the class being the largest sum over steps — which is how hwmodel counts the
readout (an event-driven chip applies it at every step), and equals minisnn's W·mean_t o_t.
Everything runs in float32, as the checkpoints.

Besides the two tools' numbers the script measures what explains any difference between them:
hwmodel's formulas applied to the port's own tensors (``geometry.fanout`` on the nonzeros each
synaptic layer of the port received, so that NeuroBench minus this is the definitions' share and
this minus hwmodel the ports' share), spikes on which the two ports disagree (float32 sums in
another order), zero weights (which
NeuroBench skips), time steps at which NeuroBench calls a layer's input binary while hwmodel,
deciding once per tensor over the whole run, does not (or the reverse), NeuroBench's own
definition evaluated exactly (float64 sums: NeuroBench sums its operation counts in the layer's
float32), membranes that did not change from one step to the next (NeuroBench's
MembraneUpdates counts only those that did; hwmodel updates every neuron at every step), and
what NeuroBench would count for the readout had the port computed it as minisnn's engine does
(W·mean_t o_t: one product on a non-binary input, so MACs, once).

Needs torch, snnTorch and NeuroBench (optional; not needed by minisnn or its tests): without
them the script says so in one line and exits 0.
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import minisnn  # noqa: F401  before NumPy: sets OPENBLAS_THREAD_TIMEOUT (minisnn/__init__.py)
import numpy as np

OPTIONAL = ("torch", "snntorch", "neurobench")
ROOT = Path(__file__).resolve().parent.parent
SYNAPTIC = ("Linear", "Readout", "Conv2d")     # the port's connection layers, NeuroBench's and hwmodel's
DEFAULT_CHECKPOINTS = [ROOT / "results" / name / "checkpoint.npz" for name in ("mnist", "mnist-conv", "smnist")]


def missing_packages():
    """The optional packages this script needs that are not installed."""
    return [name for name in OPTIONAL if importlib.util.find_spec(name) is None]


# --- the PyTorch port -------------------------------------------------------------------------

def build_port(net):
    """A torch module running ``net`` (evaluation mode, its current ``eval_stats``) one step per
    call, as NeuroBench's ``SNNTorchModel`` drives it: ``forward(x_t) -> (y_t, None)``."""
    import snntorch as snn
    import torch
    import torch.nn as nn
    from minisnn.layers.norm import EPS

    class MinisnnLeaky(snn.Leaky):
        """``snn.Leaky`` with minisnn's soft reset u_t = β·(u_{t−1} − θ·o_{t−1}) + I_t."""

        def _base_sub(self, input_):
            return self.beta.clamp(0, 1) * (self.mem - self.reset * self.threshold) + input_

    class Port(nn.Module):
        def __init__(self, kinds, modules):
            super().__init__()
            self.kinds, self.layers, self.t = kinds, nn.ModuleList(modules), 0

        def reset(self):
            """A new sequence: step 0, membranes at zero (``SNNTorchModel`` calls it per batch)."""
            self.t = 0
            for m in self.layers:
                if isinstance(m, snn.SpikingNeuron):
                    m.reset_mem()

        def forward(self, x):
            for kind, m in zip(self.kinds, self.layers):
                x = m[self.t](x) if kind == "BNTT" else m(x)
            self.t += 1
            return x, None

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    kinds, modules, previous = [], [], None
    for layer in net.layers:
        kind = type(layer).__name__
        if kind == "Linear" or kind == "Readout":
            bias = getattr(layer, "bias", None)
            m = nn.Linear(layer.in_features, layer.out_features, bias=bias is not None)
        elif kind == "Conv2d":
            bias = layer.bias
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                          bias=bias is not None)
        elif kind == "BNTT":
            factory = snn.BatchNormTT2d if previous == "Conv2d" else snn.BatchNormTT1d
            m = factory(layer.channels, layer.T, eps=EPS)
            mean, var = layer.fixed_statistics()
            with torch.no_grad():
                for t, bn in enumerate(m):
                    bn.weight.copy_(tensor(layer.gamma.data[t]))
                    bn.running_mean.copy_(tensor(mean[t]))
                    bn.running_var.copy_(tensor(var[t]))
        elif kind == "LIF":
            # the surrogate is irrelevant here: evaluation never runs a backward pass
            beta = torch.tensor(layer.leak, dtype=torch.float32)
            if layer.reset == "soft":
                m = MinisnnLeaky(beta=beta, threshold=layer.threshold, reset_mechanism="subtract", init_hidden=True)
            else:   # snnTorch's reset to zero is minisnn's hard reset: u_t = λ·u_{t−1}·(1 − o_{t−1}) + I_t
                m = snn.Leaky(beta=beta, threshold=layer.threshold, reset_mechanism="zero", init_hidden=True)
        elif kind == "AvgPool2d":
            m = nn.AvgPool2d(layer.kernel_size, layer.stride)
        elif kind == "Flatten":
            m = nn.Flatten()
        else:
            raise ValueError(f"the torch port has no {kind} layer")
        if kind in SYNAPTIC:
            with torch.no_grad():
                m.weight.copy_(tensor(layer.weight.data))
                if bias is not None:
                    m.bias.copy_(tensor(bias.data))
        kinds.append(kind)
        modules.append(m)
        previous = kind if kind != "BNTT" else previous
    port = Port(kinds, modules)
    port.requires_grad_(False)   # NeuroBench runs the model outside no_grad: no graph of T steps
    return port.eval()


class Tally:
    """Our own hooks on the port, beside NeuroBench's: the spikes each LIF emits per step (to
    compare with minisnn's), and per call of each synaptic layer NeuroBench's counting
    evaluated exactly, in float64, with and without zero weights, and whether the input was
    binary."""

    def __init__(self, port, T):
        import torch
        self.torch, self.port, self.T = torch, port, T
        self.spikes, self.layers, self.membranes, handles = {}, {}, {}, []
        self.ever = {}   # LIF index -> per batch, [B, ...] "spiked at least once": nonzeros of the time mean
        self._before = None
        for i, (kind, m) in enumerate(zip(port.kinds, port.layers)):
            if kind == "LIF":
                self.membranes[i] = {"unchanged": 0, "at_rest": 0, "steps": set()}
                handles.append(m.register_forward_pre_hook(self._membrane_hook(i)))
                handles.append(m.register_forward_hook(self._spike_hook(i)))
            elif kind in SYNAPTIC:
                self.layers[i] = {"ops_ac": 0, "ops_mac": 0, "ops_all_weights": 0, "binary_steps": [], "module": m,
                                  "ones": self._ones(m), "nonzero": None}
                handles.append(m.register_forward_pre_hook(self._input_hook(i)))
        self.handles = handles

    def _ones(self, m):
        """float64 copies of a layer with weights 1 where nonzero (NeuroBench) and 1 everywhere.
        Made before any hook is registered (``__init__`` runs before ``Benchmark``'s), since a
        deep copy would carry the hooks along."""
        import copy
        nonzero, every = copy.deepcopy(m).double(), copy.deepcopy(m).double()
        with self.torch.no_grad():
            nonzero.weight.copy_((m.weight != 0).double())
            every.weight.fill_(1.0)
            for layer in (nonzero, every):
                if layer.bias is not None:
                    layer.bias.zero_()   # biases are no synaptic operations (both tools)
        return nonzero, every

    def _membrane_hook(self, i):
        def hook(module, inputs):
            self._before = (module.mem, inputs[0])   # snnTorch rebinds mem every step: a reference will do
        return hook

    def _spike_hook(self, i):
        def hook(module, inputs, output):
            before, current = self._before
            if self.port.t > 0:   # MembraneUpdates counts every neuron at step 0, as hwmodel
                same = module.mem == before
                entry = self.membranes[i]
                entry["unchanged"] += int(same.sum())
                entry["at_rest"] += int((same & (before == 0) & (current == 0)).sum())
                if bool(same.any()):
                    entry["steps"].add(self.port.t)
            counts = (output != 0).sum(dim=0).to(self.torch.int64).numpy()
            if i not in self.spikes:
                self.spikes[i] = np.zeros((self.T,) + counts.shape, dtype=np.int64)
            self.spikes[i][self.port.t] += counts
            if self.port.t == 0:
                self.ever.setdefault(i, []).append(output != 0)
            else:
                self.ever[i][-1] |= output != 0
        return hook

    def _input_hook(self, i):
        def hook(module, inputs):
            entry = self.layers[i]
            if module is not entry["module"]:
                return   # NeuroBench's deep copies of the layer carry this hook along: not a step
            x = inputs[0]
            binary = bool(((x == 0) | (x.abs() == 1)).all())
            events = (x != 0).double()
            nonzero, every = entry["ones"]
            with self.torch.no_grad():
                ops = int(nonzero(events).sum().item())
                entry["ops_all_weights"] += int(every(events).sum().item())
            entry["ops_ac" if binary else "ops_mac"] += ops
            entry["binary_steps"].append((self.port.t, binary))
            # c_t(i) of the run format, on the port's own tensors: hwmodel's formulas can count them
            nonzero = (x != 0).sum(dim=0).to(self.torch.int64).numpy()
            if entry["nonzero"] is None:
                entry["nonzero"] = np.zeros((self.T,) + nonzero.shape, dtype=np.int64)
            entry["nonzero"][self.port.t] += nonzero
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


# --- one checkpoint ---------------------------------------------------------------------------

def compare(path, samples, batch_size, data_dir):
    """Both tools' numbers for one checkpoint, and the measurements that explain their difference."""
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity
    from neurobench.metrics.workload import (ActivationSparsity, ClassificationAccuracy, MembraneUpdates,
                                             SynapticOperations)
    from neurobench.models import SNNTorchModel
    from neurobench.processors.postprocessors import ChooseMaxCount
    from hwmodel import geometry
    from hwmodel.counts import count_run
    from hwmodel.runfile import read_run
    from minisnn.checkpoint import load_network
    from minisnn.evaluate import default_bn_stats, test_batches
    from minisnn.record import record_run
    from minisnn.tasks import get_task

    net, meta = load_network(path, trained=True)
    config = meta["config"]
    task = get_task(config["dataset"])
    images, labels = task.load(data_dir, False)
    images, labels = images[:samples], labels[:samples]
    T, seed = config["T"], config.get("seed", 0)
    bn_stats = default_bn_stats(net, config)
    batches = list(test_batches(task, images, labels, T, batch_size, seed))

    # hwmodel: record the run, count it
    net.set_eval_stats(bn_stats)
    with tempfile.TemporaryDirectory() as tmp:
        recorded = record_run(net, batches, Path(tmp) / "run.npz", meta={"checkpoint": str(path), "bn_stats": bn_stats})
        run = read_run(Path(tmp) / "run.npz")
    counts = count_run(run)
    totals = counts.totals()
    folded = count_run(run, fold_pool=True).totals() if any(e["kind"] == "AvgPool2d" for e in run.layers) else None

    # NeuroBench on the port, fed the very same arrays (batch-first, as NeuroBench expects)
    port = build_port(net)
    net.set_eval_stats("running")
    tally = Tally(port, T)
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate([np.moveaxis(b, 0, 1) for b, _ in batches])))
    y = torch.from_numpy(np.concatenate([lab for _, lab in batches]).astype(np.int64))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)
    model = SNNTorchModel(port)
    bench = Benchmark(model, loader, [], [ChooseMaxCount()],
                      [[ConnectionSparsity], [SynapticOperations, ActivationSparsity, MembraneUpdates,
                                              ClassificationAccuracy]])
    nb = bench.run(quiet=True)
    tally.close()

    # what explains the differences
    N = len(labels)
    lif = [e for e in run.layers if e["kind"] == "LIF"]
    spike_total = sum(int(run.counts[e["output"]].sum()) for e in lif)
    spike_diff = sum(int(np.abs(tally.spikes[e["index"]] - run.counts[e["output"]]).sum()) for e in lif)
    zero_weights = sum(int((m.weight == 0).sum()) for k, m in zip(port.kinds, port.layers) if k in SYNAPTIC)
    steps_flipped = []
    for e in run.layers:
        if e["index"] in tally.layers:
            hw_binary = run.sources[e["input"]]["binary"]
            flips = sum(b != hw_binary for _, b in tally.layers[e["index"]]["binary_steps"])
            if flips:
                steps_flipped.append((e["index"], e["kind"], flips, len(tally.layers[e["index"]]["binary_steps"]),
                                      hw_binary))
    # hwmodel's own formula (geometry's fan-out, its per-run binary decision) on the port's tensors:
    # what is left between this and hwmodel's count is the spikes on which the ports disagree
    port_synops = port_macs = 0.0
    for e in run.layers:
        if e["index"] in tally.layers:
            fan = geometry.fanout(e["kind"], e["params"], e["in_shape"]).reshape(-1)
            events = float((tally.layers[e["index"]]["nonzero"].reshape(T, -1) @ fan).sum()) / N
            if run.sources[e["input"]]["binary"]:
                port_synops += events
            else:
                port_macs += events
    exact_ac = sum(v["ops_ac"] for v in tally.layers.values()) / N
    exact_mac = sum(v["ops_mac"] for v in tally.layers.values()) / N
    with_zero_weights = sum(v["ops_all_weights"] for v in tally.layers.values()) / N
    neurons = sum(int(np.prod(e["out_shape"])) for e in lif)
    unchanged = T * neurons - nb["MembraneUpdates"]
    # the readout as minisnn's engine computes it, z = W·mean_t o_t, one product on a non-binary
    # input: NeuroBench would count nnz(mean_t o_t)·out_features MACs instead of ACs at every step
    readout = next(e for e in run.layers if e["kind"] == "Readout")
    feeding = max(e["index"] for e in lif if e["index"] < readout["index"])
    readout_mean_macs = sum(int(m.sum()) for m in tally.ever[feeding]) * readout["params"]["out_features"] / N
    readout_synops = float(counts.layers[readout["index"]].synops.sum())
    per_lif = []
    for e in lif:
        i, m = e["index"], tally.membranes[e["index"]]
        steps = sorted(m["steps"])
        per_lif.append({"layer": i, "neurons": int(np.prod(e["out_shape"])),
                        "spikes_differing": int(np.abs(tally.spikes[i] - run.counts[e["output"]]).sum()),
                        "spikes": int(run.counts[e["output"]].sum()),
                        "unchanged": m["unchanged"] / N, "at_rest": m["at_rest"] / N,
                        "unchanged_steps": [steps[0], steps[-1], len(steps)] if steps else None})
    return {
        "checkpoint": str(path), "model": meta["spec"]["model"], "T": T, "samples": N, "batch_size": batch_size,
        "bn_stats": bn_stats,
        "rows": [
            ("Effective_ACs", "synops", nb["SynapticOperations"]["Effective_ACs"], totals["synops"]),
            ("Effective_MACs", "macs", nb["SynapticOperations"]["Effective_MACs"], totals["macs"]),
            ("Dense", "dense_ops", nb["SynapticOperations"]["Dense"], totals["dense_ops"]),
            ("MembraneUpdates", "neuron_updates", nb["MembraneUpdates"], totals["neuron_updates"]),
            ("ActivationSparsity", "1 - spike_rate", nb["ActivationSparsity"], 1.0 - totals["spike_rate"]),
            ("ClassificationAccuracy", "record accuracy", nb["ClassificationAccuracy"], recorded["accuracy"]),
        ],
        "folded": None if folded is None else {"synops": folded["synops"], "macs": folded["macs"]},
        "why": {"spikes": spike_total, "spikes_differing": spike_diff, "zero_weights": zero_weights,
                "connection_sparsity": nb["ConnectionSparsity"],
                "ops_skipped_for_zero_weights": with_zero_weights - exact_ac - exact_mac,
                "exact_effective_acs": exact_ac, "exact_effective_macs": exact_mac,
                "hwmodel_on_port_synops": port_synops, "hwmodel_on_port_macs": port_macs,
                "steps_decided_differently": steps_flipped, "unchanged_membranes": unchanged,
                "lif_layers": per_lif, "readout_synops": readout_synops, "readout_mean_macs": readout_mean_macs},
    }


def report(result):
    """The text table of one checkpoint, and the lines that explain its differences."""
    r, w = result, result["why"]
    lines = [f"{Path(r['checkpoint']).parent.name} ({r['model']}, T={r['T']}): {r['samples']} test samples, "
             f"{r['bn_stats']} statistics, batches of {r['batch_size']}; per sample, summed over time steps",
             f"  {'NeuroBench':22s} {'value':>14s}   {'hwmodel':16s} {'value':>14s} {'difference':>12s}"]
    for nb_name, hw_name, a, b in r["rows"]:
        if nb_name in ("ActivationSparsity", "ClassificationAccuracy"):
            lines.append(f"  {nb_name:22s} {a:14.6f}   {hw_name:16s} {b:14.6f} {a - b:+12.1e}")
        else:
            lines.append(f"  {nb_name:22s} {a:14,.1f}   {hw_name:16s} {b:14,.1f} {a - b:+12,.2f}")
    lines.append(f"  spikes on which the ports disagree: {w['spikes_differing']:,} of {w['spikes']:,} "
                 f"(summed |Δ| of the per-step counts)")
    lines.append(f"  zero weights: {w['zero_weights']:,} (ConnectionSparsity {w['connection_sparsity']}); "
                 f"operations NeuroBench skips for them: {w['ops_skipped_for_zero_weights']:,.1f} per sample")
    lines.append(f"  NeuroBench's definition summed exactly (float64): Effective_ACs {w['exact_effective_acs']:,.1f}, "
                 f"Effective_MACs {w['exact_effective_macs']:,.1f}")
    nb_ac, nb_mac = r["rows"][0][2], r["rows"][1][2]
    lines.append(f"  hwmodel's formulas on the port's own tensors: synops {w['hwmodel_on_port_synops']:,.1f}, "
                 f"MACs {w['hwmodel_on_port_macs']:,.1f} (NeuroBench minus these: "
                 f"{nb_ac - w['hwmodel_on_port_synops']:+,.2f}, {nb_mac - w['hwmodel_on_port_macs']:+,.2f})")
    if w["steps_decided_differently"]:
        for i, kind, n, total, hw_binary in w["steps_decided_differently"]:
            lines.append(f"  layer {i} {kind}: {n} of {total} calls (step x batch) NeuroBench counts as "
                         f"{'MACs' if hw_binary else 'ACs'}, hwmodel as {'ACs' if hw_binary else 'MACs'}")
    else:
        lines.append("  AC or MAC: every call (step x batch) decided as hwmodel decides for the whole run")
    lines.append(f"  membranes that did not change between two steps (MembraneUpdates leaves them out): "
                 f"{w['unchanged_membranes']:,.2f} per sample")
    for m in w["lif_layers"]:
        where = ""
        if m["unchanged_steps"]:
            first, last, n = m["unchanged_steps"]
            where = f" at {n} steps in {first}..{last}"
        lines.append(f"    layer {m['layer']} LIF ({m['neurons']} neurons): {m['unchanged']:,.2f} unchanged{where}, "
                     f"{m['at_rest']:,.2f} of them at rest (u = 0, input exactly 0); spikes differing "
                     f"{m['spikes_differing']:,} of {m['spikes']:,}")
    lines.append(f"  the readout: {w['readout_synops']:,.1f} ACs per sample, applied at every step (hwmodel and this "
                 f"port); as W·mean_t(o_t), minisnn's one product, NeuroBench would count {w['readout_mean_macs']:,.1f} MACs")
    if r["folded"] is not None:
        lines.append(f"  hwmodel --fold-pool (pooling folded into the next layer, ACs on the spikes): "
                     f"synops {r['folded']['synops']:,.1f}, MACs {r['folded']['macs']:,.1f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*", type=Path, help="default: results/{mnist,mnist-conv,smnist}/checkpoint.npz")
    p.add_argument("--samples", type=int, default=256, help="the first N test images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", help="folder with the MNIST files (default: minisnn's search order)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    missing = missing_packages()
    if missing:
        names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
        print(f"neurobench_check: skipped, {names} not installed "
              f"(optional: pip install torch snntorch neurobench)")
        return 0
    import torch
    torch.set_num_threads(args.threads)
    from minisnn.checkpoint import CheckpointError
    from minisnn.data import DataError
    results = []
    try:
        if args.samples < 1 or args.batch_size < 1:
            raise ValueError("--samples and --batch-size must be positive")
        for path in args.checkpoints or DEFAULT_CHECKPOINTS:
            results.append(compare(path, args.samples, args.batch_size, args.data_dir))
            if not args.json:
                print(report(results[-1]), flush=True)
    except (CheckpointError, DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
