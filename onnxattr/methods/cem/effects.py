"""CEM's numbers, as the authors' code computes them (J-FHu/CEM; docs/cem.md): the window PSNR of uint8-rounded
outputs, the coarse-to-fine rule, the signed effect and the block counts and range. Pure functions on arrays.

* PSNR(F(x)_ROI, HR_ROI) = 20 log10(255 / sqrt(MSE)) over the window's pixels and channels, the output clipped to
  [0, 1], times 255 and rounded half to even in float32 (``np.uint8(np.round(sr * 255))``), the HR as uint8.
* Coarse stage: K_c draws on every block; a block goes to the fine stage when one draw's |PSNR_0 - PSNR_k| >= tol
  (the largest single-draw difference, not the mean's); its K_f fine draws' mean then replaces the coarse mean.
* effect = PSNR_0 - mean_k PSNR_k (dB): > 0 the block helps the window (replacing it lowers the PSNR), < 0 it
  hurts; |effect| < tol is set to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def to_u8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """round(clip(x, 0, 1) * 255) in x's float type (float32 outputs: the authors' float32 NumPy steps; NumPy rounds
    half to even), as float64."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.round(np.clip(x, 0, 1) * x.dtype.type(255)).astype(np.float64)


def window_psnr(out: torch.Tensor | np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR (dB) of each output window (n, C, S, S) in [0, 1] units against ``reference`` (C, S, S), uint8 values as
    float64; inf where equal. NumPy on the CPU: right after an onnxruntime run, torch's threads wake slowly."""
    mse = ((to_u8(out) - reference) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 20 * np.log10(255 / np.sqrt(mse))


def fine_selected(p0: np.ndarray | float, coarse: np.ndarray, tol: float) -> np.ndarray:
    """Blocks whose largest single coarse draw moves the PSNR by >= tol: max_k |p0 - coarse[..., k]| >= tol."""
    return np.max(np.abs(p0 - coarse), axis=-1) >= tol


def effect(p0_coarse: np.ndarray | float, coarse: np.ndarray, p0_fine: np.ndarray | float, fine: np.ndarray,
           selected: np.ndarray, tol: float) -> np.ndarray:
    """p0 - mean PSNR over the fine draws where ``selected``, else over the coarse draws; 0 where |effect| < tol.
    ``coarse`` (..., K_c) and ``fine`` (..., K_f) hold the draws' PSNRs, the p0 their unperturbed PSNR."""
    if not fine.shape[-1]:  # K_f = 0: the coarse means throughout
        return effect(p0_coarse, coarse, p0_coarse, coarse, np.zeros_like(selected), tol)
    with np.errstate(invalid="ignore"):  # NaN where a block did not run: the caller sets those
        e = np.where(selected, p0_fine - fine.mean(axis=-1), p0_coarse - coarse.mean(axis=-1))
        return np.where(np.abs(e) < tol, 0.0, e)


@dataclass(frozen=True)
class Summary:
    """Counts of the blocks outside the window by sign of their effect, and the effect's largest and smallest
    value with the (row, col) of their first block in row-major order."""

    positive: int
    negative: int
    zero: int
    high: float
    low: float
    argmax: tuple[int, int]
    argmin: tuple[int, int]

    @property
    def range(self) -> float:
        return self.high - self.low


def summarise(effects: np.ndarray, window: np.ndarray) -> Summary:
    """The ``Summary`` of one window's block effects (rows x cols), its own blocks (``window``) left out."""
    outside = effects[~window]
    masked_high = np.where(window, -np.inf, effects)
    masked_low = np.where(window, np.inf, effects)
    top = np.unravel_index(np.argmax(masked_high), effects.shape)
    bottom = np.unravel_index(np.argmin(masked_low), effects.shape)
    return Summary(int((outside > 0).sum()), int((outside < 0).sum()), int((outside == 0).sum()),
                   float(effects[top]), float(effects[bottom]), (int(top[0]), int(top[1])),
                   (int(bottom[0]), int(bottom[1])))
