"""``--plot out.png``: energy per layer per profile, and the energy ratio against spike rate.

Right panel: E_SNN(r)/E_ANN for r from 0 to 1 spike per neuron per step, with the linear
scaling of ``energy.py`` (E(r) = a + b·r/r₀); the measured rate r₀ is marked with a dot, the
break-even point E_SNN = E_ANN with a cross on the line ratio = 1.
"""
import numpy as np


def plot_energy(counts, results, path):
    """Write the two-panel figure to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    layers = [layer for layer in counts.layers if layer.is_synaptic or layer.is_neuron]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(layers))
    for k, name in enumerate(names):
        energies = np.array([results[name].layer_pj[layer.index] for layer in layers])
        ax1.bar(x + (k - (len(names) - 1) / 2) * width, np.where(energies > 0, energies, np.nan), width,
                label=name, color=f"C{k}")
    ax1.set_xticks(x, [f"{layer.index} {layer.kind}" for layer in layers], rotation=30, ha="right")
    ax1.set_yscale("log")
    ax1.set_ylabel("energy per inference [pJ]")
    ax1.set_title("Dynamic energy per layer")
    ax1.legend(fontsize=7, ncol=2)

    rates = np.linspace(0.0, 1.0, 201)
    for k, name in enumerate(names):
        res = results[name]
        color = f"C{k}"
        ratio = res.energy_at_rate(rates) / res.ann_pj if res.ann_pj else np.full_like(rates, np.nan)
        ax2.plot(rates, np.where(ratio > 0, ratio, np.nan), color=color, label=name)
        if res.ann_pj and res.spike_rate <= 1:
            ax2.plot([res.spike_rate], [res.ratio], "o", color=color)
        r, _ = res.break_even()
        if r is not None and 0 < r <= 1:
            ax2.plot([r], [1.0], "x", color=color, markersize=10, markeredgewidth=2)
            ax2.annotate(f"{r:.3g}", (r, 1.0), textcoords="offset points", xytext=(4, 6 + 9 * (k % 3)),
                         fontsize=7, color=color)
    ax2.axhline(1.0, color="k", lw=0.8, ls="--")
    ax2.set_yscale("log")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("mean spike rate [spikes per neuron per step]")
    ax2.set_ylabel("E_SNN / E_ANN")
    ax2.set_title(f"Energy ratio (dot: measured rate {counts.totals()['spike_rate']:.3g}; x: break-even)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
