"""How CEM runs the model, forward only: onnxruntime on the original file, fed what it takes (float16, uint8,
NHWC, BGR: ``Adapter.to_file`` / ``from_file``), on the CPU or through onnxruntime's CUDA provider; or the torch
graph on the device (CUDA without that provider). Batches run as one onnxruntime call where a batch of 2 equals two
single runs, else image by image.

Memory. The bytes one image's forward holds at its peak follow ``memory.fit_law`` (c (h + k)(w + k), measured at
three small sizes, once per model and backend, and kept with the model's cache entry like the batching check): for
onnxruntime, the memory a fresh session on the file allocates during one run (its arena keeps its peak: glibc's
in-use bytes on the CPU, CUDA's used memory on the GPU); for the torch graph, ``memory.measure_peak`` of a no-grad
forward. A batch of n needs n (P(h, w) + ``IO_COPIES`` float32 copies of an image and its output).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch

from ...errors import OnnxAttrError
from ...intake import SRModel
from ...intake.session import ort_session, smooth_image
from .. import memory

BACKENDS = ("auto", "onnxruntime", "torch")
BATCH_TOLERANCE = 1e-5  # a batch of 2 within this (relative) of two single runs runs as one call
IO_COPIES = 3  # float32 copies of a batch's input and output beside the model's own memory (torch, feed, result)
# On a CPU, larger batches gain nothing once the per-run overhead is paid (benchmarks/README.md, CEM).
CPU_MAX_BATCH = 16
CPU_BATCH_BYTES = 256 * 2**20

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Runner:
    """A forward ((n, C, h, w) in [0, 1] on ``feed`` -> (n, C, H, W) in [0, 1] units), its name, the device its
    memory lives on, whether a batch is one call, and the per-image peak law (measured on first use; None where
    unmeasurable)."""

    name: str
    device: torch.device
    feed: torch.device
    batched: bool
    forward: Forward
    measure: Callable[[], memory.PeakLaw | None]

    @cached_property
    def law(self) -> memory.PeakLaw | None:
        return self.measure()

    def image_bytes(self, h: int, w: int, out_hw: tuple[int, int], channels: int) -> int:
        """Peak bytes per image of a batch of h x w inputs."""
        law = self.law
        return (law(h, w) if law is not None else 0) + 4 * IO_COPIES * channels * (h * w + out_hw[0] * out_hw[1])


def _mallinfo() -> Callable[[], int] | None:
    """glibc's in-use heap bytes (``mallinfo2``: uordblks + hblkhd), or None where there is no such call."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = Info

    def used() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return used


def allocated(device: torch.device) -> Callable[[], int] | None:
    """Bytes in use on ``device`` now (CUDA: the device's used memory; CPU: glibc's heap), or None if unknown."""
    if device.type == "cuda":
        def used() -> int:
            free, total = torch.cuda.mem_get_info(device)
            return int(total - free)

        return used
    return _mallinfo()


def file_session(model: SRModel) -> ort.InferenceSession:
    """An onnxruntime session on the original file for the model's device (the model's own when the core is the file)."""
    return ort_session(model.path, model.path.name, model.device) if model.adapter.changed else model.session


def ort_forward(model: SRModel, session: ort.InferenceSession, batched: bool) -> Forward:
    """The file in onnxruntime: [0, 1] images -> its output in [0, 1] units (value and output ranges applied)."""
    a = model.adapter

    def run(x: np.ndarray) -> np.ndarray:
        return a.from_file(session.run(None, {a.input_name: a.to_file(x * model.value_range)})[0])

    def forward(x: torch.Tensor) -> torch.Tensor:
        xs = x.detach().cpu().numpy()
        y = run(xs) if batched or len(xs) == 1 else np.concatenate([run(xi[None]) for xi in xs])
        return torch.from_numpy(y / np.float32(model.output_range))

    return forward


def _batches(model: SRModel, session: ort.InferenceSession) -> bool:
    """Whether a batch of 2 equals two single runs of the file (else batches run image by image)."""
    if model.spec.batch == 1:
        return False
    x = torch.from_numpy(model.probe)
    pair = torch.cat([x, 0.25 + 0.5 * x.flip(-1)])
    try:
        got = ort_forward(model, session, True)(pair)
    except Exception:  # noqa: BLE001  (an export traced at batch 1 may fail at 2)
        return False
    single = ort_forward(model, session, False)(pair)
    return float((got - single).abs().max()) <= BATCH_TOLERANCE * max(float(single.abs().max()), 1e-12)


def _ort_law(model: SRModel, device: torch.device) -> memory.PeakLaw | None:
    used = allocated(device)
    if used is None:
        return None

    def measure(h: int, w: int) -> int:
        session = ort_session(model.path, model.path.name, model.device)  # fresh: its arena grows from empty
        x = torch.from_numpy(smooth_image(model.in_channels, h, w))
        before = used()
        y = ort_forward(model, session, False)(x)
        after = used()
        del session, y
        return max(after - before, 0)

    return memory.fit_law(measure, model.size_rule)


def _torch_law(model: SRModel) -> memory.PeakLaw:
    def measure(h: int, w: int) -> int:
        x = torch.rand(1, model.in_channels, h, w, device=model.device)
        with torch.no_grad():
            return memory.measure_peak(lambda: model(x))

    return memory.fit_law(measure, model.size_rule)


_SESSIONS: weakref.WeakKeyDictionary[SRModel, tuple[ort.InferenceSession, bool]] = weakref.WeakKeyDictionary()


def _file_session(model: SRModel) -> tuple[ort.InferenceSession, bool]:
    """The session on the file and whether it batches, made once per model (plain values: the model stays collectable)."""
    if model not in _SESSIONS:
        session = file_session(model)
        _SESSIONS[model] = session, memory.learned(model, "cem-onnxruntime-batches", lambda: _batches(model, session),
                                                   [__file__])
    return _SESSIONS[model]


def runner(model: SRModel, backend: str = "auto") -> Runner:
    """The model's runner: 'onnxruntime' (the file), 'torch' (the graph), or 'auto': the torch graph on CUDA when
    onnxruntime has no CUDA provider there and the model has a graph, else onnxruntime. The session, its batching
    and the peak laws are found once per model."""
    if backend not in BACKENDS:
        raise OnnxAttrError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    session, batched = _file_session(model) if backend != "torch" else (None, True)
    on_gpu = session is not None and "CUDAExecutionProvider" in session.get_providers()
    if backend == "torch" or (backend == "auto" and model.device.type == "cuda" and not on_gpu and model.graph is not None):
        model.fast  # noqa: B018  (a model without a graph refuses here, in one line)
        return Runner(f"torch graph on {model.device}", model.device, model.device, True, lambda x: _no_grad(model, x),
                      lambda: memory.learned_law(model, "cem-torch-forward", lambda: _torch_law(model), [__file__]))
    device = model.device if on_gpu else torch.device("cpu")
    return Runner(f"onnxruntime {session.get_providers()[0]} on {model.path.name}", device, torch.device("cpu"), batched,
                  ort_forward(model, session, batched),
                  lambda: memory.learned_law(model, f"cem-onnxruntime-{device.type}", lambda: _ort_law(model, device),
                                             [__file__]))


def _no_grad(model: SRModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x.to(model.device))


def choose_batch(run: Runner, hw: tuple[int, int], out_hw: tuple[int, int], channels: int, items: int,
                 batch_size: int | None, memory_fraction: float) -> int:
    """Interventions per forward for h x w inputs: ``batch_size`` when it fits the free memory (else refused, naming
    the batch that fits), by default the largest that fits ``memory_fraction`` of it, at most ``items`` (on a CPU
    also ``CPU_MAX_BATCH`` and ``CPU_BATCH_BYTES``); refused when one does not fit."""
    per = run.image_bytes(*hw, out_hw, channels)
    free = memory.free_memory(run.device)
    what = f"CEM at batch {{}} for {hw[1]}x{hw[0]} inputs"
    fixes = ["crop the image (--crop)", *memory.device_fix(run.device)]

    def need(n: int) -> int:
        return n * per

    if batch_size is not None:
        if need(batch_size) > free:
            fit = memory.largest_batch(need, free, batch_size)
            memory.require(need(batch_size), free, what.format(batch_size), [*([f"pass --batch-size {fit}"] if fit else []), *fixes], run.device)
        return min(batch_size, items)
    wanted = items if run.device.type != "cpu" else min(items, CPU_MAX_BATCH, max(1, CPU_BATCH_BYTES // per))
    batch = memory.largest_batch(need, int(memory_fraction * free), wanted)
    if batch == 0:
        memory.require(need(1), free, what.format(1), fixes, run.device)
        batch = 1
    return batch
