"""The part of the input that output windows depend on, as a crop a gradient method can run on instead of the image.

Where the graph's theoretical receptive field is finite (``receptive_field``), an output pixel's value depends only
on the LR pixels of its box (``output_boxes`` at the image's size). A network of convolutions, pixel shuffles and
element-wise ops computes it on any crop that holds the box as on the whole image (the zero padding at the crop's
border never reaches it), so its gradient agrees too, and that gradient is exactly 0 outside the box. LAM's passes
then cost the crop's area instead of the image's: with UpConv7 (field 14 px) and a 16-px window at x2, a 128x128
image runs as a 23x23 crop.

``field_region`` finds the crop for a graph free of ops that read whole axes (``rules.AXIS_MIXING``: reductions,
normalisations, softmax, MatMul; their walks cost seconds and their field is mostly the whole image): the union of
the boxes of the output pixels the windows' objective reads, on the model's size multiple (both ends, so a network
that downsamples by it keeps its grid), starting where its output holds those pixels; used when it covers at most
``MAX_SHARE`` of the image. ``agrees`` then checks it on the image itself (those output pixels and the objective,
from the crop against the whole image), so that a graph whose ops follow the input's size (align_corners resizes,
position tables) runs on the whole image instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ...windows.geometry import Window
from .. import memory
from . import box_union, output_boxes, receptive_field
from .rules import AXIS_MIXING

MAX_SHARE = 0.75  # a crop of more than this share of the image's pixels runs as the whole image
WALK_PASSES = 3  # the box walk's peak memory in forward + backward passes at batch 1 (0.5-2.6 over the zoo's CNNs)
TOLERANCE = 1e-5  # max |crop - whole| / max |whole| over the windows' outputs


@dataclass(frozen=True)
class Region:
    """The LR crop rows [y0, y1) and columns [x0, x1) of an image, and the SR shift (scale y0, scale x0) of its
    output."""

    y0: int
    y1: int
    x0: int
    x1: int
    scale: int

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """``x[..., y0:y1, x0:x1]``."""
        return x[..., self.y0 : self.y1, self.x0 : self.x1]

    def window(self, w: Window) -> Window:
        """The window in the crop's output frame."""
        return Window(w.x - self.scale * self.x0, w.y - self.scale * self.y0, w.size)

    def shift(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """An output box (x0, y0, x1, y1) in the crop's output frame."""
        dx, dy = self.scale * self.x0, self.scale * self.y0
        return (box[0] - dx, box[1] - dy, box[2] - dx, box[3] - dy)

    def embed(self, a: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``a`` (..., y1 - y0, x1 - x0) placed in zeros (..., height, width) at the crop."""
        out = a.new_zeros((*a.shape[:-2], height, width))
        out[..., self.y0 : self.y1, self.x0 : self.x1] = a
        return out

    def box(self) -> list[int]:
        """(x0, y0, x1, y1): LR pixels, ends exclusive."""
        return [self.x0, self.y0, self.x1, self.y1]


def widen(lo: int, hi: int, multiple: int, min_side: int, side: int) -> tuple[int, int]:
    """[lo, hi] (inclusive) as [a, b) with a and b - a multiples of ``multiple``, b - a >= ``min_side``, inside
    [0, side) (``side`` a multiple itself)."""
    a, b = max(lo - lo % multiple, 0), min(-(-(hi + 1) // multiple) * multiple, side)
    while b - a < min_side:
        a, b = (a, b + multiple) if b < side else (a - multiple, b)
    return a, b


def crop_axis(lo: int, hi: int, first: int, last: int, side: int, model: Any) -> tuple[int, int]:
    """One axis of the crop, [a, b): it holds LR pixels ``lo``..``hi`` (``widen``), and its output, which starts at
    output pixel ``scale`` a, holds output pixels ``first`` to ``last`` (exclusive): an export that drops border
    pixels (valid convolutions) makes fewer than its field allows."""
    rule, s = model.size_rule, model.scale
    a, b = widen(lo, hi, rule.multiple, rule.min_side, side)
    a = min(a, first // s - first // s % rule.multiple)
    while model.output_size(b - a, b - a)[0] < last - s * a and b < side:
        b += rule.multiple
    return a, b


Box = tuple[int, int, int, int]  # x0, y0, x1, y1: SR output pixels, ends exclusive


def field_region(model: Any, height: int, width: int, reaches: list[Box], budget: float) -> Region | None:
    """The crop of an h x w image that the output pixels in ``reaches`` (what each window's objective reads,
    ``windows.detector.objective_reach``) depend on, or None where there is none to gain: a fixed input size, a graph
    with ops that read whole axes, a field that is not finite, a crop over ``MAX_SHARE`` of the image (foreseen from
    the field's side R before the walk: the reach's extent in LR px plus R - 1 per axis), or a reach that the crop's
    output would not hold. The walk at the image's size needs about ``WALK_PASSES`` passes' memory: over ``budget``
    bytes (an image larger than the memory probes') it is not made."""
    rule = model.size_rule
    if model.graph is None or rule.fixed or any(op in AXIS_MIXING for op, _ in model.op_table.values()):
        return None  # (no graph: the passes refuse the model in one line)
    field = receptive_field(model)
    if field.kind != "finite":
        return None
    s, side = model.scale, int(field.side) - 1
    rx0, ry0, rx1, ry1 = _union(reaches)
    rows, cols = min(-(-(ry1 - ry0) // s) + side, height), min(-(-(rx1 - rx0) // s) + side, width)
    if rows * cols > MAX_SHARE * height * width:
        return None
    small = memory.counted_at_size(model, height, width)  # an image the memory probes cover: its walk is small
    if not small and WALK_PASSES * memory.pass_law(model)(height, width) > budget:
        return None
    boxes, _ = output_boxes(model, height, width)
    if not all(bool(boxes[:, y0:y1, x0:x1].isfinite().all()) for x0, y0, x1, y1 in reaches):
        return None  # a pixel free of the image: nothing to crop by
    lx0, ly0, lx1, ly1 = _union([box_union(boxes, *r) for r in reaches])
    ya, yb = crop_axis(int(ly0), int(ly1), ry0, ry1, height, model)
    xa, xb = crop_axis(int(lx0), int(lx1), rx0, rx1, width, model)
    if (yb - ya) * (xb - xa) > MAX_SHARE * height * width:
        return None
    region = Region(ya, yb, xa, xb, s)
    oh, ow = model.output_size(yb - ya, xb - xa)
    inside = all(0 <= c[0] and 0 <= c[1] and c[2] <= ow and c[3] <= oh for c in map(region.shift, reaches))
    return region if inside else None


def _union(boxes: list[Any]) -> tuple[Any, Any, Any, Any]:
    """The smallest (x0, y0, x1, y1) holding every box."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def agrees(region: Region, reaches: list[Box], whole: torch.Tensor, cropped: torch.Tensor,
           objective: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Whether the output pixels in ``reaches`` from the crop (``cropped``: its output) equal those from the whole
    image (``whole``), and the objective's values (``objective(whole, cropped)``: (N, K) each) too, within
    ``TOLERANCE`` (relative max)."""
    def close(got: torch.Tensor, ref: torch.Tensor) -> bool:
        return bool((got - ref).abs().max() <= TOLERANCE * max(ref.abs().max().item(), 1e-12))

    def part(out: torch.Tensor, box: Box) -> torch.Tensor:
        return out[..., box[1] : box[3], box[0] : box[2]].flatten()

    ref, got = objective(whole, cropped)
    return close(torch.cat([part(cropped, region.shift(b)) for b in reaches]),
                 torch.cat([part(whole, b) for b in reaches])) and close(got, ref)
