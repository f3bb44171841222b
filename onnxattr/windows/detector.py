"""The objective D every method explains on an output window: LAM's gradient detector (Gu & Dong 2021, eq. 1) and
the other objectives of the authors' toolbox (LAM_Demo ``SaliencyModel/attributes.py``).

* ``grad`` (``attr_grad``, the default): D(O) = sum over channels and window pixels of sqrt(dh + dw), with dh, dw
  the squared forward differences of the output O along rows and columns;
* ``intensity`` (``attr_id``): D(O) = sum over channels and window pixels of O;
* ``gabor`` (``attr_gabor_generator`` with the kernel of its commented line,
  ``cv2.getGaborKernel((21, 21), 10, -pi/4, 8, 1, 0)``): D(O) = sum over the window of the response
  r = sum_c g (*) O_c (cross-correlation), the filter centred on each window pixel.

``reduce`` 'sum' (the toolbox's default) or 'mean' (its ``reduce_func``: the mean over the cropped values, channels
included, one channel for the Gabor response). ``window_objectives`` gives D for K windows from one map.

The border. A pixel in the last row (column) of the output has no pixel below it (to its right): its forward
difference along rows (columns) is 0, as if the output's last row and column were repeated (replicate padding).
So a window may reach the output's right and bottom edges (x + size <= W), and a window that does not touch
them gets exactly the LAM code's D.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import OnnxAttrError
from ..options import OBJECTIVES, REDUCTIONS
from .geometry import Window

GABOR_SIZE = 21  # side of the toolbox's Gabor kernel
OBJECTIVE_NAMES = {"grad": "gradient detector", "intensity": "window intensity", "gabor": "Gabor response"}


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


def gabor_kernel(size: int = GABOR_SIZE, sigma: float = 10.0, theta: float = -math.pi / 4, lambd: float = 8.0,
                 gamma: float = 1.0, psi: float = 0.0) -> torch.Tensor:
    """OpenCV's ``getGaborKernel((size, size), sigma, theta, lambd, gamma, psi, CV_32F)``: for x, y in
    [-size//2, size//2], xr = x cos t + y sin t, yr = -x sin t + y cos t,
    g = exp(-xr^2 / (2 sigma^2) - yr^2 / (2 (sigma / gamma)^2)) cos(2 pi xr / lambd + psi), stored at
    [size//2 - y, size//2 - x] (OpenCV's 180-degree turn), unnormalised, float32: (size, size)."""
    half = size // 2
    y, x = torch.meshgrid(*(torch.arange(-half, half + 1, dtype=torch.float64),) * 2, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    xr, yr = x * c + y * s, -x * s + y * c
    g = torch.exp(-(xr**2) / (2 * sigma**2) - yr**2 / (2 * (sigma / gamma) ** 2)) * torch.cos(2 * math.pi * xr / lambd + psi)
    return g.flip(0, 1).to(torch.float32)


def gabor_response(out: torch.Tensor) -> torch.Tensor:
    """r = sum_c g (*) O_c, the 'valid' cross-correlation of every channel with ``gabor_kernel()`` summed over the
    channels (the toolbox's weight g repeated over the channels): (N, H - 20, W - 20); r[y, x] is centred on output
    pixel (y + 10, x + 10)."""
    k = gabor_kernel().to(out.device, out.dtype)
    return F.conv2d(out, k.expand(1, out.shape[1], *k.shape))[:, 0]


def margin(objective: str) -> int:
    """Output pixels the objective reads around a window: the Gabor filter's half side, 0 for the others."""
    return GABOR_SIZE // 2 if objective == "gabor" else 0


def objective_reach(objective: str, window: Window, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """The output pixels the objective reads for ``window``: (x0, y0, x1, y1), ends exclusive, inside the output;
    the window with ``margin`` around it, and for 'grad' the next row and column (``detector_region``)."""
    m, extra = margin(objective), int(objective == "grad")
    return (max(window.x - m, 0), max(window.y - m, 0), min(window.x + window.size + m + extra, out_w),
            min(window.y + window.size + m + extra, out_h))


def check_objective(objective: str, reduce: str) -> None:
    """One-line errors for an unknown objective or reduction."""
    if objective not in OBJECTIVES:
        raise OnnxAttrError(f"objective {objective!r}: use one of {', '.join(OBJECTIVES)} (LAM_Demo attr_grad, attr_id, "
                            "attr_gabor)")
    if reduce not in REDUCTIONS:
        raise OnnxAttrError(f"reduce {reduce!r}: use one of {', '.join(REDUCTIONS)}")


def check_objective_windows(objective: str, windows: Sequence[Window], out_h: int, out_w: int) -> None:
    """Windows the objective cannot read: the Gabor filter centred on every window pixel needs ``margin`` output
    pixels around the window."""
    m = margin(objective)
    for w in windows:
        if m and w.size + 2 * m > min(out_h, out_w):
            raise OnnxAttrError(
                f"window size {w.size}: the Gabor objective's {GABOR_SIZE}-px filter centred on each window pixel needs "
                f"an SR output of at least {w.size + 2 * m} px per side, this one is {out_w}x{out_h}; use a larger image, "
                "a smaller window or another --objective")
        if m and (w.x < m or w.y < m or w.x + w.size + m > out_w or w.y + w.size + m > out_h):
            raise OnnxAttrError(
                f"window x={w.x} y={w.y} size={w.size} (SR output pixels): the Gabor objective's {GABOR_SIZE}-px filter "
                f"centred on each window pixel needs {m} output px around the window; give {m} <= x <= "
                f"{out_w - m - w.size} and {m} <= y <= {out_h - m - w.size} there, or another --objective")


def window_objectives(out: torch.Tensor, windows: Sequence[Window], objective: str = "grad",
                      reduce: str = "sum") -> torch.Tensor:
    """D_k(O) of ``objective`` for every window k, reduced by ``reduce``: (N, K).

    grad: the gradient map summed over channels (``window_detectors``); intensity: O summed over channels; gabor:
    ``gabor_response`` read at the window's pixels (centred filter). 'mean' divides the window's sum by the number of
    values it crops: C size^2 (grad, intensity) or size^2 (gabor, one response channel)."""
    if objective == "grad":
        d = window_detectors(out, windows)
    else:
        m = margin(objective)
        g = gabor_response(out) if objective == "gabor" else out.sum(dim=1)
        d = torch.stack([g[:, w.y - m : w.y - m + w.size, w.x - m : w.x - m + w.size].sum(dim=(1, 2)) for w in windows],
                        dim=1)
    if reduce == "mean":
        channels = 1 if objective == "gabor" else out.shape[1]
        d = d / torch.tensor([channels * w.size**2 for w in windows], dtype=d.dtype, device=d.device)
    return d
