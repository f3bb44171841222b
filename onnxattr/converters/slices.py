"""Slice-1 (opsets 1-9): ``starts``, ``ends`` and ``axes`` as attributes (onnx2torch files its converter
under version 9, which no lookup reaches, and that converter fails)."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter


class OnnxSlice1(nn.Module, OnnxToTorchModule):
    """x[starts:ends] on ``axes`` (all leading axes when absent), step 1; Python's clamping of out-of-range
    and negative bounds is ONNX's."""

    def __init__(self, starts: list[int], ends: list[int], axes: list[int] | None):
        super().__init__()
        self.starts, self.ends = starts, ends
        self.axes = axes if axes is not None else list(range(len(starts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = [slice(None)] * x.dim()
        for axis, start, end in zip(self.axes, self.starts, self.ends):
            index[axis % x.dim()] = slice(start, end)
        return x[tuple(index)]


@converter("Slice", 1)
def convert_slice1(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    a = node.attributes
    module = OnnxSlice1(list(a["starts"]), list(a["ends"]), list(a["axes"]) if "axes" in a else None)
    return OperationConverterResult(module, onnx_mapping_from_node(node))
