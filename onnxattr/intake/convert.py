"""The core ONNX graph as a torch.fx graph: conversion (onnx2torch plus ``onnxattr.converters``), the table from fx
nodes to ONNX nodes, and node-by-node runs in which chosen nodes' outputs can be read or replaced."""

from __future__ import annotations

from typing import Callable, Iterable

import onnx
import torch
from torch import fx

from ..errors import OnnxAttrError, error_line

OpTable = dict[str, tuple[str, str]]  # fx node name -> (ONNX op type, ONNX node name)
OnNode = Callable[[str, torch.Tensor], torch.Tensor]


def convert(core: onnx.ModelProto, name: str) -> tuple[fx.GraphModule, onnx.ModelProto]:
    """The converted graph (eval mode) and the cleaned ONNX model it came from; a one-line error when it fails."""
    from ..converters import to_torch  # the heavy import (onnxscript) counts as converting

    try:
        return to_torch(core)
    except OnnxAttrError:
        raise
    except Exception as err:  # noqa: BLE001  (onnx2torch raises bare exceptions for many conversion faults)
        raise OnnxAttrError(f"cannot convert {name} to torch: {error_line(err)}") from err


def rebuild(prepared: onnx.ModelProto, name: str) -> fx.GraphModule:
    """The converted graph of a core ``convert`` cleaned before (a cache entry's): the cleaning is skipped."""
    from ..converters import build

    try:
        return build(prepared)
    except OnnxAttrError:
        raise
    except Exception as err:  # noqa: BLE001  (as convert)
        raise OnnxAttrError(f"cannot convert {name} to torch: {error_line(err)}") from err


def op_table(prepared: onnx.ModelProto, graph: fx.GraphModule) -> OpTable:
    """fx node name -> (ONNX op type, ONNX node name), for module nodes and their getitem outputs."""
    from onnx2torch.onnx_graph import OnnxGraph

    onnx_nodes = OnnxGraph(prepared.graph).nodes
    table: OpTable = {}
    for n in graph.graph.nodes:
        if n.op == "call_module" and n.target in onnx_nodes:
            on = onnx_nodes[n.target]
            table[n.name] = (on.operation_type, on.name or n.target)
        elif n.op == "call_function" and n.args and isinstance(n.args[0], fx.Node) and n.args[0].name in table:
            op, onnx_name = table[n.args[0].name]
            table[n.name] = (op, f"{onnx_name}[{n.args[1]}]")
    return table


class _Hooked(fx.Interpreter):
    """Runs the graph node by node, passing watched nodes' outputs through ``on_node(name, value)``."""

    def __init__(self, gm: fx.GraphModule, watch: set[str], on_node: OnNode):
        super().__init__(gm)
        self.watch, self.on_node = watch, on_node

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        return self.on_node(n.name, out) if n.name in self.watch else out


def run_hooked(graph: fx.GraphModule, x: torch.Tensor, watch: Iterable[str], on_node: OnNode) -> torch.Tensor:
    """One node-by-node forward of ``graph`` on ``x`` (the graph's own units); each watched node's output passes
    through ``on_node(name, value)``, whose return value flows on (it may record or replace it)."""
    return _Hooked(graph, set(watch), on_node).run(x)
