"""Linear centered kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019) between attribution matrices.

An attribution matrix X (m x n) holds one row per sample (an image with its window) and one column per
feature (an input pixel); two models' matrices must share the m samples but may differ in n.
With linear Gram matrices K = X X^T, L = Y Y^T and the centring matrix H = I - 11^T / m:

    HSIC(K, L) = tr(K H L H) / (m - 1)^2,       CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),

which for linear kernels is ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc.
It is 1 for identical inputs and invariant to orthogonal transforms and isotropic scaling of either
matrix. Note that two samples (m = 2) always give 1: the centred rows are +-d/2.

The debiased form replaces HSIC by the unbiased estimator of Song et al. (2012), with K~, L~ the Gram
matrices with zeroed diagonals:

    HSIC_u = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((m - 1)(m - 2)) - 2 / (m - 2) 1^T K~ L~ 1] / (m (m - 3)),

which needs m >= 4 samples and may fall slightly below 0 for unrelated matrices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import OnnxAttrError


def _gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise OnnxAttrError(f"attribution matrix of shape {x.shape}: CKA takes (samples, features) matrices")
    return x @ x.T


def hsic(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:
    """HSIC of two m x m Gram matrices: tr(K H L H) / (m - 1)^2, or the unbiased estimator if ``debiased``."""
    m = k.shape[0]
    if not debiased:
        h = np.eye(m) - 1.0 / m
        return float(np.sum((h @ k @ h) * l) / (m - 1) ** 2)
    if m < 4:
        raise OnnxAttrError(f"debiased CKA needs at least 4 samples, got {m}; pass more images or use the biased form")
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    ones = np.ones(m)
    value = (
        np.sum(kt * lt)
        + (ones @ kt @ ones) * (ones @ lt @ ones) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (ones @ kt @ lt @ ones)
    )
    return float(value / (m * (m - 3)))


def _cka_of_grams(k: np.ndarray, l: np.ndarray, debiased: bool) -> float:
    denom = np.sqrt(hsic(k, k, debiased) * hsic(l, l, debiased))
    return float(hsic(k, l, debiased) / denom) if denom > 0 else float("nan")


def cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA of X (m x n1) and Y (m x n2); NaN when either matrix has no variation across samples."""
    k, l = _gram(x), _gram(y)
    if k.shape != l.shape:
        raise OnnxAttrError(f"CKA needs the same samples in both matrices, got {k.shape[0]} and {l.shape[0]} rows")
    if k.shape[0] < 2:
        raise OnnxAttrError("CKA needs at least 2 samples (images); pass more images")
    return _cka_of_grams(k, l, debiased)


def cka_matrix(matrices: Sequence[np.ndarray], debiased: bool = False) -> np.ndarray:
    """The k x k matrix of CKA between every pair of k attribution matrices (each m x n_i), symmetric."""
    grams = [_gram(x) for x in matrices]
    if len({g.shape for g in grams}) > 1:
        raise OnnxAttrError("CKA needs the same samples (images) for every model; got different row counts")
    out = np.empty((len(grams), len(grams)))
    for i, k in enumerate(grams):
        for j in range(i, len(grams)):
            out[i, j] = out[j, i] = _cka_of_grams(k, grams[j], debiased)
    return out
