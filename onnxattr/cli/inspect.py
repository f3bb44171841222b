"""``onnxattr inspect MODEL.onnx``: what the model is and how well it converted."""

from __future__ import annotations

from collections import Counter

import click

from ..l2x import rule_coverage
from .common import load, model_options, reported


def describe(model) -> dict:
    """The facts `inspect` reports, as JSON-ready values."""
    return {
        "file": str(model.path),
        "sha256": model.sha256,
        "input": {"name": model.spec.input_name, "shape": ["N" if model.spec.batch is None else 1, model.in_channels,
                  model.spec.height or "H", model.spec.width or "W"]},
        "output": model.spec.output_name,
        "scale": model.scale,
        "offset": model.offset,
        "in_channels": model.in_channels,
        "fixed_size": list(model.fixed_size) if model.fixed_size else None,
        "opset": model.opset,
        "producer": model.producer,
        "op_types": dict(sorted(Counter(n.op_type for n in model.nodes).items())),
        "nodes": len(model.nodes),
        "conversion_error": model.conversion_error,
        "batch_mode": model.batch_mode,
        "device": str(model.device),
        "ort_providers": model.session.get_providers(),
        "rule_coverage": rule_coverage(model),
    }


@click.command(name="inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--nodes", "list_nodes", is_flag=True, help="Also list every tappable node.")
@model_options
@reported
def command(model, list_nodes, device, value_range, no_verify, quiet) -> dict:
    """Inputs/outputs, scale, size, opset, op types and the conversion error vs onnxruntime."""
    m = load(model, device, value_range, no_verify)
    info = describe(m)
    if list_nodes:
        info["node_list"] = [{"name": n.name, "op_type": n.op_type, "onnx_name": n.onnx_name, "shape": list(n.shape)}
                             for n in m.nodes]
    err = info["conversion_error"]
    lines = [
        f"model          {info['file']}",
        f"input          {info['input']['name']} {info['input']['shape']}",
        f"scale          x{info['scale']}" + (f" (output = {info['scale']}*in {info['offset']:+d})" if info["offset"] else ""),
        f"size           {'fixed ' + 'x'.join(map(str, info['fixed_size'][::-1])) if info['fixed_size'] else 'dynamic'}",
        f"opset          {info['opset']} ({info['producer']})",
        f"conversion     max |torch - ORT| / max |ORT| = {err:.2e}" if err is not None else "conversion     not verified",
        f"batching       {info['batch_mode']}   device {info['device']}   ORT {', '.join(info['ort_providers'])}",
        f"nodes          {info['nodes']}: " + ", ".join(f"{k} {v}" for k, v in info["op_types"].items()),
        "L2X rules      " + "; ".join(f"{kind} {', '.join(ops) or '-'}" for kind, ops in info["rule_coverage"].items()),
    ]
    if list_nodes:
        lines += [f"  {n['name']:40s} {n['op_type']:20s} {tuple(n['shape'])}" for n in info["node_list"]]
    return {**info, "command": "inspect", "report": "\n".join(lines)}
