"""Cells of a study: one model x image with all the image's windows, the unit compare computes (one
task) and keeps.

A cell's key is a digest of what its result depends on: the model file's and the image file's SHA-256,
the windows and the study parameters (:func:`study.study_params`), so a cell is kept only when all of
them match. A finished cell is one netCDF file: the task's result (``compare.run_job``) as a Dataset
(:func:`encode`, read back by :func:`decode`, value for value) with the time it was computed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from .target import Window

QUALITY = ("psnr", "ssim", "psnr_y", "ssim_y")
CURVES = ("psnr", "ssim", "psnr_random_std", "ssim_random_std", "masked_pixels")


@dataclass(frozen=True)
class Cell:
    """One model x image with the image's windows."""

    model: str
    image: str
    model_sha256: str
    image_sha256: str
    windows: tuple[Window, ...]

    def key(self, params_digest: str) -> str:
        """Digest of the files' contents, the windows and the study parameters (32 hex digits)."""
        text = json.dumps([self.model_sha256, self.image_sha256, [w.as_tuple() for w in self.windows], params_digest])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        return f"{Path(self.model).name} on {Path(self.image).name}"


def digest(value: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(k, c, s, s) crops of k windows, NaN-padded to the largest side."""
    s = max(a.shape[-1] for a in arrays)
    out = np.full((len(arrays), arrays[0].shape[0], s, s), np.nan, dtype=np.asarray(arrays[0]).dtype)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[-2], : a.shape[-1]] = a
    return out


def encode(result: dict[str, Any], computed_at: np.datetime64) -> xr.Dataset:
    """A task's result (``compare.run_job``) as a Dataset on dims window, channel, y, x, wy, wx and the
    masking dims."""
    crop = ("window", "channel", "wy", "wx")
    data: dict[str, Any] = {
        "input": (("channel", "y", "x"), result["input"]),
        "attribution": (("window", "channel", "y", "x"), result["attribution"]),
        "saliency": (("window", "y", "x"), result["saliency"]),
        "sr_crop": (crop, _stack(result["sr_crop"])),
        "diffusion_index": (("window",), np.asarray(result["diffusion_index"], dtype=np.float64)),
        "completeness_error": (("window",), np.asarray(result["completeness_error"], dtype=np.float64)),
        "window_sr": (("window", "xy"), np.asarray(result["window_sr"], dtype=np.int64)),
        "elapsed_s": ((), result["elapsed_s"]),
        "computed_at": ((), computed_at),
        **{f"quality_{q}": ((), v) for q, v in result["quality"].items()},
    }
    if result["hr_crop"] is not None:
        data["hr_crop"] = (crop, _stack(result["hr_crop"]))
    curves = xr.concat(result["curves"], dim="window", combine_attrs="drop_conflicts")
    for name in CURVES:
        data[f"curve_{name}"] = curves[name]
    return xr.Dataset(data, attrs={"masking_seeds": curves.attrs["seeds"]})


def decode(ds: xr.Dataset) -> dict[str, Any]:
    """The task result that :func:`encode` stored (crops NaN-padded to the cell's largest window)."""
    k = ds.sizes["window"]
    curves = xr.Dataset({name: ds[f"curve_{name}"] for name in CURVES}, attrs={"seeds": int(ds.attrs["masking_seeds"])})
    return {
        "input": ds["input"].values,
        "attribution": ds["attribution"].values,
        "saliency": ds["saliency"].values,
        "sr_crop": list(ds["sr_crop"].values),
        "hr_crop": list(ds["hr_crop"].values) if "hr_crop" in ds else None,
        "diffusion_index": ds["diffusion_index"].values,
        "completeness_error": ds["completeness_error"].values,
        "window_sr": [tuple(int(v) for v in xy) for xy in ds["window_sr"].values],
        "elapsed_s": float(ds["elapsed_s"]),
        "quality": {q: float(ds[f"quality_{q}"]) for q in QUALITY if f"quality_{q}" in ds},
        "curves": [curves.isel(window=i).drop_vars("window", errors="ignore") for i in range(k)],
        "computed_at": ds["computed_at"].values,
        "error": "",
    }


def placeholder(template: dict[str, Any], lr_hw: tuple[int, int], windows: Sequence[Window], window_sr: list[tuple[int, int]]) -> dict[str, Any]:
    """The NaN result of a failed cell, shaped like ``template`` (any finished cell) for an LR input of
    ``lr_hw`` and these windows."""
    c, (h, w), k = template["input"].shape[0], lr_hw, len(windows)
    crops = [np.full((c, win.size, win.size), np.nan, dtype=np.float32) for win in windows]
    curve = xr.full_like(template["curves"][0], np.nan, dtype=np.float64)
    return {
        "input": np.full((c, h, w), np.nan, dtype=np.float32),
        "attribution": np.full((k, c, h, w), np.nan, dtype=np.float32),
        "saliency": np.full((k, h, w), np.nan, dtype=np.float32),
        "sr_crop": crops,
        "hr_crop": None if template["hr_crop"] is None else crops,
        "diffusion_index": np.full(k, np.nan),
        "completeness_error": np.full(k, np.nan),
        "window_sr": window_sr,
        "elapsed_s": float("nan"),
        "quality": {q: float("nan") for q in template["quality"]},
        "curves": [curve] * k,
        "computed_at": np.datetime64("NaT", "ns"),
    }
