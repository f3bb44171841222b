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

    The map is flattened, shifted by -min if any value is negative, and 1e-7 is added. NaN for an all-zero map,
    which has no distribution (the LAM code's 1e-7 would call it uniform: DI 100).
    """
    a = to_numpy(values, np.float64).ravel()
    if not np.abs(a).max() > 0:
        return float("nan")
    if a.min() < 0:
        a = a - a.min()
    a = np.sort(a + 1e-7)
    n = a.size
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * a) / (n * np.sum(a)))


def diffusion_index(values: torch.Tensor | np.ndarray) -> float:
    """DI = (1 - G) * 100: 100 for a uniform map, about 100/n for a one-hot map of n pixels, NaN for a zero map."""
    return (1.0 - gini(values)) * 100.0


def reach(saliency_map: torch.Tensor | np.ndarray, centre: tuple[float, float]) -> float:
    """Saliency-weighted mean distance of the input pixels from ``centre`` (column, row; LR pixel centres):
    sum_p s(p) |p - centre| / sum_p s(p), in LR pixels; NaN for an all-zero map. How far a window draws from."""
    s = np.abs(to_numpy(saliency_map, np.float64))
    total = s.sum()
    if not total > 0:
        return float("nan")
    rows, cols = np.mgrid[0 : s.shape[0], 0 : s.shape[1]]
    return float((s * np.hypot(cols - centre[0], rows - centre[1])).sum() / total)
