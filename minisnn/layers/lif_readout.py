"""LIF neurons directly followed by the readout: the spikes are never written.

The readout reads its input once, to average it over time (z = W·ō, ō = mean_t o_t), and its
backward needs only ō; the LIF backward needs only the membrane (it recomputes o_t = H(u_t − θ)).
Run one after the other, the last LIF scan writes ``[T, B, N]`` float32 spikes that one pass of
``reduce.time_mean`` reads back and nothing reads again: for sMNIST at B = 128, 103 MB written
and read per step, 2 of the step's ~22 passes over such arrays. ``kernels/lif.py``'s
``lif_scan_forward_mean`` adds each spike into the float64 sum in the scan instead, in the same
order as ``time_mean``, so ō — and everything after it — is bit for bit the same.

Backward is unchanged: the readout's ∂L/∂o_t is the same at every step, a broadcast view that
the LIF backward scan already takes as one row.

The two stay separate layers; ``Sequential`` runs them this way only in passes nobody observes
(an observer must see the spikes), so recording and analyses see the same network.
"""
from .lif import LIF
from .readout import Readout


def is_lif_readout(lif, readout):
    """LIF then Readout, by exact layer type (a subclass, e.g. gradient checking's smooth LIF,
    runs layer by layer)."""
    return type(lif) is LIF and type(readout) is Readout


def forward(lif, readout, x):
    """Class scores ``[B, classes]`` from the LIF input currents x ``[T, B, ...]``."""
    T, B = x.shape[:2]
    return readout.forward_from_mean(lif.forward_time_mean(x).reshape(B, -1), T)
