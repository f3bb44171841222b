"""The explained quantity t on the SR output, written with the L2X primitives so that its own
nonlinearities (squares and square roots of LAM's detector) also keep completeness exact; the other objectives of
the LAM toolbox (the window's intensity, its Gabor response) and the mean reduction are linear."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ...errors import OnnxAttrError
from ...options import TARGETS
from ...windows.detector import check_objective, detector_region, gabor_response, margin, sqrt_zero_grad
from ...windows.geometry import Window
from .primitives import Pair, linear, rescale, square


def detector(out: Pair, window: Window) -> Pair:
    """D(O) = sum over channels and window of sqrt(dh + dw), dh, dw squared forward differences (LAM eq. 1):
    differences (linear), squares (midpoint), sum (linear), sqrt (rescale); the window's region as
    ``windows.detector`` reads it (the last row and column repeated at the output's edge: linear)."""
    crop = linear(lambda t: detector_region(t, window), out)
    dh = square(linear(lambda t: t[:, :, :-1, :-1] - t[:, :, 1:, :-1], crop))
    dw = square(linear(lambda t: t[:, :, :-1, :-1] - t[:, :, :-1, 1:], crop))
    g = rescale(sqrt_zero_grad, linear(torch.add, dh, dw))
    return linear(torch.sum, g)


def window_sum(out: Pair, window: Window) -> Pair:
    """t = sum of the output over the window and channels (linear)."""
    y, x, s = window.y, window.x, window.size
    return linear(lambda t: t[:, :, y : y + s, x : x + s].sum(), out)


def gabor_window(out: Pair, window: Window) -> Pair:
    """t = sum over the window of the Gabor response centred on each window pixel (``windows.detector``; linear)."""
    m, y, x, s = margin("gabor"), window.y, window.x, window.size
    return linear(lambda t: gabor_response(t)[:, y - m : y - m + s, x - m : x - m + s].sum(), out)


def pixel_value(out: Pair, window: Window, channel: int | None) -> Pair:
    """t = O[channel, y, x] at the window's top-left pixel, or its sum over channels (``channel`` None)."""
    y, x = window.y, window.x
    if channel is None:
        return linear(lambda t: t[0, :, y, x].sum(), out)
    return linear(lambda t: t[0, channel, y, x], out)


WINDOW_OBJECTIVES: dict[str, Callable[[Pair, Window], Pair]] = {"grad": detector, "intensity": window_sum,
                                                              "gabor": gabor_window}


def make_objective(target: str, windows: Sequence[Window], channel: int | None = None, objective: str = "grad",
                   reduce: str = "sum") -> Callable[[Pair], Pair]:
    """output Pair -> Pair of the K windows' targets (K,) for ``target`` in detector | sum | pixel
    (``detector``: the window objective ``objective`` reduced by ``reduce``, as ``windows.detector.window_objectives``;
    ``pixel``: the value at each 1-px window, channel ``channel`` or summed over channels)."""
    if target == "detector":
        check_objective(objective, reduce)

        def one(out: Pair, window: Window) -> Pair:
            value = WINDOW_OBJECTIVES[objective](out, window)
            if reduce == "mean":
                n = window.size**2 * (1 if objective == "gabor" else out.x.shape[1])
                return linear(lambda t: t / n, value)
            return value
    elif target == "sum":
        one = window_sum
    elif target == "pixel":
        def one(out: Pair, window: Window) -> Pair:
            return pixel_value(out, window, channel)
    else:
        raise OnnxAttrError(f"unknown L2X target {target!r}; choose one of {', '.join(TARGETS)}")
    return lambda out: linear(lambda *ts: torch.stack(ts), *(one(out, w) for w in windows))
