"""LayerNormalization 17: normalized shape from the scale tensor, not from shape inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from onnx2torch.utils.common import onnx_mapping_from_node
from torch import nn

from ._registry import converter


class OnnxLayerNorm(nn.Module, OnnxToTorchModule):
    """Layer norm over ``x.shape[axis:]`` with scale and bias given as inputs."""

    def __init__(self, axis: int, epsilon: float):
        super().__init__()
        self.axis, self.epsilon = axis, epsilon

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        shape = x.shape[self.axis:]
        return F.layer_norm(x, shape, scale.expand(shape), None if bias is None else bias.expand(shape),
                            eps=self.epsilon)


def _input_rank(node: OnnxNode, graph: OnnxGraph) -> int | None:
    info = graph.value_info.get(node.input_values[0])
    return len(info.type.tensor_type.shape.dim) if info and info.type.tensor_type.HasField("shape") else None


@converter("LayerNormalization", 17)
def convert_layer_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``nn.LayerNorm(scale.shape)`` when scale and bias are initializers covering the normalized axes."""
    if len(node.output_values) > 1 and any(node.output_values[1:]):
        raise NotImplementedError("LayerNormalization with Mean/InvStdDev outputs is not implemented")
    axis = node.attributes.get("axis", -1)
    epsilon = node.attributes.get("epsilon", 1e-5)
    rank = _input_rank(node, graph)
    norm_rank = -axis if axis < 0 else (rank - axis if rank is not None else None)
    params = [name for name in node.input_values[1:] if name]
    scale = graph.initializers.get(node.input_values[1])
    if norm_rank is not None and scale is not None and all(n in graph.initializers for n in params):
        weight = scale.to_torch()
        if weight.dim() == norm_rank:
            module = nn.LayerNorm(list(weight.shape), eps=epsilon, elementwise_affine=True, bias=len(params) > 1)
            with torch.no_grad():
                module.weight.copy_(weight)
                if len(params) > 1:
                    module.bias.copy_(graph.initializers[params[1]].to_torch())
            mapping = OnnxMapping(inputs=node.input_values[:1], outputs=node.output_values[:1])
            return OperationConverterResult(module, mapping)
    return OperationConverterResult(OnnxLayerNorm(axis, epsilon), onnx_mapping_from_node(node))
