"""Pieces every figure uses: images from a result, the window in LR and SR pixels."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle


def as_rgb(da: xr.DataArray) -> np.ndarray:
    """(channel, y, x) in [0, 1] -> (y, x, 3) for imshow (gray repeated)."""
    a = np.clip(np.asarray(da.values, dtype=np.float64), 0, 1)
    return np.repeat(a, 3, axis=0).transpose(1, 2, 0) if a.shape[0] == 1 else a.transpose(1, 2, 0)


def window_sr(ds: xr.Dataset) -> tuple[float, float, float]:
    """(x, y, size) of the window of a one-window result (``ds.isel(window=k)``) in SR pixels."""
    return float(ds["window_x_sr"]), float(ds["window_y_sr"]), float(ds["window_size"])


def window_lr(ds: xr.Dataset) -> tuple[float, float, float]:
    """The window in LR pixels: HR-frame position / s, i.e. (X - c/2) / s with output side s n + c."""
    s, c = float(ds.attrs["scale"]), float(ds.attrs.get("offset", 0))
    x, y, size = window_sr(ds)
    return (x - c / 2) / s, (y - c / 2) / s, size / s


def mark(ax: Axes, xys: tuple[float, float, float], color: str = "red", lw: float = 1.5) -> None:
    """Draw a window (x, y, size) in the axes' pixel coordinates."""
    x, y, size = xys
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor=color, linewidth=lw))


def bare(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def psnr_note(ds: xr.Dataset) -> str:
    """'   PSNR (Y) vs HR = .. dB' when the result holds the HR image, else ''."""
    if "hr" not in ds:
        return ""
    from ..metrics import psnr

    value = psnr(np.clip(ds["output"].values, 0, 1), ds["hr"].values, border=int(ds.attrs["scale"]), y=ds.sizes["channel"] == 3)
    return f"   PSNR{' (Y)' if ds.sizes['channel'] == 3 else ''} vs HR {float(value):.2f} dB"
