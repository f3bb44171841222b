"""The theoretical receptive field of a converted graph: which input pixels each output pixel can depend on.

LAM_Demo's ``calculate_RF`` walks a model's ``nn.Conv2d`` layers in registration order as one chain,
r <- s r + (k - s); it ignores dilation, transposed convolution, pixel shuffle, resizes, pooling and branches.
Here every tensor of the graph carries, per element, the box [lo_y, hi_y] x [lo_x, hi_x] of input rows and columns
its value can depend on (+inf / -inf: none), propagated node by node by op type (``RULES``):

* element-wise ops (activations, Add, Mul, BatchNormalization...): the union of their inputs' boxes;
* data movement (Reshape, Transpose, Slice, Concat, Pad, DepthToSpace / pixel shuffle, Gather...): the op itself
  run on the boxes (an element copied from another keeps its box; a constant pad has none);
* Conv, ConvTranspose, MaxPool, AveragePool, LpPool: the union over the kernel's support and the group's channels,
  with the node's strides, dilations, pads (explicit or auto_pad) and groups; the transposed convolution through
  its zero-inserted input;
* Resize / Upsample: the input rows and columns each output row and column reads, found by running the node on one
  row (column) of ones at a time (every mode and coordinate transform as the converter computes it);
* reductions, normalisations and softmax over axes, MatMul / Gemm (the contracted axis), GridSample (data-dependent
  sampling: the whole input): the union over the axes they mix.

An op without a rule on the image's path leaves the field unknown (named). ``receptive_field`` evaluates the graph
on growing square inputs: the field is finite with side R when some output pixel reaches fewer than all input
pixels (R = the largest box side); it is unbounded when every output pixel reaches the whole input at 64 px or more
and a node reaches it in one step (a global op: global pooling / channel attention, full self-attention, GridSample).
"""

from __future__ import annotations

import copy
import operator
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import fx

from ...errors import first_line
from .. import memory
from ..l2x.propagate import varying_nodes
from . import rules
from .rules import DTYPE, INF, RULES, Box, Call, NoBoxRule, fail

SIDES = (16, 64, 128, 256, 512)  # square inputs tried, smallest first
GLOBAL_FROM = 64  # a node is called global only at inputs of at least this side (larger than attention windows)


class GlobalNode(Exception):
    """A node found to be global (``is_global``): the run stops there."""


Sides = dict[str, tuple[float, float]]


class BoxInterpreter(fx.Interpreter):
    """Runs the graph on Boxes: image-dependent nodes by their op type's rule, the others on their real values.
    ``sides`` records each image-dependent node's largest box side (rows, columns). With ``before`` (the sides of a
    run at a smaller input size), the run stops at the first global node (``is_global``), raising ``GlobalNode``."""

    def __init__(self, model: Any, size: tuple[int, int], before: tuple[Sides, int, int] | None = None) -> None:
        from onnx2torch.onnx_graph import OnnxGraph

        # boxes are small CPU tensors: a model on another device is walked on a CPU copy of its graph
        super().__init__(model.graph if model.device.type == "cpu" else copy.deepcopy(model.graph).cpu())
        self.model, self.size, self.before = model, size, before
        self.varying = varying_nodes(model.graph, model.op_type)
        graph = OnnxGraph(model.proto.graph)
        self.onnx_nodes, self.initializers = graph.nodes, graph.initializers
        self.sides: Sides = {}

    def _call(self, n: fx.Node, args: tuple, kwargs: dict) -> Call:
        onnx_node = self.onnx_nodes.get(n.target)
        inits = {}
        if onnx_node is not None:
            inits = {i: self.initializers[v].to_torch() for i, v in enumerate(onnx_node.input_values)
                     if v in self.initializers}
        fn = self.fetch_attr(n.target)
        return Call(onnx_node.name if onnx_node is not None and onnx_node.name else n.name, self.model.op_type(n.name),
                    dict(onnx_node.attributes) if onnx_node is not None else {}, self.model.opset,
                    _bind(fn, kwargs) if kwargs else fn, list(args), inits)

    def run_node(self, n: fx.Node) -> Any:
        if n.op in ("placeholder", "get_attr", "output"):
            return super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        if n.name not in self.varying:  # e.g. Shape of an image-dependent tensor: its value is free of the image
            args = tuple(torch.zeros(a.shape) if isinstance(a, Box) else a for a in args)
            return getattr(self, n.op)(n.target, args, kwargs)
        if n.op == "call_function" and n.target is operator.getitem:
            out = args[0][args[1]]
        elif n.op == "call_module":
            call = self._call(n, args, kwargs)
            rule = RULES.get(call.op_type)
            if rule is None:
                raise fail(call, "no rule for this op type")
            try:
                out = rule(call)
            except NoBoxRule:
                raise
            except Exception as err:  # noqa: BLE001  (e.g. an image-dependent index: reported, the field unknown)
                raise fail(call, f"cannot follow it ({type(err).__name__}: {first_line(err)[:120]})") from err
        else:
            raise NoBoxRule(f"receptive field: no rule for graph node {n.name} ({n.op} {n.target})")
        for b in out if isinstance(out, tuple) else (out,):
            if isinstance(b, Box):
                self.sides[n.name] = tuple(max(s) for s in zip(self.sides.get(n.name, (0.0, 0.0)), b.side()))  # type: ignore[assignment]
        if (self.before is not None and min(self.size) >= GLOBAL_FROM and n.name in self.sides
                and is_global(n, self.sides, self.size, self.before)):
            op, onnx_name = self.model.op_table.get(n.name, ("", n.name))
            raise GlobalNode(f"{op} {onnx_name}")
        return out


def _bind(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Callable[..., Any]:
    if any(isinstance(v, Box) for v in kwargs.values()):
        raise NoBoxRule("receptive field: a keyword input depends on the image")
    return lambda *a: fn(*a, **kwargs)


def is_global(n: fx.Node, sides: Sides, size: tuple[int, int], before: tuple[Sides, int, int]) -> bool:
    """Whether node ``n`` reaches the whole input along an axis at this size and at the smaller one ``before`` while
    its image-dependent inputs reach the same, smaller extent at both (their field does not grow with the input): a
    global op, not a kernel that only crosses the border."""
    old, oh, ow = before
    now, then = sides[n.name], old.get(n.name, (0.0, 0.0))
    full = [axis for axis in (0, 1) if now[axis] >= size[axis] and then[axis] >= (oh, ow)[axis]]
    inputs = [a.name for a in n.all_input_nodes if a.name in sides]
    return bool(full and inputs and all(sides[a][axis] < size[axis] and sides[a][axis] == old.get(a, (-1.0, -1.0))[axis]
                                        for a in inputs for axis in full))


def input_box(channels: int, height: int, width: int) -> Box:
    """The box of the input (1, C, H, W): each pixel depends on itself."""
    rows = torch.arange(height, dtype=DTYPE).reshape(1, 1, -1, 1).expand(1, channels, height, width)
    cols = torch.arange(width, dtype=DTYPE).reshape(1, 1, 1, -1).expand(1, channels, height, width)
    return Box(rows.contiguous(), rows.contiguous(), cols.contiguous(), cols.contiguous())


def output_boxes(model: Any, height: int, width: int, before: tuple[Sides, int, int] | None = None
                 ) -> tuple[torch.Tensor, Sides]:
    """Every output pixel's box for an input of ``height`` x ``width``: (4, H', W') as lo_y, hi_y, lo_x, hi_x (LR
    pixel indices, the union over the output channels), and each image-dependent node's largest box side. With
    ``before`` (see ``BoxInterpreter``) it may stop at a global node (``GlobalNode``)."""
    runner = BoxInterpreter(model, (height, width), before)
    with torch.no_grad():
        out = runner.run(input_box(model.in_channels, height, width))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, Box):
        raise NoBoxRule("receptive field: the output does not depend on the image")
    lo_y, hi_y, lo_x, hi_x = (p[0].amin(0) if i % 2 == 0 else p[0].amax(0) for i, p in enumerate(out.parts()))
    return torch.stack([lo_y, hi_y, lo_x, hi_x]), runner.sides


@dataclass(frozen=True)
class ReceptiveField:
    """The theoretical receptive field: ``side`` in LR pixels (inf: unbounded; NaN: unknown), ``kind`` ('finite',
    'unbounded', 'unknown', 'at least'), ``note`` (the global node, the op without a rule, or the largest size tried)."""

    side: float
    kind: str
    note: str

    def attrs(self) -> dict[str, Any]:
        """The result attrs: ``receptive_field`` (LR px; inf unbounded, NaN unknown) and ``receptive_field_note``."""
        return {"receptive_field": self.side, "receptive_field_note": f"{self.kind}: {self.note}" if self.note else self.kind}


def _largest_side(boxes: torch.Tensor) -> float:
    lo_y, hi_y, lo_x, hi_x = boxes
    return float(torch.maximum(hi_y - lo_y + 1, hi_x - lo_x + 1).max())


def find_field(model: Any) -> ReceptiveField:
    """The theoretical receptive field of ``model``, evaluated on square inputs of ``SIDES`` px (as the model's size
    rule allows) until one output pixel reaches fewer pixels than the whole input (``receptive_field`` caches it)."""
    rule = model.size_rule
    tried = [tuple(model.fixed_size)] if model.fixed_size else [rule.fit(n, n) for n in SIDES if min(rule.fit(n, n)) >= rule.min_side]
    h = w = 0
    before: tuple[Sides, int, int] | None = None
    for h, w in tried:
        try:
            boxes, sides = output_boxes(model, h, w, before)
        except NoBoxRule as err:
            return ReceptiveField(float("nan"), "unknown", first_line(err).removeprefix("receptive field: "))
        except GlobalNode as node:
            assert before is not None
            return ReceptiveField(INF, "unbounded", f"global node {first_line(node)}: it reaches the whole input at "
                                  f"{w}x{h} and at {before[2]}x{before[1]}")
        side = _largest_side(boxes)
        if side < min(h, w):
            return ReceptiveField(side, "finite", "")
        before = (sides, h, w)
    return ReceptiveField(float(min(h, w)), "at least", f"every output pixel reaches the whole {w}x{h} input")


def receptive_field(model: Any) -> ReceptiveField:
    """The theoretical receptive field of ``model`` (``find_field``), computed once per model and kept with its cache
    entry (``memory.learned``)."""
    return ReceptiveField(**memory.learned(model, "receptive-field", lambda: asdict(find_field(model)),
                                           sources=(__file__, rules.__file__)))


def box_union(boxes: torch.Tensor, x0: int, y0: int, x1: int, y1: int) -> tuple[float, float, float, float]:
    """The union of the boxes of the output pixels [x0, x1) x [y0, y1) (SR pixels): (x0, y0, x1, y1), LR pixel
    indices, inclusive (+-inf where none depends on the image)."""
    b = boxes[:, y0:y1, x0:x1]
    return (float(b[2].min()), float(b[0].min()), float(b[3].max()), float(b[1].max()))


def window_box(boxes: torch.Tensor, x: int, y: int, size: int) -> tuple[float, float, float, float]:
    """The union of the boxes of the output pixels of the window (x, y, size) (``box_union``)."""
    return box_union(boxes, x, y, x + size, y + size)
