"""The units a file works in: fed 0..1 or 0..255, returning either, detected from onnxruntime runs on a photo.

The core runs on the bundled photo (``onnxattr/data/chelsea-64.png``) with each candidate range, and the one
whose output is clearly (``CLEARLY`` times) closer to a bicubic upscale wins (``detect_value_range``); a uint8
end is 0..255 (``value_range_of`` decides both ends and where each came from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch

from ..errors import OnnxAttrError
from ..image import read_image
from .adapters import Adapter
from .onnxfile import IOSpec

NATURAL_IMAGE = Path(__file__).resolve().parent.parent / "data" / "chelsea-64.png"


def natural_image(channels: int, height: int, width: int) -> np.ndarray:
    """The bundled photo (1, C, height, width) in [0, 1], resized (bicubic, antialiased) to the probe size."""
    img = read_image(NATURAL_IMAGE, channels=channels)
    img = torch.nn.functional.interpolate(img, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return img.clamp(0, 1).numpy()


def _bicubic_error(x: np.ndarray, y: np.ndarray, scale: int, offset: int) -> float:
    """Mean |y - bicubic upscale of x| over the centred overlap (offset c crops or pads c/2 per side)."""
    if y.ndim != 4 or not np.isfinite(y).all():
        return math.inf
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=scale, mode="bicubic", align_corners=False)
    ref = ref.numpy()
    h, w = min(ref.shape[2], y.shape[2]), min(ref.shape[3], y.shape[3])

    def centre(a: np.ndarray) -> np.ndarray:
        top, left = (a.shape[2] - h) // 2, (a.shape[3] - w) // 2
        return a[:, :, top : top + h, left : left + w]

    return float(np.abs(centre(y) - centre(ref)).mean())


CLEARLY = 4.0  # one range is "clearly" closer when its distance is this many times smaller


Units = tuple[float, float]  # (input range, output range): the model is fed x * in and returns y * out


def detect_value_range(
    run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: int, offset: int,
    candidates: dict[float, Units] | None = None, default: float = 1.0,
) -> tuple[float, dict[float, float]]:
    """The candidate whose output (fed ``image * in``, read as ``y / out``) is clearly closer (CLEARLY times) to a
    bicubic upscale of the photo than every other's, else ``default`` (an untrained or ambiguous model).

    ``candidates``: key -> (in, out); by default {1: (1, 1), 255: (255, 255)}, a model fed and returning 0..1 or
    0..255. Returns the key and the mean absolute distance for each (inf where the run fails or is not finite).
    """
    candidates = candidates or {1.0: (1.0, 1.0), 255.0: (255.0, 255.0)}
    scores: dict[float, float] = {}
    for key, (scale_in, scale_out) in candidates.items():
        try:
            y = run(image * scale_in) / scale_out
        except Exception:  # noqa: BLE001  (a range the model cannot take scores inf)
            scores[key] = math.inf
            continue
        scores[key] = _bicubic_error(image, y, scale, offset)
    best = min(scores, key=scores.get)
    clear = all(scores[best] * CLEARLY < v for k, v in scores.items() if k != best)
    return (best if clear else default), scores


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


def value_range_of(
    value_range: float | str,
    adapter: Adapter,
    session: ort.InferenceSession,
    spec: IOSpec,
    size: tuple[int, int],
    scale: int,
    offset: int,
    name: str,
) -> ValueRange:
    """The units of both ends. A uint8 end is 0..255. The other is detected (``detect_value_range``: the
    core runs on the bundled photo with each candidate and the one whose output is clearly closest to a bicubic
    upscale wins): the input range of a float file (1 or 255, the output in the same units; 1 when undecided);
    the output range of a file fed uint8 (1 or 255; 255, like its input, when undecided); the input range of a
    file that returns uint8 (1 or 255; 1 when undecided). A given ``value_range`` sets the input (ignored, with
    a warning, for a uint8 input) and is warned about when the detection clearly contradicts it.
    """
    u8_in, u8_out = adapter.input_dtype == "uint8", adapter.output_dtype == "uint8"
    if u8_in and u8_out:
        return ValueRange(255.0, 255.0, "uint8 input", "uint8 output", {}, _ignored(value_range, name))
    image = natural_image(spec.in_channels, *size)
    candidates = ({1.0: (255.0, 1.0), 255.0: (255.0, 255.0)} if u8_in else
                  {1.0: (1.0, 255.0), 255.0: (255.0, 255.0)} if u8_out else None)
    detected, scores = detect_value_range(
        lambda x: session.run(None, {spec.input_name: x.astype(np.float32)})[0], image, scale, offset, candidates,
        default=255.0 if u8_in else 1.0,
    )
    others = [v for k, v in scores.items() if k != detected]
    source = "detected" if all(scores[detected] * CLEARLY < v for v in others) else "default (undecided)"
    if u8_in:
        return ValueRange(255.0, detected, "uint8 input", source, scores, _ignored(value_range, name))
    output_source = "uint8 output" if u8_out else "as the input"
    if value_range == "auto":
        return ValueRange(detected, 255.0 if u8_out else detected, source, output_source, scores)
    given = float(value_range)
    other = scores.get(given)
    note = None
    if detected != given and (other is None or other > CLEARLY * scores[detected]):
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


def check_value_range(value_range: float | str) -> float | str:
    """'auto' or a positive number (strings such as '255' from the CLI included)."""
    if isinstance(value_range, str) and value_range != "auto":
        try:
            value_range = float(value_range)
        except ValueError:
            raise OnnxAttrError(f"value range {value_range!r}: pass 'auto', 1 or 255") from None
    if not isinstance(value_range, str) and not value_range > 0:
        raise OnnxAttrError(f"value range {value_range!r}: pass 'auto', 1 or 255 (a positive number)")
    return value_range
