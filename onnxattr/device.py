"""Device choice for torch and the matching onnxruntime execution providers."""

from __future__ import annotations

import onnxruntime as ort
import torch

from .errors import OnnxAttrError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when torch sees a GPU, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OnnxAttrError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
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
