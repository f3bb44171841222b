"""``onnxattr inspect MODEL.onnx``: what the model is and how well it converted."""

from __future__ import annotations

from collections import Counter

import click

from .common import load, model_options, reported


def describe(model) -> dict:
    """The facts `inspect` reports, as JSON-ready values."""
    from ..l2x import rule_coverage

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
        "from_cache": model.from_cache,
        "load_seconds": {k: round(v, 3) for k, v in model.load_seconds.items()},
        "file_precision": model.adapter.precision,
        "precision_gap": model.precision_gap,
        "layout": {"input": model.adapter.input_layout, "output": model.adapter.output_layout},
        "dtype": {"input": model.adapter.input_dtype, "output": model.adapter.output_dtype},
        "channel_order": model.adapter.channel_order,
        "removed_at_output": list(model.adapter.removed),
        "adapters": list(model.adapter.reasons),
        "value_range": model.value_range,
        "value_range_source": model.value_range_source,
        "output_range": model.output_range,
        "output_range_source": model.output_range_source,
        "value_range_distance": {f"{k:g}": v for k, v in model.value_range_scores.items()},
        "size_rule": {"text": model.size_rule.describe(), "min_side": model.size_rule.min_side,
                      "multiple": model.size_rule.multiple},
        "probe_size": list(model.probe_size),
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
def command(model, list_nodes, device, threads, value_range, no_verify, channel_order, probe_size, quiet) -> dict:
    """Inputs/outputs, what was detected (layout, dtype, precision, value range, sizes) and why, scale, opset,
    op types, the conversion error vs onnxruntime and the file's own precision gap."""
    m = load(model, device, value_range, no_verify, channel_order, probe_size, threads)
    info = describe(m)
    if list_nodes:
        info["node_list"] = [{"name": n.name, "op_type": n.op_type, "onnx_name": n.onnx_name, "shape": list(n.shape)}
                             for n in m.nodes]
    err, gap = info["conversion_error"], info["precision_gap"]
    scores = ", ".join(f"{k}: {v:.3g}" for k, v in info["value_range_distance"].items())
    free = "the output" if info["dtype"]["input"] == "uint8" else "the input"
    output = ("" if info["output_range_source"] == "as the input" else
              f", output {info['output_range']:g} ({info['output_range_source']})")
    lines = [
        f"model          {info['file']}",
        f"input          {info['input']['name']} {info['input']['shape']}",
        f"detected       {info['layout']['input']} {info['dtype']['input']} -> {info['layout']['output']} "
        f"{info['dtype']['output']}, {info['file_precision']} weights, {info['channel_order'].upper()}",
        *(f"  why          {r}" for r in info["adapters"]),
        f"value range    {info['value_range']:g} ({info['value_range_source']}){output}"
        + (f"; mean |SR - bicubic| on a photo with {free} at 1 and 255: {scores}" if scores else ""),
        f"scale          x{info['scale']}" + (f" (output = {info['scale']}*in {info['offset']:+d})" if info["offset"] else ""),
        f"size           {'fixed ' + 'x'.join(map(str, info['fixed_size'][::-1])) if info['fixed_size'] else 'dynamic'}"
        f"; takes {info['size_rule']['text']}; probe {info['probe_size'][1]}x{info['probe_size'][0]}",
        f"opset          {info['opset']} ({info['producer']})",
        f"conversion     max |torch - ORT| / max |ORT| = {err:.2e} (vs the float32 graph)"
        if err is not None else "conversion     not verified",
        f"loaded in      {sum(info['load_seconds'].values()):.1f} s ("
        + ", ".join(f"{k} {v:.1f}" for k, v in info["load_seconds"].items())
        + ("; probes and graph from the cache" if info["from_cache"] else "") + ")",
        f"precision gap  {gap:.2e} ({info['file_precision']} file in ORT vs its float32 graph)"
        if gap is not None else "precision gap  not verified",
        f"batching       {info['batch_mode']}   device {info['device']}   ORT {', '.join(info['ort_providers'])}",
        f"nodes          {info['nodes']}: " + ", ".join(f"{k} {v}" for k, v in info["op_types"].items()),
        "L2X rules      " + "; ".join(f"{kind} {', '.join(ops) or '-'}" for kind, ops in info["rule_coverage"].items()),
    ]
    if list_nodes:
        lines += [f"  {n['name']:40s} {n['op_type']:20s} {tuple(n['shape'])}" for n in info["node_list"]]
    return {**info, "command": "inspect", "report": "\n".join(lines)}
