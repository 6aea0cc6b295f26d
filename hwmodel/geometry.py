"""Connectivity of the synaptic and pooling layers: who reads each input position.

Everything is separable along the two spatial axes, so the 2-D questions reduce to 1-D ones.
Along one axis, output position o of a window of size k, stride s, zero padding p and
dilation d reads the input positions

    h = o·s − p + j·d ,   j = 0 … k−1 ,   0 ≤ o < n_out = ⌊(n + 2p − d·(k−1) − 1)/s⌋ + 1

and taps falling outside [0, n) read padding (zeros), which is no connection. The fan-out of an
input position is the number of outputs that read it; for Conv2d it multiplies over the axes
and the output channels of its group:

    fanout(c, h, w) = (C_out / groups) · f_H(h) · f_W(w)
"""
import numpy as np


class GeometryError(ValueError):
    """Shapes or parameters that disagree; the message says how."""


def pair(value):
    """An int or a pair of ints -> a tuple of two ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise GeometryError(f"expected an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def out_size(n, k, s, p, d=1):
    """Output length along one axis: ⌊(n + 2p − d·(k−1) − 1)/s⌋ + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def reach(n, k, s, p, d=1):
    """Boolean ``[n, n_out]``: R[h, o] = output o reads input position h."""
    n_out = out_size(n, k, s, p, d)
    if n_out < 1:
        raise GeometryError(f"input length {n} is smaller than the window (k={k}, p={p}, d={d})")
    r = np.zeros((n, n_out), dtype=bool)
    o = np.arange(n_out)
    for j in range(k):
        h = o * s - p + j * d
        ok = (h >= 0) & (h < n)
        r[h[ok], o[ok]] = True
    return r


def axis_fanout(n, k, s, p, d=1):
    """f(h) = number of outputs reading input position h (the row sums of ``reach``)."""
    return reach(n, k, s, p, d).sum(axis=1)


def _conv(params):
    kh, kw = pair(params["kernel_size"])
    sh, sw = pair(params.get("stride", 1))
    ph, pw = pair(params.get("padding", 0))
    dh, dw = pair(params.get("dilation", 1))
    return (kh, sh, ph, dh), (kw, sw, pw, dw)


def _pool(params):
    kh, kw = pair(params["kernel_size"])
    stride = params.get("stride")
    sh, sw = pair(stride if stride is not None else params["kernel_size"])
    ph, pw = pair(params.get("padding", 0))
    return (kh, sh, ph, 1), (kw, sw, pw, 1)


def fanout(kind, params, in_shape):
    """Connections leaving each input position.

        Linear / Readout: f(i) = out_features;   Conv2d: f(c, h, w) = (C_out/groups)·f_H(h)·f_W(w);
        Add (an identity shortcut): f(i) = 1

    Parameters
    ----------
    kind : str
        "Linear" (acts on the last axis), "Readout" (on the flattened input) or "Conv2d".
    params : dict
        The layer's params as in the run file.
    in_shape : tuple of int
        Per-sample input shape (``[C, H, W]`` for Conv2d).

    Returns
    -------
    ndarray of int64, shape ``in_shape``
    """
    if kind in ("Linear", "Readout"):
        return np.full(in_shape, int(params["out_features"]), dtype=np.int64)
    if kind == "Add":              # an identity shortcut: each position feeds its own neuron
        return np.ones(in_shape, dtype=np.int64)
    if kind == "Conv2d":
        (kh, sh, ph, dh), (kw, sw, pw, dw) = _conv(params)
        per_group = int(params["out_channels"]) // int(params.get("groups", 1))
        fh = axis_fanout(in_shape[1], kh, sh, ph, dh)
        fw = axis_fanout(in_shape[2], kw, sw, pw, dw)
        plane = per_group * np.outer(fh, fw).astype(np.int64)
        return np.broadcast_to(plane, tuple(in_shape)).copy()
    raise GeometryError(f"{kind} has no synapses")


def n_weights(kind, params):
    """Stored weights of a synaptic layer (biases are not synapses and are not counted)."""
    if kind in ("Linear", "Readout"):
        return int(params["in_features"]) * int(params["out_features"])
    if kind == "Conv2d":
        kh, kw = pair(params["kernel_size"])
        return int(params["out_channels"]) * int(params["in_channels"]) // int(params.get("groups", 1)) * kh * kw
    return 0


def folded_fanout(pool_params, pool_in_shape, kind, params, in_shape):
    """Fan-out of each *pool input* position once the pool is folded into the next layer.

    Folding AvgPool2d (scale 1/k²) into the following Conv2d or Linear gives one synaptic layer
    on the binary spikes. A position reaches the union of the outputs its pooling windows reach:

        f_H(h) = |{ o : ∃ q, P[h, q] ∧ R[q, o] }|      (P: pool reach, R: conv reach)

    and likewise along W; a Linear after Flatten is reached in full (``out_features``) from
    every position covered by at least one window. Returns None where folding does not apply.
    """
    (pk, ps, pp, _), (qk, qs, qp, _) = _pool(pool_params)
    covered_h = reach(pool_in_shape[1], pk, ps, pp)
    covered_w = reach(pool_in_shape[2], qk, qs, qp)
    if kind == "Conv2d" and len(in_shape) == 3:
        (kh, sh, ph, dh), (kw, sw, pw, dw) = _conv(params)
        per_group = int(params["out_channels"]) // int(params.get("groups", 1))
        fh = ((covered_h.astype(np.int64) @ reach(in_shape[1], kh, sh, ph, dh)) > 0).sum(axis=1)
        fw = ((covered_w.astype(np.int64) @ reach(in_shape[2], kw, sw, pw, dw)) > 0).sum(axis=1)
        plane = per_group * np.outer(fh, fw).astype(np.int64)
    elif kind in ("Linear", "Readout") and len(in_shape) == 1:
        plane = int(params["out_features"]) * np.outer(covered_h.any(axis=1), covered_w.any(axis=1)).astype(np.int64)
    else:
        return None
    return np.broadcast_to(plane, tuple(pool_in_shape)).copy()


def check_layer(kind, params, in_shape, out_shape):
    """Raise ``GeometryError`` when a layer's recorded shapes disagree with its parameters."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)

    def expect(expected, what):
        if tuple(expected) != out_shape:
            raise GeometryError(f"out_shape {list(out_shape)} disagrees with {what} on input "
                                f"{list(in_shape)} (expected {list(expected)})")

    if kind == "Linear":
        if in_shape[-1] != int(params["in_features"]):
            raise GeometryError(f"in_shape {list(in_shape)} does not end in in_features={params['in_features']}")
        expect(in_shape[:-1] + (int(params["out_features"]),), f"out_features={params['out_features']}")
    elif kind == "Readout":
        if int(np.prod(in_shape)) != int(params["in_features"]):
            raise GeometryError(f"in_shape {list(in_shape)} does not hold in_features={params['in_features']}")
        expect((int(params["out_features"]),), f"out_features={params['out_features']}")
    elif kind == "Conv2d":
        if len(in_shape) != 3 or in_shape[0] != int(params["in_channels"]):
            raise GeometryError(f"in_shape {list(in_shape)} is not [in_channels={params['in_channels']}, H, W]")
        groups = int(params.get("groups", 1))
        if int(params["in_channels"]) % groups or int(params["out_channels"]) % groups:
            raise GeometryError(f"groups={groups} does not divide the channels")
        (kh, sh, ph, dh), (kw, sw, pw, dw) = _conv(params)
        expect((int(params["out_channels"]), out_size(in_shape[1], kh, sh, ph, dh),
                out_size(in_shape[2], kw, sw, pw, dw)), f"kernel {kh}x{kw}, stride {sh}x{sw}, padding {ph}x{pw}")
    elif kind in ("AvgPool2d", "MaxPool2d"):
        if len(in_shape) != 3:
            raise GeometryError(f"in_shape {list(in_shape)} is not [C, H, W]")
        (kh, sh, ph, _), (kw, sw, pw, _) = _pool(params)
        expect((in_shape[0], out_size(in_shape[1], kh, sh, ph), out_size(in_shape[2], kw, sw, pw)),
               f"pool {kh}x{kw}, stride {sh}x{sw}, padding {ph}x{pw}")
    elif kind == "Flatten":
        if int(np.prod(in_shape)) != int(np.prod(out_shape)):
            raise GeometryError(f"flattening {list(in_shape)} cannot give {list(out_shape)}")
    elif in_shape != out_shape:
        raise GeometryError(f"an elementwise layer keeps its shape, but {list(in_shape)} -> {list(out_shape)}")
