"""Device choice for torch and the matching onnxruntime execution providers."""

from __future__ import annotations

import onnxruntime as ort
import torch

from .errors import OnnxAttrError


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


def ort_providers(device: torch.device) -> list[str]:
    """CUDA then CPU providers on a CUDA device when this onnxruntime build has CUDA; the CPU otherwise.

    onnxruntime may still fall back to the CPU at session creation: read ``session.get_providers()``.
    """
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        preload = getattr(ort, "preload_dlls", None)  # finds the CUDA/cuDNN libraries torch's wheel brought
        if preload is not None:
            try:
                preload()
            except Exception:  # noqa: BLE001  (best effort: ORT then reports the CPU provider)
                pass
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
