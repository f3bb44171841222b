"""Resize 10/11/13/18/19 and Upsample 7/9 (opset 10 deprecates it): nearest exactly for every coordinate and
nearest mode, linear for every coordinate mode but tf_crop_and_resize, cubic (a = -0.75) for half_pixel,
pytorch_half_pixel and align_corners. Resize-10 and Upsample are nearest (floor, ceil for scales < 1) or linear on ``asymmetric``
coordinates (x_in = x_out / scale), as onnxruntime computes them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter

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


def _lerp(x: torch.Tensor, axis: int, src: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``axis`` at coordinates ``src`` (clamped to the edge pixels)."""
    n = x.shape[axis]
    src = src.clamp(0, n - 1).to(x.device)
    low = src.floor().long()
    high = (low + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[axis] = -1
    w = (src - low).to(x.dtype).reshape(shape)
    return x.index_select(axis, low) * (1 - w) + x.index_select(axis, high) * w


def torch_nearest_index(n: int, out: int) -> torch.Tensor:
    """The source indices of ``F.interpolate(mode="nearest", size=...)`` along an axis of ``n`` -> ``out``: i (same
    size), i // 2 (double), else floor(i * (float32) n / out) in float32, clamped, as its CPU and CUDA kernels do."""
    i = torch.arange(out)
    if out == n:
        return i
    if out == 2 * n:
        return i // 2
    scale = torch.tensor(n, dtype=torch.float32) / out
    return (i.to(torch.float32) * scale).floor().long().clamp(max=n - 1)


def _nearest(x: torch.Tensor, indices: list[torch.Tensor]) -> torch.Tensor:
    """``x`` gathered at ``indices[i]`` along spatial axis 2 + i: by torch's nearest upsampling where its indices
    are these (every x2 and most integer upscales), else by index_select per axis (ESRGAN x2 at 128x128: index_select
    and its scatter_add backward took 1.4 ms an upsample, torch's kernels 0.5 ms)."""
    sizes = [index.numel() for index in indices]
    if 3 <= x.dim() <= 5 and all(torch.equal(index, torch_nearest_index(n, out))
                                 for index, n, out in zip(indices, x.shape[2:], sizes)):
        return F.interpolate(x, size=sizes, mode="nearest")
    for i, index in enumerate(indices):
        x = torch.index_select(x, 2 + i, index.to(x.device))
    return x


class OnnxResize(nn.Module, OnnxToTorchModule):
    """ONNX Resize of the spatial axes; nearest by index gathering, linear/cubic by interpolate where torch has
    the coordinate mode, else linear by gathering both neighbours (``_lerp``)."""

    def __init__(self, mode: str, coordinate_mode: str, nearest_mode: str, axes: list[int] | None,
                 scales: list[float] | None = None):
        super().__init__()
        self.mode, self.coordinate_mode, self.nearest_mode, self.axes = mode, coordinate_mode, nearest_mode, axes
        self.scales = scales  # Upsample-7's attribute; else the scales input

    def forward(self, x: torch.Tensor, roi: torch.Tensor | None = None, scales: torch.Tensor | None = None,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        if scales is None and self.scales is not None:
            scales = torch.tensor(self.scales, dtype=torch.float32)
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
            indices = []
            for axis in range(2, x.dim()):
                src = _source_coords(full_sizes[axis], in_shape[axis], full_scales[axis], self.coordinate_mode)
                rounding = self.nearest_mode
                if rounding == "simple":  # Resize-10 / Upsample in onnxruntime: floor, ceil when shrinking
                    rounding = "ceil" if full_scales[axis] < 1 else "floor"
                indices.append(_ROUNDING[rounding](src).clamp(0, in_shape[axis] - 1).long())
            return _nearest(x, indices)
        if self.mode == "linear" and self.coordinate_mode not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            for axis in range(2, x.dim()):
                x = _lerp(x, axis, _source_coords(full_sizes[axis], in_shape[axis], full_scales[axis], self.coordinate_mode))
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
    if mode == "cubic":
        if coordinate_mode not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise NotImplementedError(f'Resize cubic with coordinate_transformation_mode="{coordinate_mode}"')
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


def _asymmetric(node: OnnxNode) -> OnnxResize:
    """Resize-10 / Upsample: nearest (floor; ceil when shrinking, as onnxruntime) or linear on asymmetric
    coordinates."""
    mode = node.attributes.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):  # "bilinear": what some Upsample-7 exporters wrote
        raise NotImplementedError(f'{node.operation_type} mode "{mode}" is not implemented')
    return OnnxResize("nearest" if mode == "nearest" else "linear", "asymmetric", "simple", None,
                      node.attributes.get("scales"))


@converter("Resize", 10)
@converter("Upsample", 9, 10)
def convert_resize10(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Inputs (X, scales); onnx2torch's Resize-10 interpolates linear on half-pixel coordinates, not ONNX's."""
    del graph
    mapping = OnnxMapping(inputs=(node.input_values[0], "", node.input_values[1]), outputs=node.output_values)
    return OperationConverterResult(_asymmetric(node), mapping)


@converter("Upsample", 7)
def convert_upsample7(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """The scales are an attribute."""
    del graph
    return OperationConverterResult(_asymmetric(node), onnx_mapping_from_node(node))
