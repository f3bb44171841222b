"""GlobalMaxPool 1/22; MaxPool 1/8/10/11/12/22 and AveragePool 7/10/11/19/22 with ``auto_pad`` SAME_UPPER / SAME_LOWER (the
padding computed from the input size) and asymmetric pads; AveragePool's ``count_include_pad`` either way."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter, released
from .auto_pad import SAME, onnx_pads, same_wrapped, spatial, torch_pads

class OnnxAveragePool(nn.Module, OnnxToTorchModule):
    """AveragePool with explicit (asymmetric) or SAME_* pads: sum over the zero-padded window divided by
    the window size (``count_include_pad=1``) or by the count of real pixels in it."""

    def __init__(self, attrs: dict):
        super().__init__()
        self.attrs = attrs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = list(self.attrs["kernel_shape"])
        begins, ends = onnx_pads(self.attrs, list(x.shape[2:]), kernel)
        rank = x.dim() - 2
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[rank]
        kwargs = {"kernel_size": kernel, "stride": spatial(self.attrs, rank)[0],
                  "ceil_mode": bool(self.attrs.get("ceil_mode", 0))}
        padded = F.pad(x, torch_pads(begins, ends))
        mean = pool(padded, **kwargs)
        if self.attrs.get("count_include_pad", 0):
            return mean
        ones = F.pad(torch.ones_like(x[:1, :1]), torch_pads(begins, ends))
        return mean / pool(ones, **kwargs)


_RELEASED_AVG = released("AveragePool", 11)


@converter("AveragePool", 7, 10, 11, 19, 22)
def convert_average_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Symmetric explicit pads: onnx2torch's ``nn.AvgPoolNd``; SAME_* or asymmetric pads: ``OnnxAveragePool``.
    19 added ``dilations``: only the undilated pool is converted."""
    attrs = dict(node.attributes)
    if any(d != 1 for d in attrs.get("dilations", [])):
        raise NotImplementedError("AveragePool with dilations is not implemented")
    rank = len(attrs["kernel_shape"])
    pads = list(attrs.get("pads", [0] * 2 * rank))
    if attrs.get("auto_pad", "NOTSET") in SAME or pads[:rank] != pads[rank:]:
        return OperationConverterResult(OnnxAveragePool(attrs), onnx_mapping_from_node(node))
    return _RELEASED_AVG(node, graph)


_RELEASED_MAX = released("MaxPool", 12)


@converter("MaxPool", 1, 8, 10, 11, 12, 22)
def convert_max_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """onnx2torch's ``nn.MaxPoolNd``; SAME_* behind an ``OnnxSamePad`` of -inf. Opset 1 has no dilations,
    ceil_mode or storage_order (their defaults)."""
    if node.attributes.get("auto_pad", "NOTSET") in SAME:
        return same_wrapped(node, graph, list(node.attributes["kernel_shape"]), float("-inf"), _RELEASED_MAX)
    return _RELEASED_MAX(node, graph)


class OnnxGlobalMaxPool(nn.Module, OnnxToTorchModule):
    """max over the spatial axes, kept as size 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@converter("GlobalMaxPool", 1, 22)
def convert_global_max_pool(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    del graph
    return OperationConverterResult(OnnxGlobalMaxPool(), onnx_mapping_from_node(node))
