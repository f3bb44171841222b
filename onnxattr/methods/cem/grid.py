"""CEM's geometry: the block grid on the LR input, the windows on it, each window's receptive field in blocks,
and the input crops that hold whole fields.

A block is b HR px = b/s LR px square (b a multiple of the scale s); the grid has ceil(h/(b/s)) rows and
ceil(w/(b/s)) columns, the last ones cut by the image edge. A window (x, y, size) in the HR frame must lie on the
grid (x, y and size multiples of b); its own blocks are never intervened on.

Receptive field. R (LR px, ``field.measure_field``) bounds what an output pixel depends on: the output at HR
position p depends only on LR pixels i with |i - floor(p / s)| <= R in rows and columns. A window's field is its
LR extent [y/s, (y+size)/s) x [x/s, (x+size)/s) widened by R on each side (clipped to the image); a block outside
it cannot change the window's output, so its effect is exactly 0 and it needs no forward. The forward of an
intervention that concerns windows S runs on the crop of the input holding the fields of S (widened to whole blocks,
then to a size the model takes, its origin on the model's size multiple): every LR pixel the windows' outputs
depend on is in the crop, so their outputs are those of the full image (``cem`` checks it on the image itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import OnnxAttrError
from ...intake.sizes import SizeRule
from ...windows.geometry import Window

Rect = tuple[int, int, int, int]  # LR rows y0..y1, columns x0..x1 (ends excluded)


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of an h x w LR image: ``block`` HR px, ``scale`` s; output side s n + ``offset``."""

    block: int
    scale: int
    offset: int
    height: int
    width: int

    @property
    def lr_block(self) -> int:
        return self.block // self.scale

    @property
    def shape(self) -> tuple[int, int]:
        return math.ceil(self.height / self.lr_block), math.ceil(self.width / self.lr_block)

    def rect(self, r: int, c: int) -> Rect:
        """Block (r, c)'s LR pixels, cut by the image edge."""
        b = self.lr_block
        return r * b, min((r + 1) * b, self.height), c * b, min((c + 1) * b, self.width)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Nominal block centres in the shared HR frame (rows negative): -(r + 0.5) b and (c + 0.5) b."""
        rows, cols = self.shape
        return -(np.arange(rows) + 0.5) * self.block, (np.arange(cols) + 0.5) * self.block

    def hr_origin(self, window: Window) -> tuple[float, float]:
        """The window's top-left (x, y) in the HR frame: SR position - c/2."""
        return window.x - self.offset / 2, window.y - self.offset / 2

    def window_mask(self, window: Window) -> np.ndarray:
        """The window's own blocks (rows x cols bool)."""
        x, y = (int(v) // self.block for v in self.hr_origin(window))
        n = window.size // self.block
        mask = np.zeros(self.shape, bool)
        mask[y : y + n, x : x + n] = True
        return mask

    def field(self, window: Window, radius: int | None) -> Rect:
        """The window's LR extent widened by ``radius`` px (None: the whole image), clipped to the image."""
        if radius is None:
            return 0, self.height, 0, self.width
        x, y = self.hr_origin(window)
        s, n = self.scale, window.size
        return (max(int(y) // s - radius, 0), min(-(-(int(y) + n) // s) + radius, self.height),
                max(int(x) // s - radius, 0), min(-(-(int(x) + n) // s) + radius, self.width))

    def field_mask(self, window: Window, radius: int | None) -> np.ndarray:
        """Blocks meeting the window's field, its own blocks excluded: those an intervention can affect it from."""
        y0, y1, x0, x1 = self.field(window, radius)
        b = self.lr_block
        mask = np.zeros(self.shape, bool)
        mask[y0 // b : -(-y1 // b), x0 // b : -(-x1 // b)] = True
        return mask & ~self.window_mask(window)


def check_aligned(grid: BlockGrid, windows: Sequence[Window], frame: str) -> None:
    """Every window on the block grid (x, y, size multiples of b in the HR frame); else one line naming the
    nearest aligned window in the user's frame."""
    b = grid.block
    for w in windows:
        x, y = grid.hr_origin(w)
        if x % b == 0 and y % b == 0 and w.size % b == 0:
            continue
        near = [int(round(v / b)) * b for v in (x, y)] + [max(b, int(round(w.size / b)) * b)]
        shift = grid.offset / 2 if frame == "sr" else 0
        given = (w.x, w.y) if frame == "sr" else (x, y)
        nx, ny = (int(v + shift) if float(v + shift).is_integer() else v + shift for v in near[:2])
        raise OnnxAttrError(
            f"window x={given[0]:g} y={given[1]:g} size={w.size} ({frame.upper()} frame) is not aligned to the {b} px "
            f"block grid (CEM explains windows made of whole blocks); the nearest aligned window is --window {nx} {ny} "
            f"{near[2]}, or pass a --block that divides x, y and the size"
        )


def _fit(lo: int, hi: int, n: int, multiple: int, min_side: int) -> tuple[int, int]:
    """[lo, hi) widened to a length the model takes (a multiple of ``multiple``, >= ``min_side``) starting on the
    multiple, inside [0, n) (n itself is taken); the whole [0, n) when nothing smaller fits."""
    start = lo // multiple * multiple
    length = -(-max(hi - start, min_side) // multiple) * multiple
    if start + length > n:
        start = n - length
    return (start, start + length) if 0 <= start and length < n else (0, n)


def crop_for(grid: BlockGrid, windows: Sequence[Window], radius: int | None, rule: SizeRule) -> Rect:
    """The LR crop holding the fields of ``windows`` (whole blocks, fitted to the model's size ``rule``) whose
    output covers the windows; the whole image when unbounded or the model takes one size."""
    if radius is None or rule.fixed:
        return 0, grid.height, 0, grid.width
    fields = [grid.field(w, radius) for w in windows]
    b, s, c = grid.lr_block, grid.scale, grid.offset
    y0, y1 = min(f[0] for f in fields) // b * b, min(-(-max(f[1] for f in fields) // b) * b, grid.height)
    x0, x1 = min(f[2] for f in fields) // b * b, min(-(-max(f[3] for f in fields) // b) * b, grid.width)
    while True:
        (y0, y1), (x0, x1) = (_fit(y0, y1, grid.height, rule.multiple, rule.min_side),
                              _fit(x0, x1, grid.width, rule.multiple, rule.min_side))
        covered = all(s * y0 - c / 2 <= grid.hr_origin(w)[1] and grid.hr_origin(w)[1] + w.size <= s * y1 + c / 2 and
                      s * x0 - c / 2 <= grid.hr_origin(w)[0] and grid.hr_origin(w)[0] + w.size <= s * x1 + c / 2
                      for w in windows)
        if covered or (y0, y1, x0, x1) == (0, grid.height, 0, grid.width):
            return y0, y1, x0, x1
        y0, y1, x0, x1 = max(y0 - b, 0), min(y1 + b, grid.height), max(x0 - b, 0), min(x1 + b, grid.width)
