"""ScatterND 11/13/16/18 and ScatterElements 11/13/16/18, every reduction, empty updates."""

from __future__ import annotations

import math

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter

_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


class OnnxScatterND(nn.Module, OnnxToTorchModule):
    """ScatterND: rows of ``data`` addressed by the last axis of ``indices`` get ``updates``."""

    def __init__(self, reduction: str):
        super().__init__()
        self.reduction = reduction

    def forward(self, data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        if indices.numel() == 0 or updates.numel() == 0:
            return data.clone()
        depth = indices.shape[-1]
        lead = torch.tensor(data.shape[:depth], device=indices.device)
        index = indices.reshape(-1, depth) % lead  # negative indices count from the end
        strides = torch.tensor([math.prod(data.shape[i + 1:depth]) for i in range(depth)], device=indices.device)
        rows = (index * strides).sum(-1)
        flat = data.reshape(math.prod(data.shape[:depth]), *data.shape[depth:])
        values = updates.reshape(rows.shape[0], *data.shape[depth:]).to(data.dtype)
        if self.reduction == "none":
            out = flat.index_copy(0, rows, values)
        else:
            expanded = rows.reshape(-1, *[1] * (flat.dim() - 1)).expand_as(values)
            out = flat.scatter_reduce(0, expanded, values, reduce=_REDUCE[self.reduction], include_self=True)
        return out.reshape(data.shape)


class OnnxScatterElements(nn.Module, OnnxToTorchModule):
    """ScatterElements: ``torch.scatter``/``scatter_reduce`` along ``axis``."""

    def __init__(self, axis: int, reduction: str):
        super().__init__()
        self.axis, self.reduction = axis, reduction

    def forward(self, data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        if indices.numel() == 0:
            return data.clone()
        index = indices.long() % data.shape[self.axis]
        if self.reduction == "none":
            return data.scatter(self.axis, index, updates)
        return data.scatter_reduce(self.axis, index, updates, reduce=_REDUCE[self.reduction], include_self=True)


@converter("ScatterND", 11, 13, 16, 18)
def convert_scatter_nd(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``reduction`` is none (default), add, mul, max or min."""
    del graph
    module = OnnxScatterND(node.attributes.get("reduction", "none"))
    return OperationConverterResult(module, onnx_mapping_from_node(node))


@converter("ScatterElements", 11, 13, 16, 18)
def convert_scatter_elements(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """``axis`` and ``reduction`` as attributes."""
    del graph
    module = OnnxScatterElements(node.attributes.get("axis", 0), node.attributes.get("reduction", "none"))
    return OperationConverterResult(module, onnx_mapping_from_node(node))
