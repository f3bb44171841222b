"""Input/output adapters: any SR file's precision, layout, dtype and channel order onto one float32 core graph.

``adapt(proto)`` returns the *core*: an ONNX model whose single input is a float32 (N, C, H, W) image in
RGB order and whose single output is float32 (N, C, sH, sW) RGB, both in the file's own value units
(0..1 or 0..255). It is the file with

- float16 / bfloat16 initializers, Constant values and Cast targets upcast to float32, so Cast pairs
  around float16 compute become identities (the file's precision is named in ``Adapter.precision``);
- a channels-last (N, H, W, C) input or output, or one image without a batch dim ((H, W, C) or (C, H, W)),
  wrapped in Transposes and Squeeze / Unsqueeze (layout read from the shapes);
- a uint8 input retyped to float: its values may pass through data-movement ops (Split, Concat, Transpose,
  Reshape, Squeeze, Unsqueeze, Slice, constant-index Gather, Identity: ``pipeline.integer_flow``), which stay in
  the core as float ops, to their Casts to float, which become identities; at a uint8 output, the final Cast,
  Round and Clip(0, 255) removed (before any data-movement ops that follow them): the core is differentiable in
  float;
- for a BGR end, the channel order reversed there. An end whose ops reverse the channel axis (Split + Concat in
  reverse order, Gather or Slice with step -1: ``pipeline.channel_flips``) takes or returns BGR ('auto', the
  default); ``channel_order='rgb'`` or ``'bgr'`` sets both ends.

Pre/post-processing inside the graph (Transpose, Mul/Div by 255, Sub mean) stays as it is.
``Adapter.to_file`` / ``from_file`` map core-layout arrays to what the original file takes and back,
so the original can run in onnxruntime beside the core (the precision gap). I/O only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import OnnxAttrError
from .onnxfile import dims_of, image_io, opset_of
from .pipeline import Axis, Graph, channel_flips, integer_flow, uint8_tail

_LOW_FLOATS = {TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}
_DTYPES = {TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", **_LOW_FLOATS}
CORE_INPUT, CORE_OUTPUT = "onnxattr_image", "onnxattr_sr"
CHANNEL_ORDERS = ("auto", "rgb", "bgr")
LAYOUTS = {"NCHW": (4, 1), "NHWC": (4, 3), "HWC": (3, 2), "CHW": (3, 0)}  # layout -> (rank, channel axis)


@dataclass(frozen=True)
class Adapter:
    """How the original file differs from its core: layouts, I/O dtypes, compute precision, channel orders."""

    input_name: str
    output_name: str
    input_layout: str  # "NCHW", "NHWC", or one image without a batch dim: "HWC", "CHW"
    output_layout: str
    input_dtype: str  # "float32", "float16", "bfloat16" or "uint8"
    output_dtype: str
    precision: str  # lowest float type of the file's weights and compute: "float32", "float16", "bfloat16"
    channel_order: str  # "rgb" or "bgr": what the input takes
    removed: tuple[str, ...]  # ops taken off the output end (e.g. "Clip", "Round", "Cast")
    reasons: tuple[str, ...]  # one line per decision, for `inspect`
    output_channel_order: str = ""  # "rgb" or "bgr": what the output returns ("": as the input)
    input_shape: tuple[int | str, ...] = ()  # the file's declared input and output shapes (names where symbolic)
    output_shape: tuple[int | str, ...] = ()

    @property
    def output_order(self) -> str:
        return self.output_channel_order or self.channel_order

    @property
    def orders(self) -> str:
        """'rgb', 'bgr', or 'bgr in, rgb out' where the ends differ."""
        if self.output_order == self.channel_order:
            return self.channel_order
        return f"{self.channel_order} in, {self.output_order} out"

    @property
    def changed(self) -> bool:
        """True when the core is not the file itself."""
        return (self.input_layout, self.output_layout, self.input_dtype, self.output_dtype, self.precision,
                self.channel_order, self.output_order) != ("NCHW", "NCHW", "float32", "float32", "float32", "rgb",
                                                           "rgb") or bool(self.removed)

    def to_file(self, x: np.ndarray) -> np.ndarray:
        """Core input (N, C, H, W) float, file units -> the array the original file takes (N = 1 for a file
        without a batch dim)."""
        x = np.asarray(x, dtype=np.float32)
        if self.channel_order == "bgr":
            x = x[:, ::-1]
        if self.input_layout in ("HWC", "CHW"):
            if x.shape[0] != 1:
                raise ValueError(f"the file takes one image ({self.input_layout}), got a batch of {x.shape[0]}")
            x = x[0]
        if self.input_layout in ("NHWC", "HWC"):
            x = np.moveaxis(x, -3, -1)
        x = np.ascontiguousarray(x)
        if self.input_dtype == "uint8":
            return np.clip(np.round(x), 0, 255).astype(np.uint8)
        return x.astype(np.float16) if self.input_dtype == "float16" else x

    def from_file(self, y: np.ndarray) -> np.ndarray:
        """The original file's output -> core output (N, C, sH, sW) float32, file units."""
        y = np.asarray(y).astype(np.float32)
        if self.output_layout in ("NHWC", "HWC"):
            y = np.moveaxis(y, -1, -3)
        if self.output_layout in ("HWC", "CHW"):
            y = y[None]
        if self.output_order == "bgr":
            y = y[:, ::-1]
        return np.ascontiguousarray(y)


def _show(dims: list[int | None], names: str) -> str:
    return "(" + ", ".join(str(d) if d else n for d, n in zip(dims, names)) + ")"


def _layout(dims: list[int | None], what: str) -> tuple[str, str]:
    """4-D: NCHW when dim 1 is 1 or 3; NHWC when the last dim is 1 or 3 and dim 1 is dynamic or larger. 3-D (one
    image, no batch dim): HWC when the last dim is 1 or 3 and dim 0 is dynamic or larger, else CHW."""
    if len(dims) == 3:
        if dims[2] in (1, 3) and (dims[0] is None or dims[0] > 3):
            return "HWC", f"{what} {_show(dims, 'HWC')}: 3-D, last dim {dims[2]}: one image, channels last, no batch dim"
        return "CHW", f"{what} {_show(dims, 'CHW')}: 3-D: one image, channels first, no batch dim"
    if len(dims) != 4 or dims[1] in (1, 3):
        return "NCHW", f"{what} {_show(dims, 'NCHW')}: channels first"
    if dims[3] in (1, 3) and (dims[1] is None or dims[1] > 3):
        size = "dynamic" if dims[1] is None else f"{dims[1]}"
        return "NHWC", f"{what} {_show(dims, 'NHWC')}: last dim {dims[3]}, dim 1 {size}: channels last"
    return "NCHW", f"{what} {_show(dims, 'NCHW')}: channels first (no channels-last evidence)"


def _declared(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    """A value's declared shape: ints, or the symbolic names ('?' where unnamed)."""
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                 for d in value.type.tensor_type.shape.dim)


def _upcast_tensor(t: TensorProto) -> None:
    if t.data_type in _LOW_FLOATS:
        arr = numpy_helper.to_array(t).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))


def _upcast_graph(graph: onnx.GraphProto) -> set[str]:
    """Upcast float16/bfloat16 initializers, Constant values, Cast targets and typed attributes in place,
    subgraphs included; return the low float type names met."""
    met: set[str] = set()
    for t in graph.initializer:
        if t.data_type in _LOW_FLOATS:
            met.add(_LOW_FLOATS[t.data_type])
            _upcast_tensor(t)
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in _LOW_FLOATS:
                met.add(_LOW_FLOATS[a.t.data_type])
                _upcast_tensor(a.t)
            elif a.type == onnx.AttributeProto.INT and a.name in ("to", "dtype") and a.i in _LOW_FLOATS:
                met.add(_LOW_FLOATS[a.i])
                a.i = TensorProto.FLOAT
            elif a.type == onnx.AttributeProto.GRAPH:
                met |= _upcast_graph(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    met |= _upcast_graph(g)
    for v in [*graph.input, *graph.output]:
        if v.type.tensor_type.elem_type in _LOW_FLOATS:
            met.add(_LOW_FLOATS[v.type.tensor_type.elem_type])
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    del graph.value_info[:]
    return met


def _float_casts_to_identity(proto: onnx.ModelProto) -> None:
    """Cast to float32 of a value that is float32 already (after the upcast and retyping) -> Identity."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001  (a float->float Cast left in place is harmless)
        return
    types = {v.name: v.type.tensor_type.elem_type for v in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    for node in proto.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == TensorProto.FLOAT and types.get(node.input[0]) == TensorProto.FLOAT:
            node.op_type = "Identity"
            del node.attribute[:]


def _constant_value(proto: onnx.ModelProto, name: str) -> float | None:
    if not name:
        return None
    for t in proto.graph.initializer:
        if t.name == name:
            return float(numpy_helper.to_array(t).reshape(-1)[0])
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return float(numpy_helper.to_array(a.t).reshape(-1)[0])
                if a.name == "value_float":
                    return float(a.f)
    return None


def _clip_bounds(proto: onnx.ModelProto, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    attrs = {a.name: a.f for a in node.attribute}
    if "min" in attrs or "max" in attrs:
        return attrs.get("min"), attrs.get("max")
    ins = list(node.input) + ["", "", ""]
    return _constant_value(proto, ins[1]), _constant_value(proto, ins[2])


def _strip_uint8_output(proto: onnx.ModelProto, name: str) -> tuple[str, tuple[str, ...], list[str]]:
    """Take Cast(to uint8), Round and Clip(0, 255) off the output end, before the data-movement ops that may follow
    them (``pipeline.uint8_tail``; those stay, as float ops). Returns the value that becomes the graph output, the
    removed op types (output end first) and the data-movement ops kept."""
    graph = Graph(proto)
    output = proto.graph.output[0].name
    moved, casts = uint8_tail(graph, output, name)
    removed: tuple[str, ...] = ()
    for cast in casts:
        ops, dropped = [], []
        node: onnx.NodeProto | None = cast
        while node is not None and (node is cast or node.op_type == "Round"
                                    or (node.op_type == "Clip" and _clip_bounds(proto, node) == (0.0, 255.0))):
            if dropped and len(graph.consumers.get(node.output[0], [])) > 1:
                break  # an inner value used elsewhere too: stop, keep the node
            ops.append(node.op_type)
            dropped.append(node)
            node = graph.producer.get(node.input[0])
        floats = dropped[-1].input[0]
        for n in graph.consumers.get(cast.output[0], []):  # the data-movement ops after the Cast read the float
            for i, v in enumerate(n.input):
                if v == cast.output[0]:
                    n.input[i] = floats
        output = floats if cast.output[0] == output else output
        for n in dropped:
            proto.graph.node.remove(n)
        removed = removed or tuple(ops)
    return output, removed, list(dict.fromkeys(n.op_type for n in reversed(moved)))  # in graph order


def _dtype(value: onnx.ValueInfoProto, name: str, side: str) -> str:
    kind = value.type.tensor_type.elem_type
    if kind not in _DTYPES:
        raise OnnxAttrError(
            f"{name} takes a {TensorProto.DataType.Name(kind)} {side}; onnxattr handles float32, float16, "
            "bfloat16 and uint8 images"
        )
    return _DTYPES[kind]



def _orders(graph: Graph, inp: onnx.ValueInfoProto, out: onnx.ValueInfoProto, layouts: tuple[str, str],
            channels: int | None, given: str) -> tuple[str, str, str | None]:
    """The channel order of each end and its reason line: under 'auto' the graph's own channel reversals decide each
    end ('rgb' where there are none); 'rgb' or 'bgr' set both ends."""
    if channels != 3:
        return "rgb", "rgb", None
    ends = []
    for value, layout, forward in ((inp, layouts[0], True), (out, layouts[1], False)):
        rank, axis = LAYOUTS[layout]
        ends.append(channel_flips(graph, Axis(value.name, rank, axis), channels, forward)
                    if len(dims_of(value)) == rank else [])
    said = [("bgr" if len(flips) % 2 else "rgb") if flips else None for flips in ends]
    where = [f"{side} ({', '.join(flips)})" for side, flips in zip(("after the input", "before the output"), ends) if flips]
    graph_says = f"the graph reverses the channel axis {' and '.join(where)}" if where else None
    if given != "auto":
        if graph_says and any(s not in (None, given) for s in said):
            return given, given, f"channel order {given.upper()} (as given, though {graph_says})"
        return given, given, f"channel order {given.upper()} (as given): channels reversed at both ends" \
            if given == "bgr" else None
    if not graph_says:
        return "rgb", "rgb", None
    orders = [s or "rgb" for s in said]
    shown = orders[0].upper() if orders[0] == orders[1] else f"{orders[0].upper()} in, {orders[1].upper()} out"
    return orders[0], orders[1], f"channel order {shown} (detected: {graph_says})"


def adapt(proto: onnx.ModelProto, name: str, channel_order: str = "auto") -> tuple[onnx.ModelProto, Adapter]:
    """The float32 NCHW RGB core of ``proto`` and the :class:`Adapter` that relates it to the file."""
    if channel_order not in CHANNEL_ORDERS:
        raise OnnxAttrError(f"channel order {channel_order!r}: pass 'auto', 'rgb' or 'bgr'")
    inp, out = image_io(proto, name)
    in_dtype, out_dtype = _dtype(inp, name, "input"), _dtype(out, name, "output")
    in_dims, out_dims = dims_of(inp), dims_of(out)
    in_layout, in_why = _layout(in_dims, "input")
    if len(out_dims) in (3, 4) and any(out_dims[1:]):
        out_layout, out_why = _layout(out_dims, "output")
    else:
        out_layout, out_why = in_layout, f"output shape {_show(out_dims, 'NCHW')} not declared: as the input"
    rank, axis = LAYOUTS[in_layout]
    channels = in_dims[axis] if len(in_dims) == rank else None
    in_order, out_order, order_why = _orders(Graph(proto), inp, out, (in_layout, out_layout), channels, channel_order)
    core = onnx.ModelProto()
    core.CopyFrom(proto)
    low = _upcast_graph(core.graph)
    precision = "bfloat16" if "bfloat16" in low else "float16" if "float16" in low else "float32"
    reasons = [in_why, out_why, f"precision {precision}" + (": upcast to float32" if low else "")]
    cin, cout = core.graph.input[[v.name for v in core.graph.input].index(inp.name)], core.graph.output[0]
    removed: tuple[str, ...] = ()
    if in_dtype == "uint8":
        moved = integer_flow(Graph(core), cin.name, name)
        through = f" through {', '.join(dict.fromkeys(n.op_type for n in moved))}" if moved else ""
        reasons.append(f"input uint8 (0..255){through} to its Cast: fed as float, the Cast removed")
    if out_dtype == "uint8":
        value, removed, kept = _strip_uint8_output(core, name)
        cout.name = value
        after = f", before {', '.join(kept)} (kept)" if kept else ""
        reasons.append(f"output uint8: {', '.join(removed)} removed at the end{after} (differentiable in float)")
    cin.type.tensor_type.elem_type = TensorProto.FLOAT
    cout.type.tensor_type.elem_type = TensorProto.FLOAT
    if order_why:
        reasons.append(order_why)
    _wrap(core, cin, cout, (in_layout, out_layout), (in_order == "bgr", out_order == "bgr"))
    _float_casts_to_identity(core)
    return core, Adapter(
        input_name=inp.name,
        output_name=out.name,
        input_layout=in_layout,
        output_layout=out_layout,
        input_dtype=in_dtype,
        output_dtype=out_dtype,
        precision=precision,
        channel_order=in_order,
        output_channel_order=out_order if out_order != in_order else "",
        removed=removed,
        reasons=tuple(reasons),
        input_shape=_declared(inp),
        output_shape=_declared(out),
    )


def _axes_node(core: onnx.ModelProto, op: str, value: str, out: str) -> onnx.NodeProto:
    """Squeeze or Unsqueeze of axis 0, in the form of the core's opset (the axes an input from opset 13)."""
    if opset_of(core) < 13:
        return helper.make_node(op, [value], [out], axes=[0], name=f"onnxattr_{op.lower()}")
    if not any(t.name == "onnxattr_axis0" for t in core.graph.initializer):
        core.graph.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "onnxattr_axis0"))
    return helper.make_node(op, [value, "onnxattr_axis0"], [out], name=f"onnxattr_{op.lower()}")


def _core_dims(dims: list[int | None], layout: str) -> list[int | None]:
    """The (N, C, H, W) dims of a file end in ``layout`` (N = 1 for one image)."""
    if layout == "NHWC" and len(dims) == 4:
        return [dims[0], dims[3], dims[1], dims[2]]
    if layout == "HWC" and len(dims) == 3:
        return [1, dims[2], dims[0], dims[1]]
    if layout == "CHW" and len(dims) == 3:
        return [1, *dims]
    return dims


def _wrap(core: onnx.ModelProto, cin: onnx.ValueInfoProto, cout: onnx.ValueInfoProto, layouts: tuple[str, str],
          flips: tuple[bool, bool]) -> None:
    """Put the layout changes (Transposes, Squeeze / Unsqueeze of the batch dim) and channel reversals (BGR ends)
    around the graph, in place: the core takes and returns (N, C, H, W) RGB."""
    (in_layout, out_layout), (in_flip, out_flip) = layouts, flips
    if any(flips):
        core.graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], dtype=np.int64), "onnxattr_bgr"))
    head: list[onnx.NodeProto] = []
    if in_layout != "NCHW" or in_flip:
        value = CORE_INPUT
        if in_flip:
            head.append(helper.make_node("Gather", [value, "onnxattr_bgr"], ["onnxattr_image_bgr"], axis=1,
                                         name="onnxattr_rgb_to_bgr"))
            value = "onnxattr_image_bgr"
        if in_layout in ("HWC", "CHW"):
            head.append(_axes_node(core, "Squeeze", value, "onnxattr_image_chw"))
            value = "onnxattr_image_chw"
        if in_layout in ("NHWC", "HWC"):
            perm = [0, 2, 3, 1] if in_layout == "NHWC" else [1, 2, 0]
            head.append(helper.make_node("Transpose", [value], ["onnxattr_image_last"], perm=perm,
                                         name="onnxattr_to_last"))
        head[-1].output[0] = cin.name
        dims = _core_dims(dims_of(cin), in_layout)
        core.graph.input.remove(cin)
        core.graph.input.insert(0, helper.make_tensor_value_info(
            CORE_INPUT, TensorProto.FLOAT, [d if d else n for d, n in zip(dims, "NCHW")]))
    tail: list[onnx.NodeProto] = []
    if out_layout != "NCHW" or out_flip:
        value = cout.name
        if out_layout in ("NHWC", "HWC"):
            perm = [0, 3, 1, 2] if out_layout == "NHWC" else [2, 0, 1]
            tail.append(helper.make_node("Transpose", [value], ["onnxattr_sr_first"], perm=perm,
                                         name="onnxattr_to_first"))
            value = "onnxattr_sr_first"
        if out_layout in ("HWC", "CHW"):
            tail.append(_axes_node(core, "Unsqueeze", value, "onnxattr_sr_nchw"))
            value = "onnxattr_sr_nchw"
        if out_flip:
            tail.append(helper.make_node("Gather", [value, "onnxattr_bgr"], ["onnxattr_sr_rgb"], axis=1,
                                         name="onnxattr_bgr_to_rgb"))
        tail[-1].output[0] = CORE_OUTPUT
        odims = _core_dims(dims_of(cout), out_layout)
        core.graph.output.remove(cout)
        core.graph.output.append(helper.make_tensor_value_info(
            CORE_OUTPUT, TensorProto.FLOAT, [d if d else n for d, n in zip(odims, ("N", "C", "sH", "sW"))]
            if len(odims) == 4 else None))
    body = list(core.graph.node)
    del core.graph.node[:]
    core.graph.node.extend(head + body + tail)
