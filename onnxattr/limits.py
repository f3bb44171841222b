"""The pixel budget: images and fixed model inputs above it are refused before anything is allocated.

``MAX_PIXELS`` = 2**25 (33.5 Mpx: an 8K UHD frame, 7680x4320, fits); the environment variable
``ONNXATTR_MAX_PIXELS`` overrides it. No torch here: ``onnxfile`` uses it too.
"""

from __future__ import annotations

import os

from .errors import OnnxAttrError

MAX_PIXELS = 2**25


def max_pixels() -> int:
    """The budget in pixels: ``ONNXATTR_MAX_PIXELS`` if set (a positive integer), else ``MAX_PIXELS``."""
    text = os.environ.get("ONNXATTR_MAX_PIXELS", "")
    if not text:
        return MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise OnnxAttrError(f"ONNXATTR_MAX_PIXELS={text!r} should be a positive whole number of pixels, e.g. 33554432")
    return value


def pixels_text(n: float) -> str:
    """A pixel count as Mpx with one decimal, or exactly below 0.1 Mpx (a small budget read as '0.0 Mpx' says nothing)."""
    return f"{n / 1e6:.1f} Mpx" if n >= 1e5 else f"{int(n)} px"


def budget_text() -> str:
    """The budget and where it comes from: the default, or the environment variable that set it."""
    text = os.environ.get("ONNXATTR_MAX_PIXELS", "")
    return f"{pixels_text(max_pixels())} ({'ONNXATTR_MAX_PIXELS=' + text if text else 'ONNXATTR_MAX_PIXELS'})"


def check_pixels(width: int, height: int, what: str, fix: str) -> None:
    """A one-line refusal naming ``what`` (e.g. "image a.png") when width x height exceeds the budget."""
    if width * height > max_pixels():
        raise OnnxAttrError(
            f"{what} is {width}x{height} ({pixels_text(width * height)}), over onnxattr's budget of {budget_text()}; {fix}"
        )
