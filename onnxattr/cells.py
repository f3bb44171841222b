"""Cells of a study: one model x image x window, the unit compare keeps.

A cell's key is a digest of what its result depends on: the model file's and the image file's SHA-256,
the window and the study parameters (:func:`study.study_params`), so a cell is kept only when all of
them match. compare computes the missing windows of one model x image in one task (shared forward
passes) and splits its result (``compare.run_job``) into cells: one netCDF file each, a window's values
with the model x image values they share (input, quality, the task's time) and the time the task
finished (:func:`encode`, read back by :func:`decode`, value for value).
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
    """One model x image x window."""

    model: str
    image: str
    model_sha256: str
    image_sha256: str
    window: Window

    def key(self, params_digest: str) -> str:
        """Digest of the files' contents, the window and the study parameters (32 hex digits)."""
        text = json.dumps([self.model_sha256, self.image_sha256, self.window.as_tuple(), params_digest])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        w = self.window
        return f"{Path(self.model).name} on {Path(self.image).name} window {w.x},{w.y},{w.size}"


def digest(value: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def encode(result: dict[str, Any], k: int, computed_at: np.datetime64) -> xr.Dataset:
    """Window ``k`` of a task's result (``compare.run_job``) as a Dataset on dims channel, y, x, wy, wx and
    the masking dims, with the values the task's windows share."""
    crop = ("channel", "wy", "wx")
    curve = result["curves"][k]
    data: dict[str, Any] = {
        "input": (("channel", "y", "x"), result["input"]),
        "attribution": (("channel", "y", "x"), result["attribution"][k]),
        "saliency": (("y", "x"), result["saliency"][k]),
        "sr_crop": (crop, result["sr_crop"][k]),
        "diffusion_index": ((), float(result["diffusion_index"][k])),
        "completeness_error": ((), float(result["completeness_error"][k])),
        "window_sr": (("xy",), np.asarray(result["window_sr"][k], dtype=np.int64)),
        "elapsed_s": ((), result["elapsed_s"]),
        "computed_at": ((), computed_at),
        **{f"quality_{q}": ((), v) for q, v in result["quality"].items()},
        **{f"curve_{name}": curve[name] for name in CURVES},
    }
    if result["hr_crop"] is not None:
        data["hr_crop"] = (crop, result["hr_crop"][k])
    return xr.Dataset(data, attrs={"masking_seeds": curve.attrs["seeds"]})


def decode(ds: xr.Dataset) -> dict[str, Any]:
    """The window's values that :func:`encode` stored (``error`` empty)."""
    curve = xr.Dataset({name: ds[f"curve_{name}"] for name in CURVES}, attrs={"seeds": int(ds.attrs["masking_seeds"])})
    return {
        "input": ds["input"].values,
        "attribution": ds["attribution"].values,
        "saliency": ds["saliency"].values,
        "sr_crop": ds["sr_crop"].values,
        "hr_crop": ds["hr_crop"].values if "hr_crop" in ds else None,
        "diffusion_index": float(ds["diffusion_index"]),
        "completeness_error": float(ds["completeness_error"]),
        "window_sr": tuple(int(v) for v in ds["window_sr"].values),
        "elapsed_s": float(ds["elapsed_s"]),
        "quality": {q: float(ds[f"quality_{q}"]) for q in QUALITY if f"quality_{q}" in ds},
        "curve": curve,
        "computed_at": ds["computed_at"].values,
        "error": "",
    }


def placeholder(template: dict[str, Any], lr_hw: tuple[int, int], window: Window, window_sr: tuple[int, int],
                error: str) -> dict[str, Any]:
    """The NaN values of a failed cell, shaped like ``template`` (any finished cell) for an LR input of
    ``lr_hw`` and this window, with its ``error``."""
    c, (h, w), s = template["input"].shape[0], lr_hw, window.size
    crop = np.full((c, s, s), np.nan, dtype=np.float32)
    return {
        "input": np.full((c, h, w), np.nan, dtype=np.float32),
        "attribution": np.full((c, h, w), np.nan, dtype=np.float32),
        "saliency": np.full((h, w), np.nan, dtype=np.float32),
        "sr_crop": crop,
        "hr_crop": None if template["hr_crop"] is None else crop,
        "diffusion_index": float("nan"),
        "completeness_error": float("nan"),
        "window_sr": window_sr,
        "elapsed_s": float("nan"),
        "quality": {q: float("nan") for q in template["quality"]},
        "curve": xr.full_like(template["curve"], np.nan, dtype=np.float64),
        "computed_at": np.datetime64("NaT", "ns"),
        "error": error,
    }


def gather(windows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One model x image from its windows' cells (in window order): per-window values as lists; input and
    quality from a finished window; ``elapsed_s`` the sum over the tasks that computed them (one
    ``computed_at`` per task), NaN when none finished."""
    done = [c for c in windows if not c["error"]]
    first = done[0] if done else windows[0]
    tasks = {c["computed_at"].item(): c["elapsed_s"] for c in done}
    per_window = ("attribution", "saliency", "sr_crop", "hr_crop", "diffusion_index", "completeness_error",
                  "window_sr", "curve", "computed_at", "error")
    return {
        "input": first["input"],
        "quality": first["quality"],
        "elapsed_s": float(sum(tasks.values())) if tasks else float("nan"),
        **{key: [c[key] for c in windows] for key in per_window},
    }
