"""Resize at opsets 11, 13, 18 and 19 (nearest exactly for every coordinate mode)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from ._registry import converter

_TORCH_MODES = {("linear", 1): "linear", ("linear", 2): "bilinear", ("linear", 3): "trilinear",
                ("cubic", 2): "bicubic"}
_ROUNDING = {
    "round_prefer_floor": lambda x: torch.ceil(x - 0.5),
    "round_prefer_ceil": lambda x: torch.floor(x + 0.5),
    "floor": torch.floor,
    "ceil": torch.ceil,
}


def _source_coords(out: int, size_in: int, scale: float, mode: str) -> torch.Tensor:
    """ONNX ``coordinate_transformation_mode``: output index -> input coordinate."""
    x = torch.arange(out, dtype=torch.float64)
    if mode == "align_corners":
        return x * ((size_in - 1) / (out - 1)) if out > 1 else torch.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "pytorch_half_pixel" and out == 1:
        return torch.zeros_like(x)
    offset = size_in * (1 - out / (scale * size_in)) / 2 if mode == "half_pixel_symmetric" else 0.0
    return offset + (x + 0.5) / scale - 0.5


class OnnxResize(nn.Module, OnnxToTorchModule):
    """ONNX Resize of the spatial axes; nearest by index gathering, linear/cubic by interpolate."""

    def __init__(self, mode: str, coordinate_mode: str, nearest_mode: str, axes: list[int] | None):
        super().__init__()
        self.mode, self.coordinate_mode, self.nearest_mode, self.axes = mode, coordinate_mode, nearest_mode, axes

    def forward(self, x: torch.Tensor, roi: torch.Tensor | None = None, scales: torch.Tensor | None = None,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        in_shape = list(x.shape)
        axes = [a % x.dim() for a in self.axes] if self.axes else list(range(x.dim()))
        full_scales, full_sizes = [1.0] * x.dim(), list(in_shape)
        if sizes is not None and sizes.numel():
            for axis, size in zip(axes, sizes.tolist()):
                full_sizes[axis], full_scales[axis] = int(size), size / in_shape[axis]
        else:
            for axis, scale in zip(axes, scales.tolist()):
                full_sizes[axis], full_scales[axis] = math.floor(in_shape[axis] * scale), scale
        if full_sizes[:2] != in_shape[:2]:
            raise NotImplementedError("Resize of the batch or channel axis is not implemented")
        if self.mode == "nearest":
            for axis in range(2, x.dim()):
                src = _source_coords(full_sizes[axis], in_shape[axis], full_scales[axis], self.coordinate_mode)
                index = _ROUNDING[self.nearest_mode](src).clamp(0, in_shape[axis] - 1).long()
                x = torch.index_select(x, axis, index.to(x.device))
            return x
        by_size = sizes is not None and sizes.numel() > 0
        return F.interpolate(x, size=full_sizes[2:] if by_size else None,
                             scale_factor=None if by_size else full_scales[2:],
                             mode=_TORCH_MODES[(self.mode, x.dim() - 2)],
                             align_corners=self.coordinate_mode == "align_corners")


@converter("Resize", 11, 13, 18, 19)
def convert_resize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Reject attribute values whose torch equivalent would not match onnxruntime."""
    del graph
    attrs = node.attributes
    mode = attrs.get("mode", "nearest")
    coordinate_mode = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode != "nearest":
        if coordinate_mode not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise NotImplementedError(f'Resize {mode} with coordinate_transformation_mode="{coordinate_mode}"')
        if attrs.get("cubic_coeff_a", -0.75) != -0.75 or attrs.get("exclude_outside", 0):
            raise NotImplementedError("Resize cubic with cubic_coeff_a != -0.75 or exclude_outside=1")
    if coordinate_mode == "tf_crop_and_resize":
        raise NotImplementedError('Resize with coordinate_transformation_mode="tf_crop_and_resize"')
    if attrs.get("antialias", 0):
        raise NotImplementedError("Resize with antialias=1")
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NotImplementedError(f'Resize with keep_aspect_ratio_policy="{attrs["keep_aspect_ratio_policy"]}"')
    module = OnnxResize(mode, coordinate_mode, attrs.get("nearest_mode", "round_prefer_floor"), attrs.get("axes"))
    return OperationConverterResult(module, onnx_mapping_from_node(node))
