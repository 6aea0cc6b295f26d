"""hwmodel's per-access memory model (``--memory``), after Lemaire et al. 2022 — not theirs.

Counting only additions flatters SNNs: every synaptic event also reads a weight and
read-modify-writes a membrane potential, and every neuron update reads and writes its state.
That observation, and the no-reuse setting, come from Lemaire, Cordone, Castagnetti, Novac,
Courtois, Miramond, "An analytical estimation of spiking neural networks energy efficiency",
ICONIP 2022; the equations below are hwmodel's own simplification of it (``docs/hwmodel.md``
lists the differences: their ANN reads its inputs once per pass, hwmodel's once per MAC; they
add addressing and bias terms and an access-energy floor, hwmodel does not). Every access is priced by the size of the memory it hits, from
the Horowitz SRAM figures (per 64-bit access, 45 nm):

    E_acc(words, bits) = E₆₄(size) · bits/64 ,   size = words·bits/8 bytes
    E₆₄(size) = 10 pJ (≤ 8 KiB), 20 pJ (≤ 32 KiB), 100 pJ (above; the 1 MB figure, so an
                underestimate for memories beyond 1 MB — no DRAM is modelled)

Per time step, for a synaptic layer with W weights, n_in inputs and n_out post-synaptic units
(weights w bits, states and activations s bits):

    SNN  synops·(E_acc(W, w) + 2·E_acc(n_out, s))           weight read + potential read & write
         + macs·(E_acc(W, w) + E_acc(n_in, s))               weight read + input read
         + [macs_t > 0]·n_out·E_acc(n_out, s)                accumulated current written once
    LIF  updates·2·E_acc(n, s) + spikes·E_acc(n, s)          state read & write; spike written
    BNTT 2·C·E_acc(2·C·T, s) per step (explicit: a_t, b_t of each channel read from a per-step
         table), or 3·C·E_acc(3·C·T, s) (--bntt fold: leak, threshold and bias loaded)
    ANN  macs·(E_acc(W, w) + E_acc(n_in, s)) + P·n_out·E_acc(n_out, s)   P passes, no reuse

No data reuse is assumed on either side (no weight-stationary dataflow), which is Lemaire et
al.'s setting; an ANN accelerator with reuse would do better (Dampfhoffer et al. 2023).
"""
import numpy as np

KIB = 1024


class MemoryModelError(ValueError):
    """A profile without SRAM figures asked to price memory."""


def access_pj(profile, words, bits):
    """Energy of one access to a ``bits``-wide word in a memory of ``words`` such words."""
    if not profile.memory:
        raise MemoryModelError(f"profile {profile.name!r} has no [memory] SRAM figures, which --memory needs")
    size = words * bits / 8
    key = "sram_8kb" if size <= 8 * KIB else "sram_32kb" if size <= 32 * KIB else "sram_1mb"
    return profile.memory[key].value * bits / 64


def snn_layer_pj(layer, profile, event_scale=1.0, spike_scale=1.0):
    """``[T]`` memory energy of one layer of the SNN (see the module docstring)."""
    w, s = profile.weight_bits, profile.state_bits
    T = len(layer.synops)
    if layer.is_synaptic:
        e_w = access_pj(profile, layer.n_weights, w)
        e_v = access_pj(profile, layer.n_out, s)
        e_in = access_pj(profile, layer.n_in, s)
        synops, macs = layer.synops * event_scale, layer.macs * event_scale
        write_back = (layer.macs > 0) * layer.n_out * e_v
        return synops * (e_w + 2 * e_v) + macs * (e_w + e_in) + write_back
    if layer.is_neuron:
        e_v = access_pj(profile, layer.n_out, s)
        return layer.neuron_updates * 2 * e_v + layer.spikes * spike_scale * e_v
    return np.zeros(T)


def norm_layer_pj(layer, profile, norm="explicit"):
    """``[T]`` memory energy of a BNTT layer's per-step parameters (see the module docstring)."""
    T = len(layer.synops)
    if layer.kind != "BNTT":
        return np.zeros(T)
    per_step = (3 if norm == "fold" else 2) * layer.norm_channels
    return np.full(T, per_step * access_pj(profile, per_step * T, profile.state_bits))


def ann_layer_pj(layer, profile, macs=None):
    """Memory energy of one synaptic layer of the equivalent ANN, its P passes (``macs``:
    the MACs performed, default all of them; fewer with zero-skipping)."""
    if not layer.is_synaptic:
        return 0.0
    w, s = profile.weight_bits, profile.state_bits
    macs = layer.ann_macs if macs is None else macs
    return (macs * (access_pj(profile, layer.n_weights, w) + access_pj(profile, layer.n_in, s))
            + layer.ann_passes * layer.n_out * access_pj(profile, layer.n_out, s))
