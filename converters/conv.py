"""Conv and ConvTranspose 1/11/22, also when the weight or bias is not an initializer (Constant or computed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from ._registry import converter, released

_RELEASED = {op: released(op, 11) for op in ("Conv", "ConvTranspose")}  # = v1; v22 only added bfloat16
_FUNCTIONS = {("Conv", 1): F.conv1d, ("Conv", 2): F.conv2d, ("Conv", 3): F.conv3d,
              ("ConvTranspose", 1): F.conv_transpose1d, ("ConvTranspose", 2): F.conv_transpose2d,
              ("ConvTranspose", 3): F.conv_transpose3d}


class OnnxConvFunctional(nn.Module, OnnxToTorchModule):
    """Convolution with weight and bias taken as inputs; asymmetric Conv pads applied first."""

    def __init__(self, op_type: str, attrs: dict):
        super().__init__()
        self.op_type, self.attrs = op_type, attrs

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        rank = weight.dim() - 2
        pads = list(self.attrs.get("pads", [0] * 2 * rank))
        begin, end = pads[:rank], pads[rank:]
        kwargs = {"stride": self.attrs.get("strides", 1), "dilation": self.attrs.get("dilations", 1),
                  "groups": self.attrs.get("group", 1), "padding": begin}
        if self.op_type == "ConvTranspose":
            kwargs["output_padding"] = self.attrs.get("output_padding", 0)
        elif begin != end:
            x = F.pad(x, [p for axis in reversed(range(rank)) for p in (begin[axis], end[axis])])
            kwargs["padding"] = 0
        return _FUNCTIONS[(self.op_type, rank)](x, weight, bias, **kwargs)


@converter("Conv", 1, 11, 22)
@converter("ConvTranspose", 1, 11, 22)
def convert_conv(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Initializer weights: onnx2torch's ``nn.ConvNd``; other weights: a functional convolution."""
    params = [name for name in node.input_values[1:] if name]
    if all(name in graph.initializers for name in params):
        return _RELEASED[node.operation_type](node, graph)
    attrs = dict(node.attributes)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f'{node.operation_type} with auto_pad="{attrs["auto_pad"]}" is not implemented')
    pads = attrs.get("pads")
    if node.operation_type == "ConvTranspose" and (attrs.get("output_shape") or
                                                   (pads and pads[: len(pads) // 2] != pads[len(pads) // 2:])):
        raise NotImplementedError("ConvTranspose with output_shape or asymmetric pads is not implemented")
    return OperationConverterResult(OnnxConvFunctional(node.operation_type, attrs), onnx_mapping_from_node(node))
