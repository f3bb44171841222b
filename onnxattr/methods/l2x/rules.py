"""The L2X rule table: one entry per ONNX op type, each rule a chain of the primitives.

A rule takes the node (its torch module ``fn``, ONNX attributes, constant inputs) and the
evaluated arguments (a :class:`Pair` for every input that depends on the image, the plain
value for constants) and returns the output Pair. ``rule.kind`` is ``exact`` when the rule
keeps completeness sum m * Delta h = Delta y exactly, ``approximate`` otherwise.

Ops reached only through constants (weights, shape computations after ``Shape``) need no rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ...errors import OnnxAttrError
from .primitives import Pair, linear, maximum, midpoint, product, reciprocal, reduce_max, rescale, secant, square

Rule = Callable[["NodeCall", list], Pair]


class NoRuleError(OnnxAttrError):
    """An op on the image's path has no L2X rule (or its rule does not apply to this node)."""


@dataclass
class NodeCall:
    """One graph node as a rule sees it: fx name, ONNX op type, torch module, ONNX attributes, opset,
    and the ONNX initializers by input position (for inputs the converter baked into the module)."""

    name: str
    op_type: str
    fn: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    initializers: dict[int, torch.Tensor] = field(default_factory=dict)

    def const_input(self, args: list, index: int) -> Any:
        """ONNX input ``index``: the evaluated argument when the graph passes it, else the initializer, else None."""
        if index < len(args):
            return args[index]
        return self.initializers.get(index)

    def fail(self, why: str) -> NoRuleError:
        return NoRuleError(
            f"L2X cannot propagate ONNX op {self.op_type} at node {self.name!r}: {why}; pass "
            "unknown_ops='gradient' (CLI --unknown-ops gradient) to use its plain gradient (approximate)"
        )


def kind(tag: str) -> Callable[[Rule], Rule]:
    """Mark a rule ``exact`` or ``approximate``."""

    def mark(rule: Rule) -> Rule:
        rule.kind = tag  # type: ignore[attr-defined]
        return rule

    return mark


def _varying(args: list) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, Pair)]


def _axes(node: NodeCall, args: list, ndim: int) -> list[int]:
    """Reduce axes: the ``axes`` attribute (opset < 18) or constant input 1, all axes when absent."""
    axes = node.attrs.get("axes")
    if axes is None and node.opset >= 18:
        given = node.const_input(args, 1)
        if isinstance(given, Pair):
            raise node.fail("the reduce axes depend on the image")
        axes = None if given is None or given.numel() == 0 else given.tolist()
    return sorted(a % ndim for a in axes) if axes is not None else list(range(ndim))


# ---------------------------------------------------------------------------------------- rules
@kind("exact")
def linear_rule(node: NodeCall, args: list) -> Pair:
    """y = A h + c, linear in the varying inputs: m_h = A^T m_y (the ordinary gradient)."""
    return linear(node.fn, *args)


@kind("exact")
def rescale_rule(node: NodeCall, args: list) -> Pair:
    """y = f(h) element-wise (other inputs constant): m_h = m_y (y - y_ref) / (h - h_ref), f' at the midpoint if tiny."""
    slots = _varying(args)
    if len(slots) != 1:
        raise node.fail(f"{len(slots)} inputs depend on the image; the rule takes one")
    i = slots[0]

    def f(t: torch.Tensor) -> torch.Tensor:
        return node.fn(*args[:i], t, *args[i + 1 :])

    h = args[i]
    with torch.no_grad():
        out_shape = f(h.ref).shape
    if out_shape != h.ref.shape:  # a constant operand broadcasts the output: expand h first (linear)
        h = linear(lambda t: t.expand(out_shape), h)
    return rescale(f, h)


@kind("exact")
def bilinear_rule(node: NodeCall, args: list) -> Pair:
    """y = op(a, b) bilinear: linear if one operand is constant, else m_a = op_b((b + b_ref) / 2)^T m_y, m_b alike."""
    return midpoint(node.fn, *args) if len(_varying(args)) > 1 else linear(node.fn, *args)


@kind("exact")
def div_rule(node: NodeCall, args: list) -> Pair:
    """y = a / b: linear in a; a varying b goes through r = 1/b (rescale, m = -1/(b b_ref)), then a * r (product)."""
    a, b = args[0], args[1]
    if not isinstance(b, Pair):
        return linear(node.fn, a, b)
    return product(a, reciprocal(b))


@kind("exact")
def pow_rule(node: NodeCall, args: list) -> Pair:
    """y = h^p with constant p: rescale m = (h^p - h_ref^p) / (h - h_ref)."""
    if isinstance(args[1], Pair):
        raise node.fail("the exponent depends on the image")
    return rescale_rule(node, args)


@kind("exact")
def max_rule(node: NodeCall, args: list) -> Pair:
    """max(a, b, ...) = folds of (a + b + |a - b|) / 2; Min with -|a - b|: linear ops and |.| rescale."""
    sign = 1.0 if node.op_type == "Max" else -1.0
    out = args[0]
    for other in args[1:]:
        out = maximum(out, other, sign)
    return out if isinstance(out, Pair) else linear(lambda t: t, out)


@kind("exact")
def where_rule(node: NodeCall, args: list) -> Pair:
    """y = where(c, a, b) with a constant condition c: a selection, linear in a and b."""
    if isinstance(args[0], Pair):
        raise node.fail("the condition depends on the image")
    return linear(node.fn, *args)


def softmax_multiplier(
    m_p: torch.Tensor, h: torch.Tensor, h_ref: torch.Tensor, p: torch.Tensor, p_ref: torch.Tensor, axis: int
) -> torch.Tensor:
    """m_h of the exact chain z = h - c, e = exp z, s = sum e, L = log s, p = exp(z - L), in closed form:

    m_h = u - a b sum_axis(u), u = m_p g, with the rescale slopes a = De/Dz (exp), b = DL/Ds (log), g = Dp/D(z - L)
    (exp); where a difference is tiny, the derivative at the midpoint: sqrt(e e_ref), 2 / (s + s_ref), sqrt(p p_ref).
    c = max over both sides is a shared shift (no contribution). No product e * (1/s): every slope is bounded
    (a, g by max of the two sides' values <= 1, b by about 1 + D + log n for logits D apart), so |m| stays of
    the gradient's order where the symmetric split of e * (1/s) would reach e^D.
    """
    top, top_ref = h.amax(axis, keepdim=True), h_ref.amax(axis, keepdim=True)
    c = torch.maximum(top, top_ref)
    z, z_ref = h - c, h_ref - c  # near the top these are small, so their differences round little
    log_s = (top - c) - torch.log(p.amax(axis, keepdim=True))  # L = max z - log p(argmax), p(argmax) >= 1/n
    log_s_ref = (top_ref - c) - torch.log(p_ref.amax(axis, keepdim=True))
    s, s_ref = torch.exp(log_s), torch.exp(log_s_ref)
    e, e_ref = torch.exp(z), torch.exp(z_ref)
    a = secant(z, z_ref, e, e_ref, lambda: torch.sqrt(e * e_ref))
    b = secant(s, s_ref, log_s, log_s_ref, lambda: 2 / (s + s_ref))
    g = secant(z - log_s, z_ref - log_s_ref, p, p_ref, lambda: torch.sqrt(p * p_ref))
    u = m_p * g
    return u - a * b * u.sum(axis, keepdim=True)


class _Softmax(torch.autograd.Function):
    """Forward p = softmax(h); backward :func:`softmax_multiplier` (saves h, h_ref, p, p_ref only)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, h_ref: torch.Tensor, p_ref: torch.Tensor, axis: int) -> torch.Tensor:
        p = torch.softmax(h, axis)
        ctx.axis = axis
        ctx.save_for_backward(h, h_ref, p, p_ref)
        return p

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, h_ref, p, p_ref = ctx.saved_tensors
        return softmax_multiplier(grad, h, h_ref, p, p_ref, ctx.axis), None, None, None


@kind("exact")
def softmax_rule(node: NodeCall, args: list) -> Pair:
    """p = exp(z - log sum exp z), z = h - c (c: shared max shift) as exp, log, exp rescales: see softmax_multiplier."""
    h = args[0]
    ndim = h.ref.ndim
    axis = node.attrs.get("axis", -1 if node.opset >= 13 else 1) % ndim
    shape = h.ref.shape
    if node.opset < 13:  # softmax over the flattened trailing dims
        h = linear(lambda t: t.reshape(*shape[:axis], -1), h)
    with torch.no_grad():
        p_ref = torch.softmax(h.ref, axis)
    p = Pair(_Softmax.apply(h.x, h.ref, p_ref, axis), p_ref)
    return linear(lambda t: t.reshape(shape), p) if node.opset < 13 else p


def _normalize(h: Pair, dims: list[int], eps: float) -> Pair:
    """(h - mean) / sqrt(var + eps): sub-mean (linear), square (midpoint), mean, rsqrt (rescale), product (split)."""
    d = linear(lambda t: t - t.mean(dims, keepdim=True), h)
    var = linear(lambda t: t.mean(dims, keepdim=True), square(d))
    return product(d, rescale(lambda t: torch.rsqrt(t + eps), var))


def _affine(node: NodeCall, args: list, n: Pair, shape: tuple[int, ...]) -> Pair:
    """n * scale + bias with ONNX inputs 1 and 2 (either may be absent), reshaped to ``shape``."""
    scale, bias = node.const_input(args, 1), node.const_input(args, 2)
    if scale is not None:
        n = product(n, scale.reshape(shape) if not isinstance(scale, Pair) else linear(lambda t: t.reshape(shape), scale))
    if bias is not None:
        n = linear(lambda t, b: t + b.reshape(shape), n, bias)
    return n


@kind("exact")
def layer_norm_rule(node: NodeCall, args: list) -> Pair:
    """y = (h - mu) * rsqrt(var + eps) * scale + bias over dims >= axis, as an exact chain (see _normalize)."""
    h = args[0]
    ndim = h.ref.ndim
    axis = node.attrs.get("axis", -1) % ndim
    n = _normalize(h, list(range(axis, ndim)), float(node.attrs.get("epsilon", 1e-5)))
    return _affine(node, args, n, tuple(h.ref.shape[axis:]))


@kind("exact")
def instance_norm_rule(node: NodeCall, args: list) -> Pair:
    """y = (h - mu) * rsqrt(var + eps) * scale_c + bias_c over the spatial dims, as an exact chain."""
    h = args[0]
    n = _normalize(h, list(range(2, h.ref.ndim)), float(node.attrs.get("epsilon", 1e-5)))
    return _affine(node, args, n, (-1,) + (1,) * (h.ref.ndim - 2))


@kind("exact")
def group_norm_rule(node: NodeCall, args: list) -> Pair:
    """y = (h - mu_g) * rsqrt(var_g + eps) * scale + bias over each group of channels: the groups as a reshape
    (linear), then instance_norm_rule's chain; scale and bias per group (opset 18) or per channel (21)."""
    h = args[0]
    shape, groups = tuple(h.ref.shape), int(node.attrs["num_groups"])
    grouped = linear(lambda t: t.reshape(shape[0], groups, -1), h)
    n = linear(lambda t: t.reshape(shape), _normalize(grouped, [2], float(node.attrs.get("epsilon", 1e-5))))
    params = [node.const_input(args, i) for i in (1, 2)]
    if all(isinstance(p, torch.Tensor) and p.numel() == groups != shape[1] for p in params):
        params = [p.repeat_interleave(shape[1] // groups) for p in params]  # opset 18: one per group
    return _affine(node, [h, *params], n, (-1,) + (1,) * (len(shape) - 2))


@kind("exact")
def mean_variance_norm_rule(node: NodeCall, args: list) -> Pair:
    """(h - mu) / (sqrt(var) + 1e-9) over the axes: sub-mean (linear), square (midpoint), mean (linear), the
    reciprocal of sqrt + 1e-9 (rescale), product (split)."""
    h = args[0]
    dims = [a % h.ref.ndim for a in node.attrs.get("axes", [0, 2, 3])]
    d = linear(lambda t: t - t.mean(dims, keepdim=True), h)
    var = linear(lambda t: t.mean(dims, keepdim=True), square(d))
    return product(d, rescale(lambda t: 1 / (torch.sqrt(t) + 1e-9), var))


@kind("exact")
def lp_norm_rule(node: NodeCall, args: list) -> Pair:
    """h / ||h||_p along the axis: |h| (rescale) or h^2 (midpoint), the sum (linear), its reciprocal or rsqrt
    (rescale), the product (split)."""
    h = args[0]
    axis = int(node.attrs.get("axis", -1)) % h.ref.ndim
    if int(node.attrs.get("p", 2)) == 1:
        inverse = rescale(torch.reciprocal, linear(lambda t: t.sum(axis, keepdim=True), rescale(torch.abs, h)))
    else:
        inverse = rescale(torch.rsqrt, linear(lambda t: t.sum(axis, keepdim=True), square(h)))
    return product(h, inverse)


@kind("exact")
def reduce_max_rule(node: NodeCall, args: list) -> Pair:
    """max (min) over axes as pairwise trees of (a + b +- |a - b|) / 2."""
    h = args[0]
    axes = _axes(node, args, h.ref.ndim)
    sign = 1.0 if node.op_type == "ReduceMax" else -1.0
    for a in axes:
        h = reduce_max(h, a, sign)
    if not node.attrs.get("keepdims", 1):
        h = linear(lambda t: t.squeeze(tuple(axes)), h)
    return h


@kind("exact")
def global_max_pool_rule(node: NodeCall, args: list) -> Pair:
    """max over the spatial dims (keepdims) as pairwise trees of (a + b + |a - b|) / 2."""
    h = args[0]
    for a in range(2, h.ref.ndim):
        h = reduce_max(h, a)
    return h


@kind("exact")
def max_pool_rule(node: NodeCall, args: list) -> Pair:
    """2-D max pooling: edge-replicate padding (explicit or auto_pad SAME_*) and unfold (linear), then a pairwise
    max tree per window."""
    h = args[0]
    a = node.attrs
    auto_pad = a.get("auto_pad", "NOTSET")
    if h.ref.ndim != 4 or (a.get("ceil_mode", 0) and auto_pad == "NOTSET"):
        raise node.fail("only 2-D MaxPool with ceil_mode 0 or auto_pad has a rule")
    k = tuple(a["kernel_shape"])
    stride = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    top, left, bottom, right = a.get("pads", (0, 0, 0, 0)) if auto_pad == "NOTSET" else (0, 0, 0, 0)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        from ...converters.auto_pad import same_pads  # the converter's run-time pads

        (top, left), (bottom, right) = same_pads(list(h.ref.shape[2:]), list(k), list(stride), list(dil), auto_pad)
    if dil != (1, 1) and any((top, left, bottom, right)):
        raise node.fail("dilated MaxPool with padding has no rule")
    n, c, hh, ww = h.ref.shape
    oh = (hh + top + bottom - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (ww + left + right - dil[1] * (k[1] - 1) - 1) // stride[1] + 1

    def windows(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, (left, right, top, bottom), mode="replicate") if any((top, left, bottom, right)) else t
        return F.unfold(t, k, dilation=dil, stride=stride).reshape(n, c, k[0] * k[1], oh * ow)

    m = reduce_max(linear(windows, h), 2)
    return linear(lambda t: t.reshape(n, c, oh, ow), m)


@kind("exact")
def reduce_l2_rule(node: NodeCall, args: list) -> Pair:
    """sqrt(sum h^2): square (midpoint), sum (linear), sqrt (rescale)."""
    s = reduce_sum_square_rule(node, args)
    return rescale(torch.sqrt, s)


@kind("exact")
def reduce_sum_square_rule(node: NodeCall, args: list) -> Pair:
    """sum h^2 over axes: square (midpoint, m = h + h_ref), then the sum (linear)."""
    h = args[0]
    axes = _axes(node, args, h.ref.ndim)
    keep = bool(node.attrs.get("keepdims", 1))
    return linear(lambda t: t.sum(axes, keepdim=keep), square(h))


@kind("exact")
def cast_rule(node: NodeCall, args: list) -> Pair:
    """y = h as another float type: identity."""
    out = linear(node.fn, *args)
    if not out.ref.is_floating_point():
        raise node.fail("the image's values are cast to a non-float type")
    return out


# ---------------------------------------------------------------------------------------- the table
_LINEAR = (
    "Add", "Sub", "Neg", "Sum", "Mean", "Identity", "Dropout",
    "Conv", "ConvTranspose", "BatchNormalization", "AveragePool", "GlobalAveragePool",
    "ReduceMean", "ReduceSum",
    "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Pad",
    "DepthToSpace", "SpaceToDepth", "Resize", "Upsample", "CumSum",
)
_RESCALE = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Erf", "Gelu", "Softplus", "Softsign", "Mish", "Clip", "Exp", "Log", "Sqrt", "Reciprocal", "Abs",
    "Sin", "Cos", "ThresholdedRelu",
)

RULES: dict[str, Rule] = {
    **{op: linear_rule for op in _LINEAR},
    **{op: rescale_rule for op in _RESCALE},
    "Mul": bilinear_rule,
    "MatMul": bilinear_rule,
    "Gemm": bilinear_rule,
    "Einsum": bilinear_rule,
    "Div": div_rule,
    "Pow": pow_rule,
    "Max": max_rule,
    "Min": max_rule,
    "Where": where_rule,
    "Cast": cast_rule,
    "Softmax": softmax_rule,
    "LayerNormalization": layer_norm_rule,
    "InstanceNormalization": instance_norm_rule,
    "GroupNormalization": group_norm_rule,
    "MeanVarianceNormalization": mean_variance_norm_rule,
    "LpNormalization": lp_norm_rule,
    "ReduceMax": reduce_max_rule,
    "ReduceMin": reduce_max_rule,
    "GlobalMaxPool": global_max_pool_rule,
    "MaxPool": max_pool_rule,
    "ReduceL2": reduce_l2_rule,
    "ReduceSumSquare": reduce_sum_square_rule,
}

#: ops whose output never depends on the image's values: they cut the image's dependency path.
VALUE_FREE = frozenset({"Shape", "Size"})
