"""Reading images into [0, 1] float tensors, the Y channel, and LR-from-HR by bicubic downscaling."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import OnnxAttrError

# BT.601 luma for [0, 1] RGB (the MATLAB rgb2ycbcr convention used in SR papers): Y in [16/255, 235/255].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Y of YCbCr (BT.601, MATLAB convention) of (N, 3, H, W) RGB in [0, 1]: (N, 1, H, W)."""
    w = torch.as_tensor(_Y_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True) + _Y_OFFSET


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    """(H, W, C) float64 in [0, 1] from 8-bit, 16-bit, gray, palette or RGBA images; alpha dropped with a note."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / (65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0)
        return arr[..., None]
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        warnings.warn(f"{path.name}: alpha channel dropped", stacklevel=3)
        img = img.convert("RGBA" if img.mode != "LA" else "LA")
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float64) / 255.0
    return arr if arr.ndim == 3 else arr[..., None]


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read an image file as a float32 tensor (1, C, H, W) in [0, 1], RGB order.

    ``channels=3``: RGB (gray images are repeated); ``channels=1``: gray stays gray, colour becomes
    the BT.601 Y channel (for Y-channel models).
    """
    path = Path(path)
    if not path.is_file():
        raise OnnxAttrError(f"image file {str(path)!r} not found; pass a PNG or JPEG path")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_array(img, path)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise OnnxAttrError(f"{str(path)!r} is not a readable image ({err}); pass a PNG or JPEG file") from err
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].float()
    if channels == 3 and t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    elif channels == 1 and t.shape[1] == 3:
        t = rgb_to_y(t)
    elif channels not in (1, 3):
        raise OnnxAttrError(f"channels={channels}: onnxattr reads gray/Y (1) or RGB (3) images")
    return t.clamp(0, 1)


def downscale(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LR = bicubic downscale of an HR image by ``scale`` (antialiased, as MATLAB's imresize).

    The HR is first cropped to a multiple of ``scale``; returns (lr, cropped hr), both in [0, 1].
    """
    h, w = (hr.shape[2] // scale) * scale, (hr.shape[3] // scale) * scale
    if h == 0 or w == 0:
        raise OnnxAttrError(f"HR image {hr.shape[3]}x{hr.shape[2]} is smaller than the scale {scale}")
    hr = hr[:, :, :h, :w]
    lr = torch.nn.functional.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return lr.clamp(0, 1), hr


def crop(image: torch.Tensor, x: int, y: int, height: int, width: int) -> torch.Tensor:
    """The (height x width) crop with top-left column x, row y; a clear error when it leaves the image."""
    _, _, h, w = image.shape
    if x < 0 or y < 0 or x + width > w or y + height > h:
        raise OnnxAttrError(f"crop {width}x{height} at x={x} y={y} leaves the {w}x{h} image; pick a crop inside it")
    return image[:, :, y : y + height, x : x + width]
