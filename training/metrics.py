"""Figures of predictions that the app computes too: pure NumPy, so the window, which never
loads the plotting and statistics stack of :mod:`training.reports`, can use them."""
from __future__ import annotations

import numpy as np


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 3) -> float:
    """Share of examples whose label is among the ``k`` most probable classes."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())
