"""Register (or replace) onnx2torch converters for the default ONNX domain."""

from __future__ import annotations

from collections.abc import Callable

from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, TConverter
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import get_const_value


def converter(op_type: str, *versions: int) -> Callable[[TConverter], TConverter]:
    """Decorator: make ``fn`` the converter of ``op_type`` at each of ``versions``.

    Unlike onnx2torch's ``add_converter`` it replaces an existing entry, so our fixed
    versions win over the released ones and re-registration is harmless.
    """

    def deco(fn: TConverter) -> TConverter:
        for version in versions:
            _CONVERTER_REGISTRY[OperationDescription("", op_type, version)] = fn
        return fn

    return deco


def released(op_type: str, version: int) -> TConverter:
    """The converter onnx2torch ships for ``op_type`` at exactly ``version``."""
    return _CONVERTER_REGISTRY[OperationDescription("", op_type, version)]


def const_list(node: OnnxNode, graph: OnnxGraph, index: int) -> list | None:
    """Input ``index`` of ``node`` as a Python list when it is constant, else None.

    An absent or empty-named optional input is returned as None as well.
    """
    if len(node.input_values) <= index or not node.input_values[index]:
        return None
    try:
        value = get_const_value(node.input_values[index], graph)
    except KeyError:
        return None
    return value.tolist() if hasattr(value, "tolist") else list(value)
