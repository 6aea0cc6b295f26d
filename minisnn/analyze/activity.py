"""What a network does on a test split: spikes per neuron per step and synaptic events.

The counts are those of a run file (``python -m minisnn.evaluate --record``, read by hwmodel):
for a LIF layer, c_t(i) = number of samples whose neuron i spiked at step t. With N samples,

    spikes_t = (1/N)·Σ_i c_t(i)                  spikes per sample at step t (paper Fig. 1)
    rate     = Σ_t spikes_t / (n·T)              spikes per neuron per step (paper Fig. 5)

and, for a synaptic layer (Linear, Conv2d, Readout) whose input is non-zero at (t, i) in
c_t(i) samples, with f(i) the fan-out of input position i (NeuroBench's definitions):

    ops_t = (1/N)·Σ_i c_t(i)·f(i)      synops when the input is binary (0/±1), else MACs

The readout z = mean_t W·o_t is counted as applied at every step to the spikes o_t, as an
event-driven chip would. The first synaptic layer reads the encoder; the others read spikes
(``synops_from_spikes`` counts only those: the part of the work that the network's own
sparsity decides).
"""
import numpy as np
from tqdm import tqdm

from ..layers import LIF, Conv2d, Linear, Readout

SYNAPTIC = (Linear, Conv2d, Readout)


def axis_fanout(n, k, s, p):
    """f(h) = #{o : 0 ≤ h + p − o·s < k, 0 ≤ o < n_out}: outputs reading input position h."""
    n_out = (n + 2 * p - k) // s + 1
    h = np.arange(n)[:, None]
    tap = h + p - np.arange(n_out)[None, :] * s
    return ((tap >= 0) & (tap < k)).sum(axis=1)


def fanout(layer, in_shape):
    """Connections leaving each input position of one sample.

    Parameters
    ----------
    layer : Linear, Readout or Conv2d
    in_shape : tuple
        The layer's input shape for one sample (``(in,)`` or ``(C, H, W)``).

    Returns
    -------
    ndarray
        int64, flattened ``in_shape``: out_features for Linear/Readout, and for Conv2d
        C_out·f_H(h)·f_W(w) (``axis_fanout``).
    """
    if isinstance(layer, (Linear, Readout)):
        return np.full(int(np.prod(in_shape)), layer.out_features, dtype=np.int64)
    c, h, w = in_shape
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    f = layer.out_channels * np.outer(axis_fanout(h, k, s, p), axis_fanout(w, k, s, p))
    return np.broadcast_to(f, (c, h, w)).reshape(-1).astype(np.int64)


def _is_binary(x):
    return bool(np.all((x == 0) | (x == 1) | (x == -1)))


def record_activity(net, batches, progress=False, total=None, desc="activity"):
    """Run ``net`` in evaluation mode over ``batches`` and count its activity.

    Parameters
    ----------
    net : Sequential
    batches : iterable of (x ``[T, B, ...]``, labels ``[B]``)
        Every batch with the same T.
    progress : bool
        Show a tqdm bar.
    total : int, optional
        Number of batches, for the bar.
    desc : str
        The bar's label.

    Returns
    -------
    dict
        ``T``, ``n_samples``, ``correct``, ``spike_counts`` {layer index: int64 ``[T, *neuron
        shape]``} (the run file's counts of each LIF output), ``ops`` {layer index: {"kind",
        "binary", "per_step": ``[T]`` per sample}}, ``neurons`` {layer index: n}.
    """
    spike_counts, ops, binary, fan, neurons, kinds = {}, {}, {}, {}, {}, {}
    n_samples = correct = 0
    T = None

    def count(i, layer, inp, out):
        if isinstance(layer, SYNAPTIC):
            per_sample = inp.shape[2:] if not isinstance(layer, Readout) else (int(np.prod(inp.shape[2:])),)
            if i not in fan:
                fan[i], kinds[i] = fanout(layer, per_sample), type(layer).__name__
                ops[i] = np.zeros(T)
                binary[i] = True
            nz = (inp != 0).reshape(T, inp.shape[1], -1).sum(axis=1)
            ops[i] += nz @ fan[i]
            binary[i] = binary[i] and _is_binary(inp)
        if isinstance(layer, LIF):
            spike_counts[i] = spike_counts.get(i, 0) + (out != 0).sum(axis=1, dtype=np.int64)
            neurons[i] = int(np.prod(out.shape[2:]))

    for x, y in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
        T = x.shape[0] if T is None else T
        if x.shape[0] != T:
            raise ValueError("all batches must have the same number of time steps")

        x = net.forward(x, train=False, observe=count)
        correct += int((x.argmax(axis=1) == y).sum())
        n_samples += len(y)
        net.clear()
    if not n_samples:
        raise ValueError("no samples to analyse")
    ops = {i: {"kind": kinds[i], "binary": binary[i], "per_step": v / n_samples}
           for i, v in ops.items()}
    return {"T": T, "n_samples": n_samples, "correct": correct, "spike_counts": spike_counts,
            "ops": ops, "neurons": neurons}


def summarize(activity):
    """Per-layer spikes per step, spike rates and the totals per sample.

    Parameters
    ----------
    activity : dict
        From ``record_activity`` (``ops`` may be empty, as for a run file).

    Returns
    -------
    dict
        ``accuracy``, ``layers`` [{"layer", "neurons", "spikes_per_step" ``[T]``, "spikes",
        "rate"}], ``spike_rate``, ``spikes``, ``synops``, ``synops_from_spikes``, ``macs``
        (all per sample, summed over the steps).
    """
    N, T = activity["n_samples"], activity["T"]
    layers = []
    for i, c in activity["spike_counts"].items():
        per_step = c.reshape(T, -1).sum(axis=1) / N
        layers.append({"layer": i, "neurons": activity["neurons"][i], "spikes_per_step": per_step,
                       "spikes": float(per_step.sum()),
                       "rate": float(per_step.sum() / (activity["neurons"][i] * T))})
    ops = activity["ops"]
    synops = sum(float(o["per_step"].sum()) for o in ops.values() if o["binary"])
    macs = sum(float(o["per_step"].sum()) for o in ops.values() if not o["binary"])
    first = min(ops) if ops else None
    from_spikes = sum(float(o["per_step"].sum()) for i, o in ops.items() if o["binary"] and i != first)
    spikes = sum(layer["spikes"] for layer in layers)
    updates = sum(layer["neurons"] for layer in layers) * T
    return {"T": T, "samples": N, "accuracy": activity["correct"] / N, "layers": layers,
            "spike_rate": spikes / updates if updates else 0.0, "spikes": spikes, "synops": synops, "macs": macs,
            "synops_from_spikes": from_spikes}
