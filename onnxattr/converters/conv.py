"""Conv 1/11/22 and ConvTranspose 1/11/22: every ``auto_pad`` (NOTSET, VALID, SAME_UPPER, SAME_LOWER with
the padding computed from the input size), asymmetric pads, ConvTranspose ``output_shape`` / ``output_padding``
as ONNX defines them, and weights or biases that are not initializers (Constant or computed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import converter, released
from .auto_pad import SAME, kernel_of, onnx_pads, same_wrapped, spatial, torch_pads

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class OnnxConvTranspose(nn.Module, OnnxToTorchModule):
    """ConvTranspose by the definition: the full transposed convolution (no padding), then each spatial axis
    cut (or zero-extended) to [begin, begin + out) with the ONNX pads or output_shape, then the bias."""

    def __init__(self, attrs: dict):
        super().__init__()
        self.attrs = attrs

    def _pads(self, sizes: list[int], kernel: list[int]) -> tuple[list[int], list[int]]:
        a, rank = self.attrs, len(sizes)
        strides, dilations = spatial(a, rank)
        adjust = list(a.get("output_padding", [0] * rank))
        full = [s * (n - 1) + adj + (k - 1) * d + 1 for n, k, s, d, adj in zip(sizes, kernel, strides, dilations, adjust)]
        auto_pad = a.get("auto_pad", "NOTSET")
        if a.get("output_shape") or auto_pad in SAME:
            outs = list(a["output_shape"])[-rank:] if a.get("output_shape") else [n * s for n, s in zip(sizes, strides)]
            totals = [f - o for f, o in zip(full, outs)]
            begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
            return begins, [t - b for t, b in zip(totals, begins)]
        if auto_pad == "VALID":
            return [0] * rank, [0] * rank
        pads = list(a.get("pads", [0] * 2 * rank))
        return pads[:rank], pads[rank:]

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        rank = weight.dim() - 2
        strides, dilations = spatial(self.attrs, rank)
        y = _CONV_T[rank](x, weight, stride=strides, dilation=dilations, groups=self.attrs.get("group", 1))
        begins, ends = self._pads(list(x.shape[2:]), list(weight.shape[2:]))
        adjust = list(self.attrs.get("output_padding", [0] * rank))
        ends = [e - adj for e, adj in zip(ends, adjust)]  # output_padding rows lie past the full output: zeros
        y = F.pad(y, [-p for p in torch_pads(begins, ends)])
        return y if bias is None else y + bias.reshape(-1, *[1] * rank)


class OnnxConv(nn.Module, OnnxToTorchModule):
    """Conv with weight and bias as inputs; explicit (also asymmetric) or SAME_* pads applied first."""

    def __init__(self, attrs: dict):
        super().__init__()
        self.attrs = attrs

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        rank = weight.dim() - 2
        strides, dilations = spatial(self.attrs, rank)
        begins, ends = onnx_pads(self.attrs, list(x.shape[2:]), list(weight.shape[2:]))
        if begins != ends:
            x, begins = F.pad(x, torch_pads(begins, ends)), [0] * rank
        return _CONV[rank](x, weight, bias, stride=strides, dilation=dilations, groups=self.attrs.get("group", 1),
                           padding=begins)


_RELEASED_CONV = released("Conv", 11)  # = v1; v22 only added bfloat16


@converter("Conv", 1, 11, 22)
def convert_conv(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Initializer weights, no SAME: onnx2torch's ``nn.ConvNd``; SAME_*: the same behind ``OnnxSamePad``;
    weights that are not initializers (Constant or computed): ``OnnxConv``."""
    params = [name for name in node.input_values[1:] if name]
    if not all(name in graph.initializers for name in params):
        return OperationConverterResult(OnnxConv(dict(node.attributes)), onnx_mapping_from_node(node))
    if node.attributes.get("auto_pad", "NOTSET") in SAME:
        return same_wrapped(node, graph, kernel_of(node, graph), 0.0, _RELEASED_CONV)
    return _RELEASED_CONV(node, graph)


_RELEASED_CONV_T = released("ConvTranspose", 11)


@converter("ConvTranspose", 1, 11, 22)
def convert_conv_transpose(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Symmetric explicit pads with initializer weights: onnx2torch's ``nn.ConvTransposeNd``; SAME_*,
    ``output_shape``, asymmetric pads or weights that are not initializers: ``OnnxConvTranspose``."""
    attrs = dict(node.attributes)
    params = [name for name in node.input_values[1:] if name]
    pads = list(attrs.get("pads", []))
    plain = (attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID") and not attrs.get("output_shape")
             and pads[: len(pads) // 2] == pads[len(pads) // 2:])
    if plain and all(name in graph.initializers for name in params):
        return _RELEASED_CONV_T(node, graph)
    return OperationConverterResult(OnnxConvTranspose(attrs), onnx_mapping_from_node(node))
