"""The receptive-field rules: per element of a tensor, the box of input rows and columns its value can depend on
(``Box``), and for each ONNX op type how a node's output boxes follow from its inputs' (``RULES``; see the package
docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...converters.auto_pad import onnx_pads, spatial
from ...errors import OnnxAttrError

INF = math.inf
DTYPE = torch.float32  # box coordinates: whole numbers, exact below 2^24


class NoBoxRule(OnnxAttrError):
    """An op on the image's path without a receptive-field rule."""


@dataclass(frozen=True)
class Box:
    """Per element of a tensor, the input rows lo_y..hi_y and columns lo_x..hi_x it can depend on (``DTYPE``)."""

    lo_y: torch.Tensor
    hi_y: torch.Tensor
    lo_x: torch.Tensor
    hi_x: torch.Tensor

    def parts(self) -> tuple[torch.Tensor, ...]:
        return (self.lo_y, self.hi_y, self.lo_x, self.hi_x)

    @property
    def shape(self) -> torch.Size:
        return self.lo_y.shape

    def map(self, fn: Callable[[torch.Tensor, float], Any]) -> Any:
        """``fn(part, empty)`` on each part (empty = +inf for lows, -inf for highs); a tuple of Boxes when ``fn``
        returns tuples (Split)."""
        out = [fn(p, INF if i % 2 == 0 else -INF) for i, p in enumerate(self.parts())]
        if isinstance(out[0], (tuple, list)):
            return tuple(Box(*ps) for ps in zip(*out))
        return Box(*out)

    def side(self) -> tuple[float, float]:
        """The largest number of rows and of columns any element reaches (0 where none)."""
        return tuple(max(float((hi - lo).max()) + 1, 0.0) if hi.numel() else 0.0
                     for lo, hi in ((self.lo_y, self.hi_y), (self.lo_x, self.hi_x)))  # type: ignore[return-value]


def union(boxes: list[Box], shape: torch.Size) -> Box:
    """The union of ``boxes``, each broadcast to ``shape``."""
    parts = []
    for i in range(4):
        values = [b.parts()[i].expand(shape) for b in boxes]
        pick = torch.minimum if i % 2 == 0 else torch.maximum
        acc = values[0]
        for v in values[1:]:
            acc = pick(acc, v)
        parts.append(acc.contiguous())
    return Box(*parts)


def over_axes(box: Box, axes: list[int], shape: torch.Size) -> Box:
    """The union over ``axes`` (every element of the output reads all of them), shaped as ``shape``."""
    def reduce(p: torch.Tensor, empty: float) -> torch.Tensor:
        r = p.amin(dim=axes, keepdim=True) if empty > 0 else p.amax(dim=axes, keepdim=True)
        return r.reshape(shape) if r.numel() == math.prod(shape) else r.expand(shape).contiguous()
    return box.map(reduce)


# ------------------------------------------------------------------ rule context
@dataclass
class Call:
    """One node as a rule sees it: ONNX op type, attributes, opset, its torch module and its arguments (Boxes for the
    image-dependent ones, real values for the others)."""

    name: str
    op_type: str
    attrs: dict[str, Any]
    opset: int
    fn: Callable[..., Any]
    args: list[Any]
    inits: dict[int, torch.Tensor]

    def boxes(self) -> list[Box]:
        return [a for a in self.args if isinstance(a, Box)]

    def run_with(self, replace: Callable[[int, Box], Any], data: tuple[int, ...] = ()) -> Any:
        """The module run with every Box argument i replaced by ``replace(i, box)``; constant arguments at the
        positions ``data`` (data inputs, as Concat's) replaced by ``replace(i, None)``."""
        args = [replace(i, a) if isinstance(a, Box) else replace(i, None) if i in data and isinstance(a, torch.Tensor)
                else a for i, a in enumerate(self.args)]
        return self.fn(*args)

    def out_shape(self) -> torch.Size:
        """The node's output shape: the module run with zeros for the image-dependent arguments."""
        out = self.run_with(lambda i, b: torch.zeros(b.shape, dtype=DTYPE))
        return out.shape


def fail(call: Call, why: str) -> NoBoxRule:
    return NoBoxRule(f"receptive field: {why} at {call.op_type} node {call.name}")


# ------------------------------------------------------------------ rules
def elementwise(call: Call) -> Box:
    """Element-wise (broadcasting) ops: the union of the inputs' boxes (BatchNormalization: the shape of its input)."""
    if call.op_type == "BatchNormalization":
        return union(call.boxes(), call.boxes()[0].shape)
    shapes = [a.shape for a in call.args if isinstance(a, (Box, torch.Tensor))]
    return union(call.boxes(), torch.Size(np.broadcast_shapes(*shapes)))  # torch's imports sympy: 0.5 s


def identity(call: Call) -> Box:
    """Cast, Identity, Dropout: the box as it is."""
    return call.boxes()[0]


def movement(data: tuple[int, ...] = (), fills: bool = False) -> Callable[[Call], Any]:
    """Ops that only copy elements: the op run on each part of the boxes. A constant input at a position in ``data``
    (Concat's) enters with the empty box; an op that ``fills`` (Pad) is run on ones and zeros too, and the elements it
    does not copy (a constant pad) get the empty box."""
    def rule(call: Call) -> Any:
        def part(k: int) -> Any:
            def fill(i: int, b: Box | None) -> torch.Tensor:
                if b is None:
                    return torch.full(call.args[i].shape, INF if k % 2 == 0 else -INF, dtype=DTYPE)
                return b.parts()[k]
            return call.run_with(fill, data)

        parts = [part(k) for k in range(4)]
        if fills:
            def const(value: float) -> Callable[[int, Box | None], torch.Tensor]:
                return lambda i, b: torch.full(b.shape, value, dtype=DTYPE)
            copied = call.run_with(const(1.0)) != call.run_with(const(0.0))
            parts = [torch.where(copied, p, torch.full_like(p, INF if k % 2 == 0 else -INF)) for k, p in enumerate(parts)]
        if isinstance(parts[0], (tuple, list)):
            return tuple(Box(*ps) for ps in zip(*parts))
        return Box(*parts)
    return rule


def _spatial_attrs(call: Call, kernel: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """(strides, dilations, pad begins, pad ends) of a Conv / pooling node on its 2-D input."""
    box = call.boxes()[0]
    if len(box.shape) != 4:
        raise fail(call, f"a {len(box.shape) - 2}-D spatial op (only 2-D is handled)")
    strides, dilations = spatial(call.attrs, 2)
    begins, ends = onnx_pads(call.attrs, list(box.shape[2:]), kernel)
    return strides, dilations, begins, ends


def _window(part: torch.Tensor, empty: float, kernel: list[int], strides: list[int], dilations: list[int],
            begins: list[int], ends: list[int], out_hw: tuple[int, int], ceil: bool = False) -> torch.Tensor:
    """min (lows) or max (highs) of ``part`` (N, G, H, W) over each kernel window: (N, G, out_h, out_w)."""
    sign = -1.0 if empty > 0 else 1.0
    extra = [s - 1 if ceil else 0 for s in strides]
    x = F.pad(part, (begins[1], ends[1] + extra[1], begins[0], ends[0] + extra[0]), value=empty)
    r = F.max_pool2d(sign * x, kernel, stride=strides, dilation=dilations) * sign
    r = r[:, :, : out_hw[0], : out_hw[1]]
    if r.shape[2:] != out_hw:
        r = F.pad(r, (0, out_hw[1] - r.shape[3], 0, out_hw[0] - r.shape[2]), value=empty)
    return r


def _kernel(call: Call) -> list[int]:
    if "kernel_shape" in call.attrs:
        return list(call.attrs["kernel_shape"])
    weight = call.args[1] if len(call.args) > 1 and isinstance(call.args[1], torch.Tensor) else getattr(call.fn, "weight", None)
    if weight is None:
        raise fail(call, "no kernel shape")
    return list(weight.shape[2:])


def conv(call: Call) -> Box:
    """Conv: each output element reads the kernel window of every input channel of its group."""
    if len(call.boxes()) != 1 or not isinstance(call.args[0], Box):
        raise fail(call, "image-dependent weights")
    box, kernel = call.args[0], _kernel(call)
    strides, dilations, begins, ends = _spatial_attrs(call, kernel)
    n, c, _, _ = box.shape
    groups = int(call.attrs.get("group", 1))
    shape = call.out_shape()

    def part(p: torch.Tensor, empty: float) -> torch.Tensor:
        g = p.reshape(n, groups, c // groups, *p.shape[2:])
        g = g.amin(dim=2) if empty > 0 else g.amax(dim=2)
        r = _window(g, empty, kernel, strides, dilations, begins, ends, tuple(shape[2:]))
        return r.repeat_interleave(shape[1] // groups, dim=1)
    return box.map(part)


def pool(call: Call) -> Box:
    """MaxPool, AveragePool, LpPool: the kernel window of the same channel (ceil_mode included)."""
    box, kernel = call.args[0], _kernel(call)
    strides, dilations, begins, ends = _spatial_attrs(call, kernel)
    shape = call.out_shape()
    ceil = bool(call.attrs.get("ceil_mode", 0))
    return box.map(lambda p, e: _window(p, e, kernel, strides, dilations, begins, ends, tuple(shape[2:]), ceil))


def transpose_pads(attrs: dict[str, Any], sizes: list[int], kernel: list[int], out: list[int]) -> list[int]:
    """Begins of the ConvTranspose crop of the full output s (n - 1) + d (k - 1) + 1 + output_padding: the pads'
    begins, or for auto_pad SAME_* / output_shape the ONNX split of the total (SAME_UPPER: total // 2 first)."""
    strides, dilations = spatial(attrs, len(sizes))
    adjust = list(attrs.get("output_padding", [0] * len(sizes)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if attrs.get("output_shape") or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [s * (n - 1) + a + (k - 1) * d + 1 - o for n, k, s, d, a, o in zip(sizes, kernel, strides, dilations, adjust, out)]
        return [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    if auto_pad == "VALID":
        return [0] * len(sizes)
    return list(attrs.get("pads", [0] * 2 * len(sizes)))[: len(sizes)]


def conv_transpose(call: Call) -> Box:
    """ConvTranspose: output o = i s - begin + t d (t < k) reads input i; computed as a window of the input with
    s - 1 empty elements inserted between its elements and d (k - 1) empty ones around it."""
    if len(call.boxes()) != 1 or not isinstance(call.args[0], Box):
        raise fail(call, "image-dependent weights")
    box, kernel = call.args[0], _kernel(call)
    if len(box.shape) != 4:
        raise fail(call, f"a {len(box.shape) - 2}-D transposed convolution (only 2-D is handled)")
    strides, dilations = spatial(call.attrs, 2)
    n, c, h, w = box.shape
    shape = call.out_shape()
    begins = transpose_pads(call.attrs, [h, w], kernel, list(shape[2:]))
    groups = int(call.attrs.get("group", 1))

    def part(p: torch.Tensor, empty: float) -> torch.Tensor:
        g = p.reshape(n, groups, c // groups, h, w)
        g = g.amin(dim=2) if empty > 0 else g.amax(dim=2)
        up = torch.full((n, groups, strides[0] * (h - 1) + 1, strides[1] * (w - 1) + 1), empty, dtype=p.dtype)
        up[:, :, :: strides[0], :: strides[1]] = g
        reach = [d * (k - 1) for k, d in zip(kernel, dilations)]
        full = _window(up, empty, kernel, [1, 1], dilations, reach, reach,
                       (up.shape[2] + reach[0], up.shape[3] + reach[1]))
        full = F.pad(full, (0, max(0, begins[1] + shape[3] - full.shape[3]), 0, max(0, begins[0] + shape[2] - full.shape[2])),
                     value=empty)
        r = full[:, :, begins[0] : begins[0] + shape[2], begins[1] : begins[1] + shape[3]]
        return r.repeat_interleave(shape[1] // groups, dim=1)
    return box.map(part)


def resize(call: Call) -> Box:
    """Resize / Upsample: the rows and columns each output row and column reads, found by running the node on one
    input row (column) of ones at a time; the union over them."""
    box = call.boxes()[0]
    if len(box.shape) != 4 or not isinstance(call.args[0], Box):
        raise fail(call, "a resize of a tensor that is not (N, C, H, W)")
    shape = call.out_shape()
    if tuple(shape[:2]) != tuple(box.shape[:2]):
        raise fail(call, "a resize of the batch or channel axis")
    parts = list(box.parts())
    for axis in (2, 3):
        n_in = box.shape[axis]
        reads = []
        for r in range(n_in):
            probe = torch.zeros(box.shape, dtype=DTYPE)
            probe.narrow(axis, r, 1).fill_(1.0)
            out = call.run_with(lambda i, b: probe)
            reads.append(out.abs().sum(dim=[a for a in range(4) if a != axis]) > 0)
        dep = torch.stack(reads, dim=1)  # (n_out, n_in)
        first = torch.where(dep.any(1), dep.float().argmax(1), torch.zeros(dep.shape[0], dtype=torch.long))
        last = torch.where(dep.any(1), n_in - 1 - dep.flip(1).float().argmax(1), torch.full((dep.shape[0],), -1))
        span = int((last - first).max().item()) + 1 if dep.any() else 0
        new = []
        for k, p in enumerate(parts):
            empty = INF if k % 2 == 0 else -INF
            acc = torch.full((*p.shape[:axis], dep.shape[0], *p.shape[axis + 1:]), empty, dtype=p.dtype)
            for t in range(span):
                idx = (first + t).clamp(max=n_in - 1)
                valid = ((first + t) <= last).reshape([-1 if a == axis else 1 for a in range(4)])
                taken = torch.where(valid, p.index_select(axis, idx), torch.full_like(acc, empty))
                acc = torch.minimum(acc, taken) if empty > 0 else torch.maximum(acc, taken)
            new.append(acc)
        parts = new
    return Box(*parts)


def _axes_of(call: Call, rank: int) -> list[int]:
    """Axes a reduction or normalisation mixes."""
    op, a = call.op_type, call.attrs
    if op.startswith("Global") or op == "InstanceNormalization":
        axes = list(range(2, rank))
    elif op == "GroupNormalization":
        axes = list(range(1, rank))
    elif op in ("Softmax", "LogSoftmax", "Hardmax"):
        axis = int(a.get("axis", -1 if call.opset >= 13 else 1)) % rank
        axes = [axis] if call.opset >= 13 else list(range(axis, rank))
    elif op == "LayerNormalization":
        axes = list(range(int(a.get("axis", -1)) % rank, rank))
    elif op in ("LpNormalization", "ArgMax", "ArgMin"):
        axes = [int(a.get("axis", -1 if op == "LpNormalization" else 0)) % rank]
    elif op == "MeanVarianceNormalization":
        axes = [int(v) % rank for v in a.get("axes", [0, 2, 3])]
    elif op == "CumSum":
        axes = [int(call.inits[1] if 1 in call.inits else call.args[1]) % rank]
    else:  # Reduce*: the axes attribute (opset < 18) or the constant second input; none given: all
        given = a.get("axes")
        if given is None and 1 in call.inits:
            given = call.inits[1].reshape(-1).tolist()
        elif given is None and len(call.args) > 1 and isinstance(call.args[1], torch.Tensor):
            given = call.args[1].reshape(-1).tolist()
        axes = [int(v) % rank for v in given] if given else list(range(rank))
    return axes


def reduction(call: Call) -> Box:
    """Reductions, normalisations, softmax, cumulative sums: the union over the axes they mix."""
    box = call.args[0]
    if not isinstance(box, Box):
        raise fail(call, "an image-dependent parameter")
    return over_axes(box, _axes_of(call, len(box.shape)), call.out_shape())


def matmul(call: Call) -> Box:
    """MatMul: out[..., i, j] reads row i of a and column j of b (all of the contracted axis)."""
    shape = call.out_shape()
    terms = []
    for pos, axis in ((0, -1), (1, -2)):
        a = call.args[pos]
        if isinstance(a, Box):
            if len(a.shape) == 1:
                raise fail(call, "a 1-D image-dependent operand")
            terms.append(a.map(lambda p, e, axis=axis: p.amin(dim=axis, keepdim=True) if e > 0 else p.amax(dim=axis, keepdim=True)))
    return union(terms, shape)


def gemm(call: Call) -> Box:
    """Gemm Y = A' B' + C: row i of A', column j of B' and C broadcast."""
    shape = call.out_shape()
    terms = []
    for pos, axis, flag in ((0, -1, "transA"), (1, -2, "transB")):
        a = call.args[pos] if pos < len(call.args) else None
        if isinstance(a, Box):
            axis = (-2 if axis == -1 else -1) if call.attrs.get(flag, 0) else axis
            b = a.map(lambda p, e, axis=axis: p.amin(dim=axis, keepdim=True) if e > 0 else p.amax(dim=axis, keepdim=True))
            terms.append(b.map(lambda p, e: p.transpose(-1, -2)) if call.attrs.get(flag, 0) else b)
    if len(call.args) > 2 and isinstance(call.args[2], Box):
        terms.append(call.args[2])
    return union(terms, shape)


def grid_sample(call: Call) -> Box:
    """GridSample: a sampling position depends on the data, so every output element can read the whole input."""
    shape = call.out_shape()
    terms = []
    if isinstance(call.args[0], Box):
        terms.append(over_axes(call.args[0], [2, 3], torch.Size([shape[0], shape[1], 1, 1])))
    if isinstance(call.args[1], Box):
        terms.append(over_axes(call.args[1], [3], torch.Size([shape[0], shape[2], shape[3], 1])).map(
            lambda p, e: p.permute(0, 3, 1, 2)))
    return union(terms, shape)


_ELEMENTWISE = (
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Mean", "Sum", "Where", "Neg", "Abs", "Sign", "Sqrt",
    "Reciprocal", "Exp", "Log", "Sin", "Cos", "Tan", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish", "Relu",
    "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Erf", "Softplus", "Softsign", "Mish", "Clip",
    "ThresholdedRelu", "Floor", "Ceil", "Round", "BatchNormalization", "Equal", "Greater", "GreaterOrEqual", "Less",
    "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
)
_MOVEMENT = (
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split", "Gather", "GatherElements",
    "GatherND", "Expand", "Tile", "DepthToSpace", "SpaceToDepth",
)
_REDUCTIONS = (
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    "Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
    "MeanVarianceNormalization", "LpNormalization", "CumSum",
)
AXIS_MIXING = frozenset({*_REDUCTIONS, "MatMul", "Gemm", "GridSample"})  # ops that can read a whole axis in one step
RULES: dict[str, Callable[[Call], Any]] = {
    **{op: elementwise for op in _ELEMENTWISE},
    **{op: identity for op in ("Identity", "Dropout", "Cast", "CastLike")},
    **{op: movement() for op in _MOVEMENT},
    "Pad": movement(fills=True),
    "Concat": movement(data=tuple(range(64))),
    "ScatterND": movement(data=(0, 2)),
    "ScatterElements": movement(data=(0, 2)),
    **{op: reduction for op in _REDUCTIONS},
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    **{op: pool for op in ("MaxPool", "AveragePool", "LpPool")},
    "Resize": resize,
    "Upsample": resize,
    "MatMul": matmul,
    "Gemm": gemm,
    "GridSample": grid_sample,
}
