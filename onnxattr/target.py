"""Output windows and the LAM gradient detector (Gu & Dong 2021, eq. 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import OnnxAttrError


@dataclass(frozen=True)
class Window:
    """A square window on the SR output: top-left column ``x``, row ``y``, side ``size`` (SR pixels)."""

    x: int
    y: int
    size: int = 16

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.x, self.y, self.size)


def min_input_side(scale: int, offset: int) -> int:
    """The smallest input side n whose SR output side s n + c has the 2 pixels the gradient detector needs."""
    return max(1, -(-(2 - offset) // scale))


def check_input_size(height: int, width: int, scale: int, offset: int, name: str) -> None:
    """A clear error when an h x w input gives an SR output too small to hold any window."""
    need = min_input_side(scale, offset)
    if min(height, width) < need:
        law = f"{scale} n {offset:+d}" if offset else f"{scale} n"
        raise OnnxAttrError(
            f"{name} needs an input of at least {need} px per side (its output side is {law}) but the image is "
            f"{width}x{height}; pass a larger image"
        )


def check_window(window: Window | tuple[int, ...], out_h: int, out_w: int) -> Window:
    """Validate a window against an SR output of ``out_h`` x ``out_w`` pixels.

    The detector's gradient map is one pixel smaller than the output in each
    direction, so the window must lie inside ``(out_h - 1) x (out_w - 1)``.
    """
    w = window if isinstance(window, Window) else Window(*(int(v) for v in window))
    limit_h, limit_w = out_h - 1, out_w - 1
    if w.size < 1:
        raise OnnxAttrError(f"window size {w.size} must be at least 1 SR pixel; pass --window X Y SIZE with SIZE >= 1")
    if w.size > min(limit_h, limit_w):
        raise OnnxAttrError(
            f"window size {w.size} is too large for the {out_w}x{out_h} SR output "
            f"(at most {min(limit_h, limit_w)}); use a smaller SIZE or a larger image"
        )
    if w.x < 0 or w.y < 0 or w.x + w.size > limit_w or w.y + w.size > limit_h:
        raise OnnxAttrError(
            f"window x={w.x} y={w.y} size={w.size} lies outside the {out_w}x{out_h} SR output; "
            f"need 0 <= x <= {limit_w - w.size} and 0 <= y <= {limit_h - w.size} (SR pixels, x = column)"
        )
    return w


def _sqrt_zero_grad(s: torch.Tensor) -> torch.Tensor:
    """sqrt(s) whose gradient at s = 0 is 0 instead of NaN (the reference code's nan -> 0)."""
    pos = s > 0
    return torch.where(pos, torch.where(pos, s, torch.ones_like(s)).sqrt(), torch.zeros_like(s))


def gradient_map(out: torch.Tensor) -> torch.Tensor:
    """g = sqrt(dh[..., :, :-1] + dw[..., :-1, :]) with squared forward differences; (N, C, H-1, W-1)."""
    dh = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
    dw = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
    return _sqrt_zero_grad(dh[:, :, :, :-1] + dw[:, :, :-1, :])


def gradient_detector(out: torch.Tensor, window: Window) -> torch.Tensor:
    """D(O) = sum over channels and window of the gradient map (LAM eq. 1), one value per batch item: (N,)."""
    g = gradient_map(out)[:, :, window.y : window.y + window.size, window.x : window.x + window.size]
    return g.sum(dim=(1, 2, 3))
