"""Reshape at opsets 5 to 25, including ``allowzero=1``."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter


class OnnxReshape(nn.Module, OnnxToTorchModule):
    """Reshape; with ``allowzero`` a 0 in ``shape`` is a real zero, else it copies the input dim."""

    def __init__(self, allowzero: bool):
        super().__init__()
        self.allowzero = allowzero

    def forward(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        dims = [int(d) for d in shape.tolist()]
        if not self.allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return torch.reshape(x, dims)


@converter("Reshape", 5, 13, 14, 19, 21, 23, 24, 25)
def convert_reshape(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``allowzero`` (opset 14+) decides what a 0 in ``shape`` means."""
    del graph
    module = OnnxReshape(bool(node.attributes.get("allowzero", 0)))
    return OperationConverterResult(module, onnx_mapping_from_node(node))
