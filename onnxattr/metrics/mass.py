"""Where the mass of a map lies: how few pixels hold most of it (LAM_Demo ``count_saliency_pixels``) and the radii
around a point that hold given shares of it (the effective receptive field's radii)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..arrays import to_numpy


def saliency_pixels(saliency: torch.Tensor | np.ndarray, share: float = 0.95) -> float:
    """LAM_Demo ``count_saliency_pixels(map, threshold=share)``: with the values sorted from the largest and S_k
    their running sums, #{k : S_k < share * S} (strict; the smallest set reaching ``share`` has one pixel more).
    Meant for a map >= 0 (the saliency); scale-free; NaN for an all-zero map, which has no mass (LAM_Demo: 0)."""
    v = np.sort(to_numpy(saliency, np.float64).ravel())[::-1]
    if not v.sum() > 0:
        return float("nan")
    return float(np.count_nonzero(np.cumsum(v) < v.sum() * share))


def mass_radii(weights: torch.Tensor | np.ndarray, centre: tuple[float, float], shares: Sequence[float]) -> np.ndarray:
    """For each share t, the smallest distance r from ``centre`` (column, row; pixel-centre coordinates) such that the
    pixels within r hold at least t of the map's mass: r_t = min {r : sum_{|p - centre| <= r} w(p) >= t sum w}, with
    w >= 0 (h, w). Pixel units; NaN for every share of an all-zero map."""
    w = np.abs(to_numpy(weights, np.float64))
    total = w.sum()
    if not total > 0:
        return np.full(len(shares), np.nan)
    rows, cols = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    d = np.hypot(cols - centre[0], rows - centre[1]).ravel()
    order = np.argsort(d, kind="stable")
    cum = np.cumsum(w.ravel()[order])
    return np.array([d[order][min(int(np.searchsorted(cum, t * total, side="left")), d.size - 1)] for t in shares])
