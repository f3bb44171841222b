"""The explained quantity t on the SR output, written with the L2X primitives so that its own
nonlinearities (squares and square roots of LAM's detector) also keep completeness exact."""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import OnnxAttrError
from ..target import Window, _sqrt_zero_grad
from .primitives import Pair, linear, rescale, square

TARGETS = ("detector", "sum", "pixel")


def detector(out: Pair, window: Window) -> Pair:
    """D(O) = sum over channels and window of sqrt(dh + dw), dh, dw squared forward differences (LAM eq. 1):
    differences (linear), squares (midpoint), sum (linear), sqrt (rescale)."""
    y, x, s = window.y, window.x, window.size
    crop = linear(lambda t: t[:, :, y : y + s + 1, x : x + s + 1], out)
    dh = square(linear(lambda t: t[:, :, :-1, :-1] - t[:, :, 1:, :-1], crop))
    dw = square(linear(lambda t: t[:, :, :-1, :-1] - t[:, :, :-1, 1:], crop))
    g = rescale(_sqrt_zero_grad, linear(torch.add, dh, dw))
    return linear(torch.sum, g)


def window_sum(out: Pair, window: Window) -> Pair:
    """t = sum of the output over the window and channels (linear)."""
    y, x, s = window.y, window.x, window.size
    return linear(lambda t: t[:, :, y : y + s, x : x + s].sum(), out)


def make_objective(
    target: str, window: Window, pixel: tuple[int, int, int] | None, out_shape: tuple[int, ...]
) -> Callable[[Pair], Pair]:
    """output Pair -> scalar target Pair for ``target`` in detector | sum | pixel ((channel, row, column))."""
    if target == "detector":
        return lambda out: detector(out, window)
    if target == "sum":
        return lambda out: window_sum(out, window)
    if target == "pixel":
        if pixel is None or len(pixel) != 3:
            raise OnnxAttrError("target 'pixel' needs pixel=(channel, row, column) of the SR output (CLI --pixel C ROW COL)")
        c, r, col = (int(v) for v in pixel)
        _, oc, oh, ow = out_shape
        if not (0 <= c < oc and 0 <= r < oh and 0 <= col < ow):
            raise OnnxAttrError(f"pixel {(c, r, col)} lies outside the SR output ({oc} channels, {ow}x{oh})")
        return lambda out: linear(lambda t: t[0, c, r, col], out)
    raise OnnxAttrError(f"unknown L2X target {target!r}; choose one of {', '.join(TARGETS)}")
