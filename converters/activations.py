"""Gelu 20 (exact and tanh) and Mish 18/22 as torch modules."""

from __future__ import annotations

from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node
from torch import nn

from ._registry import converter


@converter("Gelu", 20)
def convert_gelu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``approximate`` is "none" or "tanh", as in ``nn.GELU``."""
    del graph
    return OperationConverterResult(nn.GELU(node.attributes.get("approximate", "none")), onnx_mapping_from_node(node))


@converter("Mish", 18, 22)
def convert_mish(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """x * tanh(softplus(x))."""
    del graph
    return OperationConverterResult(nn.Mish(), onnx_mapping_from_node(node))
