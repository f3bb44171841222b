"""Reading and validating an ONNX file as a single-image SR model (I/O only, no torch)."""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import external_data_helper, helper

from ..errors import OnnxAttrError, error_line
from ..paths import regular_file
from ..limits import check_pixels


@dataclass(frozen=True)
class IOSpec:
    """The image input and output of an SR graph; dims are ints, or None where dynamic."""

    input_name: str
    output_name: str
    in_channels: int
    batch: int | None
    height: int | None
    width: int | None
    out_channels: int | None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def external_data_problem(proto: onnx.ModelProto, folder: Path) -> str | None:
    """What is wrong with the first external-data location of ``proto`` that onnxattr (and onnxruntime) will not
    read, as '<the problem>; <the fix>': an absolute path, a path that leaves the model's own ``folder`` (symbolic
    links followed), a missing file; None when every location is a file inside the folder. Nothing is opened."""
    root = folder.resolve()
    for tensor in external_data_helper._get_all_tensors(proto):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (root / location).resolve()
        if Path(location).is_absolute():
            return (f"tensor {tensor.name!r} keeps its data at the absolute path {location!r}; external data is read "
                    "only by a path relative to the model's folder: save the model with a relative location")
        if not target.is_relative_to(root) or target == root:
            via = "" if ".." in Path(location).parts else f" (a link to {str(target)!r})"
            return (f"tensor {tensor.name!r} keeps its data at {location!r}{via}, outside the model's folder "
                    f"{str(root)!r}; move the data file next to the .onnx file")
        if not target.is_file():
            return (f"external data file {location!r} of tensor {tensor.name!r} is missing from the model's folder "
                    f"{str(root)!r}; put it next to the .onnx file")
    return None


def _load_external_data(proto: onnx.ModelProto, folder: Path, name: str) -> None:
    """Refuse external-data locations that leave the model's own folder (``external_data_problem``), then load
    them; data that cannot be read (a file shorter than its offset and length say) is refused in one line."""
    problem = external_data_problem(proto, folder)
    if problem:
        raise OnnxAttrError(problem)
    external = [(t, {e.key: e.value for e in t.external_data}.get("location", ""))
                for t in external_data_helper._get_all_tensors(proto) if external_data_helper.uses_external_data(t)]
    try:
        external_data_helper.load_external_data_for_model(proto, str(folder.resolve()))
    except Exception as err:  # noqa: BLE001  (onnx raises ValidationError, OSError or ValueError here)
        raise OnnxAttrError(f"{name}'s external data cannot be read (onnx: {error_line(err, 200)}); save the model "
                            "with its data again") from err
    for tensor, location in external:
        if tensor.data_type == onnx.TensorProto.STRING:
            continue
        need = math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        if len(tensor.raw_data) != need:
            raise OnnxAttrError(f"{name}'s external data cannot be read: tensor {tensor.name!r} needs {need} bytes, "
                                f"{location!r} gives {len(tensor.raw_data)}; save the model with its data again")


def read_onnx(path: str | Path, notes: list[str] | None = None) -> tuple[onnx.ModelProto, Path]:
    """Load and check an ONNX file. Checker complaints that onnxruntime may tolerate become warnings, or lines
    appended to ``notes`` when it is given (``load_model`` says them at a file's first load, not from its cache)."""

    def note(text: str) -> None:
        if notes is None:
            warnings.warn(text, stacklevel=3)
        else:
            notes.append(text)

    path = regular_file(path, "model file", "pass the path of an .onnx file")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises DecodeError, and others for truncated files
        raise OnnxAttrError(f"{str(path)!r} is not an ONNX model ({type(err).__name__}); pass an .onnx file") from err
    if not proto.graph.node:
        raise OnnxAttrError(f"{str(path)!r} holds no ONNX graph; pass an exported .onnx model")
    _load_external_data(proto, path.parent, path.name)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        note(f"onnx.checker flags {path.name}: {first}; continuing, onnxruntime decides")
    if proto.ir_version < 3:  # onnx2torch refuses IR < 3; the graph means the same under IR 3
        proto.ir_version = 3
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception as err:  # noqa: BLE001  (shape inference is a help, not a requirement)
        note(f"shape inference failed on {path.name}: {err}")
    return proto, path


def dims_of(value: onnx.ValueInfoProto) -> list[int | None]:
    """The dims of a value's declared shape: ints, or None where dynamic (unset, symbolic or 0)."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim]


def image_io(proto: onnx.ModelProto, name: str) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    """The single graph input (initializers aside) and the single output; else a clear error."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in inits]
    outputs = list(proto.graph.output)
    if len(inputs) != 1:
        raise OnnxAttrError(
            f"{name} has {len(inputs)} graph inputs ({', '.join(v.name for v in inputs)}); "
            "an SR model takes exactly one image tensor (N, C, H, W)"
        )
    if len(outputs) != 1:
        raise OnnxAttrError(
            f"{name} has {len(outputs)} graph outputs; an SR model returns exactly one image tensor (N, C, sH, sW)"
        )
    return inputs[0], outputs[0]


def io_spec(proto: onnx.ModelProto, name: str) -> IOSpec:
    """The single (N, C, H, W) float input with C in {1, 3} and the single 4-D output; else a clear error."""
    inp, out = image_io(proto, name)
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type)
        raise OnnxAttrError(f"{name} takes a {kind} input; onnxattr needs float32 (re-export the model in float32)")
    dims, odims = dims_of(inp), dims_of(out)
    if len(dims) != 4 or len(odims) != 4:
        raise OnnxAttrError(
            f"{name} maps a {len(dims)}-D input to a {len(odims)}-D output; not an SR image model "
            "(need (N, C, H, W) -> (N, C, sH, sW))"
        )
    if dims[1] not in (1, 3):
        raise OnnxAttrError(
            f"{name} takes {dims[1] if dims[1] else 'a dynamic number of'} input channels; "
            "onnxattr handles gray/Y (1) or RGB (3) SR models"
        )
    if dims[0] not in (None, 1):
        raise OnnxAttrError(f"{name} fixes the batch at {dims[0]}; re-export with batch 1 or a dynamic batch")
    if dims[2] and dims[3]:  # before any probe allocates it
        check_pixels(dims[3], dims[2], f"{name}'s fixed input", "re-export the model with a dynamic or smaller input size")
    return IOSpec(inp.name, out.name, dims[1], dims[0], dims[2], dims[3], odims[1])


def opset_of(proto: onnx.ModelProto) -> int:
    """The default-domain opset version."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
