"""Windows on the output and their two frames.

Frames. A model with output side ``s n + c`` (scale s, offset c; waifu2x UpConv7: c = -28) maps LR
pixel i onto HR pixels s i .. s i + s - 1, and its output pixel X onto HR pixel X - c/2 (c < 0: the
output lacks -c/2 px on each border). A window ``(x, y, size)`` (top-left column, row, side) is given

* in the **HR frame** (``frame="hr"``, the default): HR-image pixels = LR pixels x scale, so the same
  numbers mean the same image region for every model whatever its offset; it lies at
  (x + c/2, y + c/2) of the model's output (c must be even);
* in the **SR frame** (``frame="sr"``): the model's output pixels, used as is.

Every method computes on :class:`Window` in SR pixels; ``resolve_windows`` turns what a user passes
(one window, several, or a :class:`Grid`) into them, and ``window_coords`` records each in both frames.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from ..errors import OnnxAttrError
from ..options import FRAMES


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


MANY_WINDOWS = 1024  # a grid with more windows than this is announced (a typo such as --grid 1 means hours)


@dataclass(frozen=True)
class Grid:
    """Windows of side ``size`` tiling the output from its top-left corner, every ``stride`` px
    (default ``size``: tiles that touch), up to the output's right and bottom edges."""

    size: int
    stride: int | None = None


WindowSpec = Union[Window, Grid, Sequence[int], Sequence[Union[Window, Sequence[int]]]]


def hr_shift(offset: int) -> int:
    """c/2, the HR -> SR shift of a window for a model with output side s n + c (c even)."""
    if offset % 2:
        raise OnnxAttrError(
            f"the output side is s n {offset:+d}: an odd offset has no whole-pixel HR frame; "
            "give windows in output pixels (--frame sr, API frame='sr')"
        )
    return offset // 2


def check_window(window: Window | tuple[int, ...], out_h: int, out_w: int, label: str | None = None,
                 shift: int = 0) -> Window:
    """Validate a window (SR pixels) against an SR output of ``out_h`` x ``out_w`` pixels: inside it, up to
    its edges (0 <= x, x + size <= out_w, and the same for rows; the detector handles the border, see
    ``windows.detector``). ``label`` names the window as the user gave it, ``shift`` the offset from the user's
    frame to SR pixels (c/2 for the HR frame), so the allowed range is in theirs.
    """
    w = window if isinstance(window, Window) else Window(*(int(v) for v in window))
    name = label or f"window x={w.x} y={w.y} size={w.size}"
    if w.size < 1:
        raise OnnxAttrError(f"{name}: size {w.size} must be at least 1 pixel; pass --window X Y SIZE with SIZE >= 1")
    if w.size > min(out_h, out_w):
        raise OnnxAttrError(
            f"{name}: size {w.size} is too large for the {out_w}x{out_h} SR output "
            f"(at most {min(out_h, out_w)}); use a smaller SIZE or a larger image"
        )
    if w.x < 0 or w.y < 0 or w.x + w.size > out_w or w.y + w.size > out_h:
        there = f": it is at x={w.x} y={w.y} there (SR pixels)" if shift else ""
        raise OnnxAttrError(
            f"{name} lies outside the {out_w}x{out_h} SR output{there}; give {-shift} <= x <= "
            f"{out_w - w.size - shift} and {-shift} <= y <= {out_h - w.size - shift} in the same frame "
            f"(x = column), or a smaller size"
        )
    return w


def grid_windows(grid: Grid, out_h: int, out_w: int) -> list[Window]:
    """The windows of ``grid`` on an ``out_h`` x ``out_w`` output (SR pixels), row by row."""
    stride = grid.size if grid.stride is None else grid.stride
    if grid.size < 1:
        raise OnnxAttrError(f"grid size {grid.size} must be at least 1 pixel; pass --grid SIZE with SIZE >= 1")
    if stride < 1:
        raise OnnxAttrError(f"grid stride {stride} must be at least 1 pixel; pass --stride S with S >= 1, or leave it "
                            "out for tiles that touch")
    last_y, last_x = out_h - grid.size, out_w - grid.size
    if last_y < 0 or last_x < 0:
        raise OnnxAttrError(
            f"grid of {grid.size} px windows is empty: the {out_w}x{out_h} SR output holds windows of at most "
            f"{min(out_h, out_w)} px; use a smaller --grid SIZE"
        )
    return [Window(x, y, grid.size) for y in range(0, last_y + 1, stride) for x in range(0, last_x + 1, stride)]


def as_windows(window: WindowSpec) -> list[tuple[int, int, int]]:
    """One window (a Window or (x, y, size)) or a sequence of them as a list of (x, y, size)."""
    if isinstance(window, Window):
        return [window.as_tuple()]
    items = list(window)
    if len(items) == 3 and all(isinstance(v, (int, np.integer)) for v in items):
        return [tuple(int(v) for v in items)]  # type: ignore[list-item]
    out = []
    for i, w in enumerate(items):
        t = w.as_tuple() if isinstance(w, Window) else tuple(w)
        if len(t) != 3 or not all(isinstance(v, (int, np.integer)) for v in t):
            raise OnnxAttrError(f"window {i + 1} {t!r}: give (x, y, size) as three integers")
        out.append(tuple(int(v) for v in t))
    if not out:
        raise OnnxAttrError("no window given; pass at least one (x, y, size) or a grid")
    return out  # type: ignore[return-value]


def resolve_windows(window: WindowSpec | None, offset: int, out_h: int, out_w: int, frame: str = "hr") -> list[Window]:
    """The windows of ``window`` in SR pixels of an output ``out_h`` x ``out_w`` with offset c, validated.

    ``window``: one (x, y, size) or :class:`Window`, a sequence of them, or a :class:`Grid` (tiles the
    SR output; frame-free). ``frame``: 'hr' (x + c/2, y + c/2 in the output) or 'sr' (as is).
    A window outside the output and a window given twice are errors naming the window.
    """
    if frame not in FRAMES:
        raise OnnxAttrError(f"frame {frame!r}: use 'hr' (HR-image pixels, the default) or 'sr' (output pixels)")
    if window is None:
        raise OnnxAttrError("no window given; pass --window X Y SIZE, --windows FILE or --grid SIZE (API: window=(x, y, size))")
    if isinstance(window, Grid):
        wins = grid_windows(window, out_h, out_w)
        if len(wins) > MANY_WINDOWS:
            warnings.warn(f"the grid of {window.size} px windows has {len(wins)} windows, one backward pass (LAM: one "
                          "per path batch) each; a larger --grid SIZE or --stride gives fewer", stacklevel=3)
        return wins
    given = as_windows(window)
    shift = hr_shift(offset) if frame == "hr" else 0
    seen: dict[tuple[int, int, int], int] = {}
    out = []
    for i, (x, y, size) in enumerate(given, start=1):
        label = f"window {i} (x={x} y={y} size={size}, {frame.upper()} frame)" if len(given) > 1 else (
            f"window x={x} y={y} size={size} ({frame.upper()} frame)")
        if (x, y, size) in seen:
            raise OnnxAttrError(f"{label} repeats window {seen[(x, y, size)]}; give each window once")
        seen[(x, y, size)] = i
        out.append(check_window(Window(x + shift, y + shift, size), out_h, out_w, label, shift))
    return out


def window_coords(windows: Sequence[Window], offset: int) -> dict[str, tuple[str, np.ndarray]]:
    """Coordinates of the ``window`` dim (which has no index, so results concatenate along it): position in the HR frame (``window_x``, ``window_y``; X - c/2,
    half-integers for an odd c), in the SR frame (``window_x_sr``, ``window_y_sr``) and ``window_size``."""
    half = offset / 2

    def hr(v: np.ndarray) -> np.ndarray:
        return v - offset // 2 if offset % 2 == 0 else v - half

    xs = np.array([w.x for w in windows])
    ys = np.array([w.y for w in windows])
    return {
        "window_x": ("window", hr(xs)),
        "window_y": ("window", hr(ys)),
        "window_size": ("window", np.array([w.size for w in windows])),
        "window_x_sr": ("window", xs),
        "window_y_sr": ("window", ys),
    }


def lr_centre(window: Window, scale: int, offset: int) -> tuple[float, float]:
    """The window's centre (column, row) in LR pixel-centre coordinates: HR position / s - 1/2, HR
    position = SR position - c/2 (LR pixel i covers HR pixels s i .. s i + s - 1)."""
    return tuple((v + window.size / 2 - offset / 2) / scale - 0.5 for v in (window.x, window.y))  # type: ignore[return-value]


def align_hr(hr: torch.Tensor, offset: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """The part of the HR image (1, C, s h, s w) an SR output with offset c <= 0 covers: rows and columns
    -c/2 .. -c/2 + H; an HR image already of the output's size is returned as is."""
    if tuple(hr.shape[2:]) == tuple(out_hw):
        return hr
    if offset > 0:
        raise OnnxAttrError(
            f"the output (side s n {offset:+d}) is larger than the HR image: it pads beyond the image, "
            "so no HR reference covers it; run without --hr"
        )
    b = -hr_shift(offset)
    if hr.shape[2] < b + out_hw[0] or hr.shape[3] < b + out_hw[1]:
        raise OnnxAttrError(
            f"HR image {hr.shape[3]}x{hr.shape[2]} does not cover the {out_hw[1]}x{out_hw[0]} output; "
            "pass the HR image the LR input was made from"
        )
    return hr[:, :, b : b + out_hw[0], b : b + out_hw[1]]
