"""The sizes an SR file takes and its output law, learned from onnxruntime runs: the input-size rule
(``find_sizes``), the output size law out = s * in + c (``scale_law``) and the verification size.

Pure logic over a ``run(h, w)`` callback (no onnxruntime here), so each search is testable on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import OnnxAttrError

MAX_PROBE_PIXELS = 4096 * 4096
DEFAULT_PROBE = (32, 48)  # (H, W) tried first: unequal sides, so a swap of rows and columns shows
_SIDES = (16, 24, 32, 40, 48, 64, 96, 128, 192, 256)  # base sides tried when the default probes fail
_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # candidate multiples, smallest first


@dataclass(frozen=True)
class SizeRule:
    """Input sizes a model takes: a fixed (H, W), or sides that are multiples of ``multiple`` and >= ``min_side``."""

    fixed: tuple[int, int] | None = None
    min_side: int = 1
    multiple: int = 1

    def describe(self) -> str:
        if self.fixed:
            return f"a fixed {self.fixed[1]}x{self.fixed[0]} input"
        kind = {1: "", 2: "even "}.get(self.multiple, f"multiple-of-{self.multiple} ")
        return f"{kind}sides of at least {self.min_side}" if self.min_side > 1 or self.multiple > 1 else "any size"

    def problem(self, height: int, width: int) -> str | None:
        """None when (height, width) fits, else what is wrong, as a sentence for the user."""
        if self.fixed:
            return None if (height, width) == self.fixed else f"needs {self.describe()}"
        if min(height, width) >= self.min_side and height % self.multiple == 0 and width % self.multiple == 0:
            return None
        return f"needs {self.describe()}"

    def fit(self, height: int, width: int) -> tuple[int, int]:
        """The largest size inside (height, width) that the rule accepts (the crop --crop takes)."""
        if self.fixed:
            return self.fixed
        return (height // self.multiple) * self.multiple, (width // self.multiple) * self.multiple


class ProbeError(Exception):
    """onnxruntime refused one probe size (the message is its first line)."""


Runner = Callable[[int, int], tuple[int, ...]]  # (h, w) -> output shape; raises ProbeError


def refuse_huge(height: int, width: int, name: str) -> None:
    """Refuse, before any run, a probe that would allocate absurd memory."""
    if height * width > MAX_PROBE_PIXELS:
        raise OnnxAttrError(
            f"{name} declares a fixed {width}x{height} input ({height * width:.2g} pixels); onnxattr probes at most "
            f"4096x4096: re-export the model with dynamic or smaller H, W"
        )


def _smallest_side(run: Callable[[int, int], bool], multiple: int, largest: int, hint: int) -> int:
    """Smallest side s (a multiple of ``multiple``, <= largest) with an s x s run: ``hint`` (where the size law
    gives a first positive output) when it runs, else bisection (runnable sizes are assumed to stay runnable)."""
    hint = min(-(-max(hint, 1) // multiple) * multiple, largest)
    if run(hint, hint) and (hint == multiple or not run(hint - multiple, hint - multiple)):
        return hint
    lo, hi = 1, largest // multiple  # hi runs
    while lo < hi:
        mid = (lo + hi) // 2
        if run(mid * multiple, mid * multiple):
            hi = mid
        else:
            lo = mid + 1
    return hi * multiple


def find_sizes(
    run: Runner, fixed: tuple[int, int] | None, name: str, start: tuple[int, int] | None = None
) -> tuple[SizeRule, list[tuple[tuple[int, int], tuple[int, ...]]]]:
    """The input-size rule and the probe sizes (one when fixed, two for the size law) with their output shapes.

    Dynamic sizes: the base (h, w) is the default probe if it runs, else the first square side from 16 up
    that runs (or ``start``); then the smallest step d with (h + d, w + d) running is the multiple, and the
    minimum side is where the size law first gives a positive output (checked by a run), else found by
    bisection. The size law comes from (h, w) and (h + d, w + 2d), which tell rows from columns.
    """
    shapes: dict[tuple[int, int], tuple[int, ...] | None] = {}

    def runs(h: int, w: int) -> bool:
        if (h, w) not in shapes:
            try:
                shapes[h, w] = run(h, w)
            except ProbeError:
                shapes[h, w] = None
        return shapes[h, w] is not None

    if fixed:
        refuse_huge(*fixed, name)
        try:
            return SizeRule(fixed=fixed), [(fixed, run(*fixed))]
        except ProbeError as err:
            raise OnnxAttrError(f"onnxruntime fails on {name} at its declared {fixed[1]}x{fixed[0]} input: {err}") from err
    if start is not None:
        if start[0] * start[1] > MAX_PROBE_PIXELS:
            raise OnnxAttrError(f"--probe-size {start[0]} {start[1]} is over onnxattr's probe limit of 4096x4096; "
                                "pass a smaller H W")
        try:
            shapes[start] = run(*start)
        except ProbeError as err:
            raise OnnxAttrError(f"onnxruntime fails on {name} at the probe size {start[1]}x{start[0]} ({err}); "
                                "pass a size the model takes with --probe-size H W") from err
        base = start
    elif runs(*DEFAULT_PROBE):
        base = DEFAULT_PROBE
    else:
        base = next(((s, s) for s in _SIDES if runs(s, s)), None)
        if base is None:
            raise OnnxAttrError(
                f"onnxruntime fails on {name} at every probe size from {_SIDES[0]}x{_SIDES[0]} to "
                f"{_SIDES[-1]}x{_SIDES[-1]}; pass a size it takes with --probe-size H W"
            )
    h0, w0 = base
    multiple = next((d for d in _STEPS if runs(h0 + d, w0 + d)), None)
    if multiple is None:
        raise OnnxAttrError(f"{name} runs at {w0}x{h0} but at no larger size up to +{_STEPS[-1]}; pass --probe-size H W")
    while True:  # the law holds on a coarser grid when the model pads odd sides inside (RealCUGAN): double the step
        sizes = [(h0, w0), (h0 + multiple, w0 + 2 * multiple)]
        if not all(runs(*size) for size in sizes):
            raise OnnxAttrError(f"{name} runs at {w0}x{h0} but not at {sizes[1][1]}x{sizes[1][0]}; pass --probe-size H W")
        if _linear(shapes[sizes[0]], shapes[sizes[1]], multiple) or 2 * multiple > _STEPS[-1]:
            break
        multiple *= 2
    hint = 1
    a, b = shapes[sizes[0]], shapes[sizes[1]]
    if len(a) == len(b) == 4:
        s = (b[2] - a[2]) / multiple
        c = a[2] - s * h0
        hint = int(math.floor((-c) / s)) + 1 if s > 0 and c < 0 else 1
    rule = SizeRule(min_side=_smallest_side(runs, multiple, min(h0, w0), hint), multiple=multiple)
    return rule, [(size, shapes[size]) for size in sizes]


def _linear(a: tuple[int, ...], b: tuple[int, ...], d: int) -> bool:
    """Whether outputs ``a`` at (h, w) and ``b`` at (h + d, w + 2d) fit out = s * in + c, one integer s for both sides."""
    if len(a) != 4 or len(b) != 4:
        return True  # not an image output: _scale_law names the problem
    rows, cols = b[2] - a[2], b[3] - a[3]
    return rows % d == 0 and cols == 2 * rows


def verification_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The smallest probe size with H != W (a swap of rows and columns shows), else the only one: the value
    range, the verification and the lazy facts (batch mode, node shapes) run there, as cheap as they can be."""
    return min((s for s in sizes if s[0] != s[1]), key=lambda s: s[0] * s[1], default=sizes[0])


def scale_law(name: str, runs: Sequence[tuple[tuple[int, int], tuple[int, ...]]], channels: int) -> tuple[int, int]:
    """s and c with out = s * in + c from the output shapes at one (fixed) or two (dynamic) probe sizes."""
    for (h, w), shape in runs:
        if len(shape) != 4 or shape[1] != channels:
            raise OnnxAttrError(
                f"{name} maps {channels} channels to output shape {tuple(shape)}; not an SR image model "
                "(the output must have the input's channels)"
            )
    (h, w), y = runs[-1]
    if len(runs) == 1:
        s = int(round(y[2] / h))
        c = y[2] - s * h
        if s * w + c != y[3]:
            raise OnnxAttrError(f"{name} maps {w}x{h} to {y[3]}x{y[2]}: no common scale for rows and columns")
    else:
        (h1, w1), y1 = runs[0]
        sh, sw = (y[2] - y1[2]) / (h - h1), (y[3] - y1[3]) / (w - w1)
        s = int(round(sh))
        c = y1[2] - s * h1
        if sh != sw or sh != s or y1[3] - s * w1 != c:
            raise OnnxAttrError(
                f"{name}'s output size is not s*H + c with one integer s and c for rows and columns "
                f"({w1}x{h1} -> {y1[3]}x{y1[2]}, {w}x{h} -> {y[3]}x{y[2]}); onnxattr explains models with a whole-number "
                "scale (x2, x3, x4...): re-export it at one"
            )
    if s < 2:
        raise OnnxAttrError(
            f"{name} does not upscale (scale {s}: {w}x{h} -> {y[3]}x{y[2]}); "
            "onnxattr explains super-resolution models with scale >= 2"
        )
    return s, c
