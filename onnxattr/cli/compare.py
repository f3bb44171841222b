"""``onnxattr compare MODEL... --images IMG... --window X Y SIZE | --windows FILE -o OUT.nc|OUT.zarr``: one
method on every model x image x window; a ``.zarr`` study resumes (``onnxattr.study``)."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import click

from ..errors import CellsFailed, OnnxAttrError
from ..methods.registry import METHODS
from ..options import DEFAULT_RATIOS, DEFAULT_SEEDS, FORMATS, FRAMES
from ..windows.csvfile import read_windows, rows_for_images
from .common import ImagesCommand, stage_line, check_output_path, finish, model_options, reported

def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE strings -> {key: value}, values read as Python literals (numbers, True) or kept as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise OnnxAttrError(f"--param {pair!r}: write KEY=VALUE with a parameter name of the method, e.g. steps=20")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise OnnxAttrError(f"--ratios {text!r}: give fractions separated by commas, e.g. 0.05,0.1,0.2") from None
    if not all(0 <= r <= 1 for r in ratios):
        raise OnnxAttrError(f"--ratios {text!r}: every ratio must lie in [0, 1] (0.05 = 5%)")
    return ratios


def parse_labels(values: tuple[str, ...]) -> list[str] | dict[str, str] | None:
    """--label values: names in model order, or LABEL=MODEL pairs (not both)."""
    if not values:
        return None
    pairs = ["=" in v for v in values]
    if all(pairs):
        return dict(reversed(v.split("=", 1)) for v in values)  # type: ignore[misc]
    if any(pairs):
        raise OnnxAttrError("--label: give names in model order (--label A --label B) or LABEL=MODEL pairs, not both")
    return list(values)


def study_windows(window: tuple[tuple[int, int, int], ...], windows_file: str | None, images: list[str]) -> dict[str, list]:
    """The windows of every image: each --window for all images, plus the rows of --windows FILE (an
    image column picks the image; rows without one apply to every image)."""
    if not window and windows_file is None:
        raise OnnxAttrError("compare needs windows: pass --window X Y SIZE (repeatable) or --windows FILE")
    per = {p: [tuple(w) for w in window] for p in images}
    if windows_file is not None:
        for p, rows in rows_for_images(read_windows(windows_file), images, windows_file).items():
            per[p] += [r.window for r in rows]
    return {p: ws for p, ws in per.items() if ws}  # compare names an image left without windows


@click.command(name="compare", cls=ImagesCommand)
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--images", "images", multiple=True, required=True, metavar="IMG...", help="Image files (LR, or HR with --hr).")
@click.option("--window", nargs=3, type=int, multiple=True, metavar="X Y SIZE",
              help="Window for every image: column, row, side (repeatable).")
@click.option("--windows", "windows_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="CSV x,y,size[,image]: windows per image (rows without image: every image).")
@click.option("--frame", type=click.Choice(FRAMES), default="hr", show_default=True,
              help="hr: windows in HR-image pixels (every model the same region); sr: in every model's output pixels.")
@click.option("--method", type=click.Choice(METHODS), default="lam", show_default=True, help="Attribution method.")
@click.option("--hr", is_flag=True, help="The images are HR: each model gets their bicubic downscale; PSNR/SSIM vs HR.")
@click.option("--ratios", default=",".join(f"{r:g}" for r in DEFAULT_RATIOS), show_default=True, help="Masking ratios.")
@click.option("--seeds", default=DEFAULT_SEEDS, show_default=True, type=click.IntRange(min=1), help="Random masking orders.")
@click.option("--cka-debiased", is_flag=True, help="Debiased CKA (unbiased HSIC; needs >= 4 images).")
@click.option("--checks", is_flag=True, help="Also the deletion/insertion AUCs of every map, with their controls (see `check`).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Method parameter, e.g. steps=20 (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="NAME",
              help="The models' names in figures: one per model in order (repeatable), or LABEL=MODEL pairs "
              "[default: file names without .onnx].")
@click.option("--scheduler", default=None, metavar="ADDR", help="Dask: 'threads' (default), 'local' (worker processes) or an address.")
@click.option("--figures", default=None, type=click.Path(dir_okay=False), help="Also write the four figures: FIG.png -> FIG-grid.png ...")
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="Result .nc, or a .zarr study: written cell by cell, a rerun keeps the finished cells.")
@click.option("--overwrite", is_flag=True, help="Replace a .zarr study made with other parameters (else refused).")
@model_options
@reported
def command(
    models, images, window, windows_file, frame, method, hr, ratios, seeds, cka_debiased, checks, params, labels, scheduler,
    figures,
    out, overwrite, device, threads, value_range, no_verify, channel_order, probe_size, quiet,
) -> dict:
    """Run one attribution method on every MODEL x image x window; write maps, DI, PSNR/SSIM, masking curves and CKA."""
    import numpy as np

    from ..plot.compare import save_figures
    from ..study.compare import compare
    from ..study.plan import check_method_params

    started = np.datetime64(time.time_ns(), "ns")
    out_path = check_output_path(out, (".nc", ".zarr"))
    fig_path = check_output_path(figures, FORMATS) if figures else None
    study_windows(window, windows_file, list(images))  # bad rows fail before any model loads
    method_params = parse_params(params)
    check_method_params(method, method_params)  # names of compare's own arguments (store, hr...) are no method's
    store = out_path if out_path.suffix == ".zarr" else None
    try:
        ds = compare(
            list(models), list(images), study_windows(window, windows_file, list(images)), method=method, hr=hr,
            frame=frame, ratios=parse_ratios(ratios), seeds=seeds, cka_debiased=cka_debiased, scheduler=scheduler,
            device=device, threads=threads, value_range=value_range, verify=not no_verify, progress=not quiet,
            channel_order=channel_order, probe_size=probe_size, store=store, overwrite=overwrite,
            report=None if quiet else stage_line, labels=parse_labels(labels), checks=checks, **method_params,
        )
    except CellsFailed as err:
        if store is not None or err.dataset is None:
            raise
        finish(err.dataset, out_path)  # the finished cells, each failure in cell_error
        raise CellsFailed(err.errors, err.total, str(out_path), err.dataset) from None
    files = [out_path] if store is not None else finish(ds, out_path)
    if fig_path is not None:
        files += save_figures(ds, fig_path)
    return study_summary(ds, files, started)


def study_summary(ds: Any, files: list[Path], started: Any) -> dict[str, Any]:
    """Per model (by label): mean diffusion index (and PSNR-Y vs HR, completeness error) over the images and
    windows; the cells computed before ``started`` (kept from an earlier run) and since; the method's time summed
    over the tasks (they run side by side, so it may exceed the command's wall time)."""
    import numpy as np

    per_model = {}
    for i, model in enumerate(ds.model.values):
        m = ds.sel(model=model)
        values = {"mean DI (%)": float(m.diffusion_index.mean())}
        if "psnr_y" in ds:
            values["mean PSNR-Y (dB)"] = float(m.psnr_y.mean())
        if np.isfinite(m.completeness_error.values).any():
            values["max completeness error"] = float(np.nanmax(m.completeness_error.values))
        if "check_auc" in ds:
            for curve in m.check_curve.values:
                values[f"{curve} AUC"] = float(m.check_auc.sel(check_curve=curve, check_order="map").mean())
        label = str(ds.label.values[i]) if "label" in ds.coords else str(model)
        per_model[label] = values
    windows = [[int(v) for v in w] for w in np.stack([ds[c].values.ravel() for c in ("window_x", "window_y", "window_size")], 1)
               if np.isfinite(w).all()]
    per_image = np.isfinite(ds.window_size.values).sum(axis=1)
    spread = f"{per_image.min()}" if per_image.min() == per_image.max() else f"{per_image.min()}-{per_image.max()}"
    cells = ds.sizes["model"] * int(per_image.sum())
    return {
        "command": "compare",
        "method": ds.attrs["attribution_method"],
        "model": (f"{ds.sizes['model']} models x {ds.sizes['image']} images, {len(windows)} windows in all "
                  f"({spread} per image): {cells} cells"),
        "windows": windows,
        "per_model": per_model,
        "cells": cells,
        "cells_kept": int((ds.computed_at < started).sum()),
        "cells_computed": int((ds.computed_at >= started).sum()),
        "task_s": float(ds.elapsed_s.sum()),
        "tasks": int(np.isfinite(ds.elapsed_s.values).sum()),
        "files": [str(p) for p in files],
    }
