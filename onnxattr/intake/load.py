"""``load_model``: an ONNX file in, a verified ``SRModel`` out (README "Models" lists the steps).

Reading (``onnxfile``) and adapting the file to its float32 core (``adapters``); probing onnxruntime for the
sizes it takes, its output law (``sizes``) and its units (``units``); converting (``convert``); verifying the
conversion and the file's own precision (``verify``). What the probes and the conversion found is kept in the
user's cache (``cache``), so a later load of the same file skips them.
"""

from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..device import full_float32, pick_device
from ..errors import OnnxAttrError, first_line
from . import cache
from .adapters import Adapter, adapt
from .convert import convert, op_table, rebuild
from .forward import ForwardModel
from .model import SRModel
from .onnxfile import IOSpec, io_spec, read_onnx, sha256
from .session import ort_session, run_probe, size_runner
from .sizes import find_sizes, scale_law, verification_size
from .units import check_value_range, value_range_of
from .verify import conversion_error, precision_gap

STAGE_NOTICE_S = 2.0  # a load stage running longer than this is announced through ``progress``


class Stages:
    """Times each load stage and announces, through ``progress``, each one still running after STAGE_NOTICE_S."""

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


def open_file(path: str | Path, channel_order: str, device: str | torch.device | None, notes: list[str] | None = None
              ) -> tuple[Path, onnx.ModelProto, Adapter, IOSpec, str, torch.device, ort.InferenceSession]:
    """The file read and checked (``read_onnx``; ``notes`` as there), its float32 core and adapter, the core's I/O,
    the file's SHA-256, the device (``pick_device``) and an onnxruntime session on it (on the file itself when the
    core is the file)."""
    proto, path = read_onnx(path, notes)
    core, adapter = adapt(proto, path.name, channel_order)
    spec, file_sha, dev = io_spec(core, path.name), sha256(path), pick_device(device)
    session = ort_session(core.SerializeToString() if adapter.changed else path, path.name, dev)
    return path, core, adapter, spec, file_sha, dev, session


def load_model(
    path: str | Path,
    device: str | torch.device | None = None,
    verify: bool = True,
    value_range: float | str = "auto",
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
    use_cache: bool = True,
    forward_only: bool = False,
) -> SRModel:
    """Load an ONNX SR model as a verified torch graph.

    ``value_range``: 'auto' (detected from onnxruntime runs on a bundled photo), or 1 / 255 for models fed
    0..1 / 0..255 images (inputs are scaled up, outputs down, so every attribution is with respect to the
    [0, 1] image). ``channel_order``: 'auto' (each end BGR where the graph reverses its channel axis, as
    pre-processing pipelines do, else RGB), or 'rgb' / 'bgr' for both ends. ``probe_size``: (H, W) to
    start the probe-size search from. ``progress``: called with one line per load stage (reading, probing,
    converting, verifying) that runs longer than ``STAGE_NOTICE_S``. ``verify=False`` skips the onnxruntime
    checks of the conversion and of the file's precision. ``use_cache``: read and write the converted graph
    in the user's cache (``intake.cache``; a cached load skips the probes and the conversion, and still
    runs the conversion check on the probe). ``forward_only``: for forward-only work (CEM), see ``load_forward``.
    """
    if forward_only:
        return load_forward(path, device, value_range, channel_order, probe_size, progress, use_cache)
    name = Path(path).name
    value_range = check_value_range(value_range)
    stages = Stages(name, progress)
    file_notes: list[str] = []  # onnx.checker's: said at the file's first load, not again from its cache entry
    with stages("reading"):
        path, core, adapter, spec, file_sha, dev, session = open_file(path, channel_order, device, file_notes)
        full_float32(dev)
    use_cache = use_cache and cache.folder() is not None
    names = [_entry_name(file_sha, dev, value_range, channel_order, probe_size)] if use_cache else []
    entry, entry_name = _read_cache(names, stages)
    cached = entry is not None
    for note in [] if cached else file_notes:
        warnings.warn(note, stacklevel=2)
    if entry is None:
        entry, graph = probe_and_convert(path, core, adapter, spec, session, value_range, probe_size, stages)
        prepared = onnx.load_from_string(entry.prepared)
    else:
        with stages("rebuilding"):
            prepared = onnx.load_from_string(entry.prepared)
            graph = rebuild(prepared, path.name)
    ops = op_table(prepared, graph)
    graph = graph.to(dev).eval().requires_grad_(False)
    for note in entry.load_warnings:
        warnings.warn(note, stacklevel=2)
    with stages("verifying"):
        error = gap = None
        if verify:
            error = conversion_error(path.name, prepared, graph, ops, spec.input_name, (entry.units.input, entry.units.output),
                                     adapter.precision, entry.probe, entry.probe_output, dev)
            gap = _precision_gap(path, adapter, entry, dev)
        if not adapter.changed:
            gap = 0.0  # onnxruntime runs the file itself
    if use_cache and verify and not cached:
        cache.write(entry_name, entry)  # verified entries only
    return SRModel(
        path=path, sha256=file_sha, proto=prepared, graph=graph, op_table=ops, spec=spec, adapter=adapter,
        scale=entry.scale, offset=entry.offset, size_rule=entry.rule, units=entry.units, session=session, device=dev,
        probe=entry.probe, conversion_error=error, precision_gap=gap, from_cache=cached, load_seconds=stages.seconds,
        cache_entry=entry_name if use_cache and verify else None, learned=entry.extra.get("learned"),
    )


def load_forward(
    path: str | Path,
    device: str | torch.device | None = None,
    value_range: float | str = "auto",
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    progress: Callable[[str], None] | None = None,
    use_cache: bool = True,
) -> SRModel:
    """The model for work that only runs it forward (CEM), as onnxruntime runs the file on ``device``.

    Where onnxruntime runs on the device (the CPU, or CUDA with its CUDA provider) the file is read, adapted and
    probed (sizes, output law, units) but not converted: a ``ForwardModel``, whose ``graph_error`` says so, or names
    the first op no converter handles (warned once: LAM, L2X and GL-AM cannot run on it). Else (CUDA without
    onnxruntime's CUDA provider) the verified torch graph (``load_model``) runs on the device, and a file the
    conversion refuses falls back to onnxruntime on the CPU, with the reason warned once. With ``use_cache`` the
    probes' facts come from the file's cache entry (a full load's, else an earlier forward-only load's, which the
    first one writes, ``prepared`` empty), and what the model learns on first use (``SRModel.remember``: CEM's memory
    law and batching) is kept there.
    """
    name = Path(path).name
    value_range = check_value_range(value_range)
    stages = Stages(name, progress)
    reason = None
    file_notes: list[str] = []
    with stages("reading"):
        path, core, adapter, spec, file_sha, dev, session = open_file(path, channel_order, device, file_notes)
    if dev.type == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        try:
            return load_model(path, dev, True, value_range, channel_order, probe_size, progress, use_cache)
        except OnnxAttrError as err:
            reason = first_line(err)
    names = []  # a full load's entry (it holds every probe fact), else a forward-only load's
    if use_cache and cache.folder() is not None:
        names = [_entry_name(file_sha, dev, value_range, channel_order, probe_size, **extra)
                 for extra in ({}, {"forward_only": True})]
    entry, entry_name = _read_cache(names, stages)  # none found: the forward-only entry's name, written below
    cached = entry is not None
    for note in [] if cached else file_notes:
        warnings.warn(note, stacklevel=3)
    if entry is None:
        entry, _ = probe_and_convert(path, core, adapter, spec, session, value_range, probe_size, stages,
                                     convert_graph=False)
        entry.prepared = b""  # nothing converted: the core is read from the file
        if names:
            cache.write(names[1], entry)
    for note in entry.load_warnings:
        warnings.warn(note, stacklevel=3)
    if reason is None:
        from ..converters import unsupported_op  # the op table only: nothing is converted

        found = unsupported_op(core)
        reason = first_line(found) if found is not None else None
    if reason is not None:
        where = "onnxruntime on the CPU" if dev.type == "cuda" else "onnxruntime"
        warnings.warn(f"{name} has no torch graph ({reason}): LAM, L2X and GL-AM cannot run on it; forward-only "
                      f"methods (CEM) run it in {where}", stacklevel=3)
    return ForwardModel(
        graph_error=reason or "loaded forward-only, not converted", path=path, sha256=file_sha, proto=core, spec=spec,
        adapter=adapter, scale=entry.scale, offset=entry.offset, size_rule=entry.rule, units=entry.units,
        session=session, device=dev, probe=entry.probe, precision_gap=None, from_cache=cached,
        load_seconds=stages.seconds, cache_entry=entry_name, learned=entry.extra.get("learned"),
    )


def _read_cache(names: list[str], stages: Stages) -> tuple[cache.Entry | None, str | None]:
    """The first of the entries ``names`` the cache holds, and its name; else None and the last name (None when
    there are none: the cache is off)."""
    entry = name = None
    if names:
        with stages("reading cache"):
            for name in names:
                entry = cache.read(name)
                if entry is not None:
                    break
    return entry, name


def _entry_name(file_sha: str, device: torch.device, value_range: float | str, channel_order: str,
                probe_size: tuple[int, int] | None, **extra: Any) -> str:
    """The cache entry of the file loaded with these options (``extra``: what else sets it apart)."""
    return cache.key(file_sha, value_range=value_range, channel_order=channel_order, probe_size=probe_size,
                     device=device.type, **extra)


def _precision_gap(path: Path, adapter: Adapter, entry: cache.Entry, device: torch.device) -> float | None:
    """The file's precision gap (``verify.precision_gap``), measured once per cache entry; its warning is given
    when measured and kept with the entry's warnings for later loads. None when the core is the file."""
    if not adapter.changed:
        return None
    if entry.precision_gap is None:
        units = (entry.units.input, entry.units.output)
        entry.precision_gap, note = precision_gap(path.name, adapter, ort_session(path, path.name, device), units,
                                                  entry.probe, entry.probe_output)
        if note:
            entry.load_warnings.append(note)
            warnings.warn(note, stacklevel=3)
    return entry.precision_gap


def probe_and_convert(
    path: Path,
    core: onnx.ModelProto,
    adapter: Adapter,
    spec: IOSpec,
    session: ort.InferenceSession,
    value_range: float | str,
    probe_size: tuple[int, int] | None,
    stages: Stages,
    convert_graph: bool = True,
) -> tuple[cache.Entry, torch.fx.GraphModule | None]:
    """What onnxruntime tells about the file (size rule, output law, value range, the probe's output) and the
    converted graph: everything of a load but the verification (``convert_graph=False``: no graph, the core as
    ``prepared``)."""
    with stages("probing"):
        fixed = (spec.height, spec.width) if spec.height and spec.width else None
        rule, runs = find_sizes(size_runner(session, spec), fixed, path.name, probe_size)
        scale, offset = scale_law(path.name, runs, spec.in_channels)
        size = verification_size([size for size, _ in runs])
        units = value_range_of(value_range, adapter, session, spec, size, scale, offset, path.name)
        quantize = (lambda x: np.round(x * 255) / 255) if adapter.input_dtype == "uint8" else (lambda x: x)
        x, y_ort = run_probe(spec, session, (units.input, units.output), path.name, size, prep=quantize)
    graph, prepared = None, core
    if convert_graph:
        with stages("converting"):
            graph, prepared = convert(core, path.name)
    return cache.Entry(
        prepared=prepared.SerializeToString(), rule=rule, scale=scale, offset=offset, units=units, probe_size=size,
        probe=x, probe_output=y_ort, precision_gap=None, load_warnings=[units.note] if units.note else [],
    ), graph
