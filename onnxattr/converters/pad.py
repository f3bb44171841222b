"""Pad at opsets 18 to 25 (``axes`` input, ``wrap`` mode) and Pad-2 (opsets 2-10: ``pads`` and ``value``
attributes; onnx2torch's drops ``value``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node
from torch import nn

from .registration import const_list, converter

_TORCH_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class OnnxPad(nn.Module, OnnxToTorchModule):
    """ONNX ``pads`` ([begins..., ends...] over ``axes``) applied with ``F.pad``."""

    def __init__(self, mode: str, pads: list[int] | None, axes: list[int] | None, value: float = 0.0):
        super().__init__()
        self.mode, self.pads, self.axes, self.value = mode, pads, axes, value

    def forward(self, x: torch.Tensor, pads: torch.Tensor | None = None,
                constant_value: torch.Tensor | None = None) -> torch.Tensor:
        onnx_pads = pads.tolist() if pads is not None else self.pads
        axes = [a % x.dim() for a in self.axes] if self.axes is not None else list(range(x.dim()))
        begin, end = [0] * x.dim(), [0] * x.dim()
        for i, axis in enumerate(axes):
            begin[axis], end[axis] = onnx_pads[i], onnx_pads[i + len(axes)]
        first = next((a for a in range(x.dim()) if begin[a] or end[a]), x.dim())
        if self.mode != "constant":
            first = max(min(first, 2), x.dim() - 3)  # F.pad pads the last 1-3 axes in these modes
            if any(begin[:first] + end[:first]):
                raise NotImplementedError(f"Pad {self.mode} of the batch or channel axis is not implemented")
        torch_pads = [p for axis in reversed(range(first, x.dim())) for p in (begin[axis], end[axis])]
        if self.mode != "constant":
            return F.pad(x, torch_pads, mode=self.mode)
        given = constant_value is not None and constant_value.numel()
        value = float(constant_value.item()) if given else self.value
        return F.pad(x, torch_pads, mode="constant", value=value)


def _mode(node: OnnxNode) -> str:
    mode = node.attributes.get("mode", "constant")
    if mode not in _TORCH_MODES:
        raise NotImplementedError(f'Pad mode "{mode}" is not implemented')
    return _TORCH_MODES[mode]


@converter("Pad", 2)
def convert_pad2(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Everything is an attribute."""
    del graph
    module = OnnxPad(_mode(node), list(node.attributes["pads"]), None, float(node.attributes.get("value", 0.0)))
    return OperationConverterResult(module, onnx_mapping_from_node(node))


@converter("Pad", 18, 19, 21, 23, 24, 25)
def convert_pad(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    """Constant ``pads`` and ``axes`` are stored; a dynamic ``pads`` stays an input."""
    mode = _mode(node)
    pads = const_list(node, graph, 1)
    axes = const_list(node, graph, 3)
    if len(node.input_values) > 3 and node.input_values[3] and axes is None:
        raise NotImplementedError("Pad with a dynamic axes input is not implemented")
    value = node.input_values[2] if len(node.input_values) > 2 else ""
    inputs = (node.input_values[0], "" if pads is not None else node.input_values[1], value)
    module = OnnxPad(mode, pads, axes)
    return OperationConverterResult(module, OnnxMapping(inputs=tuple(inputs), outputs=node.output_values))
