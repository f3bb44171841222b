"""LayerNormalization 17 (normalized shape from the scale tensor, not from shape inference), GroupNormalization
18/21 (per-group / per-channel scale and bias), LpNormalization 1/22 and MeanVarianceNormalization 9/13."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult
from onnx2torch.utils.common import onnx_mapping_from_node
from torch import nn

from .registration import converter


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


class OnnxGroupNorm(nn.Module, OnnxToTorchModule):
    """``F.group_norm`` with scale and bias given as inputs: one per group (opset 18) or per channel (21)."""

    def __init__(self, groups: int, epsilon: float, per_group: bool):
        super().__init__()
        self.groups, self.epsilon, self.per_group = groups, epsilon, per_group

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.per_group:
            repeat = x.shape[1] // self.groups
            scale, bias = scale.repeat_interleave(repeat), bias.repeat_interleave(repeat)
        return F.group_norm(x, self.groups, scale, bias, eps=self.epsilon)


def _group_norm(node: OnnxNode, per_group: bool) -> OperationConverterResult:
    """y = (x - mean_g) / sqrt(var_g + epsilon) * scale + bias over each group of C / num_groups channels."""
    attrs = node.attributes
    module = OnnxGroupNorm(int(attrs["num_groups"]), float(attrs.get("epsilon", 1e-5)), per_group)
    return OperationConverterResult(module, onnx_mapping_from_node(node))


@converter("GroupNormalization", 18)
def convert_group_norm18(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Scale and bias per group (the definition opset 21 replaced)."""
    del graph
    return _group_norm(node, per_group=True)


@converter("GroupNormalization", 21)
def convert_group_norm21(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Scale and bias per channel."""
    del graph
    return _group_norm(node, per_group=False)


class OnnxLpNorm(nn.Module, OnnxToTorchModule):
    """x / ||x||_p along ``axis`` (no epsilon: a zero vector gives NaN, as in onnxruntime)."""

    def __init__(self, axis: int, p: int):
        super().__init__()
        self.axis, self.p = axis, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.abs().sum(self.axis, keepdim=True) if self.p == 1 else x.square().sum(self.axis, keepdim=True).sqrt()
        return x / norm


@converter("LpNormalization", 1, 22)
def convert_lp_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    p = int(node.attributes.get("p", 2))
    if p not in (1, 2):
        raise NotImplementedError(f"LpNormalization with p={p}")
    return OperationConverterResult(OnnxLpNorm(int(node.attributes.get("axis", -1)), p), onnx_mapping_from_node(node))


class OnnxMeanVarianceNorm(nn.Module, OnnxToTorchModule):
    """(x - mean) / (sqrt(var) + 1e-9) over ``axes``, the function ONNX defines."""

    def __init__(self, axes: list[int]):
        super().__init__()
        self.axes = axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - x.mean(self.axes, keepdim=True)
        return d / (d.square().mean(self.axes, keepdim=True).sqrt() + 1e-9)


@converter("MeanVarianceNormalization", 9, 13)
def convert_mvn(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    module = OnnxMeanVarianceNorm(list(node.attributes.get("axes", [0, 2, 3])))
    return OperationConverterResult(module, onnx_mapping_from_node(node))
