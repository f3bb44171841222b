"""Where a converted graph goes wrong: the first node that differs from onnxruntime, or that makes NaN/Inf.

Both run the graph node by node (``convert.run_hooked``) on one input in the graph's own units and name the
ONNX node, so an error message can say whether a converter or the model itself is at fault.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import fx

from .convert import OpTable, run_hooked


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (the conversion check's measure)."""
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def first_divergence(proto: onnx.ModelProto, graph: fx.GraphModule, ops: OpTable, input_name: str, x: np.ndarray,
                     tolerance: float) -> str:
    """Name the first node (graph order) whose torch output differs from onnxruntime's on ``x`` (the graph's units)
    by more than ``tolerance`` (relative max)."""
    from onnx2torch.onnx_graph import OnnxGraph

    onnx_nodes = OnnxGraph(proto.graph).nodes
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    known = {o.name for o in probe.graph.output}
    value_of: dict[str, str] = {}
    for n in graph.graph.nodes:
        if n.op == "call_module" and n.target in onnx_nodes:
            value = onnx_nodes[n.target].output_values[0]
            value_of[n.name] = value
            if value not in known:
                probe.graph.output.append(onnx.ValueInfoProto(name=value))
                known.add(value)
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        ort_vals = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {input_name: x})))
    except Exception:  # noqa: BLE001  (diagnosis only)
        return "the first diverging node could not be located"
    torch_vals: dict[str, torch.Tensor] = {}

    def keep(name: str, value: torch.Tensor) -> torch.Tensor:
        torch_vals[name] = value
        return value

    device = next(iter(graph.parameters()), torch.empty(0)).device
    with torch.no_grad():
        run_hooked(graph, torch.from_numpy(x).to(device), value_of, keep)
    for name, value in value_of.items():
        ref, got = ort_vals.get(value), torch_vals.get(name)
        if ref is None or not isinstance(got, torch.Tensor) or tuple(got.shape) != ref.shape:
            continue
        err = relative_error(got.detach().cpu().double().numpy(), ref)
        if err > tolerance:
            return f"first diverging node {ops[name][1]!r} ({ops[name][0]}, relative error {err:.2e})"
    return "no single node diverges beyond the tolerance (errors accumulate)"


def first_nonfinite_node(graph: fx.GraphModule, ops: OpTable, x: torch.Tensor) -> str | None:
    """'name' (op type) of the first node, in graph order, whose output holds NaN or Inf on ``x`` (1, C, H, W) in the
    graph's units."""
    found: list[str] = []

    def look(name: str, value: Any) -> Any:
        if not found and isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            found.append(name)
        return value

    with torch.no_grad():
        run_hooked(graph, x, ops, look)
    return f"{ops[found[0]][1]!r} ({ops[found[0]][0]})" if found else None
