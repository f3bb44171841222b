"""DepthToSpace 1/11/13 in both DCR and CRD modes (1 has no mode: DCR), SpaceToDepth 1/13."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter


class _Blocks(nn.Module, OnnxToTorchModule):
    """A rearrangement between channels and blocksize x blocksize spatial blocks."""

    def __init__(self, blocksize: int):
        super().__init__()
        self.blocksize = blocksize


class DepthToSpaceDCR(_Blocks):
    """DepthToSpace DCR: channels ordered (block_h, block_w, C), unlike pixel_shuffle (C, bh, bw)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.blocksize
        x = x.reshape(b, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(b, c // (s * s), h * s, w * s)


@converter("DepthToSpace", 1, 11, 13)
def convert_depth_to_space(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """CRD is ``nn.PixelShuffle``; DCR (the ONNX default) gets its own module."""
    del graph
    blocksize = node.attributes["blocksize"]
    mode = node.attributes.get("mode", "DCR")
    module = nn.PixelShuffle(blocksize) if mode == "CRD" else DepthToSpaceDCR(blocksize)
    return OperationConverterResult(module, onnx_mapping_from_node(node))


class SpaceToDepth(_Blocks):
    """SpaceToDepth with the ONNX channel order (block_h, block_w, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.blocksize
        x = x.reshape(b, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(b, c * s * s, h // s, w // s)


@converter("SpaceToDepth", 1, 13)
def convert_space_to_depth(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """ONNX SpaceToDepth orders channels (bh, bw, C): pixel_unshuffle orders (C, bh, bw)."""
    del graph
    return OperationConverterResult(SpaceToDepth(node.attributes["blocksize"]), onnx_mapping_from_node(node))
