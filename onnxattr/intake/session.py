"""onnxruntime beside the torch graph: sessions on a file or the core, and the runs a load makes on them.

A load asks onnxruntime three kinds of question: which sizes run (``size_runner``, for ``sizes.find_sizes``),
what the output is on the verification image (``run_probe``) and, for the value range, what it is on a photo
(``units``). All runs take float32 NCHW arrays in the file's own units.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..device import ort_providers
from ..errors import OnnxAttrError, clip_words, error_line, first_line
from .onnxfile import IOSpec, external_data_problem, opset_of
from .sizes import ProbeError, Runner


def ort_session(source: Path | bytes, name: str, device: torch.device) -> ort.InferenceSession:
    """An onnxruntime session on a file path or a serialized model (the core graph), with torch's thread count;
    a one-line error (``load_failure``) when onnxruntime refuses it."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()  # one thread setting for torch and onnxruntime (set_threads)
    try:
        return ort.InferenceSession(
            str(source) if isinstance(source, Path) else source, sess_options=opts, providers=ort_providers(device)
        )
    except Exception as err:  # noqa: BLE001  (onnxruntime raises several private exception types)
        raise load_failure(source, name, err) from err


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")
_NO_OP = re.compile(r"No Op registered for (\w+) with domain_version of (\d+)")
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")  # what onnxruntime itself implements
ORT_TEXT_LIMIT = 160  # characters of onnxruntime's own message kept after the tool's words


def load_failure(source: Path | bytes, name: str, err: BaseException) -> OnnxAttrError:
    """The one-line error for a model onnxruntime refuses to load: what the tool finds in the file first (an op
    of a domain onnxruntime lacks, an op without a kernel for its types, an opset newer than onnx knows, external
    data it will not read), onnxruntime's own text after, cut at a word boundary, then the fix."""
    text = clip_words(_ORT_PREFIX.sub("", first_line(err) or type(err).__name__), ORT_TEXT_LIMIT)
    try:
        proto = onnx.load_model(str(source), load_external_data=False) if isinstance(source, Path) \
            else onnx.load_from_string(source)
    except Exception:  # noqa: BLE001  (unreadable: onnxruntime's words are all there is)
        proto = None
    found, fix = _what_fails(proto, source, text)
    return OnnxAttrError(f"onnxruntime cannot load {name}: {found} (onnxruntime: {text}); {fix}")


def _what_fails(proto: onnx.ModelProto | None, source: Path | bytes, text: str) -> tuple[str, str]:
    """(what the file holds that onnxruntime refuses, the fix) for ``load_failure``."""
    if proto is None:
        return "the file does not parse as an ONNX model", "re-export the model"
    if isinstance(source, Path) and (problem := external_data_problem(proto, source.parent)):
        found, fix = problem.rsplit("; ", 1)
        return found, fix
    nodes = [n for n in proto.graph.node]
    foreign = [n for n in nodes if n.domain not in STANDARD_DOMAINS]
    if foreign:
        n = next((n for n in foreign if n.op_type in text), foreign[0])
        kind = " (an onnxruntime-extensions custom op)" if n.domain == "ai.onnx.contrib" else ""
        return (f"it holds op {n.domain}:{n.op_type}{kind} at node {n.name!r}, which plain onnxruntime does not "
                "have", "export the model without it (uint8 image tensors in and out load as they are)")
    opset, known = opset_of(proto), onnx.defs.onnx_opset_version()
    if opset > known:
        return (f"it declares opset {opset}, newer than onnx {onnx.__version__} knows ({known})",
                "re-export the model at an older opset, or upgrade onnx and onnxruntime")
    if m := _NO_KERNEL.search(text):
        return (f"onnxruntime has no kernel for op {m[1]}-{m[2]} at node {m[3]!r} with its tensor types (the file's "
                f"opset is {opset})", "re-export the model at a newer opset, in float32")
    if m := _NO_OP.search(text):
        return (f"op {m[1]} is no op of the file's opset {m[2]}", "re-export the model with standard ONNX ops")
    return (f"the file (opset {opset}, IR version {proto.ir_version}, {len(nodes)} nodes"
            f"{', made by ' + proto.producer_name if proto.producer_name else ''}) fails onnxruntime's checks",
            "re-export the model")


def smooth_image(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (1, C, H, W) in [0, 1] (upsampled noise): closer to photos than white noise."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, channels, max(2, height // 4), max(2, width // 4)), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    noise = torch.from_numpy(rng.random((1, channels, height, width), dtype=np.float32))
    return (0.85 * fine + 0.15 * noise).clamp(0, 1).numpy()


def size_runner(session: ort.InferenceSession, spec: IOSpec) -> Runner:
    """(h, w) -> output shape of one onnxruntime run on a smooth image; ProbeError when it fails."""
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a refused size is an expected answer, not an error to print

    def run(h: int, w: int) -> tuple[int, ...]:
        try:
            return session.run(None, {spec.input_name: smooth_image(spec.in_channels, h, w)}, quiet)[0].shape
        except Exception as err:  # noqa: BLE001
            raise ProbeError(error_line(err)) from err

    return run


def run_probe(
    spec: IOSpec,
    session: ort.InferenceSession,
    units: tuple[float, float],
    name: str,
    size: tuple[int, int],
    prep: Callable[[np.ndarray], np.ndarray] = lambda x: x,
) -> tuple[np.ndarray, np.ndarray]:
    """One run of the core on the verification image of ``size``: (x in [0, 1], output in [0, 1] units), with
    ``units`` = (input range, output range). Refuses an output that is no image of the input's channels or is
    not finite (the file's own fault: no conversion has run yet)."""
    h, w = size
    x = prep(smooth_image(spec.in_channels, h, w))
    try:
        y = session.run(None, {spec.input_name: x * units[0]})[0] / units[1]
    except Exception as err:  # noqa: BLE001
        raise OnnxAttrError(
            f"onnxruntime failed to run the model on a {w}x{h} probe image: {error_line(err)}"
        ) from err
    if y.ndim != 4 or y.shape[1] != spec.in_channels:
        raise OnnxAttrError(
            f"{name} maps {spec.in_channels} channels to output shape {y.shape}; not an SR image model "
            "(the output must have the input's channels)"
        )
    if not np.isfinite(y).all():
        raise OnnxAttrError(
            f"onnxruntime itself returns NaN/Inf on {name} for a {w}x{h} probe image (value range {units[0]:g}): "
            "the file computes non-finite values before any conversion; check the export"
        )
    return x, y
