"""Gini coefficient and the diffusion index of an attribution map (Gu & Dong 2021, Sec. 4.2)."""

from __future__ import annotations

import numpy as np
import torch

from ..arrays import to_numpy


def saliency(attribution: torch.Tensor | np.ndarray) -> np.ndarray:
    """|sum over channels of the attribution| / max: the LAM display map, (H, W) in [0, 1].

    ``attribution`` is (C, H, W); an all-zero map stays zero.
    """
    a = np.abs(to_numpy(attribution, np.float64).sum(axis=0))
    peak = a.max()
    return a / peak if peak > 0 else a


def gini(values: torch.Tensor | np.ndarray) -> float:
    """G = sum_i (2i - n - 1) a_i / (n sum_i a_i) over the sorted, shifted map (the LAM code's gini).

    The map is flattened, shifted by -min if any value is negative, and 1e-7 is added.
    """
    a = to_numpy(values, np.float64).ravel()
    if a.min() < 0:
        a = a - a.min()
    a = np.sort(a + 1e-7)
    n = a.size
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(values: torch.Tensor | np.ndarray) -> float:
    """DI = (1 - G) * 100: 100 for a uniform map, about 100/n for a one-hot map of n pixels."""
    return (1.0 - gini(values)) * 100.0
