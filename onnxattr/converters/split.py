"""Split at opset 18 (``num_outputs`` attribute, uneven last chunk)."""

from __future__ import annotations

import math

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from torch import nn

from .registration import const_list, converter


class OnnxSplit18(nn.Module, OnnxToTorchModule):
    """Split into the given sizes, or into ``num_outputs`` chunks of ceil(len / n)."""

    def __init__(self, axis: int, num_outputs: int, split: list[int] | None):
        super().__init__()
        self.axis, self.num_outputs, self.split = axis, num_outputs, split

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        sizes = split.tolist() if split is not None else self.split
        if sizes is None:
            sizes = math.ceil(x.shape[self.axis] / self.num_outputs)
        return tuple(torch.split(x, sizes, dim=self.axis))


@converter("Split", 18)
def convert_split(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """A constant ``split`` input is stored; a dynamic one stays an input."""
    split = const_list(node, graph, 1)
    dynamic = split is None and len(node.input_values) > 1 and bool(node.input_values[1])
    num_outputs = node.attributes.get("num_outputs", len(node.output_values))
    module = OnnxSplit18(node.attributes.get("axis", 0), num_outputs, split)
    inputs = node.input_values[:2] if dynamic else node.input_values[:1]
    return OperationConverterResult(module, OnnxMapping(inputs=inputs, outputs=node.output_values))
