"""The LAM gradient detector (Gu & Dong 2021, eq. 1): the objective every method explains on an output window.

D(O) = sum over channels and window pixels of sqrt(dh + dw), with dh, dw the squared forward differences of
the output O along rows and columns; ``window_detectors`` gives D for K windows from one gradient map.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .geometry import Window


def sqrt_zero_grad(s: torch.Tensor) -> torch.Tensor:
    """sqrt(s) whose gradient at s = 0 is 0 instead of NaN (the reference code's nan -> 0)."""
    pos = s > 0
    return torch.where(pos, torch.where(pos, s, torch.ones_like(s)).sqrt(), torch.zeros_like(s))


def gradient_map(out: torch.Tensor) -> torch.Tensor:
    """g = sqrt(dh[..., :, :-1] + dw[..., :-1, :]) with squared forward differences; (N, C, H-1, W-1)."""
    dh = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
    dw = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
    return sqrt_zero_grad(dh[:, :, :, :-1] + dw[:, :, :-1, :])


def gradient_detector(out: torch.Tensor, window: Window) -> torch.Tensor:
    """D(O) = sum over channels and window of the gradient map (LAM eq. 1), one value per batch item: (N,)."""
    g = gradient_map(out)[:, :, window.y : window.y + window.size, window.x : window.x + window.size]
    return g.sum(dim=(1, 2, 3))


def window_detectors(out: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """D_k(O) for every window k from one gradient map: (N, K)."""
    g = gradient_map(out).sum(dim=1)
    return torch.stack([g[:, w.y : w.y + w.size, w.x : w.x + w.size].sum(dim=(1, 2)) for w in windows], dim=1)
