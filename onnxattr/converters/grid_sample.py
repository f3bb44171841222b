"""GridSample 16/20/22: ``F.grid_sample``, whose sampling ONNX's GridSample was written after (flow-guided and
implicit SR models; both PyTorch exporters write it for ``F.grid_sample``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter

# ONNX mode -> torch mode (opset 20 renamed bilinear/bicubic to linear/cubic; torch's "bilinear" is trilinear in 3-D)
_MODES = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest", "bicubic": "bicubic", "cubic": "bicubic"}
_PADDING = ("zeros", "border", "reflection")


class OnnxGridSample(nn.Module, OnnxToTorchModule):
    """Samples ``x`` (N, C, *D) at ``grid`` (N, *D_out, len(D)) in [-1, 1]."""

    def __init__(self, mode: str, padding_mode: str, align_corners: bool):
        super().__init__()
        self.mode, self.padding_mode, self.align_corners = mode, padding_mode, align_corners

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid.to(x.dtype), mode=self.mode, padding_mode=self.padding_mode,
                             align_corners=self.align_corners)


@converter("GridSample", 16, 20, 22)
def convert_grid_sample(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """2-D any mode, 3-D linear or nearest (torch has no 3-D cubic); every padding mode."""
    del graph
    attrs = node.attributes
    mode, padding = attrs.get("mode", "bilinear"), attrs.get("padding_mode", "zeros")
    if mode not in _MODES or padding not in _PADDING:
        raise NotImplementedError(f'GridSample mode "{mode}" with padding_mode "{padding}" is not implemented')
    module = OnnxGridSample(_MODES[mode], padding, bool(attrs.get("align_corners", 0)))
    return OperationConverterResult(module, onnx_mapping_from_node(node))
