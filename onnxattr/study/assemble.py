"""A study's cells -> one Dataset with dims (model, image, window, ...) in the study layout (docs/compare.md), with
the CKA of the models' saliency maps over the images and windows (``metrics.cka``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from ..intake import ModelFacts
from ..metrics import cka_matrix
from ..results.build import attrs_of
from ..results.schema import SCHEMA_VERSION, STUDY_COORDS, STUDY_VARIABLES, describe
from ..windows.geometry import Window
from .cells import PairCells

Grid = list[list[PairCells]]  # models x images


def _padded(arrays: list[list[np.ndarray]], lead: tuple[int, ...]) -> np.ndarray:
    """Stack a models x images grid of (..., h, w) arrays into one array NaN-padded to the largest h, w."""
    h = max(a.shape[-2] for row in arrays for a in row)
    w = max(a.shape[-1] for row in arrays for a in row)
    out = np.full((len(arrays), len(arrays[0]), *lead, h, w), np.nan, dtype=np.float32)
    for i, row in enumerate(arrays):
        for j, a in enumerate(row):
            out[i, j, ..., : a.shape[-2], : a.shape[-1]] = a
    return out


def _cka(saliency: np.ndarray, valid: np.ndarray, debiased: bool) -> np.ndarray:
    """CKA of the models' saliency matrices (one row per image x window, LR pixels as columns; the NaN
    padding of smaller inputs dropped); NaN when there are too few maps."""
    n, need = int(valid.sum()), 4 if debiased else 3
    if n < need:
        warnings.warn(
            f"CKA over {n} map(s) (images x windows) is not informative (2 samples give 1 by construction); "
            f"pass at least {need} images or windows; CKA left as NaN",
            stacklevel=4,
        )
        return np.full((saliency.shape[0], saliency.shape[0]), np.nan)
    feats = []
    for m in saliency:  # (image, window, y, x)
        rows = m[valid]
        feats.append(rows[:, np.isfinite(rows).all(axis=0)].reshape(n, -1))
    return cka_matrix(feats, debiased)


def _by_window(grid: Grid, values: Callable[[PairCells], list[Any]], k: int,
               shape: tuple[int, ...] | None = None) -> np.ndarray:
    """(model, image, window, ...) array of the per-window values ``values(pair)``, NaN-padded to ``k`` windows and,
    for arrays of several sizes (window crops), to the largest trailing shape."""
    items = [[list(values(pair)) for pair in row] for row in grid]
    arrays = [np.asarray(a, dtype=np.float64) for row in items for per in row for a in per]
    shape = shape if shape is not None else tuple(np.max([a.shape for a in arrays], axis=0)) if arrays[0].ndim else ()
    out = np.full((len(items), len(items[0]), k, *shape), np.nan)
    for i, row in enumerate(items):
        for j, per in enumerate(row):
            for w, a in enumerate(per):
                a = np.asarray(a, dtype=np.float64)
                out[(i, j, w, *(slice(0, n) for n in a.shape))] = a
    return out


def _per_window(grid: Grid, name: str, k: int, fill: Any, dtype: Any) -> np.ndarray:
    """(model, image, window) array of the per-window scalars ``name``, ``fill`` beyond an image's windows."""
    out = np.full((len(grid), len(grid[0]), k), fill, dtype=dtype)
    for i, row in enumerate(grid):
        for j, pair in enumerate(row):
            values = pair.per_window(name)
            out[i, j, : len(values)] = values
    return out


def _image_names(images: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in images]
    return stems if len(set(stems)) == len(stems) else [str(p) for p in images]


def _window_coords(windows: dict[str, list[Window]], images: Sequence[str], k: int) -> dict[str, tuple[tuple[str, str], np.ndarray]]:
    """``window_x``, ``window_y``, ``window_size`` on (image, window) in the frame they were given;
    NaN (then float) where an image has fewer than ``k`` windows."""
    pad = any(len(windows[p]) < k for p in images)
    out = {}
    for name, get in (("window_x", lambda w: w.x), ("window_y", lambda w: w.y), ("window_size", lambda w: w.size)):
        a = np.full((len(images), k), np.nan) if pad else np.zeros((len(images), k), dtype=np.int64)
        for j, p in enumerate(images):
            a[j, : len(windows[p])] = [get(w) for w in windows[p]]
        out[name] = (("image", "window"), a)
    return out


def _hr_crops(grid: Grid, images: Sequence[str], windows: dict[str, list[Window]], k: int) -> np.ndarray:
    """(image, window, channel, wy, wx): each image x window's HR crop from its first finished cell."""
    per_image = []
    for j, p in enumerate(images):
        crops = []
        for n in range(len(windows[p])):
            done = [row[j].windows[n] for row in grid if not row[j].windows[n].error]
            crops.append((done[0] if done else grid[0][j].windows[n]).hr_crop)
        per_image.append(crops)
    shape = tuple(np.max([c.shape for crops in per_image for c in crops], axis=0))
    out = np.full((len(per_image), k, *shape), np.nan)
    for j, crops in enumerate(per_image):
        for n, c in enumerate(crops):
            out[(j, n, *(slice(0, s) for s in c.shape))] = c
    return out


def _curves(grid: Grid, k: int) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """The masking curves' variables (``mask_*``) on (model, image, window, ...)."""
    curve = next(c.curve for row in grid for pair in row for c in pair.windows if not c.error)
    data = {}
    for name, var in (("psnr", "mask_psnr"), ("ssim", "mask_ssim"), ("psnr_random_std", "mask_psnr_random_std"),
                      ("ssim_random_std", "mask_ssim_random_std"), ("masked_pixels", "mask_pixels")):
        data[var] = (("model", "image", "window", *curve[name].dims),
                     _by_window(grid, lambda pair, n=name: [c.curve[n].values for c in pair.windows], k, curve[name].shape))
    return data


def flat_cells(ds: xr.Dataset) -> np.ndarray:
    """(model, image, window) True where a computed cell's attribution is zero everywhere (a flat window: its DI,
    Gini and reach are NaN); padding and failed cells are not computed (``computed_at`` NaT)."""
    computed = ~np.isnat(ds.computed_at.values) if "computed_at" in ds else np.isfinite(ds.window_size.values)[None]
    return computed & ~(np.abs(ds.attribution.fillna(0)).max(("channel", "y", "x")).values > 0)
def _checks(grid: Grid, k: int) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """The deletion/insertion AUCs (``check_*``) on (model, image, window, check_curve, check_order), when computed."""
    first = next(c.checks for row in grid for pair in row for c in pair.windows if not c.error)
    if first is None:
        return {}
    return {f"check_{name}": (("model", "image", "window", *first[name].dims),
                              _by_window(grid, lambda pair, n=name: [c.checks[n].values for c in pair.windows], k,
                                         first[name].shape))
            for name in first.data_vars}


def assemble(
    facts: Sequence[ModelFacts],
    images: Sequence[str],
    windows: dict[str, list[Window]],
    grid: Grid,
    attrs: dict[str, Any],
    cka_debiased: bool,
    labels: Sequence[str],
) -> xr.Dataset:
    """One Dataset with dims (model, image, window, ...) from the models x images grid of gathered cells (failed
    cells hold ``cells.placeholder`` NaNs); ``labels`` name the models in figures (coordinate ``label``)."""
    first = next(c for row in grid for pair in row for c in pair.windows if not c.error)
    c = first.input.shape[0]
    k = max(len(windows[p]) for p in images)
    mi, miw = ("model", "image"), ("model", "image", "window")
    h = max(pair.input.shape[-2] for row in grid for pair in row)
    w = max(pair.input.shape[-1] for row in grid for pair in row)
    saliency = _by_window(grid, lambda pair: pair.per_window("saliency"), k, (h, w))
    valid = np.array([[j < len(windows[p]) for j in range(k)] for p in images])
    data: dict[str, Any] = {
        "input": (("model", "image", "channel", "y", "x"), _padded([[pair.input for pair in row] for row in grid], (c,))),
        "attribution": ((*miw, "channel", "y", "x"),
                        _by_window(grid, lambda pair: pair.per_window("attribution"), k, (c, h, w)).astype(np.float32)),
        "saliency": ((*miw, "y", "x"), saliency.astype(np.float32)),
        "sr_crop": ((*miw, "channel", "wy", "wx"),
                    _by_window(grid, lambda pair: pair.per_window("sr_crop"), k).astype(np.float32)),
        **{name: (miw, _by_window(grid, lambda pair, n=name: pair.per_window(n), k))
           for name in ("diffusion_index", "gini", "reach")},
        "completeness_error": (miw, _by_window(grid, lambda pair: pair.per_window("completeness_error"), k)),
        "window_x_sr": (miw, _by_window(grid, lambda pair: [x for x, _ in pair.per_window("window_sr")], k)),
        "window_y_sr": (miw, _by_window(grid, lambda pair: [y for _, y in pair.per_window("window_sr")], k)),
        "elapsed_s": (mi, np.array([[pair.elapsed_s for pair in row] for row in grid])),
        "scale": (("model",), np.array([f.scale for f in facts])),
        "offset": (("model",), np.array([f.offset for f in facts])),
        "model_sha256": (("model",), np.array([f.sha256 for f in facts])),
        "conversion_error": (("model",), np.array([np.nan if f.conversion_error is None else f.conversion_error
                                                   for f in facts])),
        "cka": (("model", "model2"), _cka(saliency, valid, cka_debiased)),
        **_curves(grid, k),
        **_checks(grid, k),
        "computed_at": (miw, _per_window(grid, "computed_at", k, np.datetime64("NaT", "ns"), "datetime64[ns]")),
        "cell_error": (miw, _per_window(grid, "error", k, "", object).astype(str)),
    }
    if first.hr_crop is not None:
        data["hr_crop"] = (("image", "window", "channel", "wy", "wx"),
                           _hr_crops(grid, images, windows, k).astype(np.float32))
        for q in first.quality:
            data[q] = (mi, np.array([[pair.quality[q] for pair in row] for row in grid]))
    models = [f.file for f in facts]
    h, w = data["input"][1].shape[-2:]
    scales = np.array([f.scale for f in facts], dtype=np.float64)[:, None]
    curve = first.curve
    ds = xr.Dataset(
        data,
        coords={
            "model": models,
            "label": ("model", list(labels)),
            "model2": models,
            "image": _image_names(images),
            "channel": ["Y"] if c == 1 else ["R", "G", "B"] if c == 3 else [str(j) for j in range(c)],
            "y": np.arange(h),
            "x": np.arange(w),
            "lr_y": (("model", "y"), -(np.arange(h) + 0.5) * scales),
            "lr_x": (("model", "x"), (np.arange(w) + 0.5) * scales),
            "wy": -(np.arange(data["sr_crop"][1].shape[-2]) + 0.5),
            "wx": np.arange(data["sr_crop"][1].shape[-1]) + 0.5,
            **{d: curve[d].values for d in curve["psnr"].dims},
            **({d: first.checks[d].values for d in first.checks.dims} if first.checks is not None else {}),
            **_window_coords(windows, images, k),
        },
    )
    ds.attrs = attrs_of({"schema_version": SCHEMA_VERSION, **attrs, "masking_seeds": curve.attrs["seeds"]})
    return describe(ds, {**STUDY_COORDS, **STUDY_VARIABLES})
