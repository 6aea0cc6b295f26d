"""Whole convolutional SNNs (conv-BNTT-LIF-pool-flatten-readout) against central finite
differences of the cross-entropy loss, with the smooth spike stand-in; and the model builders."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisnn import models
from minisnn.gradcheck import max_relative_error, network_gradients
from minisnn.layers import BNTT, LIF, AvgPool2d, Conv2d, Flatten, Linear, Readout
from minisnn.network import Sequential

TOL = 1e-5


def assert_gradients(results, tol=TOL):
    for name, (analytic, numeric) in results.items():
        err = max_relative_error(analytic, numeric)
        assert err < tol, f"{name}: max relative error {err:.2e}"


cases = st.fixed_dictionaries(dict(
    T=st.integers(1, 3), B=st.integers(2, 3), c_in=st.integers(1, 2), c_out=st.integers(1, 3),
    k=st.sampled_from([2, 3]), stride=st.integers(1, 2), padding=st.integers(0, 1), size=st.integers(5, 7),
    leak=st.floats(0.5, 1.0), threshold=st.floats(0.5, 1.5), reset=st.sampled_from(["soft", "hard"]),
    detach=st.booleans(), surrogate=st.sampled_from(["triangle", "fast_sigmoid", "arctan"]),
    seed=st.integers(0, 2**16)))


@settings(max_examples=8, deadline=None)
@given(cases)
def test_conv_bntt_lif_pool_flatten_readout(case):
    rng = np.random.default_rng(case["seed"])
    conv = Conv2d(case["c_in"], case["c_out"], case["k"], case["stride"], case["padding"], rng=rng, dtype=np.float64)
    ho, wo = conv.output_shape(case["size"], case["size"] + 1)
    pool = AvgPool2d(2)
    hp, wp = pool.output_shape(ho, wo)
    bntt = BNTT(case["T"], case["c_out"], dtype=np.float64)
    bntt.gamma.data[...] = rng.uniform(0.5, 1.5, bntt.gamma.data.shape)
    net = Sequential(conv, bntt,
                     LIF(case["leak"], case["threshold"], case["reset"], case["detach"], case["surrogate"]),
                     pool, Flatten(), Readout(case["c_out"] * hp * wp, 3, rng=rng, dtype=np.float64))
    x = rng.standard_normal((case["T"], case["B"], case["c_in"], case["size"], case["size"] + 1)) + 0.5
    labels = rng.integers(0, 3, case["B"])
    assert_gradients(network_gradients(net, x, labels))


@pytest.mark.parametrize("norm", ["bntt", "bn", "ln", "none"])
def test_conv_snn_builder_gradients(norm):
    """The builders' network shape (conv blocks, pools, hidden FC block, readout), every norm."""
    net = models.conv_snn([3, "P", 2, "G"], [4], num_classes=3, T=2, in_channels=2, input_size=5,
                          norm=norm, leak=0.9, threshold=0.8, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    for name, p in net.named_parameters():
        if name.endswith(("gamma", "beta")):          # away from their trivial initial values
            p.data[...] = rng.uniform(0.5, 1.5, p.data.shape)
    x = rng.standard_normal((2, 3, 2, 5, 5)) + 0.5
    assert_gradients(network_gradients(net, x, np.array([0, 2, 1])))


def _count(net, cls):
    return [layer for layer in net.layers if isinstance(layer, cls)]


def test_vgg9_architecture():
    net = models.vgg9(T=4)
    convs = _count(net, Conv2d)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]
    assert all((c.kernel_size, c.stride, c.padding, c.bias) == (3, 1, 1, None) for c in convs)
    assert [p.kernel_size for p in _count(net, AvgPool2d)] == [2, 2, 2]
    assert len(_count(net, BNTT)) == 8 and len(_count(net, LIF)) == 8
    fc = _count(net, Linear)
    assert [(f.in_features, f.out_features) for f in fc] == [(4 * 4 * 256, 1024)]
    assert isinstance(net.layers[-1], Readout) and net.layers[-1].weight.data.shape == (10, 1024)
    assert not isinstance(net.layers[-2], BNTT)


def test_vgg11_architecture_and_global_pool():
    net = models.vgg11(T=2, num_classes=200, input_size=64)
    assert [c.out_channels for c in _count(net, Conv2d)] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert [p.kernel_size for p in _count(net, AvgPool2d)] == [2, 2, 2, 2, 4]
    assert [(f.in_features, f.out_features) for f in _count(net, Linear)] == [(512, 4096)]
    assert net.layers[-1].weight.data.shape == (200, 4096)
    assert len(_count(net, BNTT)) == 9


def test_builders_run_and_rebuild_from_spec():
    """Forward/backward shapes, float32 by default, and models.build(spec) gives the same weights."""
    rng = np.random.default_rng(0)
    for net, shape in [(models.mnist_conv(T=2), (2, 3, 1, 28, 28)),
                       (models.vgg9(T=2, in_channels=2, input_size=16, num_classes=10, norm="bn"), (2, 2, 2, 16, 16))]:
        x = (rng.random(shape) < 0.2).astype(np.float32)
        logits = net.forward(x)
        assert logits.shape == (shape[1], 10) and logits.dtype == np.float32
        dx = net.backward(rng.standard_normal(logits.shape).astype(np.float32))
        assert dx.shape == shape
        assert all(np.any(p.grad != 0) for p in net.parameters())
        twin = models.build(net.spec)
        for (n1, p1), (n2, p2) in zip(net.named_parameters(), twin.named_parameters()):
            assert n1 == n2 and np.array_equal(p1.data, p2.data)
    with pytest.raises(ValueError):
        models.vgg9(norm="batch")
