"""``auto_pad`` SAME_UPPER / SAME_LOWER, computed from the input size at run time (tf2onnx writes
SAME_UPPER whenever H, W are dynamic); used by conv.py and pool.py.

ONNX's definitions (operators.md, Conv / ConvTranspose / pooling):

* Conv, pooling: ``out = ceil(in / stride)``, ``total = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - in)``;
  SAME_UPPER puts ``total // 2`` at the start and the odd pixel at the end, SAME_LOWER the reverse.
* ConvTranspose: ``out = output_shape`` if given, else ``in * stride`` (SAME) or from ``pads``;
  ``total = stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - out``; SAME_UPPER puts
  ``total // 2`` at the start, anything else (SAME_LOWER, output_shape with NOTSET) ``total - total // 2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from onnx import helper
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult
from torch import nn


SAME = ("SAME_UPPER", "SAME_LOWER")


def same_pads(sizes: list[int], kernel: list[int], strides: list[int], dilations: list[int],
              auto_pad: str) -> tuple[list[int], list[int]]:
    """(begins, ends) of Conv / pooling ``auto_pad`` SAME_* for spatial ``sizes``: out = ceil(in / stride)."""
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return begins, ends


def onnx_pads(attrs: dict, sizes: list[int], kernel: list[int]) -> tuple[list[int], list[int]]:
    """(begins, ends) of a Conv / pooling node on spatial ``sizes``: SAME_* computed, VALID none, else ``pads``."""
    rank, auto_pad = len(sizes), attrs.get("auto_pad", "NOTSET")
    if auto_pad in SAME:
        return same_pads(sizes, kernel, *spatial(attrs, rank), auto_pad)
    if auto_pad == "VALID":
        return [0] * rank, [0] * rank
    pads = list(attrs.get("pads", [0] * 2 * rank))
    return pads[:rank], pads[rank:]


def torch_pads(begins: list[int], ends: list[int]) -> list[int]:
    """F.pad's order: last axis first, (begin, end) each."""
    return [p for axis in reversed(range(len(begins))) for p in (begins[axis], ends[axis])]


def spatial(attrs: dict, rank: int) -> tuple[list[int], list[int]]:
    """(strides, dilations), 1 where absent."""
    return list(attrs.get("strides", [1] * rank)), list(attrs.get("dilations", [1] * rank))


class OnnxSamePad(nn.Module, OnnxToTorchModule):
    """Pads the spatial axes as ``auto_pad`` SAME_* asks for this input's size (``value`` outside)."""

    def __init__(self, kernel: list[int], strides: list[int], dilations: list[int], auto_pad: str, value: float = 0.0):
        super().__init__()
        self.kernel, self.strides, self.dilations, self.auto_pad, self.value = kernel, strides, dilations, auto_pad, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        begins, ends = same_pads(list(x.shape[2:]), self.kernel, self.strides, self.dilations, self.auto_pad)
        return F.pad(x, torch_pads(begins, ends), value=self.value) if any(begins + ends) else x


def with_attributes(node: OnnxNode, **changes) -> OnnxNode:
    """A copy of ``node`` with attributes replaced (None drops one)."""
    attrs = {k: v for k, v in {**node.attributes, **changes}.items() if v is not None}
    proto = helper.make_node(node.operation_type, node.input_values, node.output_values, name=node.name,
                             domain=node.domain, **attrs)
    return OnnxNode(proto, node.unique_name)


def kernel_of(node: OnnxNode, graph: OnnxGraph) -> list[int]:
    """``kernel_shape``, else the weight initializer's spatial shape."""
    if "kernel_shape" in node.attributes:
        return list(node.attributes["kernel_shape"])
    return list(graph.initializers[node.input_values[1]].to_torch().shape[2:])


def same_wrapped(node: OnnxNode, graph: OnnxGraph, kernel: list[int], value: float, inner) -> OperationConverterResult:
    """SAME_*: ``OnnxSamePad`` then ``inner`` (the op without padding), one module."""
    strides, dilations = spatial(node.attributes, len(kernel))
    unpadded = with_attributes(node, auto_pad=None, pads=[0] * 2 * len(kernel))
    result = inner(unpadded, graph)
    pad = OnnxSamePad(kernel, strides, dilations, node.attributes["auto_pad"], value)
    return OperationConverterResult(nn.Sequential(pad, result.torch_module), result.onnx_mapping)
