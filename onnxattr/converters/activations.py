"""Gelu 20 (exact and tanh), Mish 18/22, ThresholdedRelu 10/22 and PRelu 7/9/16 as torch modules."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter


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


class OnnxThresholdedRelu(nn.Module, OnnxToTorchModule):
    """y = x where x > alpha, else 0."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > self.alpha, x, torch.zeros_like(x))


@converter("ThresholdedRelu", 10, 22)
def convert_thresholded_relu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    return OperationConverterResult(OnnxThresholdedRelu(float(node.attributes.get("alpha", 1.0))),
                                    onnx_mapping_from_node(node))


class OnnxPRelu(nn.Module, OnnxToTorchModule):
    """y = x where x >= 0, slope * x elsewhere (slope broadcast to x from the right).

    ``torch.prelu`` when the slope is one value or one per channel (dim 1) in any layout, e.g. the dynamo
    exporter's (1, C, 1, 1), which onnx2torch's version sends down a masked-copy path; ``torch.where`` else."""

    def forward(self, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        lead = x.dim() - slope.dim()  # x dims without a slope dim
        per_channel = all(s == 1 for i, s in enumerate(slope.shape) if i + lead != 1)
        if slope.numel() == 1 or (per_channel and x.dim() >= 2 and slope.numel() == x.shape[1]):
            return torch.prelu(x, slope.reshape(-1))
        return torch.where(x >= 0, x, x * slope)


@converter("PRelu", 7, 9, 16)
def convert_prelu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    return OperationConverterResult(OnnxPRelu(), onnx_mapping_from_node(node))
