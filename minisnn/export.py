"""Moving a trained network to NIR, the Neuromorphic Intermediate Representation, and back.

    python -m minisnn.export nir CHECKPOINT out.nir              the graph (the nir extra)
    python -m minisnn.export spikes CHECKPOINT spikes.npz|.h5    its spikes on the test digits, per
                                                                 NIR node, for hwmodel [--record run.npz]
    python -m minisnn.export verify CHECKPOINT out.nir           read the graph back, rebuild the
                                                                 network, compare every spike [--float64]

The conversion itself (minisnn ⇄ a graph as plain data, and what NIR cannot carry) is
``minisnn/nir_graph.py``, which needs nothing beyond NumPy; this file adds what needs the nir
package (``pip install -e '.[nir]'``: nir and h5py), imported only when a graph file is written or
read. The spikes file's layout is ``hwmodel/spikefile.py`` (docs/nir.md). Errors are one line and
exit status 2; ``verify`` exits with 1 when a spike differs.
"""
import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

from hwmodel.atomic import replacing
from hwmodel.runfile import RunFormatError
from hwmodel.spikefile import check_container, write_spikes

from . import models
from .checkpoint import CheckpointError, load_network
from .data import DataError
from .evaluate import default_bn_stats, test_batches
from .layers import LIF, Conv2d, Linear
from .layers.norm import EVAL_STATS
from .nir_graph import DT, NIRError, from_graph, to_graph
from .record import collect, run_meta, write_recording
from .tasks import get_task

MISSING = "install the nir extra: pip install -e '.[nir]'"


def _nir():
    """The nir package, or a one-line NIRError saying how to install it."""
    try:
        import nir
    except ImportError:
        raise NIRError(MISSING) from None
    return nir


def to_nir(graph):
    """A ``nir.NIRGraph`` from a graph dict (``nir_graph.to_graph``); nir checks every type."""
    return _nir().dict2NIRNode(copy.deepcopy(graph))


def write_nir(path, graph):
    """Write a graph dict as a NIR file (HDF5), atomically: a temporary file, then a rename."""
    nir = _nir()
    with replacing(path) as tmp:
        nir.write(tmp, to_nir(graph))
    return Path(path)


def read_nir(path):
    """The graph of a NIR file as a dict (``nir.NIRGraph.to_dict()``)."""
    nir = _nir()
    if not Path(path).is_file():
        raise NIRError(f"{path}: no such file")
    try:
        return nir.read(path).to_dict()
    except Exception as e:   # h5py's and nir's errors alike: not a graph we can read
        raise NIRError(f"{path}: not a readable NIR graph ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None


def import_nir(path, dt=None):
    """The minisnn network of a NIR file (``nir_graph.from_graph``)."""
    return from_graph(read_nir(path), dt=dt)


def network_input_shape(net):
    """One sample's input shape: from the spec of a convolutional network (in_channels,
    input_size), else the first Linear's in_features."""
    spec = net.spec or {}
    if "input_size" in spec:
        return (int(spec.get("in_channels", 1)), int(spec["input_size"]), int(spec["input_size"]))
    first = net.layers[0]
    if isinstance(first, Linear):
        return (first.in_features,)
    if isinstance(first, Conv2d):
        raise NIRError("the network's spec does not give its input size (in_channels, input_size)")
    raise NIRError(f"the network starts with {type(first).__name__}, not a Linear or Conv2d")


def load_for_export(checkpoint, bn_stats=None, dtype=None):
    """(net, meta) of a checkpoint, its BatchNorm layers set to the statistics evaluation uses
    (``bn_stats``, default as in training: ``evaluate.default_bn_stats``); ``dtype`` rebuilds it
    in another precision (its weights converted)."""
    net, meta = load_network(checkpoint)
    if dtype is not None:
        state = net.state_dict()
        net = models.build({**meta["spec"], "dtype": np.dtype(dtype).name})
        net.load_state_dict(state)
    net.set_eval_stats(bn_stats or default_bn_stats(net, meta.get("config") or {}))
    return net, meta


def export_network(net, path, dt=DT, input_shape=None):
    """Write ``net``'s NIR graph to ``path``; returns the graph dict."""
    graph = to_graph(net, input_shape or network_input_shape(net), dt=dt)
    write_nir(path, graph)
    return graph


def spike_counts(net, rec, input_shape=None):
    """(counts, binary) per NIR node from a recording (``record.collect``): the input becomes the
    Input node's, each LIF layer's spikes ``L<i>`` its NIR neuron's, and an intermediate ``X<i>``
    (the input of layer i that no other source holds, e.g. pooled spikes) the node before it."""
    names = {}
    to_graph(net, input_shape or network_input_shape(net), names=names)
    counts, binary = {}, {}
    for source, c in rec.counts.items():
        node = "input" if source == "input" else names[int(source[1:]) - (source[0] == "X")]
        counts[node], binary[node] = c, rec.sources[source]["binary"]
    return counts, binary


def record_spikes(net, batches, path, meta=None, run_path=None, input_shape=None):
    """Run ``net`` in evaluation on ``batches`` and write its spikes per NIR node (``path``: the
    layout of ``hwmodel/spikefile.py``), and with ``run_path`` the run file of the same pass.

        c_node[t, i] = Σ_batches #{b : y_node[t, b, i] ≠ 0}

    Returns ``record_run``'s summary (of the run file when written, else of the counts)."""
    check_container(path)                    # a missing h5py is said before the run, not after
    rec = collect(net, batches)
    counts, binary = spike_counts(net, rec, input_shape)
    info = run_meta(rec, net, meta)
    write_spikes(path, T=rec.T, n_samples=rec.n_samples, counts=counts, binary=binary, n_labelled=rec.n_labelled,
                 n_correct=rec.n_correct, meta=info)
    summary = {"path": str(path), "T": rec.T, "n_samples": rec.n_samples, "nodes": sorted(counts),
               "accuracy": rec.n_correct / rec.n_labelled if rec.n_labelled else None}
    if run_path is not None:
        summary["record"] = write_recording(rec, net, run_path, meta)
    return summary


def compare(net, other, batches):
    """Run two networks on the same batches: every LIF layer's spikes (the k-th LIF of one
    against the k-th of the other) and the logits.

    Returns {"samples", "layers": [{"spikes", "other", "differ"}], "logits_max_abs_diff",
    "identical", "predictions_agree"}."""
    layers, samples, diff, agree = None, 0, 0.0, 0
    for x, _ in batches:
        z, kept = net.outputs(x, LIF)
        z2, kept2 = other.outputs(x, LIF)
        a, b = [kept[i] for i in sorted(kept)], [kept2[i] for i in sorted(kept2)]
        if len(a) != len(b):
            raise NIRError(f"the networks have {len(a)} and {len(b)} LIF layers")
        if layers is None:
            layers = [{"spikes": 0, "other": 0, "differ": 0} for _ in a]
        for entry, s, s2 in zip(layers, a, b):
            entry["spikes"] += int(np.count_nonzero(s))
            entry["other"] += int(np.count_nonzero(s2))
            entry["differ"] += int(np.count_nonzero(s != s2))
        diff = max(diff, float(np.max(np.abs(z.astype(np.float64) - z2.astype(np.float64)))))
        agree += int(np.sum(z.argmax(axis=1) == z2.argmax(axis=1)))
        samples += x.shape[1]
    return {"samples": samples, "layers": layers, "logits_max_abs_diff": diff,
            "identical": all(e["differ"] == 0 for e in layers) and diff == 0.0, "predictions_agree": agree}


def _test_set(meta, args):
    """The checkpoint's test batches (the encoding of ``python -m minisnn.evaluate``)."""
    config = meta.get("config") or {}
    if "dataset" not in config:
        raise CheckpointError("the checkpoint has no training configuration (dataset); it needs one written "
                              "by python -m minisnn.train to find its test set")
    task = get_task(config["dataset"])
    images, labels = task.load(args.data_dir, False)
    if args.subset:
        images, labels = images[:args.subset], labels[:args.subset]
    return lambda: test_batches(task, images, labels, config["T"], args.batch_size, config.get("seed", 0))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minisnn.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, out, what in (("nir", "OUT.nir", "write the network as a NIR graph"),
                            ("spikes", "OUT.npz|OUT.h5", "record its spikes per NIR node on the test set"),
                            ("verify", "GRAPH.nir", "rebuild the network from a NIR file and compare spikes")):
        s = sub.add_parser(name, help=what, description=what)
        s.add_argument("checkpoint", help="checkpoint.npz written by python -m minisnn.train")
        s.add_argument("out", metavar=out)
        s.add_argument("--bn-stats", choices=[m for m in EVAL_STATS if m != "batch"],
                       help="the BatchNorm statistics to fold (default: those training evaluated with)")
        if name == "nir":
            s.add_argument("--dt", type=float, default=DT, help=f"the time step the graph assumes (default {DT:g}, "
                                                               "snnTorch's; docs/nir.md)")
        else:
            s.add_argument("--data-dir", help="folder with the dataset files")
            s.add_argument("--subset", type=int, help="the first N test samples only")
            s.add_argument("--batch-size", type=int, default=200)
        if name == "spikes":
            s.add_argument("--record", metavar="RUN.npz", help="also write minisnn's run file of the same pass")
        if name == "nir":
            s.add_argument("--float64", action="store_true",
                           help="write the weights in float64 (a BatchNorm fold then rounds only to float64)")
        if name == "verify":
            s.add_argument("--float64", action="store_true",
                           help="run both networks in float64 (weights converted): with a graph written with "
                                "--float64 this separates the float32 rounding of a BatchNorm fold from the mapping")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if getattr(args, "batch_size", 1) < 1 or (getattr(args, "subset", None) or 1) < 1:
            raise ValueError("--batch-size and --subset must be positive")
        net, meta = load_for_export(args.checkpoint, args.bn_stats, "float64" if getattr(args, "float64", False)
                                    else None)
        if args.command == "nir":
            graph = export_network(net, args.out, dt=args.dt)
            print(f"wrote {args.out}: {len(graph['nodes'])} NIR nodes "
                  f"({', '.join(n['type'] for n in graph['nodes'].values())}), dt = {args.dt:g}")
        elif args.command == "spikes":
            to_graph(net, network_input_shape(net))            # refuse what NIR cannot carry before running
            summary = record_spikes(net, _test_set(meta, args)(), args.out, run_path=args.record,
                                    meta={"dataset": meta["config"]["dataset"], "checkpoint": str(args.checkpoint),
                                          "bn_stats": net.norm_layers()[0].eval_stats if net.norm_layers() else None})
            summary.pop("record", None)
            print(json.dumps(summary))
        else:
            graph = read_nir(args.out)
            if args.float64:
                graph["metadata"] = {**(graph.get("metadata") or {}), "dtype": "float64"}
            result = compare(net, from_graph(graph), _test_set(meta, args)())
            print(json.dumps(result))
            return 0 if result["identical"] else 1
    except (NIRError, CheckpointError, DataError, RunFormatError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
