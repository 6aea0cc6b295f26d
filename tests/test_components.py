"""The engine's parts against hand-computed values: BNTT statistics, SGD, the learning-rate
schedule, surrogate formulas, the LIF forward pass, cross-entropy, encoders, the state dict, and
the structure of the paper's sequential-MNIST network (the contracts of ../shared/DESIGN.md)."""
import math

import numpy as np
import pytest

from minisnn import encoding, models, optim
from minisnn.layers import BNTT, LIF, BatchNorm, Linear, Readout
from minisnn.layers.base import Parameter
from minisnn.losses import cross_entropy
from minisnn.surrogate import get_surrogate

EPS = 1e-4


# ------------------------------------------------------------------------------------------ BNTT

def test_bntt_train_normalises_each_step_with_its_own_batch_statistics():
    """Training: y_t = γ_t·(x_t − μ_t)/√(σ²_t + ε) with μ_t, σ²_t (biased) over the batch and the
    spatial positions of step t only."""
    rng = np.random.default_rng(0)
    T, B, C, H, W = 3, 4, 2, 2, 3
    layer = BNTT(T, C, dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=(T, C))
    x = rng.normal(size=(T, B, C, H, W)) * np.arange(1, T + 1)[:, None, None, None, None] + 3.0
    y = layer.forward(x, train=True)
    for t in range(T):
        for c in range(C):
            v = x[t, :, c]
            expected = layer.gamma.data[t, c] * (v - v.mean()) / np.sqrt(v.var() + EPS)
            np.testing.assert_allclose(y[t, :, c], expected, rtol=1e-12, atol=1e-12)


def test_bntt_running_statistics_use_momentum_and_unbiased_variance():
    """r ← 0.9·r + 0.1·batch per step, starting from mean 0 and variance 1, with the UNBIASED
    variance (÷ (n − 1), n = batch × space) for the running value; two updates compose."""
    rng = np.random.default_rng(1)
    T, B, C, S = 4, 5, 3, 2
    layer = BNTT(T, C, dtype=np.float64)
    x1 = rng.normal(size=(T, B, C, S)) + 2.0
    x2 = 3.0 * rng.normal(size=(T, B, C, S)) - 1.0
    layer.forward(x1, train=True)
    layer.forward(x2, train=True)
    mean = np.zeros((T, C))
    var = np.ones((T, C))
    for x in (x1, x2):
        flat = x.transpose(0, 2, 1, 3).reshape(T, C, B * S)
        mean = 0.9 * mean + 0.1 * flat.mean(axis=2)
        var = 0.9 * var + 0.1 * flat.var(axis=2, ddof=1)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)


def test_bntt_eval_uses_running_statistics_and_does_not_update_them():
    """Evaluation: y_t = γ_t·(x_t − r_mean_t)/√(r_var_t + ε), whatever the batch, and the running
    statistics are left unchanged."""
    rng = np.random.default_rng(2)
    T, B, C = 3, 4, 2
    layer = BNTT(T, C, dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=(T, C))
    layer.running_mean[...] = rng.normal(size=(T, C))
    layer.running_var[...] = rng.uniform(0.5, 2.0, size=(T, C))
    before = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.normal(size=(T, B, C))
    y = layer.forward(x, train=False)
    expected = layer.gamma.data[:, None] * (x - layer.running_mean[:, None]) / np.sqrt(layer.running_var[:, None] + EPS)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, before[0])
    np.testing.assert_array_equal(layer.running_var, before[1])
    # one sample in evaluation is normalised by the running statistics, not by itself
    y1 = layer.forward(x[:, :1], train=False)
    np.testing.assert_allclose(y1, expected[:, :1], rtol=1e-12)
    assert np.abs(y1).max() > 1e-3


def test_bntt_shorter_input_uses_the_first_steps():
    """An input with T' < T steps (early exit) is normalised with γ and the running statistics
    of steps 0 … T'−1, and a training pass updates only those steps' running statistics."""
    rng = np.random.default_rng(3)
    T, Ts, B, C = 5, 2, 4, 3
    layer = BNTT(T, C, dtype=np.float64)
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, size=(T, C))
    layer.running_mean[...] = rng.normal(size=(T, C))
    layer.running_var[...] = rng.uniform(0.5, 2.0, size=(T, C))
    x = rng.normal(size=(Ts, B, C))
    y = layer.forward(x, train=False)
    g, m, v = layer.gamma.data[:Ts], layer.running_mean[:Ts], layer.running_var[:Ts]
    np.testing.assert_allclose(y, g[:, None] * (x - m[:, None]) / np.sqrt(v[:, None] + EPS), rtol=1e-12)

    before_mean, before_var = layer.running_mean.copy(), layer.running_var.copy()
    layer.forward(x, train=True)
    np.testing.assert_array_equal(layer.running_mean[Ts:], before_mean[Ts:])
    np.testing.assert_array_equal(layer.running_var[Ts:], before_var[Ts:])
    np.testing.assert_allclose(layer.running_mean[:Ts], 0.9 * before_mean[:Ts] + 0.1 * x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var[:Ts], 0.9 * before_var[:Ts] + 0.1 * x.var(axis=1, ddof=1),
                               rtol=1e-12)
    with pytest.raises(ValueError):
        layer.forward(rng.normal(size=(T + 1, B, C)))


def test_batchnorm_shares_statistics_over_time():
    """Standard BN: one mean and variance over time, batch and space; y = γ·x̂ + β; running
    statistics with momentum 0.1 and the unbiased variance over all T·B·S values."""
    rng = np.random.default_rng(4)
    T, B, C = 3, 4, 2
    layer = BatchNorm(C, dtype=np.float64)
    layer.gamma.data[...] = [0.7, 1.3]
    layer.beta.data[...] = [0.2, -0.4]
    x = rng.normal(size=(T, B, C)) + np.array([1.0, -2.0])
    y = layer.forward(x, train=True)
    flat = x.reshape(-1, C)
    expected = layer.gamma.data * (x - flat.mean(0)) / np.sqrt(flat.var(0) + EPS) + layer.beta.data
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, 0.1 * flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-12)


# ------------------------------------------------------------------------------------------- SGD

def test_sgd_two_steps_with_momentum_and_weight_decay():
    """PyTorch SGD: buf ← μ·buf + (g + wd·w), w ← w − lr·buf, buf starting at zero; checked
    against two updates computed by hand."""
    w0 = np.array([1.0, -2.0, 0.5])
    p = Parameter(w0.copy())
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    g1 = np.array([0.3, -0.1, 2.0])
    g2 = np.array([-0.5, 0.4, 1.0])

    p.grad[...] = g1
    opt.step()
    buf1 = g1 + 0.01 * w0                                   # [0.31, -0.12, 2.005]
    w1 = w0 - 0.1 * buf1                                    # [0.969, -1.988, 0.2995]
    np.testing.assert_allclose(p.data, [0.969, -1.988, 0.2995], rtol=1e-14)
    np.testing.assert_allclose(p.data, w1, rtol=1e-14)

    opt.zero_grad()
    assert np.all(p.grad == 0)
    p.grad[...] = g2
    opt.step()
    buf2 = 0.9 * buf1 + (g2 + 0.01 * w1)
    w2 = w1 - 0.1 * buf2
    # by hand: buf2 = [0.279 − 0.5 + 0.00969, −0.108 + 0.4 − 0.01988, 1.8045 + 1 + 0.002995]
    np.testing.assert_allclose(buf2, [-0.21131, 0.27212, 2.807495], rtol=1e-12)
    np.testing.assert_allclose(p.data, w2, rtol=1e-14)
    np.testing.assert_allclose(p.data, [0.969 + 0.021131, -1.988 - 0.027212, 0.2995 - 0.2807495], rtol=1e-12)


def test_sgd_exempts_the_no_decay_parameters_from_weight_decay_only():
    """A parameter without gradient keeps its value when exempt, and otherwise decays as
    w_n = w_0·(1 − lr·wd·Σ_k μ^k …): here one step, w₁ = w₀·(1 − lr·wd); gradients still apply."""
    decayed, exempt = Parameter(np.full(3, 2.0)), Parameter(np.full(3, 2.0))
    opt = optim.SGD([decayed, exempt], lr=0.5, momentum=0.9, weight_decay=0.1, no_decay=[exempt])
    opt.step()
    np.testing.assert_allclose(decayed.data, 2.0 * (1 - 0.5 * 0.1), rtol=1e-15)
    np.testing.assert_array_equal(exempt.data, 2.0)
    exempt.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(exempt.data, 2.0 - 0.5 * 1.0, rtol=1e-15)


def test_sgd_without_momentum_or_decay_is_plain_gradient_descent():
    """μ = 0, wd = 0: w ← w − lr·g at every step, with no memory of earlier gradients."""
    p = Parameter(np.array([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.5, momentum=0.0)
    for g in ([1.0, -1.0], [0.2, 0.4]):
        before = p.data.copy()
        p.grad[...] = g
        opt.step()
        np.testing.assert_allclose(p.data, before - 0.5 * np.array(g), rtol=1e-15)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.0)


@pytest.mark.parametrize("epochs", [10, 100, 120])
def test_step_schedule_divides_by_ten_at_50_70_90_percent(epochs):
    """lr(epoch) = base·0.1^k, k = number of milestones int(0.5·E), int(0.7·E), int(0.9·E)
    already reached (0-based epochs)."""
    base = 0.3
    m1, m2, m3 = int(0.5 * epochs), int(0.7 * epochs), int(0.9 * epochs)
    for epoch in range(epochs):
        k = (epoch >= m1) + (epoch >= m2) + (epoch >= m3)
        assert optim.step_schedule(base, epoch, epochs) == pytest.approx(base * 0.1 ** k, rel=1e-12)
    assert optim.step_schedule(base, m1 - 1, epochs) == pytest.approx(base)
    assert optim.step_schedule(base, m1, epochs) == pytest.approx(base / 10)
    assert optim.step_schedule(base, m2, epochs) == pytest.approx(base / 100)
    assert optim.step_schedule(base, m3, epochs) == pytest.approx(base / 1000)
    assert optim.step_schedule(base, epochs - 1, epochs) == pytest.approx(base / 1000)


def test_step_schedule_concrete_values():
    """100 epochs: 0.1 up to epoch 49, 0.01 from 50, 0.001 from 70, 0.0001 from 90; the first
    epoch is never a milestone, even for a single epoch."""
    lr = [optim.step_schedule(0.1, e, 100) for e in (0, 49, 50, 69, 70, 89, 90, 99)]
    np.testing.assert_allclose(lr, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4], rtol=1e-12)
    assert optim.step_schedule(0.1, 0, 1) == pytest.approx(0.1)


def test_step_schedule_explicit_milestones_are_epoch_counts():
    """after=(3, 5): 0.1 for epochs 0-2, 0.01 for 3-4, 0.001 from 5 on, whatever ``epochs`` says."""
    lr = [optim.step_schedule(0.1, e, 100, after=[3, 5]) for e in range(7)]
    np.testing.assert_allclose(lr, [0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-12)


# ------------------------------------------------------------------------------------ surrogates

POINTS = np.array([-3.0, -1.0, -0.7, -0.25, -1e-3, 0.0, 1e-3, 0.3, 0.5, 0.999, 1.0, 2.5])


@pytest.mark.parametrize("height, width", [(None, None), (0.7, 0.4), (1.3, 2.0)])
def test_surrogate_grad_closed_forms(height, width):
    """Each surrogate's grad is its closed form at chosen points, and the defaults are the
    documented ones (triangle h = 0.3, w = 1; fast sigmoid 1, 0.1; arctan 1, 1/π)."""
    defaults = {"triangle": (0.3, 1.0), "fast_sigmoid": (1.0, 0.1), "arctan": (1.0, 1 / math.pi)}
    for name, (h0, w0) in defaults.items():
        sg = get_surrogate(name, height, width)
        h = h0 if height is None else height
        w = w0 if width is None else width
        assert (sg.height, sg.width) == pytest.approx((h, w))
        expected = {
            "triangle": [h * max(0.0, 1.0 - abs(x) / w) for x in POINTS],
            "fast_sigmoid": [h / (1.0 + abs(x) / w) ** 2 for x in POINTS],
            "arctan": [h / (1.0 + (x / w) ** 2) for x in POINTS],
        }[name]
        np.testing.assert_allclose(sg.grad(POINTS), expected, rtol=1e-14, atol=1e-15)
        assert sg.grad(0.0) == pytest.approx(h)     # height at the threshold


def test_surrogate_default_values_by_hand():
    """A few numbers worked by hand: BNTT's triangle 0.3·(1 − |x|), SuperSpike 1/(1 + 10|x|)²,
    arctan 1/(1 + (πx)²)."""
    tri, fs, at = get_surrogate("triangle"), get_surrogate("fast_sigmoid"), get_surrogate("arctan")
    np.testing.assert_allclose(tri.grad([0.0, 0.5, -0.5, 1.0, 2.0]), [0.3, 0.15, 0.15, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(fs.grad([0.0, 0.1, -0.3]), [1.0, 0.25, 1 / 16], rtol=1e-14)
    np.testing.assert_allclose(at.grad([0.0, 1 / math.pi]), [1.0, 0.5], rtol=1e-14)


@pytest.mark.parametrize("name", ["triangle", "fast_sigmoid", "arctan"])
@pytest.mark.parametrize("height, width", [(None, None), (0.7, 0.4), (1.3, 2.0)])
def test_surrogate_smooth_derivative_is_grad(name, height, width):
    """The smooth stand-in F has F' = f: its central difference equals grad everywhere (also
    across the triangle's kinks at 0 and ±w, where the error is O(h·δ/w)), and F is continuous."""
    sg = get_surrogate(name, height, width)
    xs = np.concatenate([np.linspace(-3, 3, 241), [sg.width, -sg.width, 0.0]])
    d = 1e-6
    numeric = (sg.smooth(xs + d) - sg.smooth(xs - d)) / (2 * d)
    np.testing.assert_allclose(numeric, sg.grad(xs), atol=2e-6 * sg.height / min(sg.width, 1.0) + 1e-8)
    # F is increasing, so a larger input never gives a smaller stand-in spike
    assert np.all(np.diff(sg.smooth(np.linspace(-3, 3, 241))) >= 0)
    if name == "triangle":
        h, w = sg.height, sg.width
        np.testing.assert_allclose(sg.smooth([-5 * w, -w, 0.0, w, 5 * w]), [0, 0, h * w / 2, h * w, h * w],
                                   atol=1e-15)


def test_surrogate_rejects_bad_specs():
    """Non-positive height/width and unknown names raise ValueError; dict specs round-trip."""
    with pytest.raises(ValueError):
        get_surrogate("triangle", height=0.0)
    with pytest.raises(ValueError):
        get_surrogate("arctan", width=-1.0)
    with pytest.raises(ValueError):
        get_surrogate("heaviside")
    sg = get_surrogate({"name": "fast_sigmoid", "height": 0.5, "width": 0.2})
    assert get_surrogate(sg.to_dict()).to_dict() == sg.to_dict()


# ------------------------------------------------------------------------------------------- LIF

def test_lif_forward_hand_worked_example():
    """θ = 1, λ = 0.5, currents 0.6, 0.6, 1.0, 0.0, 1.5, 1.0 (one neuron):
        soft: u = 0.6, 0.9, 1.45 (spike, v = 0.45), 0.225, 1.6125 (spike, v = 0.6125), 1.30625 (spike)
        hard: u = 0.6, 0.9, 1.45 (spike, v = 0),    0.0,   1.5    (spike, v = 0),      1.0 (no spike:
              u = θ exactly, the spike is strictly above threshold)."""
    I = np.array([0.6, 0.6, 1.0, 0.0, 1.5, 1.0]).reshape(6, 1, 1)
    soft = LIF(leak=0.5, threshold=1.0, reset="soft")
    hard = LIF(leak=0.5, threshold=1.0, reset="hard")
    np.testing.assert_array_equal(soft.forward(I).ravel(), [0, 0, 1, 0, 1, 1])
    np.testing.assert_allclose(soft._saved_membrane.ravel(), [0.6, 0.9, 1.45, 0.225, 1.6125, 1.30625], rtol=1e-14)
    np.testing.assert_array_equal(hard.forward(I).ravel(), [0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(hard._saved_membrane.ravel(), [0.6, 0.9, 1.45, 0.0, 1.5, 1.0], rtol=1e-14)


def test_lif_strict_threshold_and_fresh_state():
    """A membrane exactly at θ does not spike; the state starts at zero on every call, so the
    same input gives the same spikes twice; neurons and samples are independent."""
    lif = LIF(leak=1.0, threshold=2.0)
    x = np.zeros((3, 2, 2))
    x[0, 0, 0] = 2.0                    # u = θ exactly: no spike
    x[:, 1, 1] = 1.0                    # integrates 1, 2 (= θ, no spike), 3 (spike)
    first = lif.forward(x).copy()
    expected = np.zeros_like(x)
    expected[2, 1, 1] = 1.0
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(lif.forward(x), first)
    # threshold scales the reset: soft reset subtracts θ, so u = 3 → v = 1
    y = LIF(leak=1.0, threshold=2.0).forward(np.array([3.0, 1.1, 0.0]).reshape(3, 1, 1))
    np.testing.assert_array_equal(y.ravel(), [1, 1, 0])


def test_lif_output_shape_and_dtype():
    """Spikes keep the input's shape ([T, B, C, H, W] too) and dtype, and are 0/1."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(4, 2, 3, 2, 2)).astype(dtype)
        y = LIF().forward(x)
        assert y.shape == x.shape and y.dtype == dtype
        assert set(np.unique(y)) <= {0.0, 1.0}


def test_lif_rejects_bad_parameters():
    """Unknown reset, leak outside [0, 1] and non-positive threshold raise ValueError."""
    for kwargs in ({"reset": "zero"}, {"leak": 1.5}, {"leak": -0.1}, {"threshold": 0.0}):
        with pytest.raises(ValueError):
            LIF(**kwargs)


# -------------------------------------------------------------------------- readout and loss

def test_readout_is_the_time_average_through_the_weights():
    """z = W·(1/T)·Σ_t o_t; backward gives every step dz·W/T and dW = dzᵀ·ō."""
    rng = np.random.default_rng(6)
    layer = Readout(3, 2, rng=rng, dtype=np.float64)
    x = rng.integers(0, 2, size=(4, 5, 3)).astype(float)
    z = layer.forward(x)
    np.testing.assert_allclose(z, sum(x[t] @ layer.weight.data.T for t in range(4)) / 4, rtol=1e-14)
    dz = rng.normal(size=(5, 2))
    dx = layer.backward(dz)
    for t in range(4):
        np.testing.assert_allclose(dx[t], dz @ layer.weight.data / 4, rtol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, dz.T @ x.mean(axis=0), rtol=1e-14)


def test_cross_entropy_by_hand():
    """Two samples, three classes: L = −½·(log p₀[2] + log p₁[0]) with p = softmax(z), and
    ∂L/∂z = (p − onehot)/2, computed here with math.exp/math.log."""
    z = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    labels = np.array([2, 0])
    p0 = [math.exp(v) / (math.exp(1.0) + math.exp(2.0) + math.exp(0.5)) for v in z[0]]
    p1 = [math.exp(v) / (math.exp(-1.0) + math.exp(0.0) + math.exp(3.0)) for v in z[1]]
    expected_loss = -(math.log(p0[2]) + math.log(p1[0])) / 2
    expected_grad = np.array([[p0[0], p0[1], p0[2] - 1], [p1[0] - 1, p1[1], p1[2]]]) / 2
    loss, grad = cross_entropy(z, labels)
    assert loss == pytest.approx(expected_loss, rel=1e-14)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-13, atol=1e-16)
    # shift invariance and stability for huge logits
    loss_big, grad_big = cross_entropy(z + 1000.0, labels)
    assert loss_big == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grad_big, expected_grad, rtol=1e-12, atol=1e-15)
    # float32 logits give float32 gradients
    assert cross_entropy(z.astype(np.float32), labels)[1].dtype == np.float32


# -------------------------------------------------------------------------------------- encoders

def test_pixel_sequence_is_row_major_one_pixel_per_step():
    """[B, H, W] -> [H·W, B, 1] with step t = pixel (t // W, t % W) of every image; [B, H·W]
    input gives the same."""
    images = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    seq = encoding.pixel_sequence(images)
    assert seq.shape == (12, 2, 1) and seq.flags.c_contiguous
    for t in range(12):
        for b in range(2):
            assert seq[t, b, 0] == images[b, t // 4, t % 4]
    np.testing.assert_array_equal(encoding.pixel_sequence(images.reshape(2, 12)), seq)


def test_poisson_signs_and_rates():
    """Poisson code: s_t ∈ {−1, 0, 1} with the sign of x, firing with probability
    min(1, |x|/2), fresh at every step; zero pixels never fire, |x| ≥ 2 always fires."""
    rng = np.random.default_rng(7)
    x = np.array([[0.0, 0.2, -0.5, 1.0, -1.5, 2.0, -3.0]])
    T = 20000
    s = encoding.poisson(x, T, rng)
    assert s.shape == (T, 1, 7) and s.dtype == x.dtype
    assert set(np.unique(s)) <= {-1.0, 0.0, 1.0}
    assert np.all(s * np.sign(x) >= 0)                       # never the wrong sign
    rate = np.abs(s).mean(axis=0)[0]
    expected = np.minimum(1.0, np.abs(x[0]) / 2.0)
    sd = np.sqrt(expected * (1 - expected) / T)
    assert np.all(np.abs(rate - expected) <= 5 * sd + 1e-12)    # 5 standard deviations
    np.testing.assert_allclose(encoding.poisson_rate(x), np.sign(x) * expected)
    # steps are independent draws: consecutive steps are not copies of each other
    col = np.abs(s[:, 0, 3])
    assert 0.4 < np.mean(col[1:] != col[:-1]) < 0.6            # P(change) = 2·0.5·0.5 = 0.5
    # float32 images give float32 spikes
    assert encoding.poisson(x.astype(np.float32), 3, rng).dtype == np.float32


# ------------------------------------------------------------------------------------ state dict

def test_state_dict_round_trip():
    """state_dict holds copies of every parameter and running statistic; loading it into a
    differently seeded network makes both compute the same logits, in training and evaluation."""
    rng = np.random.default_rng(9)
    T = 5
    a = models.fc_snn([3, 6, 4], T, norm="bntt", dtype=np.float64, seed=1)
    b = models.fc_snn([3, 6, 4], T, norm="bntt", dtype=np.float64, seed=2)
    x = rng.normal(size=(T, 4, 3))
    a.forward(x, train=True)                      # moves a's running statistics off their init
    a.layers[1].gamma.data[...] = rng.uniform(0.5, 1.5, size=(T, 6))
    state = a.state_dict()
    assert set(state) == {"0.weight", "1.gamma", "3.weight", "1.running_mean", "1.running_var",
                          "1.calibrated_mean", "1.calibrated_var"}
    state["0.weight"][...] = 0.0                  # a copy: editing it leaves the network alone
    assert np.abs(a.layers[0].weight.data).max() > 0
    state = a.state_dict()
    assert not np.allclose(b.layers[0].weight.data, a.layers[0].weight.data)
    b.load_state_dict(state)
    for key, value in b.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    np.testing.assert_array_equal(b.forward(x, train=False), a.forward(x, train=False))
    np.testing.assert_array_equal(b.forward(x, train=True), a.forward(x, train=True))


def test_load_state_dict_rejects_mismatches():
    """Missing or unexpected keys, or a wrong shape, raise a ValueError that names the entry."""
    net = models.fc_snn([3, 6, 4], 5, norm="bntt", dtype=np.float64, seed=1)
    good = net.state_dict()
    missing = dict(good)
    del missing["1.running_var"]
    with pytest.raises(ValueError, match="1.running_var"):
        net.load_state_dict(missing)
    extra = dict(good, **{"7.weight": np.zeros(3)})
    with pytest.raises(ValueError, match="7.weight"):
        net.load_state_dict(extra)
    wrong = {k: v + 1.0 for k, v in good.items()}
    wrong["3.weight"] = np.zeros((6, 4))
    with pytest.raises(ValueError, match="3.weight"):
        net.load_state_dict(wrong)
    for key, value in net.state_dict().items():   # nothing was copied before the error
        np.testing.assert_array_equal(value, good[key])


# -------------------------------------------------------------------------------- paper network

def test_smnist_fc_structure_and_shapes():
    """smnist_fc(): FC(1,256)-BNTT-LIF-FC(256,256)-BNTT-LIF-Readout(256,10) with T = 784, no
    biases; Linear weights [out, in], BNTT γ [T, C] initialised to 1, running mean/var [T, C]
    in the state dict; Xavier-uniform weights with gain 2."""
    net = models.smnist_fc()
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Linear", "BNTT", "LIF", "Linear", "BNTT", "LIF", "Readout"]
    shapes = {name: p.shape for name, p in net.named_parameters()}
    assert shapes == {"0.weight": (256, 1), "1.gamma": (784, 256), "3.weight": (256, 256),
                      "4.gamma": (784, 256), "6.weight": (10, 256)}
    assert list(shapes) == ["0.weight", "1.gamma", "3.weight", "4.gamma", "6.weight"]   # layer order
    state = net.state_dict()
    for i in (1, 4):
        assert state[f"{i}.running_mean"].shape == (784, 256)
        assert state[f"{i}.running_var"].shape == (784, 256)
        np.testing.assert_array_equal(state[f"{i}.gamma"], 1.0)
    assert all(layer.bias is None for layer in net.layers if isinstance(layer, Linear))
    for i, (fan_in, fan_out) in {0: (1, 256), 3: (256, 256), 6: (256, 10)}.items():
        w = net.layers[i].weight.data
        bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    for lif in net.lif_layers():
        assert (lif.leak, lif.threshold, lif.reset, lif.detach_reset) == (0.99, 1.0, "soft", True)
        assert lif.surrogate.name == "triangle" and lif.surrogate.height == pytest.approx(0.3)
    assert net.layers[0].weight.data.dtype == np.float32       # float32 is the training default


@pytest.mark.parametrize("norm, kinds", [
    ("bn", ["Linear", "BatchNorm", "LIF", "Linear", "BatchNorm", "LIF", "Readout"]),
    ("ln", ["Linear", "LayerNorm", "LIF", "Linear", "LayerNorm", "LIF", "Readout"]),
    ("none", ["Linear", "LIF", "Linear", "LIF", "Readout"]),
])
def test_smnist_fc_other_norms(norm, kinds):
    """norm ∈ {bn, ln, none} swaps the normalisation layer (or drops it); an unknown one raises."""
    net = models.smnist_fc(T=8, hidden=16, norm=norm)
    assert [type(layer).__name__ for layer in net.layers] == kinds
    with pytest.raises(ValueError):
        models.smnist_fc(T=8, hidden=16, norm="group")


@pytest.mark.parametrize("norm", models.NORMS)
def test_smnist_fc_float64_end_to_end(norm):
    """dtype=float64: parameters, running statistics, logits, dx and every gradient are float64,
    the logits are [B, 10] and dx is [T, B, 1]; forward in evaluation mode too."""
    T, B = 12, 3
    net = models.smnist_fc(T=T, hidden=8, norm=norm, dtype=np.float64, surrogate="arctan")
    rng = np.random.default_rng(10)
    x = encoding.pixel_sequence(rng.normal(size=(B, 3, 4)))
    assert x.shape == (T, B, 1)
    z = net.forward(x, train=True)
    assert z.shape == (B, 10) and z.dtype == np.float64
    _, dz = cross_entropy(z, rng.integers(0, 10, size=B))
    assert dz.dtype == np.float64
    dx = net.backward(dz)
    assert dx.shape == x.shape and dx.dtype == np.float64
    for name, p in net.named_parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64, name
        assert np.all(np.isfinite(p.grad)), name
    for name, value in net.state_dict().items():
        assert value.dtype == np.float64, name
    assert np.abs(net.layers[0].weight.grad).max() > 0        # the gradient reaches the first layer
    z_eval = net.forward(x, train=False)
    assert z_eval.dtype == np.float64 and z_eval.shape == (B, 10)


@pytest.mark.parametrize("layer", [LIF(leak=0.9), BNTT(T=6, channels=5)], ids=["LIF", "BNTT"])
def test_reused_workspace_never_aliases_outputs_and_backward_follows_the_last_forward(layer):
    """LIF and BNTT keep u and x̂ in a buffer reused from call to call; their outputs must stay
    independent arrays, and a backward must belong to the most recent forward."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(0.5, 1, (2, 6, 3, 5))
    dy = rng.normal(size=(6, 3, 5))
    y1 = layer.forward(x1)
    kept = y1.copy()
    y2 = layer.forward(x2)
    np.testing.assert_array_equal(y1, kept)
    assert not np.shares_memory(y1, y2)
    dx_after_two = layer.backward(dy)
    layer.forward(x2)
    np.testing.assert_array_equal(dx_after_two, layer.backward(dy))


def test_bntt_batch_statistics_between_forward_and_backward_leaves_the_saved_xhat_alone():
    """Calibration may ask for batch statistics of other data; the x̂ kept for backward (a reused
    workspace) must survive it."""
    rng = np.random.default_rng(1)
    x, other = rng.normal(0.5, 1, (2, 6, 3, 5))
    dy = rng.normal(size=(6, 3, 5))
    bntt = BNTT(T=6, channels=5)
    bntt.forward(x)
    expected = bntt.backward(dy)
    bntt.forward(x)
    bntt.batch_statistics(other)
    np.testing.assert_array_equal(bntt.backward(dy), expected)


# ----------------------------------------------------------------------------- thread settings

@pytest.mark.parametrize("preset, expected", [(None, "4"), ("12", "12")])
def test_importing_minisnn_shortens_openblas_spin_unless_the_user_set_it(preset, expected):
    """minisnn/__init__.py sets OPENBLAS_THREAD_TIMEOUT=4 for the BLAS loaded after it; a value
    already in the environment wins."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = "import minisnn, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
    assert out.stderr == ""                          # imported first: nothing to warn about


@pytest.mark.parametrize("preset", [None, "4"])
def test_importing_numpy_first_is_reported_once_in_one_line(preset):
    """The setting cannot act once NumPy has loaded OpenBLAS: minisnn says so in one line (a
    RuntimeWarning), unless the user set the variable themselves."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "PYTHONWARNINGS")}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = "import numpy; import minisnn; import minisnn.train"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    if preset is not None or "openblas" not in str(np.show_config(mode="dicts")).lower():
        assert out.stderr == ""
    else:
        lines = [line for line in out.stderr.splitlines() if "OPENBLAS_THREAD_TIMEOUT=4" in line]
        assert len(lines) == 1 and "RuntimeWarning: NumPy was imported before minisnn" in lines[0], out.stderr
