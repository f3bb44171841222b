"""How alike two attribution maps of one window are: the measures of the model parameter randomisation test
(Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3.1 and Fig. 4).

For maps A, B (C, h, w) compared over a set S of LR pixels (flat indices; every pixel when None):

* ``spearman_abs``: Spearman's rank correlation of |map| = the saliency s = |sum_c A_c| over S;
* ``spearman``: the same of the signed map sum_c A_c (a map whose sign flips with the weights decorrelates here);
* ``ssim``: SSIM (``quality.ssim``, Wang et al. 2004) of the saliency maps, each divided by its max so in
  [0, 1] (the paper's normalisation), on the bounding box of S grown to at least ``SSIM_WINDOW`` px a side
  where the image allows;
* ``top_overlap``: |T(A) n T(B)| / k, T the k = ceil(``top`` |S|) pixels of S with the largest saliency.

Restricting to S matters: two maps that are both zero outside a window's receptive field would correlate
through their shared zeros whatever they say inside it. A constant map (all zero) has no ranks: NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata

from ..arrays import to_numpy
from .gini import saliency
from .quality import SSIM_WINDOW, ssim

MEASURES = ("spearman_abs", "spearman", "ssim", "top_overlap")
DEFAULT_TOP = 0.1  # share of the region's pixels whose overlap ``top_overlap`` measures


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two equally long vectors: Pearson's r of their ranks (ties take the mean rank);
    NaN when either is constant."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_overlap(a: np.ndarray, b: np.ndarray, top: float = DEFAULT_TOP) -> float:
    """|T(a) n T(b)| / k for the k = ceil(top n) largest values of each (ties broken by position); NaN when
    either is constant (its top k would be arbitrary)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    k = max(1, math.ceil(top * a.size))
    ta, tb = np.argsort(-a, kind="stable")[:k], np.argsort(-b, kind="stable")[:k]
    return len(np.intersect1d(ta, tb)) / k


def _box(region: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The bounding box of the flat indices ``region`` in an h x w image, grown around its centre to at least
    SSIM_WINDOW px a side (as far as the image reaches)."""
    h, w = shape
    rows, cols = np.unravel_index(region, shape)

    def span(lo: int, hi: int, n: int) -> slice:
        side = min(SSIM_WINDOW, n)
        if hi - lo + 1 >= side:
            return slice(lo, hi + 1)
        start = min(max(0, (lo + hi + 1 - side) // 2), n - side)
        return slice(start, start + side)

    return span(int(rows.min()), int(rows.max()), h), span(int(cols.min()), int(cols.max()), w)


def map_similarity(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, region: np.ndarray | None = None,
                   top: float = DEFAULT_TOP) -> dict[str, float]:
    """The four ``MEASURES`` of maps ``a`` and ``b`` (C, h, w) over ``region`` (flat LR pixel indices; None: all).
    1 for identical maps (SSIM NaN on images under ``SSIM_WINDOW`` px a side)."""
    a, b = to_numpy(a, np.float64), to_numpy(b, np.float64)
    h, w = a.shape[-2:]
    idx = np.arange(h * w) if region is None or len(region) == 0 else np.asarray(region)
    sa, sb = saliency(a), saliency(b)
    signed_a, signed_b = a.sum(axis=0).ravel()[idx], b.sum(axis=0).ravel()[idx]
    rows, cols = _box(idx, (h, w))
    crop_a, crop_b = sa[rows, cols], sb[rows, cols]
    fits = min(crop_a.shape) >= SSIM_WINDOW
    return {
        "spearman_abs": spearman(sa.ravel()[idx], sb.ravel()[idx]),
        "spearman": spearman(signed_a, signed_b),
        "ssim": float(ssim(crop_a[None] / max(crop_a.max(), 1e-30), crop_b[None] / max(crop_b.max(), 1e-30)))
        if fits else float("nan"),
        "top_overlap": top_overlap(sa.ravel()[idx], sb.ravel()[idx], top),
    }
