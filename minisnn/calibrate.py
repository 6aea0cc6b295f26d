"""Precise normalisation statistics: exact averages re-estimated with the current weights.

During training, BNTT/BN keep running statistics r ← 0.9·r + 0.1·batch while the weights move
underneath them, so r lags the statistics of the current network. Where a step's input barely
varies (the blank border pixels of sequential MNIST), training normalises by √(σ² + ε) ≈ √ε and
maps x − μ ≈ 0 to 0, but evaluation divides the lag x − r by √ε = 0.01: a 100-fold amplified
error that the LIF membranes then integrate over hundreds of steps. Re-estimating the statistics
with the final weights ("precise BN", Wu & Johnson 2021) removes the lag:

    μ_t = (1/K)·Σ_k mean_k(x_t),    σ²_t = (1/K)·Σ_k var_k(x_t)·m/(m − 1)

over K training batches, every normalisation layer in one pass per batch: as in Wu & Johnson's
precise BN, the network runs with batch statistics (as in training, without updating anything),
so each layer sees what it saw in training. The result goes into ``calibrated_mean`` /
``calibrated_var``; the running averages are left as they are, so a checkpoint can be evaluated
either way (``python -m minisnn.evaluate --bn-stats running|calibrated|batch``).
"""
import numpy as np


def calibrate_norm_stats(net, batches):
    """Set ``calibrated_mean`` / ``calibrated_var`` of every normalisation layer of ``net`` to
    their exact average over ``batches`` (encoded inputs ``[T, B, ...]``)."""
    norms = net.norm_layers()         # inside residual blocks too
    sums = {id(layer): [np.zeros(layer.running_mean.shape), np.zeros(layer.running_var.shape)] for layer in norms}

    def accumulate(i, layer, x, _):
        if id(layer) in sums:
            mean, var = layer.batch_statistics(x)
            sums[id(layer)][0][:len(mean)] += mean
            sums[id(layer)][1][:len(var)] += var

    count = 0
    net.set_eval_stats("batch")
    try:
        for x in batches:
            net.forward(x, train=False, observe=accumulate)
            net.clear()
            count += 1
    finally:
        net.set_eval_stats("running")
    if not count:
        raise ValueError("calibration needs at least one batch")
    for layer in norms:
        layer.calibrated_mean[...] = sums[id(layer)][0] / count
        layer.calibrated_var[...] = sums[id(layer)][1] / count
