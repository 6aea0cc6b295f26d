"""minisnn.record.record_run end to end: the recorded counts are the network's spikes, and
hwmodel's counts on the file equal a brute-force count."""
import numpy as np
import pytest

from hwmodel.counts import count_run
from hwmodel.runfile import read_run
from minisnn import models
from minisnn.record import describe, record_run

T, B = 5, 7


def poisson_batches(n_batches, seed=0, analogue=False):
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        if analogue:
            x = (rng.random((T, B, 4)) * (rng.random((T, B, 4)) < 0.7)).astype(np.float32) * 4
        else:
            x = (np.sign(rng.normal(size=(T, B, 4))) * (rng.random((T, B, 4)) < 0.6)).astype(np.float32)
        yield x, rng.integers(0, 3, B)


def reference(net, batches):
    """Run the network by hand, layer by layer (eval mode): per-batch inputs, LIF spikes, logits."""
    out = []
    for x, labels in batches:
        h = x
        for layer in net.layers[:-1]:
            h = layer.forward(h, train=False)
        spikes = h.copy()                                     # layer 2 is the last LIF
        logits = net.layers[-1].forward(h, train=False)
        out.append((x, spikes, logits, labels))
    return out


@pytest.fixture
def net():
    net = models.fc_snn([4, 6, 3], T=T, norm="bntt", threshold=0.5)
    net.layers[1].gamma.data[...] = 3.0          # make the LIF layer fire a fair amount
    return net


def test_record_matches_the_spikes(net, tmp_path):
    path = tmp_path / "run.npz"
    batches = list(poisson_batches(1))
    summary = record_run(net, batches, path, meta={"dataset": "toy"})
    (_, spikes, _, _), = reference(net, batches)
    run = read_run(path)
    assert run.T == T and run.n_samples == B and run.meta["dataset"] == "toy" and not run.meta["sequential"]
    assert [l["kind"] for l in run.layers] == ["Linear", "BNTT", "LIF", "Readout"]
    np.testing.assert_array_equal(run.counts["L2"], spikes.sum(axis=1))       # 0/1 spikes: count = sum
    assert run.counts["L2"].sum() == spikes.sum() > 0
    assert run.sources["input"]["binary"] and run.sources["L2"]["binary"]
    assert run.layers[3]["input"] == "L2" and run.layers[0]["input"] == "input"
    assert summary["spikes_per_sample"] == pytest.approx(spikes.sum() / B)
    assert summary["spike_rate"] == pytest.approx(spikes.mean())


def test_counts_accumulate_over_batches_and_match_brute_force(net, tmp_path):
    path = tmp_path / "run.npz"
    summary = record_run(net, poisson_batches(3, seed=1), path)
    ref = reference(net, poisson_batches(3, seed=1))
    N = 3 * B
    run = read_run(path)
    np.testing.assert_array_equal(run.counts["L2"], sum(s.sum(axis=1) for _, s, _, _ in ref))
    np.testing.assert_array_equal(run.counts["input"], sum((x != 0).sum(axis=1) for x, _, _, _ in ref))
    correct = sum(int((np.argmax(z, axis=1) == y).sum()) for _, _, z, y in ref)
    assert summary["accuracy"] == pytest.approx(correct / N) and run.n_correct == correct
    # brute force, straight from the arrays: every non-zero input reaches all 6 hidden neurons, every
    # spike all 3 readout units, at every step; divided by the number of samples
    brute = sum(6 * np.count_nonzero(x) + 3 * np.count_nonzero(s) for x, s, _, _ in ref) / N
    counts = count_run(run)
    totals = counts.totals()
    assert totals["synops"] == pytest.approx(brute) and totals["macs"] == 0
    assert totals["spikes"] == pytest.approx(sum(s.sum() for _, s, _, _ in ref) / N)
    assert totals["neuron_updates"] == T * 6
    assert totals["dense_ops"] == T * (4 * 6 + 6 * 3) and totals["ann_macs"] == 4 * 6 + 6 * 3
    np.testing.assert_allclose(counts.per_timestep("synops"),
                               sum(6 * (x != 0).sum(axis=(1, 2)) + 3 * s.sum(axis=(1, 2)) for x, s, _, _ in ref) / N)


def test_analogue_input_is_recorded_as_not_binary(net, tmp_path):
    path = tmp_path / "run.npz"
    summary = record_run(net, poisson_batches(2, analogue=True), path)
    run = read_run(path)
    assert not summary["input_binary"] and not run.sources["input"]["binary"]
    assert summary["sequential"] and run.meta["sequential"]        # a new analogue value at every step
    totals = count_run(run).totals()
    assert totals["ann_macs"] == T * (4 * 6 + 6 * 3)                # so the ANN runs once per step
    assert totals["macs"] == pytest.approx(6 * run.counts["input"].sum() / (2 * B))
    assert totals["synops"] == pytest.approx(3 * run.counts["L2"].sum() / (2 * B))


def test_direct_coding_is_static(net, tmp_path):
    image = np.random.default_rng(3).random((B, 4)).astype(np.float32)
    x = np.broadcast_to(image, (T, B, 4)).copy()                    # the same analogue image every step
    summary = record_run(net, [(x, None)], tmp_path / "d.npz")
    assert not summary["input_binary"] and not summary["sequential"]
    assert count_run(read_run(tmp_path / "d.npz")).totals()["ann_macs"] == 4 * 6 + 6 * 3


def test_file_is_plain_and_written_atomically(net, tmp_path):
    path = tmp_path / "sub" / "recording"                    # no .npz suffix: written exactly there
    record_run(net, poisson_batches(1), path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["recording"]
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_bad_batches(net, tmp_path):
    with pytest.raises(ValueError, match="no batches"):
        record_run(net, [], tmp_path / "a.npz")
    x = np.zeros((T, B, 4), np.float32)
    with pytest.raises(ValueError, match="same T"):
        record_run(net, [(x, None), (x[:3], None)], tmp_path / "b.npz")
    assert not (tmp_path / "b.npz").exists()


def test_no_labels_no_accuracy(net, tmp_path):
    x = np.ones((T, B, 4), np.float32)
    summary = record_run(net, [(x, None)], tmp_path / "c.npz")
    assert summary["accuracy"] is None and read_run(tmp_path / "c.npz").accuracy is None


def test_layers_the_run_format_does_not_know_are_refused():
    """The run format's kinds are minisnn's layers; nothing is guessed from attributes."""
    class MyConv:
        in_channels, out_channels, kernel_size = 2, 4, 3

    with pytest.raises(ValueError, match="no layer kind 'MyConv'"):
        describe(MyConv())
    assert describe(models.fc_snn([4, 6, 3], T=2).layers[0])[0] == "Linear"


def test_conv_network_if_the_layer_exists(tmp_path):
    """With minisnn's Conv2d: synops equal the sum of a ones-kernel convolution of the spike mask."""
    from minisnn.layers import conv as conv_mod
    from minisnn.layers import LIF, Readout
    from minisnn.network import Sequential
    conv = conv_mod.Conv2d(1, 2, kernel_size=3, stride=2, padding=1, rng=np.random.default_rng(0))
    net = Sequential(conv, LIF(threshold=0.2), Readout(2 * 3 * 3, 2, rng=np.random.default_rng(1)))
    rng = np.random.default_rng(2)
    x = (rng.random((3, 4, 1, 5, 5)) < 0.4).astype(np.float32)
    x[:, :, 0, 0, 0] = 1                                     # spikes on the corners and the border
    x[:, :, 0, -1, -1] = 1
    record_run(net, [(x, None)], tmp_path / "conv.npz")
    counts = count_run(read_run(tmp_path / "conv.npz"))
    ones = conv_mod.Conv2d(1, 2, kernel_size=3, stride=2, padding=1)
    ones.weight.data[...] = 1.0
    brute = ones.forward(x, train=False).sum() / 4
    assert counts.layers[0].synops.sum() == pytest.approx(brute)
    assert counts.layers[0].ann_macs == ones.forward(np.ones((1, 1, 1, 5, 5), np.float32), train=False).sum()


def test_conv_pool_flatten_network_if_the_layers_exist(tmp_path):
    """Conv2d → LIF → AvgPool2d → Flatten → Linear → LIF → Readout with minisnn's own layers:
    pooled spikes are not binary, so the Linear does MACs, unless the pool is folded."""
    from minisnn.layers import conv as conv_mod
    from minisnn.layers import pool as pool_mod
    from minisnn.layers import flatten as flat_mod
    from minisnn.layers import LIF, Linear, Readout
    from minisnn.network import Sequential
    rng = np.random.default_rng(4)
    net = Sequential(conv_mod.Conv2d(1, 2, kernel_size=3, stride=1, padding=1, rng=rng), LIF(threshold=0.3),
                     pool_mod.AvgPool2d(2), flat_mod.Flatten(), Linear(8, 3, rng=rng), LIF(threshold=0.2),
                     Readout(3, 2, rng=rng))
    x = (rng.random((4, 5, 1, 4, 4)) < 0.5).astype(np.float32)
    record_run(net, [(x, None)], tmp_path / "cnn.npz")
    run = read_run(tmp_path / "cnn.npz")
    spikes = net.outputs(x, LIF)[1]
    assert [l["kind"] for l in run.layers] == ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Linear", "LIF", "Readout"]
    assert run.layers[2]["input"] == "L1" and run.layers[4]["input"] == "X4"
    assert not run.sources["X4"]["binary"]
    s1, s5 = spikes[1], spikes[5]
    pooled = net.layers[2].forward(s1, train=False)
    plain, folded = count_run(run), count_run(run, fold_pool=True)
    assert plain.layers[4].macs.sum() == pytest.approx(3 * np.count_nonzero(pooled) / 5)
    assert folded.layers[4].synops.sum() == pytest.approx(3 * np.count_nonzero(s1) / 5)
    assert folded.layers[4].macs.sum() == 0
    assert plain.layers[6].synops.sum() == pytest.approx(2 * np.count_nonzero(s5) / 5)
