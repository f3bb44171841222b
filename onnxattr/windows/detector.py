"""The LAM gradient detector (Gu & Dong 2021, eq. 1): the objective every method explains on an output window.

D(O) = sum over channels and window pixels of sqrt(dh + dw), with dh, dw the squared forward differences of
the output O along rows and columns; ``window_detectors`` gives D for K windows from one gradient map.

The border. A pixel in the last row (column) of the output has no pixel below it (to its right): its forward
difference along rows (columns) is 0, as if the output's last row and column were repeated (replicate padding).
So a window may reach the output's right and bottom edges (x + size <= W), and a window that does not touch
them gets exactly the LAM code's D.
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


def detector_region(out: torch.Tensor, window: Window) -> torch.Tensor:
    """The output pixels D reads for ``window``: rows y .. y + size and columns x .. x + size, (N, C, size + 1,
    size + 1); beyond the output's bottom or right edge the last row or column is repeated (difference 0)."""
    y, x, s = window.y, window.x, window.size
    region = out[:, :, y : y + s + 1, x : x + s + 1]
    short_h, short_w = s + 1 - region.shape[2], s + 1 - region.shape[3]
    if short_h or short_w:
        region = torch.nn.functional.pad(region, (0, short_w, 0, short_h), mode="replicate")
    return region


def gradient_detector(out: torch.Tensor, window: Window) -> torch.Tensor:
    """D(O) = sum over channels and window of the gradient map (LAM eq. 1), one value per batch item: (N,)."""
    return gradient_map(detector_region(out, window)).sum(dim=(1, 2, 3))


def window_detectors(out: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """D_k(O) for every window k from one gradient map of the output with its last row and column repeated: (N, K)."""
    g = gradient_map(torch.nn.functional.pad(out, (0, 1, 0, 1), mode="replicate")).sum(dim=1)
    return torch.stack([g[:, w.y : w.y + w.size, w.x : w.x + w.size].sum(dim=(1, 2)) for w in windows], dim=1)
