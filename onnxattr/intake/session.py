"""onnxruntime beside the torch graph: sessions on a file or the core, and the runs a load makes on them.

A load asks onnxruntime three kinds of question: which sizes run (``size_runner``, for ``sizes.find_sizes``),
what the output is on the verification image (``run_probe``) and, for the value range, what it is on a photo
(``units``). All runs take float32 NCHW arrays in the file's own units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch

from ..device import ort_providers
from ..errors import OnnxAttrError, error_line
from .onnxfile import IOSpec
from .sizes import ProbeError, Runner


def ort_session(source: Path | bytes, name: str, device: torch.device) -> ort.InferenceSession:
    """An onnxruntime session on a file path or a serialized model (the core graph), with torch's thread count."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()  # one thread setting for torch and onnxruntime (set_threads)
    try:
        return ort.InferenceSession(
            str(source) if isinstance(source, Path) else source, sess_options=opts, providers=ort_providers(device)
        )
    except Exception as err:  # noqa: BLE001  (onnxruntime raises several private exception types)
        raise OnnxAttrError(f"onnxruntime cannot load {name}: {error_line(err)}; re-export the model") from err


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
