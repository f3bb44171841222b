"""Input/output adapters: any SR file's precision, layout, dtype and channel order onto one float32 core graph.

``adapt(proto)`` returns the *core*: an ONNX model whose single input is a float32 (N, C, H, W) image in
RGB order and whose single output is float32 (N, C, sH, sW) RGB, both in the file's own value units
(0..1 or 0..255). It is the file with

- float16 / bfloat16 initializers, Constant values and Cast targets upcast to float32, so Cast pairs
  around float16 compute become identities (the file's precision is named in ``Adapter.precision``);
- a channels-last (N, H, W, C) input or output wrapped in Transposes (layout read from the shapes);
- a uint8 input retyped to float (its Cast to float becomes an identity) and, at a uint8 output, the
  final Cast, Round and Clip(0, 255) removed: the core is differentiable in float;
- for ``channel_order='bgr'``, the channel order reversed at both ends.

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
from .onnxfile import dims_of, image_io

_LOW_FLOATS = {TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}
_DTYPES = {TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", **_LOW_FLOATS}
CORE_INPUT, CORE_OUTPUT = "onnxattr_image", "onnxattr_sr"
CHANNEL_ORDERS = ("rgb", "bgr")


@dataclass(frozen=True)
class Adapter:
    """How the original file differs from its core: layouts, I/O dtypes, compute precision, channel order."""

    input_name: str
    output_name: str
    input_layout: str  # "NCHW" or "NHWC"
    output_layout: str
    input_dtype: str  # "float32", "float16", "bfloat16" or "uint8"
    output_dtype: str
    precision: str  # lowest float type of the file's weights and compute: "float32", "float16", "bfloat16"
    channel_order: str  # "rgb" or "bgr"
    removed: tuple[str, ...]  # ops taken off the output end (e.g. "Clip", "Round", "Cast")
    reasons: tuple[str, ...]  # one line per decision, for `inspect`

    @property
    def changed(self) -> bool:
        """True when the core is not the file itself."""
        return (self.input_layout, self.output_layout, self.input_dtype, self.output_dtype, self.precision,
                self.channel_order) != ("NCHW", "NCHW", "float32", "float32", "float32", "rgb") or bool(self.removed)

    def to_file(self, x: np.ndarray) -> np.ndarray:
        """Core input (N, C, H, W) float, file units -> the array the original file takes."""
        x = np.asarray(x, dtype=np.float32)
        if self.channel_order == "bgr":
            x = x[:, ::-1]
        if self.input_layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x)
        if self.input_dtype == "uint8":
            return np.clip(np.round(x), 0, 255).astype(np.uint8)
        return x.astype(np.float16) if self.input_dtype == "float16" else x

    def from_file(self, y: np.ndarray) -> np.ndarray:
        """The original file's output -> core output (N, C, sH, sW) float32, file units."""
        y = np.asarray(y).astype(np.float32)
        if self.output_layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        if self.channel_order == "bgr":
            y = y[:, ::-1]
        return np.ascontiguousarray(y)


def _show(dims: list[int | None], names: str) -> str:
    return "(" + ", ".join(str(d) if d else n for d, n in zip(dims, names)) + ")"


def _layout(dims: list[int | None], what: str) -> tuple[str, str]:
    """NCHW when dim 1 is 1 or 3; NHWC when the last dim is 1 or 3 and dim 1 is dynamic or larger."""
    if len(dims) != 4 or dims[1] in (1, 3):
        return "NCHW", f"{what} {_show(dims, 'NCHW')}: channels first"
    if dims[3] in (1, 3) and (dims[1] is None or dims[1] > 3):
        size = "dynamic" if dims[1] is None else f"{dims[1]}"
        return "NHWC", f"{what} {_show(dims, 'NHWC')}: last dim {dims[3]}, dim 1 {size}: channels last"
    return "NCHW", f"{what} {_show(dims, 'NCHW')}: channels first (no channels-last evidence)"


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


def _strip_uint8_output(proto: onnx.ModelProto, name: str) -> tuple[str, tuple[str, ...]]:
    """Take Cast(to uint8), Round and Clip(0, 255) off the output end; return the float value that
    becomes the output and the removed op types (output end first)."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    value, removed, dropped = proto.graph.output[0].name, [], []
    while value in producer:
        node = producer[value]
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == TensorProto.UINT8:
            pass
        elif node.op_type == "Round":
            pass
        elif node.op_type == "Clip" and _clip_bounds(proto, node) == (0.0, 255.0):
            pass
        else:
            break
        if removed and consumers.get(value, 0) > 1:
            break  # an inner value used elsewhere too: stop, keep the node
        removed.append(node.op_type)
        dropped.append(node)
        value = node.input[0]
    if "Cast" not in removed:
        raise OnnxAttrError(
            f"{name} returns uint8 but its last op is not a Cast to uint8; onnxattr cannot take the output "
            "back to float (re-export with a float output)"
        )
    for node in dropped:
        proto.graph.node.remove(node)
    return value, tuple(removed)


def _retype_uint8_input(proto: onnx.ModelProto, inp: onnx.ValueInfoProto, name: str) -> None:
    users = [n for n in proto.graph.node if inp.name in n.input]
    bad = [n for n in users if n.op_type != "Cast"]
    if bad:
        raise OnnxAttrError(
            f"{name} feeds its uint8 input to {bad[0].op_type} {bad[0].name!r}, not to a Cast to float; "
            "onnxattr cannot attribute through integer ops (re-export with a float input)"
        )
    inp.type.tensor_type.elem_type = TensorProto.FLOAT


def _dtype(value: onnx.ValueInfoProto, name: str, side: str) -> str:
    kind = value.type.tensor_type.elem_type
    if kind not in _DTYPES:
        raise OnnxAttrError(
            f"{name} takes a {TensorProto.DataType.Name(kind)} {side}; onnxattr handles float32, float16, "
            "bfloat16 and uint8 images"
        )
    return _DTYPES[kind]


def adapt(proto: onnx.ModelProto, name: str, channel_order: str = "rgb") -> tuple[onnx.ModelProto, Adapter]:
    """The float32 NCHW RGB core of ``proto`` and the :class:`Adapter` that relates it to the file."""
    if channel_order not in CHANNEL_ORDERS:
        raise OnnxAttrError(f"channel order {channel_order!r}: pass 'rgb' or 'bgr'")
    inp, out = image_io(proto, name)
    in_dtype, out_dtype = _dtype(inp, name, "input"), _dtype(out, name, "output")
    in_layout, in_why = _layout(dims_of(inp), "input")
    out_dims = dims_of(out)
    if len(out_dims) == 4 and any(out_dims[1:]):
        out_layout, out_why = _layout(out_dims, "output")
    else:
        out_layout, out_why = in_layout, f"output shape {_show(out_dims, 'NCHW')} not declared: as the input"
    core = onnx.ModelProto()
    core.CopyFrom(proto)
    low = _upcast_graph(core.graph)
    precision = "bfloat16" if "bfloat16" in low else "float16" if "float16" in low else "float32"
    reasons = [in_why, out_why, f"precision {precision}" + (": upcast to float32" if low else "")]
    cin, cout = core.graph.input[[v.name for v in core.graph.input].index(inp.name)], core.graph.output[0]
    removed: tuple[str, ...] = ()
    if in_dtype == "uint8":
        _retype_uint8_input(core, cin, name)
        reasons.append("input uint8 (0..255): fed as float, its Cast to float removed")
    if out_dtype == "uint8":
        value, removed = _strip_uint8_output(core, name)
        cout.name = value
        cout.type.tensor_type.elem_type = TensorProto.FLOAT
        reasons.append(f"output uint8: {', '.join(removed)} removed at the end (differentiable in float)")
    cin.type.tensor_type.elem_type = TensorProto.FLOAT
    cout.type.tensor_type.elem_type = TensorProto.FLOAT
    in_channels = (dims_of(inp)[3] if in_layout == "NHWC" else dims_of(inp)[1]) if len(dims_of(inp)) == 4 else None
    bgr = channel_order == "bgr" and in_channels == 3
    if bgr:
        reasons.append("channel order BGR (as given): channels reversed at both ends")
    _wrap(core, cin, cout, in_layout, out_layout, bgr)
    _float_casts_to_identity(core)
    return core, Adapter(
        input_name=inp.name,
        output_name=out.name,
        input_layout=in_layout,
        output_layout=out_layout,
        input_dtype=in_dtype,
        output_dtype=out_dtype,
        precision=precision,
        channel_order="bgr" if bgr else "rgb",
        removed=removed,
        reasons=tuple(reasons),
    )


def _wrap(core: onnx.ModelProto, cin: onnx.ValueInfoProto, cout: onnx.ValueInfoProto,
          in_layout: str, out_layout: str, bgr: bool) -> None:
    """Put Transposes (channels-last) and channel reversals (BGR) around the graph, in place."""
    if in_layout == "NCHW" and out_layout == "NCHW" and not bgr:
        return
    nodes: list[onnx.NodeProto] = []
    if bgr:
        core.graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], dtype=np.int64), "onnxattr_bgr"))
    new_in = cin.name
    if in_layout == "NHWC" or bgr:
        dims = dims_of(cin)
        nchw = [dims[0], dims[3], dims[1], dims[2]] if in_layout == "NHWC" else dims
        new_in = CORE_INPUT
        value = CORE_INPUT
        if bgr:
            nodes.append(helper.make_node("Gather", [value, "onnxattr_bgr"], ["onnxattr_image_bgr"], axis=1,
                                          name="onnxattr_rgb_to_bgr"))
            value = "onnxattr_image_bgr"
        if in_layout == "NHWC":
            nodes.append(helper.make_node("Transpose", [value], [cin.name], perm=[0, 2, 3, 1], name="onnxattr_to_nhwc"))
        else:
            nodes[-1].output[0] = cin.name
        core.graph.input.remove(cin)
        core.graph.input.insert(0, helper.make_tensor_value_info(
            new_in, TensorProto.FLOAT, [d if d else n for d, n in zip(nchw, ("N", "C", "H", "W"))]))
    tail: list[onnx.NodeProto] = []
    if out_layout == "NHWC" or bgr:
        value = cout.name
        if out_layout == "NHWC":
            tail.append(helper.make_node("Transpose", [value], ["onnxattr_sr_nchw"], perm=[0, 3, 1, 2],
                                         name="onnxattr_to_nchw"))
            value = "onnxattr_sr_nchw"
        if bgr:
            tail.append(helper.make_node("Gather", [value, "onnxattr_bgr"], ["onnxattr_sr_rgb"], axis=1,
                                         name="onnxattr_bgr_to_rgb"))
            value = "onnxattr_sr_rgb"
        tail[-1].output[0] = CORE_OUTPUT
        odims = dims_of(cout)
        if out_layout == "NHWC" and len(odims) == 4:
            odims = [odims[0], odims[3], odims[1], odims[2]]
        core.graph.output.remove(cout)
        core.graph.output.append(helper.make_tensor_value_info(
            CORE_OUTPUT, TensorProto.FLOAT, [d if d else n for d, n in zip(odims, ("N", "C", "sH", "sW"))]
            if len(odims) == 4 else None))
    body = list(core.graph.node)
    del core.graph.node[:]
    core.graph.node.extend(nodes + body + tail)
