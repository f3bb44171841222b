"""Cells of a study: one model x image x window, the unit a study keeps.

A task explains the missing windows of one model x image in one method call (shared forward passes) and returns
a ``PairResult``; each of its windows becomes a cell (``CellResult``), written to the study store as one netCDF
file (``encode``, read back value for value by ``decode``). A cell's key is a digest of what its result depends
on: the model file's and the image file's SHA-256, the window and the study parameters (``plan.study_params``),
so a cell is kept only when all of them match. ``gather`` puts a model x image's cells back together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ..windows.geometry import Window

CURVES = ("psnr", "ssim", "psnr_random_std", "ssim_random_std", "masked_pixels")
CHECKS = ("auc", "auc_std", "auc_psnr", "auc_psnr_std")  # kept from ``checks.faithfulness`` with compare's checks


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


@dataclass(frozen=True)
class PairResult:
    """What one task returns for a model x image and its K windows (NumPy arrays and numbers, cheap to ship back
    from a worker): the LR input (C, h, w); per window the attribution (C, h, w), saliency (h, w), SR and HR crops
    of the window, diffusion index, Gini and reach (the method result's, ``results.build``), completeness error,
    masking curves and the window's SR position; the SR output's PSNR/SSIM against HR and the method's time."""

    input: np.ndarray
    attribution: np.ndarray
    saliency: np.ndarray
    sr_crop: list[np.ndarray]
    hr_crop: list[np.ndarray] | None
    diffusion_index: np.ndarray
    gini: np.ndarray
    reach: np.ndarray
    completeness_error: np.ndarray
    quality: dict[str, float]
    curves: list[xr.Dataset]
    elapsed_s: float
    window_sr: list[tuple[int, int]]
    checks: xr.Dataset | None = None  # with checks: deletion/insertion AUCs (window, curve, order; ``checks.faithfulness``)


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed: its one-line error (every window of the task fails with it)."""

    error: str


@dataclass(frozen=True)
class CellResult:
    """One window's values (``error`` empty) or a failed cell's NaNs with its ``error``; ``computed_at`` is when
    its task finished (NaT for a failed cell)."""

    input: np.ndarray
    attribution: np.ndarray
    saliency: np.ndarray
    sr_crop: np.ndarray
    hr_crop: np.ndarray | None
    diffusion_index: float
    gini: float
    reach: float
    completeness_error: float
    window_sr: tuple[int, int]
    elapsed_s: float
    quality: dict[str, float]
    curve: xr.Dataset
    computed_at: np.datetime64
    error: str = ""
    checks: xr.Dataset | None = None  # with checks: the window's deletion/insertion AUCs (CHECKS variables)


def digest(value: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def encode(result: PairResult, k: int, computed_at: np.datetime64) -> xr.Dataset:
    """Window ``k`` of a task's result as a Dataset on dims channel, y, x, wy, wx and the masking dims, with the
    values the task's windows share."""
    crop = ("channel", "wy", "wx")
    curve = result.curves[k]
    data: dict[str, Any] = {
        "input": (("channel", "y", "x"), result.input),
        "attribution": (("channel", "y", "x"), result.attribution[k]),
        "saliency": (("y", "x"), result.saliency[k]),
        "sr_crop": (crop, result.sr_crop[k]),
        "diffusion_index": ((), float(result.diffusion_index[k])),
        "gini": ((), float(result.gini[k])),
        "reach": ((), float(result.reach[k])),
        "completeness_error": ((), float(result.completeness_error[k])),
        "window_sr": (("xy",), np.asarray(result.window_sr[k], dtype=np.int64)),
        "elapsed_s": ((), result.elapsed_s),
        "computed_at": ((), computed_at),
        **{f"quality_{q}": ((), v) for q, v in result.quality.items()},
        **{f"curve_{name}": curve[name] for name in CURVES},
    }
    if result.hr_crop is not None:
        data["hr_crop"] = (crop, result.hr_crop[k])
    if result.checks is not None:
        own = result.checks.isel({"window": k, "method": 0}).drop_vars("method")
        own = own.rename({"curve": "check_curve", "order": "check_order"})
        data.update({f"check_{name}": own[name] for name in CHECKS if name in own})
    return xr.Dataset(data, attrs={"masking_seeds": curve.attrs["seeds"]})


def current(ds: xr.Dataset) -> bool:
    """Whether a stored cell holds every value :func:`encode` writes now (cells of an older onnxattr lack Gini
    and reach: a study recomputes them rather than leaving them NaN)."""
    return all(name in ds for name in ("gini", "reach"))


def decode(ds: xr.Dataset) -> CellResult:
    """The window's values that :func:`encode` stored."""
    curve = xr.Dataset({name: ds[f"curve_{name}"] for name in CURVES}, attrs={"seeds": int(ds.attrs["masking_seeds"])})
    return CellResult(
        input=ds["input"].values, attribution=ds["attribution"].values, saliency=ds["saliency"].values,
        sr_crop=ds["sr_crop"].values, hr_crop=ds["hr_crop"].values if "hr_crop" in ds else None,
        diffusion_index=float(ds["diffusion_index"]), gini=float(ds["gini"]), reach=float(ds["reach"]),
        completeness_error=float(ds["completeness_error"]),
        window_sr=tuple(int(v) for v in ds["window_sr"].values), elapsed_s=float(ds["elapsed_s"]),
        quality={name.removeprefix("quality_"): float(ds[name]) for name in ds.data_vars if name.startswith("quality_")},
        curve=curve, computed_at=ds["computed_at"].values,
        checks=xr.Dataset({name: ds[f"check_{name}"] for name in CHECKS if f"check_{name}" in ds}) if "check_auc" in ds else None,
    )


def placeholder(template: CellResult, lr_hw: tuple[int, int], window: Window, window_sr: tuple[int, int],
                error: str) -> CellResult:
    """The NaN values of a failed cell, shaped like ``template`` (any finished cell) for an LR input of ``lr_hw``
    and this window, with its ``error``."""
    c, (h, w), s = template.input.shape[0], lr_hw, window.size
    crop = np.full((c, s, s), np.nan, dtype=np.float32)
    return replace(
        template, input=np.full((c, h, w), np.nan, dtype=np.float32),
        attribution=np.full((c, h, w), np.nan, dtype=np.float32), saliency=np.full((h, w), np.nan, dtype=np.float32),
        sr_crop=crop, hr_crop=None if template.hr_crop is None else crop, diffusion_index=float("nan"),
        gini=float("nan"), reach=float("nan"), completeness_error=float("nan"), window_sr=window_sr, elapsed_s=float("nan"),
        quality={q: float("nan") for q in template.quality},
        curve=xr.full_like(template.curve, np.nan, dtype=np.float64), computed_at=np.datetime64("NaT", "ns"),
        error=error, checks=None if template.checks is None else xr.full_like(template.checks, np.nan, dtype=np.float64),
    )


@dataclass(frozen=True)
class PairCells:
    """One model x image from its windows' cells: per-window values as lists in window order (``windows``), the
    input and quality of a finished window, and the summed time of the tasks that computed them."""

    input: np.ndarray
    quality: dict[str, float]
    elapsed_s: float
    windows: list[CellResult]

    def per_window(self, name: str) -> list[Any]:
        """Every window's value of the ``CellResult`` field ``name``."""
        return [getattr(c, name) for c in self.windows]


def gather(windows: Sequence[CellResult]) -> PairCells:
    """One model x image from its windows' cells (in window order): ``elapsed_s`` is the sum over the tasks that
    computed them (one ``computed_at`` per task), NaN when none finished."""
    done = [c for c in windows if not c.error]
    first = done[0] if done else windows[0]
    tasks = {c.computed_at.item(): c.elapsed_s for c in done}
    return PairCells(first.input, first.quality, float(sum(tasks.values())) if tasks else float("nan"), list(windows))
