"""Residual blocks (minisnn/residual.py) and the CIFAR-ResNet family (models.resnet).

The block's forward is held to the same layers composed by hand (the sum of the two paths into
the last LIF, or after it for SEW); its backward to central finite differences in float64 with
random upstream gradients and the smooth stand-in for the spike (gradcheck.SmoothLIF, detached
resets frozen), for identity and projection shortcuts, stride 1 and 2, every norm, both reset
modes and both block kinds; and whole residual networks the same way."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn import gradcheck, models
from minisnn.calibrate import calibrate_norm_stats
from minisnn.layers import LIF, BatchNorm, Conv2d, LayerNorm
from minisnn.models import norm_layer
from minisnn.network import Sequential
from minisnn.residual import Residual

TOL = 1e-5      # as for LIF layers: the triangle's stand-in has kinks (tests/test_layer_gradients.py)


def block(rng, T, cin, cout, stride, norm, sew, reset, detach, surrogate):
    def conv_norm(a, b, k, s):
        nl = norm_layer(norm, T, b, np.float64)
        layer = Conv2d(a, b, k, s, k // 2, rng=rng, dtype=np.float64)
        if nl is not None and hasattr(nl, "gamma") and nl.gamma.data.ndim == 2:
            nl.gamma.data[...] = rng.uniform(0.7, 1.6, nl.gamma.shape)
        return [layer] + ([nl] if nl is not None else [])

    def lif():
        return LIF(leak=0.9, threshold=0.6, reset=reset, detach_reset=detach, surrogate=surrogate)

    main = conv_norm(cin, cout, 3, stride) + [lif()] + conv_norm(cout, cout, 3, 1)
    shortcut = conv_norm(cin, cout, 1, stride) if (stride != 1 or cin != cout) else []
    return Residual(main, shortcut, lif(), sew=sew)


def by_hand(blk, x, train=True):
    """The block's definition, layer by layer, without the block."""
    current = x
    for layer in blk.main.layers:
        current = layer.forward(current, train=train)
    skip = x
    for layer in blk.shortcut.layers:
        skip = layer.forward(skip, train=train)
    if blk.sew:
        return blk.neuron.forward(current, train=train) + skip
    return blk.neuron.forward(current + skip, train=train)


shapes = st.sampled_from([(2, 2, 1), (2, 3, 1), (2, 3, 2), (3, 3, 2)])     # (C_in, C_out, stride)


@settings(deadline=None, max_examples=30)
@given(shape=shapes, norm=st.sampled_from(["bntt", "bn", "ln", "none"]), sew=st.booleans(),
       reset=st.sampled_from(["soft", "hard"]), detach=st.booleans(),
       surrogate=st.sampled_from(["triangle", "fast_sigmoid", "arctan"]), seed=st.integers(0, 2**32 - 1))
def test_block_backward_matches_finite_differences(shape, norm, sew, reset, detach, surrogate, seed):
    rng = np.random.default_rng(seed)
    T, (cin, cout, stride) = 3, shape
    x = rng.normal(0.4, 1.0, (T, 3, cin, 4, 4))
    net = gradcheck.smooth_network(Sequential(block(rng, T, cin, cout, stride, norm, sew, reset, detach, surrogate)), x)
    blk = net.layers[0]
    dy = rng.standard_normal(blk.forward(x).shape)
    results = gradcheck.layer_gradients(blk, x, dy)
    names = {name for name, _ in blk.named_parameters()}
    assert set(results) == names | {"x"}
    assert any(name.startswith("shortcut.") for name in names) == (stride != 1 or cin != cout)
    for name, (analytic, numeric) in results.items():
        assert gradcheck.max_relative_error(analytic, numeric) < TOL, name


@pytest.mark.parametrize("sew", [False, True])
@pytest.mark.parametrize("shape", [(2, 2, 1), (2, 3, 2)], ids=["identity", "projection"])
def test_block_forward_is_its_definition_and_the_shortcut_carries_gradient(sew, shape):
    """Forward equals the layers composed by hand (training and evaluation); and the check above is
    not vacuous: the shortcut's part of ∂L/∂x is a sizeable share of it."""
    rng = np.random.default_rng(5)
    cin, cout, stride = shape
    blk = block(rng, 3, cin, cout, stride, "bntt", sew, "soft", True, "triangle")
    x = rng.normal(0.4, 1.0, (3, 4, cin, 6, 6))
    for train in (True, False):
        np.testing.assert_array_equal(blk.forward(x, train=train), by_hand(blk, x, train=train))
    y = blk.forward(x)
    assert 0.02 < y.mean() < 0.98 or sew
    dy = rng.standard_normal(y.shape)
    dx = blk.backward(dy)
    d_current = blk.neuron.backward(dy)
    main_only = blk.main.backward(d_current)
    assert np.abs(dx - main_only).max() > 0.1 * np.abs(dx).max()


def test_resnet_gradients_match_finite_differences():
    """A whole ResNet-8 (stem, three blocks, two of them with projections, global pool, readout)."""
    net = models.resnet(8, T=2, input_size=6, widths=(2, 2, 3), dtype=np.float64, seed=3, detach_reset=False)
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 1.0, (2, 3, 1, 6, 6))
    results = gradcheck.network_gradients(net, x, np.array([1, 4, 7]))
    assert len(results) == len(list(net.named_parameters())) + 1
    for name, (analytic, numeric) in results.items():
        err = gradcheck.max_relative_error(analytic, numeric)
        assert err < TOL or np.abs(analytic - numeric).max() < 1e-9, (name, err)


def test_resnet_structure_and_its_plain_twin():
    """6n + 2 layers with weights; the plain twin has the same main-path layers and no shortcut."""
    res, plain = models.resnet(14, T=2), models.resnet(14, T=2, plain=True)
    blocks = [layer for layer in res.layers if isinstance(layer, Residual)]
    assert len(blocks) == 6 and sum(bool(b.shortcut.layers) for b in blocks) == 2
    main = [type(m).__name__ for m in res.modules() if not any(m in b.shortcut.layers for b in blocks)]
    assert main == [type(m).__name__ for m in plain.modules()]
    weighted = [m for m in plain.modules() if hasattr(m, "weight")]
    assert len(weighted) == 14                                   # 13 convolutions and the readout
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.resnet(10)


def test_blocks_are_seen_by_state_dict_statistics_calibration_and_observers():
    net = models.resnet(8, T=2, input_size=8, widths=(2, 3, 3), seed=1)
    rng = np.random.default_rng(2)
    x = (rng.random((2, 4, 1, 8, 8)) < 0.3).astype(np.float32)
    norms = net.norm_layers()
    assert len(norms) == 1 + 2 * 3 + 2                          # stem, two per block, two projections
    again = models.build(net.spec)
    again.load_state_dict(net.state_dict())
    assert any(".main.1.running_mean" in key for key in net.state_dict())
    calibrate_norm_stats(net, [x, x[:, ::-1].copy()])
    assert all(np.isfinite(layer.calibrated_var).all() for layer in norms)
    net.set_eval_stats("calibrated")
    assert {layer.eval_stats for layer in norms} == {"calibrated"}
    paths = []
    net.forward(x, train=False, observe=lambda i, layer, a, b: paths.append(i))
    assert (3, "main", 0) in paths and (5, "shortcut", 1) in paths and (3, "neuron") in paths
    assert paths.index((3, "neuron")) < paths.index(3)           # a block's insides before the block
    _, spikes = net.outputs(x, LIF)
    assert len(spikes) == len(net.lif_layers()) == 1 + 2 * 3


@pytest.mark.parametrize("norm_cls", [BatchNorm, LayerNorm])
def test_block_without_a_lif_neuron_is_an_error(norm_cls):
    with pytest.raises(ValueError, match="needs a LIF"):
        Residual([Conv2d(2, 2)], [], norm_cls(2))


def test_bottleneck_blocks_of_resnet50_match_finite_differences():
    """ResNet-50's bottleneck (1×1 → 3×3/stride → 1×1 at 4× width, projection shortcut), checked in
    a whole tiny ResNet-50: one block per stage, widths 1, every block a projection."""
    net = models.resnet50(T=2, input_size=4, widths=(1, 1, 1, 1), blocks=(1, 1, 1, 1), num_classes=3,
                          dtype=np.float64, seed=4)
    assert all(len(b.main.layers) == 8 and b.shortcut.layers for b in net.layers if isinstance(b, Residual))
    rng = np.random.default_rng(1)
    results = gradcheck.network_gradients(net, rng.normal(0.5, 1.0, (2, 2, 3, 4, 4)), np.array([0, 2]))
    for name, (analytic, numeric) in results.items():
        err = gradcheck.max_relative_error(analytic, numeric)
        assert err < TOL or np.abs(analytic - numeric).max() < 1e-9, (name, err)


@pytest.mark.parametrize("size", [32, 64, 160])
def test_resnet50_is_fifty_layers_for_small_and_large_inputs(size):
    net = models.resnet50(T=1, input_size=size, widths=(2, 2, 2, 2), num_classes=5)
    convs = [m for m in net.modules() if isinstance(m, Conv2d)]
    blocks = [b for b in net.layers if isinstance(b, Residual)]
    assert len(blocks) == 16 and len(convs) - sum(bool(b.shortcut.layers) for b in blocks) + 1 == 50
    assert net.forward(np.zeros((1, 2, 3, size, size), np.float32)).shape == (2, 5)
    assert convs[0].kernel_size == (3 if size <= 32 else 7)
