"""What an SR file accepts, learned from onnxruntime runs: probe sizes, input-size rule, value range.

Pure logic over a ``run(h, w)`` callback (no onnxruntime here), so each search is testable on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import OnnxAttrError

MAX_PROBE_PIXELS = 4096 * 4096
DEFAULT_PROBE = (32, 48)  # (H, W) tried first: unequal sides, so a swap of rows and columns shows
_SIDES = (16, 24, 32, 40, 48, 64, 96, 128, 192, 256)  # base sides tried when the default probes fail
_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # candidate multiples, smallest first
NATURAL_IMAGE = Path(__file__).resolve().parent / "data" / "chelsea-64.png"


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


# --------------------------------------------------------------- value range
def natural_image(channels: int, height: int, width: int) -> np.ndarray:
    """The bundled photo (1, C, height, width) in [0, 1], resized (bicubic, antialiased) to the probe size."""
    from .image import read_image

    img = read_image(NATURAL_IMAGE, channels=channels)
    img = torch.nn.functional.interpolate(img, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return img.clamp(0, 1).numpy()


def _bicubic_error(x: np.ndarray, y: np.ndarray, scale: int, offset: int) -> float:
    """Mean |y - bicubic upscale of x| over the centred overlap (offset c crops or pads c/2 per side)."""
    if y.ndim != 4 or not np.isfinite(y).all():
        return math.inf
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=scale, mode="bicubic", align_corners=False)
    ref = ref.numpy()
    h, w = min(ref.shape[2], y.shape[2]), min(ref.shape[3], y.shape[3])

    def centre(a: np.ndarray) -> np.ndarray:
        top, left = (a.shape[2] - h) // 2, (a.shape[3] - w) // 2
        return a[:, :, top : top + h, left : left + w]

    return float(np.abs(centre(y) - centre(ref)).mean())


CLEARLY = 4.0  # one range is "clearly" closer when its distance is this many times smaller


Units = tuple[float, float]  # (input range, output range): the model is fed x * in and returns y * out


def detect_value_range(
    run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, offset: int,
    candidates: dict[float, Units] | None = None, default: float = 1.0,
) -> tuple[float, dict[float, float]]:
    """The candidate whose output (fed ``image * in``, read as ``y / out``) is clearly closer (CLEARLY times) to a
    bicubic upscale of the photo than every other's, else ``default`` (an untrained or ambiguous model).

    ``candidates``: key -> (in, out); by default {1: (1, 1), 255: (255, 255)}, a model fed and returning 0..1 or
    0..255. Returns the key and the mean absolute distance for each (inf where the run fails or is not finite).
    """
    candidates = candidates or {1.0: (1.0, 1.0), 255.0: (255.0, 255.0)}
    scores: dict[float, float] = {}
    for key, (scale_in, scale_out) in candidates.items():
        try:
            y = run(image * scale_in) / scale_out
        except Exception:  # noqa: BLE001  (a range the model cannot take scores inf)
            scores[key] = math.inf
            continue
        scores[key] = _bicubic_error(image, y, scale, offset)
    best = min(scores, key=scores.get)
    clear = all(scores[best] * CLEARLY < v for k, v in scores.items() if k != best)
    return (best if clear else default), scores
