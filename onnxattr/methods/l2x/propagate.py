"""One forward of x and x_ref in lock-step through the converted graph, one backward of the rules.

Every node that depends on the image is evaluated on both inputs (a :class:`Pair`) by its
ONNX op type's rule; nodes that do not (weights, shape arithmetic after ``Shape``) run once.
The backward of the target's x side then yields the multipliers m at the input (paper eq. 2).
x and x_ref run as two lock-step passes rather than one batch of 2, which is the same cost on
a CPU and is safe for exports whose batching is fixed or broken (``model.batch_mode``).
"""

from __future__ import annotations

import copy
import operator
import warnings
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable

import torch
from torch import fx

from .primitives import Pair
from .rules import RULES, VALUE_FREE, NodeCall, NoRuleError, linear_rule


def varying_nodes(graph: fx.GraphModule, op_type: Callable[[str], str]) -> set[str]:
    """Names of the nodes whose value depends on the input image (graph reachability from the
    placeholder, cut at ops whose output is value-free such as ``Shape``)."""
    varying: set[str] = set()
    for n in graph.graph.nodes:
        if n.op == "placeholder":
            varying.add(n.name)
        elif n.op != "output" and op_type(n.name) not in VALUE_FREE:
            if any(a.name in varying for a in n.all_input_nodes):
                varying.add(n.name)
    return varying


def node_calls(model: Any, graph: fx.GraphModule, names: set[str], dtype: torch.dtype) -> dict[str, NodeCall]:
    """The rule-facing description (ONNX attributes, initializer inputs) of ``graph``'s call_module nodes in ``names``."""
    from onnx2torch.onnx_graph import OnnxGraph

    onnx_graph = OnnxGraph(model.proto.graph)
    calls: dict[str, NodeCall] = {}
    for n in graph.graph.nodes:
        if n.op != "call_module" or n.name not in names:
            continue
        onnx_node = onnx_graph.nodes.get(n.target)
        attrs = dict(onnx_node.attributes) if onnx_node is not None else {}
        inits = {}
        if onnx_node is not None:
            for i, value in enumerate(onnx_node.input_values):
                if value in onnx_graph.initializers:
                    init = onnx_graph.initializers[value].to_torch().to(model.device)
                    inits[i] = init.to(dtype) if init.is_floating_point() else init
        calls[n.name] = NodeCall(
            name=onnx_node.name if onnx_node is not None and onnx_node.name else n.name,
            op_type=model.op_type(n.name),
            fn=graph.get_submodule(n.target),
            attrs=attrs,
            opset=model.opset,
            initializers=inits,
        )
    return calls


def _x_side(value: Any) -> Any:
    if isinstance(value, Pair):
        return value.x
    if isinstance(value, (list, tuple)):
        return type(value)(_x_side(v) for v in value)
    return value


class Propagator(fx.Interpreter):
    """Evaluates the graph on Pairs, applying each varying node's rule from ``RULES``.

    ``unknown_ops='error'`` raises :class:`NoRuleError` for an op without a rule; ``'gradient'``
    uses the op's plain gradient instead (warned once per op type, listed in ``gradient_ops``).
    """

    def __init__(self, model: Any, graph: fx.GraphModule, unknown_ops: str = "error") -> None:
        if unknown_ops not in ("error", "gradient"):
            raise ValueError(f"unknown_ops must be 'error' or 'gradient', got {unknown_ops!r}")
        super().__init__(graph)
        dtype = next((p.dtype for p in graph.parameters()), torch.float32)
        self.varying = varying_nodes(graph, model.op_type)
        self.calls = node_calls(model, graph, self.varying, dtype)
        self.unknown_ops = unknown_ops
        self.gradient_ops: set[str] = set()

    def run_node(self, n: fx.Node) -> Any:
        if n.op in ("placeholder", "get_attr", "output"):
            return super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        if n.name not in self.varying:
            return getattr(self, n.op)(n.target, _x_side(args), _x_side(kwargs))
        if n.op == "call_function" and n.target is operator.getitem:
            whole, index = args
            return Pair(whole.x[index], whole.ref[index])
        call = self.calls.get(n.name)
        if call is None:
            raise NoRuleError(f"L2X cannot propagate graph node {n.name!r} ({n.op} {n.target}): not an ONNX op")
        if kwargs:  # constant keyword inputs (e.g. Resize sizes) are bound to the module
            if any(isinstance(v, Pair) for v in kwargs.values()):
                raise call.fail("a keyword input depends on the image")
            call = replace(call, fn=partial(call.fn, **kwargs))
        rule = RULES.get(call.op_type)
        if rule is None:
            if self.unknown_ops == "error":
                raise call.fail("no L2X rule for this op type")
            if call.op_type not in self.gradient_ops:
                warnings.warn(f"L2X uses the plain gradient for ONNX op {call.op_type} (no rule); "
                              "completeness_error shows the cost", stacklevel=2)
                self.gradient_ops.add(call.op_type)
            rule = linear_rule
        return rule(call, list(args))


@dataclass
class Propagation:
    """Multipliers m (K, 1, C, h, w) at the input (d target_k / d x under the rules), the output and the
    K targets on both sides."""

    multiplier: torch.Tensor
    output: Pair
    target: Pair
    gradient_ops: list[str]


def propagate(
    model: Any,
    x: torch.Tensor,
    x_ref: torch.Tensor,
    objective: Callable[[Pair], Pair],
    unknown_ops: str = "error",
    dtype: torch.dtype = torch.float64,
) -> Propagation:
    """Run x and x_ref (1, C, h, w) in [0, 1] through the graph, then back-propagate the rules from
    ``objective(output) -> Pair`` of K targets (K,): one forward, one backward per target, multipliers
    m_k with sum m_k * (x - x_ref) = Delta target_k.

    ``dtype`` float64 (a copy of the graph) keeps completeness near 1e-9; float32 runs the model's own graph
    (completeness then ~1e-6, up to ~4e-5 for one output pixel, whose own float32 rounding limits Delta t).
    The objective is evaluated in float64 on the output either way: in float32 a window sum t ~ 1e3 with
    Delta t ~ 1 would lose 1e-4 of Delta t to rounding before any rule ran.
    """
    vin, vout = model.value_range, model.output_range
    graph = model.graph if dtype == torch.float32 else copy.deepcopy(model.graph).to(dtype)
    runner = Propagator(model, graph, unknown_ops)
    x = x.detach().to(dtype).requires_grad_(True)
    x_ref = x_ref.to(dtype)
    with torch.enable_grad():
        out = runner.run(Pair(x * vin, x_ref.detach() * vin))
        out = Pair(out.x.double() / vout, out.ref.double() / vout)
        target = objective(out)
        k = target.x.shape[0]
        ms = [torch.autograd.grad(target.x[i], x, retain_graph=i < k - 1, allow_unused=True)[0] for i in range(k)]
    m = torch.stack([g if g is not None else torch.zeros_like(x) for g in ms])
    return Propagation(
        multiplier=m.detach(),
        output=Pair(out.x.detach(), out.ref),
        target=Pair(target.x.detach(), target.ref),
        gradient_ops=sorted(runner.gradient_ops),
    )
