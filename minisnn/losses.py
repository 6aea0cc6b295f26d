"""Softmax cross-entropy on the readout's scores."""
import numpy as np


def cross_entropy(logits, labels):
    """L = −(1/B)·Σ_b log softmax(z_b)[y_b];   ∂L/∂z = (softmax(z) − onehot(y))/B.

    logits ``[B, K]``, labels ``[B]`` ints. Returns (loss, dlogits).
    """
    B = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(B), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(B), labels] -= 1.0
    return float(loss), (dlogits / B).astype(logits.dtype)
