"""``onnxattr inspect MODEL.onnx``: what the model is and how well it converted."""

from __future__ import annotations

from collections import Counter

import click

from .common import load, model_options, reported

WHOLE = object()  # the report's line with the whole command's time, known only when it ends


def describe(model) -> dict:
    """The facts `inspect` reports, as JSON-ready values: the model's ``facts()`` laid out for reading, and what
    only a loaded graph tells (its nodes, the batch mode, onnxruntime's providers, L2X's rule coverage)."""
    from ..methods.l2x import rule_coverage

    f = model.facts()
    return {
        "file": f.path, "sha256": f.sha256,
        "input": {"name": f.input_name, "shape": list(f.input_shape)}, "output": f.output_name,
        "file_input": {"name": f.file_input_name, "shape": list(f.file_input_shape)},
        "file_output": {"name": f.file_output_name, "shape": list(f.file_output_shape)},
        "scale": f.scale, "offset": f.offset, "in_channels": f.in_channels,
        "fixed_size": list(f.fixed_size) if f.fixed_size else None, "opset": f.opset, "producer": f.producer,
        "op_types": dict(sorted(Counter(n.op_type for n in model.nodes).items())), "nodes": len(model.nodes),
        "conversion_error": f.conversion_error, "from_cache": f.from_cache,
        "load_seconds": {k: round(v, 3) for k, v in f.load_seconds.items()},
        "file_precision": f.file_precision, "precision_gap": f.precision_gap,
        "layout": {"input": f.input_layout, "output": f.output_layout},
        "dtype": {"input": f.input_dtype, "output": f.output_dtype}, "channel_order": f.channel_order,
        "removed_at_output": list(f.removed_at_output), "adapters": list(f.adapter_reasons),
        "value_range": f.value_range, "value_range_source": f.value_range_source, "output_range": f.output_range,
        "output_range_source": f.output_range_source, "value_range_distance": dict(f.value_range_scores),
        "size_rule": {"text": f.size_rule, "min_side": f.min_side, "multiple": f.multiple},
        "probe_size": list(f.probe_size), "batch_mode": model.batch_mode, "device": f.device,
        "ort_providers": model.session.get_providers(), "rule_coverage": rule_coverage(model),
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
    fi, fo = info["file_input"], info["file_output"]
    scores = ", ".join(f"{k}: {v:.3g}" for k, v in info["value_range_distance"].items())
    free = "the output" if info["dtype"]["input"] == "uint8" else "the input"
    output = ("" if info["output_range_source"] == "as the input" else
              f", output {info['output_range']:g} ({info['output_range_source']})")
    lines = [
        f"model          {info['file']}",
        f"file           {fi['name']} [{', '.join(map(str, fi['shape']))}] -> {fo['name']} "
        f"[{', '.join(map(str, fo['shape']))}] (what the file itself takes and returns)",
        f"core           {info['input']['name']} {info['input']['shape']} (what the graph and every method take)",
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
        WHOLE,
        f"precision gap  {gap:.2e} ({info['file_precision']} file in ORT vs its float32 graph)"
        if gap is not None else "precision gap  not verified",
        f"batching       {info['batch_mode']}   device {info['device']}   ORT {', '.join(info['ort_providers'])}",
        f"nodes          {info['nodes']}: " + ", ".join(f"{k} {v}" for k, v in info["op_types"].items()),
        "L2X rules      " + "; ".join(f"{kind} {', '.join(ops) or '-'}" for kind, ops in info["rule_coverage"].items()),
    ]
    if list_nodes:
        lines += [f"  {n['name']:40s} {n['op_type']:20s} {tuple(n['shape'])}" for n in info["node_list"]]
    def report(command_s: float) -> str:
        whole = (f"command        {command_s:.1f} s in all (the load, imports, the batching check, the node list "
                 "and the L2X rules)")
        return "\n".join(whole if line is WHOLE else line for line in lines)

    return {**info, "command": "inspect", "report": report}
