"""Spikes per layer per time step (paper Fig. 1) and spike rate per layer (Fig. 5).

From the counts of a recording (``activity.py``: c_t(i) = samples in which neuron i spiked
at step t, the same arrays ``--record`` writes to run.npz), with N samples and n neurons:

    spikes_t = (1/N)·Σ_i c_t(i) ,     rate = Σ_t spikes_t / (n·T)

``--compare`` adds other checkpoints (e.g. the same model trained without BNTT) to both
panels; ``--run`` reads an existing run.npz instead of running the network.
"""
from pathlib import Path

import numpy as np

from . import common
from .activity import record_activity, summarize


def from_checkpoint(path, data_dir, subset, batch_size=None, bn_stats=None, progress=True):
    """The activity summary (``activity.summarize``) of one checkpoint on the test split.

    Parameters
    ----------
    path : str or Path
        Checkpoint.
    data_dir : str, optional
    subset : int, optional
        First N test images.
    batch_size : int, optional
        Default as ``common.eval_mode``.
    bn_stats : {None, "running", "calibrated", "batch"}
    progress : bool

    Returns
    -------
    dict
        The summary, with ``checkpoint``, ``dataset``, ``norm`` and the raw ``activity``.
    """
    net, meta, task = common.load(path)
    batch_size, bn_stats = common.eval_mode(net, meta, bn_stats, batch_size)
    images, labels = common.load_test(task, data_dir, subset)
    activity = record_activity(net, common.batches(task, images, labels, meta, batch_size), progress,
                               common.n_batches(len(images), batch_size), desc=Path(path).parent.name or "spikes")
    summary = summarize(activity)
    summary.update(checkpoint=str(path), dataset=task.name, norm=meta["config"].get("norm"), activity=activity,
                   bn_stats=bn_stats, batch_size=batch_size)
    return summary


def from_run(path):
    """The same summary from a run file written by ``--record`` (hwmodel's reader validates it).

    Parameters
    ----------
    path : str or Path
        run.npz (format ``docs/run-format.md``).

    Returns
    -------
    dict
        As ``from_checkpoint`` without synaptic operations; accuracy from the recording.
    """
    try:
        from hwmodel.runfile import read_run
    except ImportError:
        raise ValueError("reading a run file needs the hwmodel package, which this installation lacks") from None
    run = read_run(path)
    counts = {layer["index"]: run.counts[layer["output"]] for layer in run.layers if layer["kind"] == "LIF"}
    activity = {"T": run.T, "n_samples": run.n_samples, "correct": run.n_correct, "spike_counts": counts,
                "ops": {}, "neurons": {i: int(np.prod(c.shape[1:])) for i, c in counts.items()}}
    summary = summarize(activity)
    summary.update(accuracy=run.accuracy, run=str(path), dataset=run.meta.get("dataset"), norm=None)
    for key in ("synops", "macs", "synops_from_spikes"):
        summary.pop(key)
    return summary


def record(net, meta, task, args):
    """Write the run file exactly as ``python -m minisnn.evaluate --record`` does."""
    try:
        from ..record import record_run
    except ImportError:
        raise ValueError("--record needs minisnn.record, which this installation lacks") from None
    batch_size, bn_stats = common.eval_mode(net, meta, args.bn_stats, args.batch_size)
    images, labels = common.load_test(task, args.data_dir, args.subset)
    record_run(net, common.batches(task, images, labels, meta, batch_size), args.record,
               meta={"dataset": task.name, "checkpoint": str(args.checkpoint), "bn_stats": bn_stats})


def plot(summaries, path, title=""):
    """Left: spikes per sample at each step, per layer. Right: spike rate per layer."""
    plt = common.plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = ["-", "--", ":", "-."]
    width = 0.8 / len(summaries)
    names = common.labels([(s.get("norm"), s.get("checkpoint") or s.get("run")) for s in summaries])
    for k, (s, label) in enumerate(zip(summaries, names)):
        for j, layer in enumerate(s["layers"]):
            a.plot(layer["spikes_per_step"], styles[j % 4], color=f"C{k}", lw=1,
                   label=f"{label}: LIF {j + 1}" if len(summaries) > 1 else f"LIF layer {j + 1}")
        rates = [100 * layer["rate"] for layer in s["layers"]]
        b.bar(np.arange(len(rates)) + k * width - 0.4 + width / 2, rates, width, color=f"C{k}",
              label=f"{label} (mean {100 * s['spike_rate']:.2f} %)")
    a.set(xlabel="time step t", ylabel="spikes per sample", title="spikes per layer per time step")
    a.legend(fontsize=7)
    n_layers = max(len(s["layers"]) for s in summaries)
    b.set_xticks(range(n_layers), [f"LIF {j + 1}" for j in range(n_layers)])
    top = max(100 * layer["rate"] for s in summaries for layer in s["layers"])
    b.set(ylabel="spikes per neuron per step (%)", title="spike rate per layer", ylim=(0, 1.4 * top or 1))
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return common.save_figure(fig, path)


def add_arguments(p):
    p.add_argument("--compare", nargs="+", default=[], metavar="CHECKPOINT", help="other checkpoints to compare")
    p.add_argument("--run", metavar="RUN_NPZ", help="read the counts from this run file instead of running CHECKPOINT")
    p.add_argument("--record", metavar="RUN_NPZ", help="record CHECKPOINT's test run to this file (minisnn.record), "
                   "then read the counts from it")


def _public(summary):
    return {k: v for k, v in summary.items() if k != "activity"}


def run(args):
    if args.run or args.record:
        if args.compare or (args.run and args.record):
            raise ValueError("--run and --record take one run: combine neither with --compare nor each other")
        net, meta, task = common.load(args.checkpoint)     # the checkpoint must be valid either way
        if args.record:
            record(net, meta, task, args)
        summaries = [from_run(args.run or args.record)]
        summaries[0]["norm"] = meta["config"].get("norm")
    else:
        summaries = [from_checkpoint(c, args.data_dir, args.subset, args.batch_size, args.bn_stats)
                     for c in [args.checkpoint, *args.compare]]
    out = common.out_dir(args.out, args.checkpoint)
    main = summaries[0]
    plot(summaries, out / "spikes.png", f"{main['dataset']}: spikes ({main['samples']} test samples)")
    result = {"runs": [_public(s) for s in summaries]}
    common.save_json(out / "spikes.json", result)
    names = common.labels([(s.get("norm"), s.get("checkpoint") or s.get("run")) for s in summaries])
    rates = ", ".join(f"{n} {100 * s['spike_rate']:.3f} %" for n, s in zip(names, summaries))
    return f"spike rate (spikes per neuron per step): {rates}; {out / 'spikes.png'}"
