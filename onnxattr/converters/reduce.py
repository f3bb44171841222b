"""Reduce* ops at opset 18 (axes as an input) and ReduceMax/ReduceMin 20."""

from __future__ import annotations

from collections.abc import Callable

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from torch import nn

from .registration import const_list, converter

Reducer = Callable[[torch.Tensor, list[int], bool], torch.Tensor]


def _prod(x: torch.Tensor, dims: list[int], keep: bool) -> torch.Tensor:
    for dim in sorted(dims, reverse=True):
        x = torch.prod(x, dim=dim, keepdim=keep)
    return x


_REDUCERS: dict[str, Reducer] = {
    "ReduceMean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "ReduceSum": lambda x, d, k: torch.sum(x, dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "ReduceProd": _prod,
    "ReduceL1": lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(torch.square(x), dim=d, keepdim=k)),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
    "ReduceSumSquare": lambda x, d, k: torch.sum(torch.square(x), dim=d, keepdim=k),
}


class OnnxReduce18(nn.Module, OnnxToTorchModule):
    """Reduce over ``axes`` (fixed at conversion, or given as the second input)."""

    def __init__(self, op_type: str, axes: list[int] | None, keepdims: bool, noop_with_empty_axes: bool):
        super().__init__()
        self.op_type, self.axes = op_type, axes
        self.keepdims, self.noop_with_empty_axes = keepdims, noop_with_empty_axes

    def forward(self, x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:
        dims = axes.tolist() if axes is not None else self.axes
        if not dims:
            if self.noop_with_empty_axes:  # no reduction, but the elementwise part applies (|x| for L2)
                return _REDUCERS[self.op_type](x.unsqueeze(0), [0], False)
            dims = list(range(x.dim()))
        dims = [d % x.dim() for d in dims] if x.dim() else []
        return _REDUCERS[self.op_type](x, dims, self.keepdims)


@converter("ReduceMean", 18)
@converter("ReduceMax", 18, 20)
@converter("ReduceMin", 18, 20)
@converter("ReduceProd", 18)
@converter("ReduceL1", 18)
@converter("ReduceL2", 18)
@converter("ReduceLogSum", 18)
@converter("ReduceLogSumExp", 18)
@converter("ReduceSumSquare", 18)
def convert_reduce(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Constant axes are stored in the module; dynamic ones stay a graph input."""
    axes = const_list(node, graph, 1)
    dynamic = axes is None and len(node.input_values) > 1 and bool(node.input_values[1])
    module = OnnxReduce18(
        node.operation_type, axes,
        keepdims=bool(node.attributes.get("keepdims", 1)),
        noop_with_empty_axes=bool(node.attributes.get("noop_with_empty_axes", 0)),
    )
    inputs = node.input_values[:2] if dynamic else node.input_values[:1]
    return OperationConverterResult(module, OnnxMapping(inputs=inputs, outputs=node.output_values))
