"""Device choice for torch, the matching onnxruntime execution providers, and float32 kept float32 on CUDA."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Union

import onnxruntime as ort
import torch

from .errors import OnnxAttrError

# The CUDA provider's options: TF32 off, so that its convolutions and matmuls are float32 like the CPU's
# (onnxruntime's CUDA provider enables TF32 by default: ~1e-3 relative error, 10x the verification limit).
ORT_CUDA_OPTIONS = {"use_tf32": "0"}

Provider = Union[str, tuple[str, dict[str, str]]]


DEVICE_TYPES = ("cpu", "cuda")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when torch sees a GPU, else the CPU; a clear error for a device
    torch does not know, one onnxattr does not run on (meta, mps, ...) or a GPU that is not there."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OnnxAttrError(f"device {str(device)!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type not in DEVICE_TYPES:
        raise OnnxAttrError(f"device {str(device)!r}: onnxattr runs on cpu or cuda (cuda:N); use --device cpu or --device cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OnnxAttrError(f"device {str(device)!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise OnnxAttrError(f"device {str(device)!r}: torch sees {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}; pick one of them")
    return dev


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: leave torch's default, one per core) and return the count in force.

    onnxruntime sessions made afterwards take the same count (``_ort_session`` in ``onnxattr.model``). Measured
    on the 2-core machine (benchmarks/README.md, "Threads"): one process gains 1.3-1.9x from its second thread,
    so single runs keep the default; tasks that run side by side (``compare``) get 1 each.
    """
    if threads is not None:
        if threads < 1:
            raise OnnxAttrError(f"threads {threads}: pass a whole number >= 1")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@contextmanager
def thread_count(threads: int | None, after: int | None = None) -> Iterator[int]:
    """``set_threads(threads)`` while inside, then ``after`` (default: this thread's count before). torch keeps the
    count per thread (a Dask pool thread does not see the main thread's) and starts new threads with the last count
    set anywhere, so a task sets its own and hands back the process's (``after``: the caller's main-thread count)."""
    before = torch.get_num_threads() if after is None else after
    try:
        yield set_threads(threads)
    finally:
        torch.set_num_threads(before)


def full_float32(device: torch.device) -> None:
    """On CUDA, turn TF32 off for cuDNN convolutions and CUDA matmuls (process-wide torch flags).

    torch runs float32 convolutions in TF32 by default on Ampere and later GPUs (10-bit mantissa, ~1e-3
    relative error per layer): the conversion check (1e-4 against onnxruntime) and LAM's gradients
    need float32. A no-op on other devices.
    """
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def ort_providers(device: torch.device) -> list[Provider]:
    """CUDA (with ``ORT_CUDA_OPTIONS``) then CPU providers on a CUDA device when this onnxruntime build has
    CUDA; the CPU otherwise.

    onnxruntime may still fall back to the CPU at session creation: read ``session.get_providers()``.
    """
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        preload = getattr(ort, "preload_dlls", None)  # finds the CUDA/cuDNN libraries torch's wheel brought
        if preload is not None:
            try:
                preload()
            except Exception:  # noqa: BLE001  (best effort: ORT then reports the CPU provider)
                pass
        options = dict(ORT_CUDA_OPTIONS, device_id=str(device.index or 0))
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
