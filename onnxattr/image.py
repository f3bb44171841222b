"""Reading images into [0, 1] float tensors, the Y channel, and LR-from-HR by bicubic downscaling."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .paths import regular_file
from .errors import OnnxAttrError
from .limits import budget_text, check_pixels, pixels_text

# BT.601 luma for [0, 1] RGB (the MATLAB rgb2ycbcr convention used in SR papers): Y in [16/255, 235/255].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Y of YCbCr (BT.601, MATLAB convention) of (N, 3, H, W) RGB in [0, 1]: (N, 1, H, W)."""
    w = torch.as_tensor(_Y_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True) + _Y_OFFSET


# 16-bit colour PNGs: Pillow keeps only the high byte of each sample. Decoding the file a second time with
# a raw mode of the same width that unpacks the other bytes gives the exact samples.
# (Gray + alpha has no such raw mode; "RGBA" unpacks its 4 bytes L_hi, L_lo, A_hi, A_lo into R, G, B, A.)
_PNG16_LOW = {"RGB;16B": ("RGB;16L", 3), "RGBA;16B": ("RGBA;16L", 4), "LA;16B": ("RGBA", 2)}
_ORIENT = {  # EXIF orientation -> the array transform that displays the image upright (as ImageOps.exif_transpose)
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a.swapaxes(0, 1), 2),
    8: lambda a: np.rot90(a, 1),
}
FORMATS_DOC = "PNG, JPEG, TIFF, BMP, WebP or another format Pillow reads"  # README "Images"


def _drop_alpha(arr: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, C) with C in 1..4: gray, gray + alpha, RGB or RGBA -> gray or RGB, with a note on a dropped alpha."""
    if arr.shape[2] in (2, 4):
        warnings.warn(f"{path.name}: alpha channel dropped", stacklevel=4)
        return arr[:, :, : arr.shape[2] - 1]
    return arr


def _scaled(arr: np.ndarray, path: Path) -> np.ndarray:
    """Samples as float64 in [0, 1]: integers over their type's range, floats as they are (checked)."""
    if arr.dtype == np.uint8:
        return arr / 255.0
    if arr.dtype == np.uint16:
        return arr / 65535.0
    if arr.dtype.kind == "f":
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise OnnxAttrError(f"{path.name} holds NaN or infinite samples; pass an image with finite values in [0, 1]")
        if lo < 0 or hi > 1:
            raise OnnxAttrError(
                f"{path.name} is a float image with values in [{lo:g}, {hi:g}]; onnxattr reads float images in [0, 1] "
                "as they are: rescale it to [0, 1] first"
            )
        return arr.astype(np.float64)
    raise OnnxAttrError(f"{path.name} holds {arr.dtype} samples; pass 8- or 16-bit integer or [0, 1] float images")


def _read_tiff(path: Path) -> np.ndarray:
    """(H, W, C) samples of the first image of a TIFF file (any bit depth, float too; planar or interleaved)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        shape = page.shape
        h, w = (shape[0], shape[1]) if page.planarconfig != 1 or len(shape) == 2 or shape[-1] <= 4 else shape[-2:]
        if len(shape) == 3 and shape[0] in (1, 2, 3, 4) and shape[-1] > 4:
            h, w = shape[1], shape[2]
        check_pixels(w, h, f"image {path.name}", "crop or downscale it first")
        arr = page.asarray()
    if arr.ndim == 3 and arr.shape[0] in (1, 2, 3, 4) and arr.shape[-1] > 4:
        arr = arr.transpose(1, 2, 0)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] > 4:
        raise OnnxAttrError(f"{path.name} holds an image of shape {arr.shape}; pass a gray, RGB or RGBA image")
    return arr


def _read_pil(path: Path) -> tuple[np.ndarray, int]:
    """(H, W, C) samples (uint8, uint16, int32 or float32) and the EXIF orientation, via Pillow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our pixel budget is lower
        with Image.open(path) as img:
            check_pixels(img.width, img.height, f"image {path.name}", "crop or downscale it first")
            raw = img.tile[0][3] if img.format == "PNG" and len(img.tile) == 1 else None  # before getexif loads it
            raw = raw[0] if isinstance(raw, tuple) else raw
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            img.load()
            if raw in _PNG16_LOW:
                return _png16(path, np.asarray(img), *_PNG16_LOW[raw]), orientation
            return _pil_samples(img, path), orientation


def _png16(path: Path, high: np.ndarray, low_mode: str, channels: int) -> np.ndarray:
    with Image.open(path) as img:
        t = img.tile[0]
        img.tile = [t._replace(args=(low_mode,)) if hasattr(t, "_replace") else (t[0], t[1], t[2], low_mode)]
        img.load()
        low = np.asarray(img)
    if low_mode == "RGBA":  # gray + alpha: the samples are (R, G) and (B, A) byte pairs of this one decode
        return np.stack([low[..., 0].astype(np.uint16) * 256 + low[..., 1], low[..., 2].astype(np.uint16) * 256 + low[..., 3]], -1)
    return (high.astype(np.uint16) * 256 + low)[:, :, :channels]


def _pil_samples(img: Image.Image, path: Path) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16)[..., None]
    if img.mode == "I":  # 32-bit integers: 16-bit data when above 255
        arr = np.asarray(img, dtype=np.float64)
        return (arr / (65535.0 if arr.max() > 255 else 255.0)).astype(np.float32)[..., None]
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None]
    if img.mode in ("1", "L", "LA", "La"):
        return np.asarray(img.convert("LA" if img.mode in ("LA", "La") else "L"), dtype=np.uint8).reshape(img.height, img.width, -1)
    if img.mode in ("RGBA", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)  # RGB, P, CMYK, YCbCr, LAB, HSV


def _to_array(path: Path) -> np.ndarray:
    """(H, W, C) float64 in [0, 1], upright (EXIF orientation applied), alpha dropped with a note."""
    if path.suffix.lower() in (".tif", ".tiff"):
        arr, orientation = _read_tiff(path), 1
    else:
        arr, orientation = _read_pil(path)
    arr = _scaled(_drop_alpha(arr, path), path)
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(arr))


def read_image(path: str | Path, channels: int = 3) -> torch.Tensor:
    """Read an image file as a float32 tensor (1, C, H, W) in [0, 1], RGB order, upright.

    8- and 16-bit images (gray, RGB, with alpha, palette, CMYK) are exact; float TIFFs are read with their
    values, which must lie in [0, 1]; the EXIF orientation is applied; images over the pixel budget
    (``limits.MAX_PIXELS``) are refused before decoding. ``channels=3``: RGB (gray images are repeated);
    ``channels=1``: gray stays gray, colour becomes the BT.601 Y channel (for Y-channel models).
    """
    path = regular_file(path, "image file", f"pass an image file ({FORMATS_DOC})")
    try:
        arr = _to_array(path)
    except Image.DecompressionBombError as err:  # raised by Image.open itself, above twice Pillow's own limit
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = pixels_text(int(found.group(1))) if found else "more pixels than Pillow decodes safely"
        raise OnnxAttrError(
            f"image {path.name} declares {size}, over onnxattr's budget of {budget_text()}; crop or downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OnnxAttrError(f"{str(path)!r} is not a readable image ({first}); pass an image file ({FORMATS_DOC})") from None
    t = torch.from_numpy(arr.transpose(2, 0, 1).copy())[None].float()
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


# Names of LR images in SR datasets: a file named with an "LR" word ("baby_LR", "img_001_SRF_4_LR") or DIV2K's
# "0801x4", or in a folder whose name starts with one (Set5/Set14 "LRbicx4", "LR_bicubic"). Only names: the
# high-frequency share of a native photo and of its x2 bicubic downscale overlap (0.07-0.34 vs 0.02-0.39 on 12
# scikit-image photos), so no resolution statistic tells an LR image from an HR one without false alarms.
_LR_FILE = re.compile(r"(?:^|[^a-z])lr(?:bic|[^a-z]|$)|\dx[2-8]$", re.IGNORECASE)
_LR_FOLDER = re.compile(r"^lr(?:bic|[^a-z]|$)", re.IGNORECASE)


def hr_warnings(path: str | Path, height: int, width: int, scales: list[int]) -> None:
    """Warn, one line each, about an image given as HR (``--hr``) to models of ``scales``: its name says it is an
    LR image (the file name or its folder's; then the PSNR against it means nothing), or a side is not a
    multiple of a scale (``downscale`` crops it)."""
    p = Path(path)
    named = p.stem if _LR_FILE.search(p.stem) else p.parent.name if _LR_FOLDER.search(p.parent.name) else None
    if named is not None:
        lr = ", ".join(f"x{s}: {width // s}x{height // s}" for s in scales)
        warnings.warn(f"--hr: {p.name} looks like an LR image ({named!r} names one); with --hr it is downscaled "
                      f"({lr}) and PSNR/SSIM are measured against it; pass the HR image, or drop --hr", stacklevel=2)
    for s in scales:
        h, w = height // s * s, width // s * s
        if (h, w) != (height, width):
            warnings.warn(f"--hr: {p.name} ({width}x{height}) is cropped to {w}x{h} at its right and bottom edges, a "
                          f"multiple of the scale {s}, before the x{s} downscale; crop it yourself to choose the part "
                          "kept", stacklevel=2)


def crop(image: torch.Tensor, x: int, y: int, height: int, width: int) -> torch.Tensor:
    """The (height x width) crop with top-left column x, row y; a clear error when it leaves the image."""
    _, _, h, w = image.shape
    if x < 0 or y < 0 or x + width > w or y + height > h:
        raise OnnxAttrError(f"crop {width}x{height} at x={x} y={y} leaves the {w}x{h} image; pick a crop inside it")
    return image[:, :, y : y + height, x : x + width]
