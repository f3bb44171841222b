"""An ONNX SR model as a verified torch graph: scale, batching, taps on every node.

``load_model`` reads and validates the file, probes onnxruntime for the output size
law ``out = s * in + c``, converts the graph with onnx2torch plus ``onnxattr.converters``,
checks the conversion against onnxruntime (first diverging node named on failure) and
finds a safe way to run several images at once.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import fx

from . import onnxfile
from .device import ort_providers, pick_device
from .errors import OnnxAttrError
from .finite import nonfinite_output_message
from .target import check_input_size

VERIFY_TOLERANCE = 1e-4
BATCH_TOLERANCE = 1e-5
_PROBE_SIZES = ((32, 48), (48, 64))


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
    ``fixed_size`` (H, W) or None, ``value_range`` (the model sees x * value_range), ``nodes``,
    ``conversion_error`` (max |torch - ORT| / max |ORT| on the probe, None if not verified),
    ``batch_mode`` ('native', 'vmap' or 'loop': how several images run at once), ``device``.
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
    ) -> None:
        self.path, self.sha256, self.proto, self.graph = path, sha256, proto, graph
        self.spec, self.scale, self.offset, self.device = spec, scale, offset, device
        self.value_range = float(value_range)
        self.session = session
        self.in_channels = spec.in_channels
        self.fixed_size = (spec.height, spec.width) if spec.height and spec.width else None
        self.opset = onnxfile.opset_of(proto)
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self._op_types = op_types
        self.conversion_error: float | None = None
        self.batch_mode = "native"
        self.nodes: list[NodeInfo] = []

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
        check_input_size(x.shape[2], x.shape[3], self.scale, self.offset, self.path.name)

    def _graph_call(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x * self.value_range) / self.value_range

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """SR of a batch (N, C, H, W) in [0, 1]; differentiable; runs per ``batch_mode``."""
        x = x.to(self.device, torch.float32)
        if self.batch_mode == "native" or x.shape[0] == 1:
            return self._graph_call(x)
        if self.batch_mode == "vmap":
            return torch.func.vmap(lambda xi: self._graph_call(xi[None])[0])(x)
        return torch.cat([self._graph_call(xi[None]) for xi in x])

    def run_ort(self, x: np.ndarray) -> np.ndarray:
        """Forward-only pass in onnxruntime, image by image (batch-safe for any export); [0, 1] units."""
        outs = [
            self.session.run(None, {self.spec.input_name: (xi[None] * self.value_range).astype(np.float32)})[0]
            for xi in np.asarray(x, dtype=np.float32)
        ]
        return np.concatenate(outs) / self.value_range

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
        passes through ``on_node(name, value)``, whose return value flows on (it may record or replace it)."""
        x = x.to(self.device, torch.float32)
        runner = _Hooked(self.graph, set(watch), on_node)
        return runner.run(x * self.value_range) / self.value_range

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


def _ort_session(path: Path, device: torch.device) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=ort_providers(device))
    except Exception as err:  # noqa: BLE001  (onnxruntime raises several private exception types)
        first = str(err).strip().splitlines()[0][:300]
        raise OnnxAttrError(f"onnxruntime cannot load {path.name}: {first}; re-export the model") from err


def _ort_out_shape(session: ort.InferenceSession, spec: onnxfile.IOSpec, x: np.ndarray, vr: float) -> np.ndarray:
    try:
        return session.run(None, {spec.input_name: x * vr})[0] / vr
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0][:300]
        raise OnnxAttrError(
            f"onnxruntime failed to run the model on a {x.shape[3]}x{x.shape[2]} probe image: {first}"
        ) from err


def _scale_law(spec: onnxfile.IOSpec, session: ort.InferenceSession, vr: float, name: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Find s and c with out = s * in + c by running onnxruntime on one (fixed) or two (dynamic) sizes.

    Returns s, c and the last probe input and ORT output (reused to verify the conversion).
    """
    fixed = spec.height and spec.width
    sizes = [(spec.height, spec.width)] if fixed else list(_PROBE_SIZES)
    runs = []
    for h, w in sizes:
        x = _probe_image(spec.in_channels, h, w)
        y = _ort_out_shape(session, spec, x, vr)
        if y.ndim != 4 or y.shape[1] != spec.in_channels:
            raise OnnxAttrError(
                f"{name} maps {spec.in_channels} channels to output shape {y.shape}; not an SR image model "
                "(the output must have the input's channels)"
            )
        runs.append((h, w, x, y))
    if fixed:
        h, w, x, y = runs[0]
        s = int(round(y.shape[2] / h))
        c = y.shape[2] - s * h
        if s * w + c != y.shape[3]:
            raise OnnxAttrError(f"{name} maps {w}x{h} to {y.shape[3]}x{y.shape[2]}: no common scale for rows and columns")
    else:
        (h1, w1, _, y1), (h2, w2, x, y) = runs
        sh, sw = (y.shape[2] - y1.shape[2]) / (h2 - h1), (y.shape[3] - y1.shape[3]) / (w2 - w1)
        s = int(round(sh))
        c = y1.shape[2] - s * h1
        if sh != sw or sh != s or y1.shape[3] - s * w1 != c:
            raise OnnxAttrError(
                f"{name}'s output size is not s*H + c with one integer s and c for rows and columns "
                f"({w1}x{h1} -> {y1.shape[3]}x{y1.shape[2]}, {w2}x{h2} -> {y.shape[3]}x{y.shape[2]})"
            )
    if s < 2:
        raise OnnxAttrError(
            f"{name} does not upscale (scale {s}: {x.shape[3]}x{x.shape[2]} -> {y.shape[3]}x{y.shape[2]}); "
            "onnxattr explains super-resolution models with scale >= 2"
        )
    return s, c, x, y


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
    """'native' when a batch of 2 equals two single runs, else 'vmap' when that does, else 'loop'."""
    xt = torch.from_numpy(x).to(model.device)
    pair = torch.cat([xt, 0.25 + 0.5 * xt.flip(-1)])  # a different image with other statistics
    with torch.no_grad():
        single = torch.cat([model._graph_call(p[None]) for p in pair])
        modes = ["native", "vmap"] if model.spec.batch is None else ["vmap"]
        for mode in modes:
            model.batch_mode = mode
            try:
                got = model(pair)
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
    value_range: float = 1.0,
) -> SRModel:
    """Load an ONNX SR model as a verified torch graph.

    ``value_range``: 255 for models fed 0..255 images (inputs are scaled up, outputs down, so every
    attribution is with respect to the [0, 1] image). ``verify=False`` skips the onnxruntime check.
    """
    from .converters import to_torch

    proto, path = onnxfile.read_onnx(path)
    spec = onnxfile.io_spec(proto, path.name)
    dev = pick_device(device)
    session = _ort_session(path, dev)
    scale, offset, x, y_ort = _scale_law(spec, session, value_range, path.name)
    try:
        graph, prepared = to_torch(proto)
    except OnnxAttrError:
        raise
    except Exception as err:  # noqa: BLE001  (onnx2torch raises bare exceptions for many conversion faults)
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise OnnxAttrError(f"cannot convert {path.name} to torch: {first}") from err
    graph = graph.to(dev).eval().requires_grad_(False)
    model = SRModel(
        path=path,
        sha256=onnxfile.sha256(path),
        proto=prepared,
        graph=graph,
        op_types=_op_table(prepared, graph),
        spec=spec,
        scale=scale,
        offset=offset,
        device=dev,
        value_range=value_range,
        session=session,
    )
    if verify:
        bad = int((~np.isfinite(y_ort)).sum())
        if bad:  # the model's own output, before any conversion is judged
            raise OnnxAttrError(nonfinite_output_message(model, torch.from_numpy(x), bad, y_ort.size, "a smooth probe image"))
        with torch.no_grad():
            got = model._graph_call(torch.from_numpy(x).to(dev)).cpu().numpy()
        if got.shape != y_ort.shape:
            raise OnnxAttrError(
                f"converted {path.name} returns shape {got.shape}, onnxruntime {y_ort.shape}; a converter is wrong"
            )
        model.conversion_error = _relative_error(got, y_ort)
        if not np.isfinite(model.conversion_error) or model.conversion_error > VERIFY_TOLERANCE:
            raise OnnxAttrError(
                f"converted {path.name} differs from onnxruntime by {model.conversion_error:.2e} (relative max, limit "
                f"{VERIFY_TOLERANCE:g}): {_first_divergence(model, x)}; a converter in converters/ is wrong"
            )
    model.batch_mode = _choose_batch_mode(model, x)
    model.nodes = _node_list(model, x)
    return model
