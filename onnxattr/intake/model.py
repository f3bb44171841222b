"""An ONNX SR model as a verified torch graph: ``model(x)`` in [0, 1] units, batching, taps on every node.

``SRModel`` holds what ``intake.load.load_model`` found (the graph, its onnxruntime twin, the geometry and the
trust in the conversion) and runs it: batches per ``batch_mode`` (decided when a batch first runs), the fast
untapped path (``fastgraph``) and node-by-node taps. ``facts()`` is its one plain-value projection, read by
``inspect``, result attrs and studies.
"""

from __future__ import annotations

import math
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import fx

from ..errors import OnnxAttrError, beside
from . import cache
from .adapters import Adapter
from .convert import OpTable, run_hooked
from .diagnose import first_nonfinite_node
from .fastgraph import FastGraphs
from .onnxfile import IOSpec, opset_of
from .sizes import SizeRule
from .units import ValueRange
from .verify import VERIFY_TOLERANCE

# How far a batch of 2 may differ from two single runs (max |batch - singles| / max |singles|) and still be the same
# computation: float32 rounding, as convolution algorithms differ with the batch size (``batch_tolerance``).
FLOAT32_ROUNDING = float(np.finfo(np.float32).eps)  # 1.2e-7: one unit in the last place, relative
OWN_NOISE = 4  # times the model's conversion error: its own float32 agreement between two implementations
_FIRST_USE = threading.RLock()  # threads sharing a model (compare) decide its lazy facts once


def batch_tolerance(values: int, conversion_error: float | None) -> float:
    """The largest relative difference between a batch and single runs that is float32 rounding, not a traced batch:

        min(VERIFY_TOLERANCE, max(FLOAT32_ROUNDING * sqrt(n), OWN_NOISE * conversion_error))

    with n the output values compared (rounding errors of n values reach about sqrt(n) ulps at their largest) and the
    conversion error the model's own precision: torch and onnxruntime computing the same float32 graph on the same
    probe differ by it, and convolution algorithms chosen per batch size differ alike (measured: 1.2 times it). The
    cap is the conversion check's limit: a batch-1 trace is off by far more (SwinIR, HAT: ~1e-3 at batch 3)."""
    own = OWN_NOISE * conversion_error if conversion_error is not None and math.isfinite(conversion_error) else 0.0
    return min(VERIFY_TOLERANCE, max(FLOAT32_ROUNDING * math.sqrt(values), own))


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


@dataclass(frozen=True)
class ModelFacts:
    """What a load found about a model file, as plain values (JSON-ready, picklable, small): the one projection of
    an ``SRModel`` that ``inspect``, result attrs and study stores read. ``value_range_scores`` maps each candidate
    range ('1', '255') to its photo-test distance; ``load_seconds`` each load stage to its wall time."""

    path: str
    sha256: str
    scale: int
    offset: int
    in_channels: int
    fixed_size: tuple[int, int] | None
    input_name: str
    input_shape: tuple[int | str, ...]
    output_name: str
    opset: int
    producer: str
    value_range: float
    value_range_source: str
    output_range: float
    output_range_source: str
    value_range_scores: dict[str, float]
    conversion_error: float | None
    precision_gap: float | None
    file_precision: str
    input_layout: str
    output_layout: str
    input_dtype: str
    output_dtype: str
    channel_order: str
    removed_at_output: tuple[str, ...]
    adapter_reasons: tuple[str, ...]
    size_rule: str
    min_side: int
    multiple: int
    probe_size: tuple[int, int]
    device: str
    from_cache: bool
    load_seconds: dict[str, float]
    file_input_name: str = ""  # the file's own input and output, shapes as it declares them (names where symbolic)
    file_input_shape: tuple[int | str, ...] = ()
    file_output_name: str = ""
    file_output_shape: tuple[int | str, ...] = ()

    @property
    def file(self) -> str:
        """The model's file name."""
        return Path(self.path).name

    def attrs(self) -> dict[str, Any]:
        """The attrs of every result that identify the model and the trust in its conversion (docs/results.md)."""
        nan = float("nan")
        return {
            "model_file": self.file, "model_sha256": self.sha256, "scale": self.scale, "offset": self.offset,
            "value_range": self.value_range, "value_range_source": self.value_range_source,
            "output_range": self.output_range, "output_range_source": self.output_range_source,
            "conversion_error": nan if self.conversion_error is None else self.conversion_error,
            "file_precision": self.file_precision,
            "precision_gap": nan if self.precision_gap is None else self.precision_gap,
            "layout": self.input_layout, "input_dtype": self.input_dtype, "output_dtype": self.output_dtype,
            "channel_order": self.channel_order, "size_rule": self.size_rule, "device": self.device,
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ModelFacts | None:
        """Facts written as JSON (``dataclasses.asdict``) read back; None when they come from another version."""
        try:
            facts = cls(**values)
        except TypeError:
            return None
        tuples = {k: tuple(getattr(facts, k)) for k in ("input_shape", "file_input_shape", "file_output_shape",
                                                        "removed_at_output", "adapter_reasons", "probe_size")}
        fixed = tuple(facts.fixed_size) if facts.fixed_size else None
        return cls(**{**values, **tuples, "fixed_size": fixed})


class SRModel:
    """A converted SR network. Call it on images in [0, 1]: ``model(x)`` -> SR output in [0, 1] units.

    Attributes: ``scale`` s and ``offset`` c (output side = s * input side + c), ``in_channels``,
    ``fixed_size`` (H, W) or None, ``value_range`` (the model sees x * value_range), ``output_range`` (it returns
    y * output_range: the value range but for files whose uint8 end fixes one side), ``nodes``,
    ``conversion_error`` (max |torch - ORT| / max |ORT| on the probe, None if not verified),
    ``batch_mode`` ('native', 'vmap' or 'loop': how several images run at once), ``device``;
    ``adapter`` (the file's layout, dtypes, precision, channel order: see ``intake.adapters``),
    ``precision_gap`` (max |ORT on the file - ORT on the float32 core| / max, 0 when the core is the file, None when
    not verified), ``value_range_source`` and ``output_range_source`` (see ``intake.units``), ``size_rule`` (the
    input sizes it takes), ``probe`` (the verification image) and ``probe_size``, ``from_cache``, ``load_seconds``;
    ``learned``: facts about the model found on first use (``remember``), kept with its cache entry ``cache_entry``.
    ``session`` runs the core graph in onnxruntime (float32 NCHW RGB, the units of ``model.graph``); ``op_table``
    maps fx node names to (ONNX op type, ONNX node name).
    """

    def __init__(
        self, *, path: Path, sha256: str, proto: onnx.ModelProto, graph: fx.GraphModule, op_table: OpTable,
        spec: IOSpec, adapter: Adapter, scale: int, offset: int, size_rule: SizeRule, units: ValueRange,
        session: ort.InferenceSession, device: torch.device, probe: np.ndarray, conversion_error: float | None,
        precision_gap: float | None, from_cache: bool = False, load_seconds: dict[str, float] | None = None,
        cache_entry: str | None = None, learned: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.sha256, self.proto, self.graph, self.op_table = path, sha256, proto, graph, op_table
        self.spec, self.adapter, self.scale, self.offset, self.size_rule = spec, adapter, scale, offset, size_rule
        self.value_range, self.output_range = float(units.input), float(units.output)
        self.value_range_source, self.output_range_source = units.input_source, units.output_source
        self.value_range_scores = dict(units.scores)
        self.session, self.device, self.probe = session, device, probe
        self.probe_size: tuple[int, int] = tuple(probe.shape[2:])  # type: ignore[assignment]
        self.conversion_error, self.precision_gap = conversion_error, precision_gap
        self.from_cache, self.load_seconds = from_cache, dict(load_seconds or {})
        self.in_channels = spec.in_channels
        self.fixed_size = (spec.height, spec.width) if spec.height and spec.width else None
        self.opset = opset_of(proto)
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self.cache_entry, self.learned = cache_entry, dict(learned or {})
        self._batch_mode: str | None = self.learned.get("batch_mode")
        self._nodes: list[NodeInfo] | None = None
        if "nodes" in self.learned:
            self._nodes = [NodeInfo(n, op, onnx_name, tuple(shape)) for n, op, onnx_name, shape in self.learned["nodes"]]
        self._fast: FastGraphs | None = None

    def facts(self) -> ModelFacts:
        """What the load found, as plain values (see ``ModelFacts``)."""
        a, spec = self.adapter, self.spec
        return ModelFacts(
            path=str(self.path), sha256=self.sha256, scale=self.scale, offset=self.offset,
            in_channels=self.in_channels, fixed_size=self.fixed_size, input_name=spec.input_name,
            input_shape=("N" if spec.batch is None else 1, self.in_channels, spec.height or "H", spec.width or "W"),
            output_name=spec.output_name, opset=self.opset, producer=self.producer, value_range=self.value_range,
            value_range_source=self.value_range_source, output_range=self.output_range,
            output_range_source=self.output_range_source,
            value_range_scores={f"{k:g}": v for k, v in self.value_range_scores.items()},
            conversion_error=self.conversion_error, precision_gap=self.precision_gap, file_precision=a.precision,
            file_input_name=a.input_name, file_input_shape=tuple(a.input_shape), file_output_name=a.output_name,
            file_output_shape=tuple(a.output_shape), input_layout=a.input_layout, output_layout=a.output_layout,
            input_dtype=a.input_dtype, output_dtype=a.output_dtype, channel_order=a.orders,
            removed_at_output=tuple(a.removed),
            adapter_reasons=tuple(a.reasons), size_rule=self.size_rule.describe(), min_side=self.size_rule.min_side,
            multiple=self.size_rule.multiple, probe_size=self.probe_size, device=str(self.device),
            from_cache=self.from_cache, load_seconds=dict(self.load_seconds),
        )

    # ------------------------------------------- facts found on first use (not every run needs them)
    def recall(self, name: str) -> Any:
        """A JSON fact about the model that does not depend on the image (``remember``), or None."""
        return self.learned.get(name)

    def remember(self, name: str, value: Any) -> None:
        """Keep a JSON fact found about the model (its batch mode, node list, a method's memory law): for this
        object, and with its cache entry (``cache.add_facts``) so that later processes loading the file read it
        instead of measuring it again."""
        with _FIRST_USE:
            self.learned[name] = value
            if self.cache_entry is not None:
                cache.add_facts(self.cache_entry, learned={name: value})

    @property
    def batch_mode(self) -> str:
        """'native', 'vmap' or 'loop': how a batch runs, decided when a batch first runs (``_choose_batch_mode``)
        and kept with the cache entry."""
        return self._mode_for(None)

    def _mode_for(self, example: torch.Tensor | None) -> str:
        with _FIRST_USE:
            if self._batch_mode is None:
                self._batch_mode = self._choose_batch_mode(example)
                self.remember("batch_mode", self._batch_mode)
        return self._batch_mode

    @property
    def nodes(self) -> list[NodeInfo]:
        """Every tappable node with its output shape on the probe image (one tapped run on first use, kept with the
        cache entry)."""
        with _FIRST_USE:
            if self._nodes is None:
                self._nodes = self._node_list()
                self.remember("nodes", [[n.name, n.op_type, n.onnx_name, list(n.shape)] for n in self._nodes])
        return self._nodes

    @property
    def fast(self) -> FastGraphs:
        """The untapped path: ``graph`` specialised per input shape (``intake.fastgraph``), built on first use."""
        with _FIRST_USE:
            if self._fast is None:
                self._fast = FastGraphs(self.graph, {name: op for name, (op, _) in self.op_table.items()})
        return self._fast

    def _choose_batch_mode(self, example: torch.Tensor | None = None) -> str:
        """'native' when a batch equals single runs of its images, else 'vmap' when that does, else 'loop'.

        The images are a and b = 0.25 + 0.5 a (flipped; other statistics), a the probe or, given the first batch
        that runs (``example``, N >= 2), its first image: then the batch is a, b, a, b, ... at that batch's shape
        and the singles at its image shape, shapes the call runs anyway (nothing specialised for the check alone).
        Two single forwards and one batch per mode tried: run when a batch first runs, so loading, ``inspect``
        aside, and batch-1 methods (L2X, GL-AM) never pay for it."""
        a = torch.from_numpy(self.probe).to(self.device) if example is None else example[:1].detach()
        n = 2 if example is None else example.shape[0]
        pair = torch.cat([a, 0.25 + 0.5 * a.flip(-1)])
        batch = pair.repeat((n + 1) // 2, 1, 1, 1)[:n]
        with torch.no_grad():
            single = torch.cat([self._graph_call(p[None]) for p in pair]).repeat((n + 1) // 2, 1, 1, 1)[:n]
            modes = ["native", "vmap"] if self.spec.batch is None else ["vmap"]
            for mode in modes:
                try:
                    got = self._batched(batch, mode)
                except Exception as err:  # noqa: BLE001  (a graph vmap cannot trace, or a fixed-batch reshape)
                    reason = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
                    warnings.warn(f"{self.path.name}: {mode} batching fails ({reason})", stacklevel=5)
                    continue
                err = (got - single).abs().max().item() / max(single.abs().max().item(), 1e-12)
                tol = batch_tolerance(single.numel(), self.conversion_error)
                if err <= tol:
                    return mode
                err_text, tol_text = beside(err, tol)
                warnings.warn(
                    f"{self.path.name}: {mode} batching differs from single-image runs by {err_text}, more than "
                    f"float32 rounding explains ({tol_text}): an export traced at batch 1?; not using it",
                    stacklevel=5,
                )
        return "loop"

    def _node_list(self) -> list[NodeInfo]:
        shapes: dict[str, tuple[int, ...]] = {}

        def shape_of(name: str, value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                shapes[name] = tuple(value.shape)
            return value

        with torch.no_grad():
            self.run(torch.from_numpy(self.probe), self.op_table, shape_of)
        return [NodeInfo(name, op, onnx_name, shapes[name])
                for name, (op, onnx_name) in self.op_table.items() if name in shapes]

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
        return self._batched(x, "native" if x.shape[0] == 1 else self._mode_for(x))

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
        return self.op_table.get(name, ("", ""))[0]

    def first_nonfinite_node(self, x: torch.Tensor) -> str | None:
        """'ONNX name' (op type) of the first node whose output holds NaN or Inf on ``x`` (1, C, H, W) in [0, 1]."""
        return first_nonfinite_node(self.graph, self.op_table, x[:1].detach().to(self.device) * self.value_range)

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
        return run_hooked(self.graph, x * self.value_range, watch, on_node) / self.output_range

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
