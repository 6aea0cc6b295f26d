"""Precise normalisation statistics: running averages re-estimated with the final weights.

During training, BNTT/BN keep running statistics r ← 0.9·r + 0.1·batch while the weights move
underneath them, so r lags the statistics of the current network. Where a step's input barely
varies (the blank border pixels of sequential MNIST), training normalises by √(σ² + ε) ≈ √ε and
maps x − μ ≈ 0 to 0, but evaluation divides the lag x − r by √ε = 0.01: a 100-fold amplified
error that the LIF membranes then integrate over hundreds of steps. Re-estimating the statistics
after training ("precise BN", Wu & Johnson 2021) removes the lag:

    μ_t = (1/K)·Σ_k mean_k(x_t),    σ²_t = (1/K)·Σ_k var_k(x_t)·m/(m − 1)

over K training batches, layer by layer, each layer seeing the outputs of the layers before it
in evaluation mode (with their statistics already re-estimated).
"""
import numpy as np


def calibrate_norm_stats(net, batches):
    """Overwrite the running statistics of every normalisation layer with ``running_mean`` /
    ``running_var`` by their exact average over ``batches`` (encoded inputs ``[T, B, ...]``)."""
    batches = list(batches)
    if not batches:
        raise ValueError("calibration needs at least one batch")
    for i, layer in enumerate(net.layers):
        if not hasattr(layer, "batch_statistics"):
            continue
        mean_sum = np.zeros(layer.running_mean.shape)
        var_sum = np.zeros(layer.running_var.shape)
        for x in batches:
            for earlier in net.layers[:i]:
                x = earlier.forward(x, train=False)
            mean, var = layer.batch_statistics(x)
            mean_sum[:len(mean)] += mean
            var_sum[:len(var)] += var
        layer.running_mean[...] = mean_sum / len(batches)
        layer.running_var[...] = var_sum / len(batches)
        net.clear()
