"""An ONNX SR model as a verified torch graph: scale, batching, taps on every node.

``load_model`` reads and validates the file, probes onnxruntime for the output size
law ``out = s * in + c``, converts the graph with onnx2torch plus ``onnxattr.converters``,
checks the conversion against onnxruntime (first diverging node named on failure) and
finds a safe way to run several images at once.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import fx

from . import adapters, cache, onnxfile, probe
from .fastgraph import FastGraphs
from .device import full_float32, ort_providers, pick_device
from .errors import OnnxAttrError, first_line

VERIFY_TOLERANCE = 1e-4
BATCH_TOLERANCE = 1e-5
_FIRST_USE = threading.RLock()  # threads sharing a model (compare) decide its lazy facts once
STAGE_NOTICE_S = 2.0  # a load stage running longer than this is announced through ``progress``
# relative error a file's own rounding explains, by precision (the precision gap is warned above it)
PRECISION_TOLERANCE = {"float32": VERIFY_TOLERANCE, "float16": 1e-2, "bfloat16": 1e-1}
UINT8_TOLERANCE = 1e-2  # a uint8 output rounds to 1/255 of the range, plus the float16-like steps before it


@dataclass(frozen=True)
class NodeInfo:
    """One tappable node: fx name (the tap key), ONNX op type and node name, output shape on the probe."""

    name: str
    op_type: str
    onnx_name: str
    shape: tuple[int, ...]


@dataclass
class Taps:
    """What one tapped pass captured: the output (in [0, 1] units), activations and gradients by node name."""

    output: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)
    input_gradient: torch.Tensor | None = None


class _Hooked(fx.Interpreter):
    """Runs the graph node by node, passing chosen nodes' outputs through ``on_node(name, value)``."""

    def __init__(self, gm: fx.GraphModule, watch: set[str], on_node: Callable[[str, torch.Tensor], torch.Tensor]):
        super().__init__(gm)
        self.watch, self.on_node = watch, on_node

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        return self.on_node(n.name, out) if n.name in self.watch else out


class SRModel:
    """A converted SR network. Call it on images in [0, 1]: ``model(x)`` -> SR output in [0, 1] units.

    Attributes: ``scale`` s and ``offset`` c (output side = s * input side + c), ``in_channels``,
    ``fixed_size`` (H, W) or None, ``value_range`` (the model sees x * value_range), ``output_range`` (it returns
    y * output_range: the value range but for files whose uint8 end fixes one side), ``nodes``,
    ``conversion_error`` (max |torch - ORT| / max |ORT| on the probe, None if not verified),
    ``batch_mode`` ('native', 'vmap' or 'loop': how several images run at once), ``device``;
    ``adapter`` (the file's layout, dtypes, precision, channel order: see ``onnxattr.adapters``),
    ``precision_gap`` (max |ORT on the file - ORT on the float32 core| / max, None when the core is the file),
    ``value_range_source`` ('detected', 'default (undecided)', 'given' or 'uint8 input'), ``output_range_source``
    ('as the input', 'uint8 output', 'detected' or 'default (undecided)'), ``size_rule`` (the input sizes it takes).
    ``session`` runs the core graph in onnxruntime (float32 NCHW RGB, the units of ``model.graph``).
    """

    def __init__(
        self,
        *,
        path: Path,
        sha256: str,
        proto: onnx.ModelProto,
        graph: fx.GraphModule,
        op_types: dict[str, tuple[str, str]],
        spec: onnxfile.IOSpec,
        scale: int,
        offset: int,
        device: torch.device,
        value_range: float,
        session: ort.InferenceSession,
        adapter: adapters.Adapter | None = None,
        size_rule: probe.SizeRule | None = None,
        value_range_source: str = "given",
        output_range: float | None = None,
        output_range_source: str = "as the input",
    ) -> None:
        self.path, self.sha256, self.proto, self.graph = path, sha256, proto, graph
        self.spec, self.scale, self.offset, self.device = spec, scale, offset, device
        self.value_range = float(value_range)
        self.output_range = float(output_range if output_range is not None else value_range)
        self.output_range_source = output_range_source
        self.session = session
        self.in_channels = spec.in_channels
        self.fixed_size = (spec.height, spec.width) if spec.height and spec.width else None
        self.adapter = adapter
        self.size_rule = size_rule or probe.SizeRule(fixed=self.fixed_size)
        self.value_range_source = value_range_source
        self.value_range_scores: dict[float, float] = {}
        self.precision_gap: float | None = None
        self.probe_size: tuple[int, int] = probe.DEFAULT_PROBE  # (H, W) of the verification probe
        self.load_seconds: dict[str, float] = {}  # wall time of each load stage
        self.from_cache = False  # probes and converted graph read from onnxattr.cache
        self.opset = onnxfile.opset_of(proto)
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self._op_types = op_types
        self.conversion_error: float | None = None
        self.probe: np.ndarray | None = None  # the verification probe image (1, C, H, W) in [0, 1]
        self._batch_mode: str | None = None
        self._nodes: list[NodeInfo] | None = None
        self._fast: FastGraphs | None = None
        self.memory_laws: dict[str, object] = {}  # peak-memory laws by pass kind, measured on first use (onnxattr.memory)

    # ------------------------------------------- facts found on first use (not every run needs them)
    @property
    def batch_mode(self) -> str:
        """'native', 'vmap' or 'loop': how a batch runs, decided when a batch first runs (``_choose_batch_mode``)."""
        with _FIRST_USE:
            if self._batch_mode is None:
                self._batch_mode = _choose_batch_mode(self, self._probe_image())
        return self._batch_mode

    @property
    def nodes(self) -> list[NodeInfo]:
        """Every tappable node with its output shape on the probe image (one tapped run, on first use)."""
        with _FIRST_USE:
            if self._nodes is None:
                self._nodes = _node_list(self, self._probe_image())
        return self._nodes

    @property
    def fast(self) -> FastGraphs:
        """The untapped path: ``graph`` specialised per input shape (``onnxattr.fastgraph``), built on first use."""
        with _FIRST_USE:
            if self._fast is None:
                self._fast = FastGraphs(self.graph, {name: op for name, (op, _) in self._op_types.items()})
        return self._fast

    def _probe_image(self) -> np.ndarray:
        return self.probe if self.probe is not None else _probe_image(self.in_channels, *self.probe_size)

    # ----------------------------------------------------------------- running
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(s * H + c, s * W + c)."""
        return self.scale * height + self.offset, self.scale * width + self.offset

    def check_input(self, x: torch.Tensor) -> None:
        """A clear error when ``x`` (N, C, H, W) does not fit the model's channels or fixed size."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise OnnxAttrError(
                f"image tensor of shape {tuple(x.shape)} does not fit {self.path.name}, which takes "
                f"(N, {self.in_channels}, H, W); read images with onnxattr.read_image(path, model)"
            )
        if self.fixed_size and tuple(x.shape[2:]) != self.fixed_size:
            h, w = self.fixed_size
            raise OnnxAttrError(
                f"{self.path.name} only takes {w}x{h} inputs but the image is {x.shape[3]}x{x.shape[2]}; "
                f"crop or resize it to {w}x{h} (e.g. --crop X Y)"
            )
        h, w = x.shape[2], x.shape[3]
        problem = self.size_rule.problem(h, w)
        if problem:
            fix = (
                f"use an image with sides of at least {self.size_rule.min_side}"
                if min(h, w) < self.size_rule.min_side
                else "crop with --crop X Y (to {1}x{0})".format(*self.size_rule.fit(h, w))
            )
            raise OnnxAttrError(f"{self.path.name} {problem}; the image is {w}x{h}: {fix}")

    def _graph_call(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fast(x * self.value_range if self.value_range != 1 else x)
        return y / self.output_range if self.output_range != 1 else y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """SR of a batch (N, C, H, W) in [0, 1]; differentiable; runs per ``batch_mode``."""
        x = x.to(self.device, torch.float32)
        return self._batched(x, "native" if x.shape[0] == 1 else self.batch_mode)

    def _batched(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "native":
            return self._graph_call(x)
        if mode == "vmap":
            return torch.func.vmap(lambda xi: self._graph_call(xi[None])[0])(x)
        return torch.cat([self._graph_call(xi[None]) for xi in x])

    def run_ort(self, x: np.ndarray) -> np.ndarray:
        """Forward-only pass in onnxruntime, image by image (batch-safe for any export); [0, 1] units."""
        outs = [
            self.session.run(None, {self.spec.input_name: (xi[None] * self.value_range).astype(np.float32)})[0]
            for xi in np.asarray(x, dtype=np.float32)
        ]
        return np.concatenate(outs) / self.output_range

    # -------------------------------------------------------------------- taps
    def op_type(self, name: str) -> str:
        """ONNX op type of a graph node by fx name ('' for placeholders and outputs)."""
        return self._op_types.get(name, ("", ""))[0]

    def select(
        self,
        names: Iterable[str] | None = None,
        *,
        op_types: Iterable[str] | None = None,
        pattern: str | None = None,
    ) -> list[NodeInfo]:
        """Nodes in graph order chosen by exact names, ONNX op types and/or a regex on fx or ONNX names."""
        by_name = {n.name: n for n in self.nodes}
        if names is not None:
            names = list(names)
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise OnnxAttrError(f"no node named {unknown[0]!r} in {self.path.name}; see `onnxattr inspect --nodes`")
        kinds = set(op_types) if op_types is not None else None
        rx = re.compile(pattern) if pattern else None
        chosen = [
            n
            for n in self.nodes
            if (names is None or n.name in names)
            and (kinds is None or n.op_type in kinds)
            and (rx is None or rx.search(n.name) or rx.search(n.onnx_name))
        ]
        if not chosen:
            raise OnnxAttrError(
                f"no node of {self.path.name} matches the selection (op types {sorted(kinds) if kinds else 'any'}, "
                f"pattern {pattern!r}); see `onnxattr inspect --nodes`"
            )
        return chosen

    def run(
        self,
        x: torch.Tensor,
        watch: Iterable[str],
        on_node: Callable[[str, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """One node-by-node forward of a single image (1, C, H, W) in [0, 1]; each watched node's output
        passes through ``on_node(name, value)``, whose return value flows on (it may record or replace it).
        With nothing watched it takes the untapped fast path."""
        x = x.to(self.device, torch.float32)
        watch = set(watch)
        if not watch:
            return self._graph_call(x)
        runner = _Hooked(self.graph, watch, on_node)
        return runner.run(x * self.value_range) / self.output_range

    def tap(
        self,
        x: torch.Tensor,
        nodes: Sequence[str | NodeInfo],
        objective: Callable[[torch.Tensor], torch.Tensor] | None = None,
        input_gradient: bool = False,
    ) -> Taps:
        """One forward capturing ``nodes``' activations; with ``objective`` (output -> scalar or (N,)),
        one backward giving d objective / d activation at every node (and at the input if asked)."""
        names = [n.name if isinstance(n, NodeInfo) else n for n in nodes]
        acts: dict[str, torch.Tensor] = {}

        def record(name: str, value: torch.Tensor) -> torch.Tensor:
            acts[name] = value
            return value

        x = x.to(self.device, torch.float32).detach().requires_grad_(objective is not None)
        with torch.set_grad_enabled(objective is not None):
            out = self.run(x, names, record)
        if objective is None:
            return Taps(out.detach(), {k: v.detach() for k, v in acts.items()})
        wrt = list(acts.values()) + ([x] if input_gradient else [])
        grads = torch.autograd.grad(objective(out).sum(), wrt, allow_unused=True)
        gradients = {k: (g if g is not None else torch.zeros_like(a)) for (k, a), g in zip(acts.items(), grads)}
        return Taps(
            out.detach(),
            {k: v.detach() for k, v in acts.items()},
            gradients,
            grads[-1] if input_gradient else None,
        )


# ---------------------------------------------------------------------- loading
def _probe_image(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random image in [0, 1] (upsampled noise): closer to photos than white noise."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, channels, max(2, height // 4), max(2, width // 4)), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    noise = torch.from_numpy(rng.random((1, channels, height, width), dtype=np.float32))
    return (0.85 * fine + 0.15 * noise).clamp(0, 1).numpy()


def _first_line(err: BaseException) -> str:
    """The error's first line (its type name when it has no message), at most 300 characters."""
    return (first_line(err) or type(err).__name__)[:300]


def _ort_session(source: Path | bytes, name: str, device: torch.device) -> ort.InferenceSession:
    """An onnxruntime session on a file path or a serialized model (the core graph)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()  # one thread setting for torch and onnxruntime (set_threads)
    try:
        return ort.InferenceSession(
            str(source) if isinstance(source, Path) else source, sess_options=opts, providers=ort_providers(device)
        )
    except Exception as err:  # noqa: BLE001  (onnxruntime raises several private exception types)
        raise OnnxAttrError(f"onnxruntime cannot load {name}: {_first_line(err)}; re-export the model") from err


def _size_runner(session: ort.InferenceSession, spec: onnxfile.IOSpec) -> probe.Runner:
    """(h, w) -> output shape of one onnxruntime run on a smooth probe image; ProbeError when it fails."""

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a refused size is an expected answer, not an error to print

    def run(h: int, w: int) -> tuple[int, ...]:
        try:
            return session.run(None, {spec.input_name: _probe_image(spec.in_channels, h, w)}, quiet)[0].shape
        except Exception as err:  # noqa: BLE001
            raise probe.ProbeError(_first_line(err)) from err

    return run


def _ort_out_shape(session: ort.InferenceSession, spec: onnxfile.IOSpec, x: np.ndarray, units: probe.Units) -> np.ndarray:
    try:
        return session.run(None, {spec.input_name: x * units[0]})[0] / units[1]
    except Exception as err:  # noqa: BLE001
        raise OnnxAttrError(
            f"onnxruntime failed to run the model on a {x.shape[3]}x{x.shape[2]} probe image: {_first_line(err)}"
        ) from err


def _probe_run(
    spec: onnxfile.IOSpec,
    session: ort.InferenceSession,
    units: probe.Units,
    name: str,
    size: tuple[int, int],
    prep: Callable[[np.ndarray], np.ndarray] = lambda x: x,
) -> tuple[np.ndarray, np.ndarray]:
    """One onnxruntime run of the core on the probe image of ``size``: (x in [0, 1], output in [0, 1] units)."""
    h, w = size
    x = prep(_probe_image(spec.in_channels, h, w))
    y = _ort_out_shape(session, spec, x, units)
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


def _verification_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The smallest probe size with H != W (a swap of rows and columns shows), else the only one: the value
    range, the verification and the lazy facts (batch mode, node shapes) run there, as cheap as they can be."""
    return min((s for s in sizes if s[0] != s[1]), key=lambda s: s[0] * s[1], default=sizes[0])


def _scale_law(name: str, runs: Sequence[tuple[tuple[int, int], tuple[int, ...]]], channels: int) -> tuple[int, int]:
    """s and c with out = s * in + c from the output shapes at one (fixed) or two (dynamic) probe sizes."""
    for (h, w), shape in runs:
        if len(shape) != 4 or shape[1] != channels:
            raise OnnxAttrError(
                f"{name} maps {channels} channels to output shape {tuple(shape)}; not an SR image model "
                "(the output must have the input's channels)"
            )
    (h, w), y = runs[-1]
    if len(runs) == 1:
        s = int(round(y[2] / h))
        c = y[2] - s * h
        if s * w + c != y[3]:
            raise OnnxAttrError(f"{name} maps {w}x{h} to {y[3]}x{y[2]}: no common scale for rows and columns")
    else:
        (h1, w1), y1 = runs[0]
        sh, sw = (y[2] - y1[2]) / (h - h1), (y[3] - y1[3]) / (w - w1)
        s = int(round(sh))
        c = y1[2] - s * h1
        if sh != sw or sh != s or y1[3] - s * w1 != c:
            raise OnnxAttrError(
                f"{name}'s output size is not s*H + c with one integer s and c for rows and columns "
                f"({w1}x{h1} -> {y1[3]}x{y1[2]}, {w}x{h} -> {y[3]}x{y[2]}); onnxattr explains models with a whole-number "
                "scale (x2, x3, x4...): re-export it at one"
            )
    if s < 2:
        raise OnnxAttrError(
            f"{name} does not upscale (scale {s}: {w}x{h} -> {y[3]}x{y[2]}); "
            "onnxattr explains super-resolution models with scale >= 2"
        )
    return s, c


@dataclass(frozen=True)
class ValueRange:
    """The units at both ends (the model is fed x * input and returns y * output), where each came from, the
    photo test's distances (by the free side's candidate range) and a warning or None."""

    input: float
    output: float
    input_source: str
    output_source: str
    scores: dict[float, float]
    note: str | None = None


def _value_range(
    value_range: float | str,
    adapter: adapters.Adapter,
    session: ort.InferenceSession,
    spec: onnxfile.IOSpec,
    size: tuple[int, int],
    scale: int,
    offset: int,
    name: str,
) -> ValueRange:
    """The units of both ends. A uint8 end is 0..255. The other is detected (``probe.detect_value_range``: the
    core runs on the bundled photo with each candidate and the one whose output is clearly closest to a bicubic
    upscale wins): the input range of a float file (1 or 255, the output in the same units; 1 when undecided);
    the output range of a file fed uint8 (1 or 255; 255, like its input, when undecided); the input range of a
    file that returns uint8 (1 or 255; 1 when undecided). A given ``value_range`` sets the input (ignored, with
    a warning, for a uint8 input) and is warned about when the detection clearly contradicts it.
    """
    u8_in, u8_out = adapter.input_dtype == "uint8", adapter.output_dtype == "uint8"
    if u8_in and u8_out:
        return ValueRange(255.0, 255.0, "uint8 input", "uint8 output", {}, _ignored(value_range, name))
    image = probe.natural_image(spec.in_channels, *size)
    candidates = ({1.0: (255.0, 1.0), 255.0: (255.0, 255.0)} if u8_in else
                  {1.0: (1.0, 255.0), 255.0: (255.0, 255.0)} if u8_out else None)
    detected, scores = probe.detect_value_range(
        lambda x: session.run(None, {spec.input_name: x.astype(np.float32)})[0], image, scale, offset, candidates,
        default=255.0 if u8_in else 1.0,
    )
    others = [v for k, v in scores.items() if k != detected]
    source = "detected" if all(scores[detected] * probe.CLEARLY < v for v in others) else "default (undecided)"
    if u8_in:
        return ValueRange(255.0, detected, "uint8 input", source, scores, _ignored(value_range, name))
    output_source = "uint8 output" if u8_out else "as the input"
    if value_range == "auto":
        return ValueRange(detected, 255.0 if u8_out else detected, source, output_source, scores)
    given = float(value_range)
    other = scores.get(given)
    note = None
    if detected != given and (other is None or other > probe.CLEARLY * scores[detected]):
        note = (
            f"{name}: value range {given:g} given, but on a photo the output with {detected:g} is "
            f"{(other or float('inf')) / max(scores[detected], 1e-12):.0f}x closer to a bicubic upscale; "
            f"pass --value-range {detected:g} (or auto) unless you know better"
        )
    return ValueRange(given, 255.0 if u8_out else given, "given", output_source, scores, note)


def _ignored(value_range: float | str, name: str) -> str | None:
    """The warning for a value range given for a uint8 input (always 0..255)."""
    if value_range in ("auto", 255.0):
        return None
    return f"{name} takes uint8 input (0..255): value range {value_range:g} ignored, 255 used"


def _check_value_range(value_range: float | str) -> float | str:
    """'auto' or a positive number (strings such as '255' from the CLI included)."""
    if isinstance(value_range, str) and value_range != "auto":
        try:
            value_range = float(value_range)
        except ValueError:
            raise OnnxAttrError(f"value range {value_range!r}: pass 'auto', 1 or 255") from None
    if not isinstance(value_range, str) and not value_range > 0:
        raise OnnxAttrError(f"value range {value_range!r}: pass 'auto', 1 or 255 (a positive number)")
    return value_range


def _precision_gap(
    model: "SRModel", file_session: ort.InferenceSession, x: np.ndarray, y_core: np.ndarray
) -> tuple[float, str | None]:
    """max |ORT on the original file - ORT on the core| / max |core| on the probe, in [0, 1] units, and a
    warning (or None) when the file fails, is not finite, or differs more than its precision explains."""
    a = model.adapter
    try:
        y = a.from_file(file_session.run(None, {a.input_name: a.to_file(x * model.value_range)})[0]) / model.output_range
    except Exception as err:  # noqa: BLE001
        return float("nan"), f"{model.path.name}: the original file fails in onnxruntime on the probe ({_first_line(err)})"
    if y.shape != y_core.shape or not np.isfinite(y).all():
        what = f"shape {y.shape}" if y.shape != y_core.shape else "NaN/Inf"
        return float("inf"), (
            f"onnxruntime returns {what} on the {a.precision} file {model.path.name} itself (the float32 core "
            "graph, which all attribution uses, is finite): the file's own precision fails on this probe"
        )
    gap = _relative_error(y, y_core)
    tol = max(PRECISION_TOLERANCE[a.precision], UINT8_TOLERANCE if "uint8" in (a.input_dtype, a.output_dtype) else 0)
    if gap > tol:
        return gap, (
            f"{model.path.name}: the {a.precision} file differs from its float32 graph by {gap:.1e} on the probe, "
            f"more than its precision explains ({tol:g}); attributions follow the float32 graph"
        )
    return gap, None


class _Stages:
    """Announces, through ``progress``, each load stage still running after STAGE_NOTICE_S seconds."""

    def __init__(self, name: str, progress: Callable[[str], None] | None) -> None:
        self.name, self.progress = name, progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        timer = None
        if self.progress is not None:
            timer = threading.Timer(STAGE_NOTICE_S, self.progress, args=(f"{stage} {self.name} ...",))
            timer.daemon = True
            timer.start()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - t0
            if timer is not None:
                timer.cancel()


def _op_table(prepared: onnx.ModelProto, graph: fx.GraphModule) -> dict[str, tuple[str, str]]:
    """fx node name -> (ONNX op type, ONNX node name), for module nodes and their getitem outputs."""
    from onnx2torch.onnx_graph import OnnxGraph

    onnx_nodes = OnnxGraph(prepared.graph).nodes
    table: dict[str, tuple[str, str]] = {}
    for n in graph.graph.nodes:
        if n.op == "call_module" and n.target in onnx_nodes:
            on = onnx_nodes[n.target]
            table[n.name] = (on.operation_type, on.name or n.target)
        elif n.op == "call_function" and n.args and isinstance(n.args[0], fx.Node) and n.args[0].name in table:
            op, onnx_name = table[n.args[0].name]
            table[n.name] = (op, f"{onnx_name}[{n.args[1]}]")
    return table


def _first_divergence(model: SRModel, x: np.ndarray) -> str:
    """Name the first node (graph order) whose torch output differs from onnxruntime's by > tolerance."""
    from onnx2torch.onnx_graph import OnnxGraph

    onnx_nodes = OnnxGraph(model.proto.graph).nodes
    probe = onnx.ModelProto()
    probe.CopyFrom(model.proto)
    known = {o.name for o in probe.graph.output}
    value_of: dict[str, str] = {}
    for n in model.graph.graph.nodes:
        if n.op == "call_module" and n.target in onnx_nodes:
            value = onnx_nodes[n.target].output_values[0]
            value_of[n.name] = value
            if value not in known:
                probe.graph.output.append(onnx.ValueInfoProto(name=value))
                known.add(value)
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        ort_vals = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {model.spec.input_name: x * model.value_range})))
    except Exception:  # noqa: BLE001  (diagnosis only)
        return "the first diverging node could not be located"
    torch_vals: dict[str, torch.Tensor] = {}

    def keep(name: str, value: torch.Tensor) -> torch.Tensor:
        torch_vals[name] = value
        return value

    with torch.no_grad():
        model.run(torch.from_numpy(x), value_of, keep)
    for name, value in value_of.items():
        ref, got = ort_vals.get(value), torch_vals.get(name)
        if ref is None or not isinstance(got, torch.Tensor) or tuple(got.shape) != ref.shape:
            continue
        got_np = got.detach().cpu().double().numpy()
        err = np.abs(got_np - ref).max() / max(np.abs(ref).max(), 1e-12)
        if err > VERIFY_TOLERANCE:
            return f"first diverging node {model._op_types[name][1]!r} ({model.op_type(name)}, relative error {err:.2e})"
    return "no single node diverges beyond the tolerance (errors accumulate)"


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def _choose_batch_mode(model: SRModel, x: np.ndarray) -> str:
    """'native' when a batch of 2 equals two single runs, else 'vmap' when that does, else 'loop'.

    Three forwards of the probe (two single, one pair per mode tried): run when a batch first runs, so
    loading, ``inspect`` aside, and batch-1 methods (L2X, GL-AM) never pay for it."""
    xt = torch.from_numpy(x).to(model.device)
    pair = torch.cat([xt, 0.25 + 0.5 * xt.flip(-1)])  # a different image with other statistics
    with torch.no_grad():
        single = torch.cat([model._graph_call(p[None]) for p in pair])
        modes = ["native", "vmap"] if model.spec.batch is None else ["vmap"]
        for mode in modes:
            try:
                got = model._batched(pair, mode)
            except Exception as err:  # noqa: BLE001  (a graph vmap cannot trace, or a fixed-batch reshape)
                reason = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
                warnings.warn(f"{model.path.name}: {mode} batching fails ({reason})", stacklevel=3)
                continue
            err = (got - single).abs().max().item() / max(single.abs().max().item(), 1e-12)
            if err <= BATCH_TOLERANCE:
                return mode
            warnings.warn(
                f"{model.path.name}: {mode} batching differs from single-image runs by {err:.1e} "
                "(an export traced at batch 1); not using it",
                stacklevel=3,
            )
    return "loop"


def _node_list(model: SRModel, x: np.ndarray) -> list[NodeInfo]:
    shapes: dict[str, tuple[int, ...]] = {}

    def shape_of(name: str, value):
        if isinstance(value, torch.Tensor):
            shapes[name] = tuple(value.shape)
        return value

    with torch.no_grad():
        model.run(torch.from_numpy(x), model._op_types, shape_of)
    return [
        NodeInfo(name, op, onnx_name, shapes[name]) for name, (op, onnx_name) in model._op_types.items() if name in shapes
    ]


def load_model(
    path: str | Path,
    device: str | torch.device | None = None,
    verify: bool = True,
    value_range: float | str = "auto",
    channel_order: str = "rgb",
    probe_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
    use_cache: bool = True,
) -> SRModel:
    """Load an ONNX SR model as a verified torch graph.

    ``value_range``: 'auto' (detected from onnxruntime runs on a bundled photo), or 1 / 255 for models fed
    0..1 / 0..255 images (inputs are scaled up, outputs down, so every attribution is with respect to the
    [0, 1] image). ``channel_order``: 'bgr' for files that take and return BGR. ``probe_size``: (H, W) to
    start the probe-size search from. ``progress``: called with one line per load stage (reading, probing,
    converting, verifying) that runs longer than ``STAGE_NOTICE_S``. ``verify=False`` skips the onnxruntime
    checks of the conversion and of the file's precision. ``use_cache``: read and write the converted graph
    in the user's cache (``onnxattr.cache``; a cached load skips the probes and the conversion, and still
    runs the conversion check on the probe).
    """
    name = Path(path).name
    value_range = _check_value_range(value_range)
    stages = _Stages(name, progress)
    with stages("reading"):
        proto, path = onnxfile.read_onnx(path)
        core, adapter = adapters.adapt(proto, path.name, channel_order)
        spec = onnxfile.io_spec(core, path.name)
        sha256 = onnxfile.sha256(path)
        dev = pick_device(device)
        full_float32(dev)
        session = _ort_session(core.SerializeToString() if adapter.changed else path, path.name, dev)
    use_cache = use_cache and cache.folder() is not None
    entry = None
    if use_cache:
        entry_name = cache.key(sha256, value_range=value_range, channel_order=channel_order, probe_size=probe_size,
                               device=dev.type)
        with stages("reading cache"):
            entry = cache.read(entry_name)
    cached = entry is not None
    if entry is None:
        entry = _probe_and_convert(path, core, adapter, spec, session, value_range, probe_size, stages)
    prepared = onnx.load_from_string(entry.prepared)
    model = SRModel(
        path=path,
        sha256=sha256,
        proto=prepared,
        graph=entry.graph.to(dev).eval().requires_grad_(False),
        op_types=_op_table(prepared, entry.graph),
        spec=spec,
        scale=entry.scale,
        offset=entry.offset,
        device=dev,
        value_range=entry.units.input,
        session=session,
        adapter=adapter,
        size_rule=entry.rule,
        value_range_source=entry.units.input_source,
        output_range=entry.units.output,
        output_range_source=entry.units.output_source,
    )
    model.value_range_scores = entry.units.scores
    model.probe_size, model.probe = entry.probe_size, entry.probe
    model.from_cache = cached
    model.load_seconds = stages.seconds
    for note in entry.load_warnings:
        warnings.warn(note, stacklevel=2)
    with stages("verifying"):
        if verify:
            _verify(model, entry.probe, entry.probe_output)
            if adapter.changed and entry.precision_gap is None:
                gap, note = _precision_gap(model, _ort_session(path, path.name, dev), entry.probe, entry.probe_output)
                entry.precision_gap = gap
                if note:
                    entry.load_warnings.append(note)
                    warnings.warn(note, stacklevel=2)
            model.precision_gap = entry.precision_gap
        if not adapter.changed:
            model.precision_gap = 0.0  # onnxruntime runs the file itself
    if use_cache and verify and not cached:
        cache.write(entry_name, entry)  # verified entries only (read back onto the CPU)
    return model


def _probe_and_convert(
    path: Path,
    core: onnx.ModelProto,
    adapter: adapters.Adapter,
    spec: onnxfile.IOSpec,
    session: ort.InferenceSession,
    value_range: float | str,
    probe_size: tuple[int, int] | None,
    stages: "_Stages",
) -> cache.Entry:
    """What onnxruntime tells about the file (size rule, output law, value range, the probe's output) and the
    converted graph: everything of a load but the verification."""
    with stages("probing"):
        fixed = (spec.height, spec.width) if spec.height and spec.width else None
        rule, runs = probe.find_sizes(_size_runner(session, spec), fixed, path.name, probe_size)
        scale, offset = _scale_law(path.name, runs, spec.in_channels)
        size = _verification_size([size for size, _ in runs])
        units = _value_range(value_range, adapter, session, spec, size, scale, offset, path.name)
        quantize = (lambda x: np.round(x * 255) / 255) if adapter.input_dtype == "uint8" else (lambda x: x)
        x, y_ort = _probe_run(spec, session, (units.input, units.output), path.name, size, prep=quantize)
    with stages("converting"):
        from .converters import to_torch  # the heavy import (onnxscript) counts as converting

        try:
            graph, prepared = to_torch(core)
        except OnnxAttrError:
            raise
        except Exception as err:  # noqa: BLE001  (onnx2torch raises bare exceptions for many conversion faults)
            raise OnnxAttrError(f"cannot convert {path.name} to torch: {_first_line(err)}") from err
    return cache.Entry(
        graph=graph, prepared=prepared.SerializeToString(), rule=rule, scale=scale, offset=offset, units=units,
        probe_size=size, probe=x, probe_output=y_ort, precision_gap=None, load_warnings=[units.note] if units.note else [],
    )


def _verify(model: SRModel, x: np.ndarray, y_ort: np.ndarray) -> None:
    """conversion_error = max |torch - ORT| / max |ORT| on the core; refuse above VERIFY_TOLERANCE, naming the cause."""
    name = model.path.name
    with torch.no_grad():
        # the full graph, one plain forward: a fast copy specialised to the probe's shape would cost two runs and
        # serve no method (each fast copy is checked against the full graph at its own shape, fastgraph.specialise)
        got = (model.graph(torch.from_numpy(x).to(model.device) * model.value_range) / model.output_range).cpu().numpy()
    if got.shape != y_ort.shape:
        raise OnnxAttrError(f"converted {name} returns shape {got.shape}, onnxruntime {y_ort.shape}; a converter is wrong")
    model.conversion_error = err = _relative_error(got, y_ort)
    if np.isfinite(err) and err <= VERIFY_TOLERANCE:
        return
    if not np.isfinite(got).all():
        raise OnnxAttrError(
            f"converted {name} returns NaN/Inf where onnxruntime is finite: {_first_divergence(model, x)}; "
            "a converter in converters/ is wrong"
        )
    precision = model.adapter.precision if model.adapter else "float32"
    if precision != "float32" and err <= PRECISION_TOLERANCE[precision]:
        raise OnnxAttrError(
            f"converted {name} differs from onnxruntime by {err:.2e}, within the {precision} file's own precision "
            f"({PRECISION_TOLERANCE[precision]:g}) but above the float32 check ({VERIFY_TOLERANCE:g}): part of the "
            "graph still computes in low precision; pass --no-verify to accept it"
        )
    raise OnnxAttrError(
        f"converted {name} differs from onnxruntime by {err:.2e} (relative max, limit "
        f"{VERIFY_TOLERANCE:g}): {_first_divergence(model, x)}; a converter in converters/ is wrong"
    )
