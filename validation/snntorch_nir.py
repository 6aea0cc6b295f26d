"""minisnn → NIR → snnTorch: do snnTorch's NIR importer and minisnn give the same spikes?

    /work/venv-extras/bin/python validation/snntorch_nir.py CHECKPOINT --data-dir ../shared/data/mnist

(any Python with torch, snntorch, nirtorch, nir and h5py; without them it prints why it is
skipped and exits 0). The checkpoint's network is exported (``minisnn.export``), written to a
.nir file and read back with ``nir.read``, imported with ``snntorch.import_nir.import_from_nir``
and run step by step on the same encoded test digits as minisnn. For every LIF layer it prints
how many spikes each side fired and how many (step, sample, neuron) entries differ, then the
logits and the predictions. Three times: in float32 (minisnn's trained dtype, torch's default);
in float64 on both sides; and in float64 with minisnn's λ rounded to float32 as snnTorch holds it,
which separates the conventions from float round-off.

Where snnTorch's importer needs help, the script says so and does the least it can:
- it has no mapping for NIR's I (the leaky-free integrator of the readout), so the graph it gets
  ends at the readout's Linear and the script sums its output over the T steps, ÷ T;
- it assumes dt = 1e-4 (as minisnn's exporter does), β = 1 − dt/τ, and resets to zero at once
  (``reset_mechanism="zero"``, ``reset_delay=False``): minisnn's hard reset;
- nirtorch's ``nir_to_torch``, which it calls, loads every parameter in float32 (no dtype is
  passed), and ``torch.Tensor(weight)`` is float32 too: in float64 the module computes in float64
  with float32 parameters (β = 0.95 arrives as 0.949999988);
- its spike function returns float32 whatever the dtype, so in float64 each Leaky's 0/1 spikes
  are handed on as float64 (exact);
- it maps NIR's Flatten(start_dim=0), a whole sample, to torch.nn.Flatten(0, −1), which flattens
  the batch as well: the script starts it at axis 1.
"""
import argparse
import copy
import sys
import tempfile
from pathlib import Path

import minisnn  # noqa: F401  (before NumPy: its OpenBLAS setting)
import numpy as np

try:
    import nir
    import nirtorch  # noqa: F401  (snntorch.import_nir needs it)
    import snntorch as snn
    import torch
    from snntorch.import_nir import import_from_nir
except ImportError as e:
    print(f"skipped: the snnTorch comparison needs torch, snntorch, nirtorch, nir and h5py ({e})")
    sys.exit(0)

from minisnn.export import _test_set, export_network, load_for_export, read_nir
from minisnn.layers import LIF
from minisnn.nir_graph import chain, from_graph


def without_integrators(graph):
    """The graph with every I node bypassed (snnTorch's importer cannot map I)."""
    graph = copy.deepcopy(graph)
    dropped = [n for n, node in graph["nodes"].items() if node["type"] == "I"]
    for name in dropped:
        into = [a for a, b in graph["edges"] if b == name]
        out = [b for a, b in graph["edges"] if a == name]
        graph["edges"] = [e for e in graph["edges"] if name not in e] + [(a, b) for a in into for b in out]
        del graph["nodes"][name]
    return graph, dropped


def batch_flatten(module):
    """snnTorch's importer turns NIR's Flatten(start_dim=0) (NIR's shapes have no batch axis; its own
    exporter writes start_dim − 1) into torch.nn.Flatten(0, −1), which flattens the batch too:
    start it at the sample axis. Returns the names of the modules changed."""
    changed = []
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Flatten) and m.start_dim == 0:
            m.start_dim = 1
            changed.append(name)
    return changed


def run_snntorch(module, x, dtype):
    """Spikes of every snn.Leaky ``[T, B, …]`` and the readout's mean output over T."""
    leaky = [m for m in module.modules() if isinstance(m, snn.Leaky)]
    spikes = {id(m): [] for m in leaky}
    def keep(m, _, out):
        spikes[id(m)].append(out.detach().numpy().copy())
        # snnTorch's spike function is (mem − θ > 0).float(): float32 whatever the module's dtype; the
        # 0/1 values are exact in float64, so the next layer gets them in the module's dtype
        return out.to(dtype)

    hooks = [m.register_forward_hook(keep) for m in leaky]
    for m in leaky:
        m.reset_mem()
    total = 0.0
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, _ = module(torch.from_numpy(x[t]).to(dtype))
            total = total + out.numpy().astype(np.float64)
    for h in hooks:
        h.remove()
    return [np.stack(spikes[id(m)]) for m in leaky], total / x.shape[0]


def compare(net, module, batches, dtype):
    layers, diff, agree, samples = None, 0.0, 0, 0
    for x, _ in batches:
        x = x.astype(np.float64 if dtype == torch.float64 else np.float32)
        z, kept = net.outputs(x, LIF)
        ours = [kept[i] for i in sorted(kept)]
        theirs, z2 = run_snntorch(module, x, dtype)
        if layers is None:
            layers = [{"minisnn": 0, "snntorch": 0, "differ": 0, "entries": 0, "first": None} for _ in ours]
        for k, (a, b) in enumerate(zip(ours, theirs)):
            b = b.reshape(a.shape)
            layers[k]["minisnn"] += int(a.sum())
            layers[k]["snntorch"] += int(b.sum())
            bad = np.nonzero((a != b).reshape(a.shape[0], -1).any(axis=1))[0]
            layers[k]["differ"] += int((a != b).sum())
            layers[k]["entries"] += a.size
            if bad.size and layers[k]["first"] is None:
                layers[k]["first"] = int(bad[0])
        diff = max(diff, float(np.abs(z - z2).max()))
        agree += int((z.argmax(1) == z2.argmax(1)).sum())
        samples += x.shape[1]
    return layers, diff, agree, samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data-dir")
    p.add_argument("--subset", type=int, default=1000, help="the first N test digits (default 1000)")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--bn-stats", choices=("running", "calibrated"))
    args = p.parse_args(argv)
    net, meta = load_for_export(args.checkpoint, args.bn_stats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.nir"
        export_network(net, path)
        graph = read_nir(path)                 # what a toolchain reads: the file, via nir.read
    cut, dropped = without_integrators(graph)
    print(f"{args.checkpoint}: {meta['config'].get('dataset')}, T = {meta['config']['T']}, "
          f"reset {meta['config'].get('reset', 'soft')}, norm {meta['config'].get('norm')}; "
          f"NIR nodes {' → '.join(graph['nodes'][n]['type'] for n in chain(graph))}")
    print(f"not given to snnTorch's importer (it has no mapping for NIR's I): {dropped}; "
          "the readout's Linear output is summed over the steps, ÷ T")
    float64 = {**graph, "metadata": {**graph["metadata"], "dtype": "float64"}}
    runs = (("float32", torch.float32, net, "minisnn's network as trained"),
            ("float64", torch.float64, from_graph(float64), "minisnn rebuilt in float64 from the graph"),
            ("float64, λ as snnTorch holds it", torch.float64, from_graph(float64),
             "the same, its λ rounded to float32 as nirtorch loads it"))
    for name, dtype, ref, what in runs:
        module = import_from_nir(nir.dict2NIRNode(copy.deepcopy(cut))).to(dtype)
        flattens = batch_flatten(module)
        leaky = [m for m in module.modules() if isinstance(m, snn.Leaky)]
        lif = ref.lif_layers()
        if "as snnTorch" in name:
            for layer, m in zip(lif, leaky):
                layer.leak = float(m.beta.flatten()[0])
        print(f"\n{name}: {what}; snnTorch's modules in {dtype}")
        if flattens:
            print(f"  {flattens}: torch.nn.Flatten(0, -1) from NIR's Flatten(start_dim=0) would flatten the batch "
                  "too; set to Flatten(1, -1)")
        params = [f"β {float(m.beta.flatten()[0]):.9g} vs λ {l.leak:.9g}, threshold "
                  f"{float(m.threshold.flatten()[0]):.9g} vs θ {l.threshold:g}, reset {m.reset_mechanism}, "
                  f"reset_delay {m.reset_delay}" for m, l in zip(leaky, lif)]
        print(f"  snnTorch's Leaky layers ({len(params)}): " + "; ".join(dict.fromkeys(params)))
        layers, diff, agree, samples = compare(ref, module, _test_set(meta, args)(), dtype)
        for k, e in enumerate(layers):
            print(f"  LIF layer {k + 1}: minisnn {e['minisnn']} spikes, snnTorch {e['snntorch']}; "
                  f"{e['differ']} of {e['entries']} (step, sample, neuron) entries differ"
                  + (f", the first at step {e['first']}" if e["first"] is not None else ""))
        print(f"  logits max |Δ| {diff:.3g}; same prediction on {agree} of {samples} test digits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
