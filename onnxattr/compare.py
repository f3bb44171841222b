"""Cross-model studies: one attribution method on every model x image, with quality, fidelity and CKA.

``compare(models, images, window, method=...)`` runs the method (LAM, L2X or GL-AM) for each model x
image pair as one Dask task, then measures, per pair: the diffusion index of the saliency, PSNR/SSIM of
the SR output against the HR image (with ``hr=True``), and the remove-and-replace masking curves
(``metrics.masking``); and, per model pair, the linear CKA of their saliency maps over the images
(``metrics.cka``). Tasks receive file paths and load each model once per worker process
(``_model``), so no torch graph crosses a process boundary. See docs/compare.md for the layout.

Windows. With ``window_in_hr`` (the default) the window (x, y, size) is given in HR pixels: the frame
of the HR image with ``hr=True``, or of the LR image upscaled by the (shared) scale otherwise. For a
model with output side s n + c it lies at (x + c/2, y + c/2) in the model's SR output (c <= 0 and even:
the output lacks -c/2 px on each border), so every model explains the same image region. Models of
different scales can only be mixed with HR images, whose frame they share; with ``window_in_hr=False``
the window is used as is in every SR output, which needs one scale and one offset for all models.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import xarray as xr

from .atomic import existing_folder
from .errors import OnnxAttrError
from .image import downscale, read_image
from .metrics import DEFAULT_RATIOS, cka_matrix, diffusion_index, masking_curves, sr_quality
from .model import SRModel, load_model
from .results import _attr_value, versions
from .target import Window, align_hr, check_input_size, check_window

METHODS = ("lam", "l2x", "glam")
QUALITY = ("psnr", "ssim", "psnr_y", "ssim_y")

_MODELS: dict[tuple[str, str | None, float, bool], SRModel] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelInfo:
    """What the planning needs of a model, small enough to come back from a worker."""

    path: str
    scale: int
    offset: int
    in_channels: int
    fixed_size: tuple[int, int] | None
    sha256: str
    conversion_error: float


def _model(path: str, device: str | None, value_range: float, verify: bool) -> SRModel:
    """The model at ``path``, loaded once per process (threads share it; onnxruntime and inference-only
    torch graphs are safe to call from several threads)."""
    key = (str(Path(path).resolve()), device, float(value_range), bool(verify))
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                _MODELS[key] = load_model(path, device=device, verify=verify, value_range=value_range)
            except OnnxAttrError as err:  # subclasses with other __init__ signatures do not unpickle on a client
                raise OnnxAttrError(str(err)) from None
        return _MODELS[key]


def model_info(path: str, load: dict[str, Any]) -> ModelInfo:
    """Task: load (and cache) the model on the worker and report its geometry."""
    m = _model(path, **load)
    err = m.conversion_error if m.conversion_error is not None else float("nan")
    return ModelInfo(str(path), m.scale, m.offset, m.in_channels, m.fixed_size, m.sha256, err)


def sr_window(window: Window, offset: int, in_hr: bool) -> Window:
    """The window in a model's SR pixels: (x + c/2, y + c/2) for a window in HR pixels, else unchanged."""
    if not in_hr:
        return window
    return Window(window.x + offset // 2, window.y + offset // 2, window.size)


def lr_size(image_hw: tuple[int, int], scale: int, hr: bool) -> tuple[int, int]:
    """LR side lengths the model sees: the HR image downscaled by ``scale`` (``hr``) or the image itself."""
    return (image_hw[0] // scale, image_hw[1] // scale) if hr else image_hw


def check_models(infos: Sequence[ModelInfo], hr: bool, in_hr: bool) -> None:
    """Errors for model sets that cannot explain the same region with the same window."""
    names = [Path(i.path).name for i in infos]
    if len(set(names)) != len(names):
        raise OnnxAttrError("two models share a file name; give every model a distinct file name")
    if len({i.in_channels for i in infos}) > 1:
        raise OnnxAttrError("the models take different channel counts (RGB and gray); compare models of one kind")
    scales = sorted({i.scale for i in infos})
    if len(scales) > 1 and not (hr and in_hr):
        raise OnnxAttrError(
            f"the models mix scales (x{', x'.join(map(str, scales))}): one LR image has no common HR frame, "
            "so one window would cover different regions; pass HR images (--hr) with the window in HR pixels"
        )
    if not in_hr and len({i.offset for i in infos}) > 1:
        raise OnnxAttrError(
            "the models' outputs differ in border (offsets "
            f"{', '.join(str(i.offset) for i in infos)}), so one SR-pixel window covers different regions; "
            "give the window in HR pixels (the default, drop --window-in-sr)"
        )
    for i in infos:
        if in_hr and (i.offset > 0 or i.offset % 2):
            raise OnnxAttrError(
                f"{Path(i.path).name}: output side {i.scale} n {i.offset:+d} has no whole-pixel HR alignment; "
                "give the window in SR pixels (--window-in-sr) and compare it only with models of the same law"
            )


def check_windows(infos: Sequence[ModelInfo], sizes: dict[str, tuple[int, int]], window: Window, hr: bool, in_hr: bool) -> None:
    """Validate the window for every model x image before any computation (one-line errors)."""
    for i in infos:
        for name, hw in sizes.items():
            h, w = lr_size(hw, i.scale, hr)
            if i.fixed_size and (h, w) != tuple(i.fixed_size):
                raise OnnxAttrError(
                    f"{Path(i.path).name} only takes {i.fixed_size[1]}x{i.fixed_size[0]} inputs but {name} gives "
                    f"{w}x{h}; crop the images to that size first"
                )
            check_input_size(h, w, i.scale, i.offset, f"{Path(i.path).name} on {name}")
            win = sr_window(window, i.offset, in_hr)
            try:
                check_window(win, i.scale * h + i.offset, i.scale * w + i.offset)
            except OnnxAttrError as err:
                frame = f" (HR x={window.x} y={window.y} is x={win.x} y={win.y} in its SR output)" if in_hr else ""
                raise OnnxAttrError(f"{Path(i.path).name} on {name}{frame}: {err}") from None


def _method(name: str) -> Callable[..., xr.Dataset]:
    if name not in METHODS:
        raise OnnxAttrError(f"method {name!r}: use one of {', '.join(METHODS)}")
    return getattr(importlib.import_module(f"{__package__}.{name}"), name)


_NOT_PARAMS = ("hr", "progress", "frame")  # keyword arguments of a method that compare sets itself


def _kind_error(value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for a parameter whose default is ``default`` (None: nothing)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a word"
    return None


def check_method_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``method``'s parameters before any model loads: names (the method's keyword arguments), kinds
    (those of the defaults) and values (the method's own ``check_params``). Returns them, normalised."""
    fn = _method(method)
    defaults = {
        n: p.default for n, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _NOT_PARAMS
    }
    for key, value in params.items():
        if key not in defaults:
            raise OnnxAttrError(
                f"{method} has no parameter {key!r}; its parameters are {', '.join(defaults)} (--param KEY=VALUE)"
            )
        kind = _kind_error(value, defaults[key])
        if kind is not None:
            raise OnnxAttrError(f"{method} parameter {key}={value!r} should be {kind} (default {defaults[key]!r})")
    checked = importlib.import_module(fn.__module__).check_params(**{**defaults, **params})
    return {k: checked.get(k, v) for k, v in params.items()}


def run_job(
    model_path: str,
    image_path: str,
    *,
    load: dict[str, Any],
    method: str,
    window: Window,
    hr: bool,
    in_hr: bool,
    ratios: Sequence[float],
    seeds: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Task: one model x image. Returns numpy arrays and numbers only (cheap to ship back)."""
    model = _model(model_path, **load)
    image = read_image(image_path, channels=model.in_channels)
    lr, hr_image = downscale(image, model.scale) if hr else (image, None)
    out_hw = model.output_size(*lr.shape[2:])
    hr_image = align_hr(hr_image, model.offset, out_hw) if hr_image is not None else None
    win = sr_window(window, model.offset, in_hr)
    ds = _method(method)(model, lr, win, frame="sr", hr=hr_image, **params).isel(window=0)
    attribution = ds["attribution"].values
    sal = ds["saliency"].values
    rows, cols = slice(win.y, win.y + win.size), slice(win.x, win.x + win.size)
    curves = masking_curves(model, lr, attribution, ratios=ratios, seeds=seeds, hr=hr_image, window=win)
    return {
        "input": lr[0].numpy(),
        "attribution": attribution,
        "saliency": sal,
        "sr_crop": ds["output"].values[:, rows, cols],
        "hr_crop": hr_image[0].numpy()[:, rows, cols] if hr_image is not None else None,
        "diffusion_index": float(ds["diffusion_index"] if "diffusion_index" in ds else diffusion_index(sal)),
        "quality": sr_quality(ds["output"].values, hr_image[0], border=model.scale) if hr_image is not None else {},
        "curves": curves,
        "elapsed_s": float(ds.attrs["elapsed_s"]),
        "completeness_error": float(ds["completeness_error"]) if "completeness_error" in ds else np.nan,
        "window_sr": (win.x, win.y),
    }


# ------------------------------------------------------------------ scheduling
def _run_threads(fn: Callable, jobs: list[dict[str, Any]], bar: Any) -> list[Any]:
    import dask
    from dask.callbacks import Callback

    class _Bar(Callback):
        def _posttask(self, key, result, dsk, state, id):  # noqa: A002  (dask's signature)
            bar.update(1)

    tasks = [dask.delayed(fn, pure=False)(**kw) for kw in jobs]
    with _Bar():
        return list(dask.compute(*tasks, scheduler="threads"))


def _run_distributed(fn: Callable, jobs: list[dict[str, Any]], bar: Any, client: Any) -> list[Any]:
    from distributed import as_completed

    futures = [client.submit(fn, pure=False, **kw) for kw in jobs]
    for _ in as_completed(futures):
        bar.update(1)
    return client.gather(futures)


class _Runner:
    """Runs lists of tasks on the threaded scheduler (``None``/'threads'), a new LocalCluster of worker
    processes ('local') or an existing Dask cluster (its scheduler address, e.g. 'tcp://host:8786')."""

    def __init__(self, scheduler: str | None) -> None:
        self.client = self.cluster = None
        if scheduler in (None, "threads"):
            return
        from distributed import Client, LocalCluster

        if scheduler == "local":
            self.cluster = LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as err:
                raise OnnxAttrError(f"cannot reach the Dask scheduler {scheduler!r} ({err}); check the address") from err

    def run(self, fn: Callable, jobs: list[dict[str, Any]], bar: Any) -> list[Any]:
        if self.client is None:
            return _run_threads(fn, jobs, bar)
        return _run_distributed(fn, jobs, bar, self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class _NoBar:
    def update(self, n: int) -> None:
        pass


# -------------------------------------------------------------------- assembly
def _padded(arrays: list[list[np.ndarray]], lead: tuple[int, ...]) -> np.ndarray:
    """Stack a models x images grid of (..., h, w) arrays into one array NaN-padded to the largest h, w."""
    h = max(a.shape[-2] for row in arrays for a in row)
    w = max(a.shape[-1] for row in arrays for a in row)
    out = np.full((len(arrays), len(arrays[0]), *lead, h, w), np.nan, dtype=np.float32)
    for i, row in enumerate(arrays):
        for j, a in enumerate(row):
            out[i, j, ..., : a.shape[-2], : a.shape[-1]] = a
    return out


def _cka(results: list[list[dict[str, Any]]], debiased: bool) -> np.ndarray:
    """CKA of the models' saliency matrices (images x LR pixels); NaN when too few images."""
    n_images, need = len(results[0]), 4 if debiased else 3
    if n_images < need:
        warnings.warn(
            f"CKA over {n_images} image(s) is not informative (2 samples give 1 by construction); "
            f"pass at least {need} images; CKA left as NaN",
            stacklevel=4,
        )
        return np.full((len(results), len(results)), np.nan)
    return cka_matrix([np.stack([r["saliency"].ravel() for r in row]) for row in results], debiased)


def _image_names(images: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in images]
    return stems if len(set(stems)) == len(stems) else [str(p) for p in images]


def assemble(
    infos: Sequence[ModelInfo],
    images: Sequence[str],
    results: list[list[dict[str, Any]]],
    attrs: dict[str, Any],
    cka_debiased: bool,
) -> xr.Dataset:
    """One Dataset with dims (model, image, ...) from the models x images grid of job results."""
    first = results[0][0]
    c = first["input"].shape[0]
    curves = xr.concat([xr.concat([r["curves"] for r in row], dim="image") for row in results], dim="model")
    data: dict[str, Any] = {
        "input": (("model", "image", "channel", "y", "x"), _padded([[r["input"] for r in row] for row in results], (c,))),
        "attribution": (
            ("model", "image", "channel", "y", "x"),
            _padded([[r["attribution"] for r in row] for row in results], (c,)),
        ),
        "saliency": (("model", "image", "y", "x"), _padded([[r["saliency"] for r in row] for row in results], ())),
        "sr_crop": (("model", "image", "channel", "wy", "wx"), np.stack([[r["sr_crop"] for r in row] for row in results])),
        "diffusion_index": (("model", "image"), np.array([[r["diffusion_index"] for r in row] for row in results])),
        "elapsed_s": (("model", "image"), np.array([[r["elapsed_s"] for r in row] for row in results])),
        "completeness_error": (("model", "image"), np.array([[r["completeness_error"] for r in row] for row in results])),
        "window_x_sr": (("model",), np.array([row[0]["window_sr"][0] for row in results])),
        "window_y_sr": (("model",), np.array([row[0]["window_sr"][1] for row in results])),
        "scale": (("model",), np.array([i.scale for i in infos])),
        "offset": (("model",), np.array([i.offset for i in infos])),
        "model_sha256": (("model",), np.array([i.sha256 for i in infos])),
        "conversion_error": (("model",), np.array([i.conversion_error for i in infos])),
        "cka": (("model", "model2"), _cka(results, cka_debiased)),
    }
    for name in ("psnr", "ssim"):
        data[f"mask_{name}"] = curves[name].transpose("model", "image", ...)
        data[f"mask_{name}_random_std"] = curves[f"{name}_random_std"].transpose("model", "image", ...)
    if first["hr_crop"] is not None:
        data["hr_crop"] = (("image", "channel", "wy", "wx"), np.stack([r["hr_crop"] for r in results[0]]))
        for q in QUALITY:
            data[q] = (("model", "image"), np.array([[r["quality"][q] for r in row] for row in results]))
    models = [Path(i.path).name for i in infos]
    ds = xr.Dataset(
        data,
        coords={
            "model": models,
            "model2": models,
            "image": _image_names(images),
            "channel": ["Y"] if c == 1 else ["R", "G", "B"] if c == 3 else [str(k) for k in range(c)],
        },
    )
    ds.attrs = {k: _attr_value(v) for k, v in {**attrs, "masking_seeds": curves.attrs["seeds"]}.items()}
    return ds


# ------------------------------------------------------------------------- API
def compare(
    models: Sequence[str | os.PathLike],
    images: Sequence[str | os.PathLike],
    window: Window | tuple[int, int, int],
    *,
    method: str = "lam",
    hr: bool = False,
    window_in_hr: bool = True,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seeds: int = 5,
    cka_debiased: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    value_range: float = 1.0,
    verify: bool = True,
    progress: bool = False,
    **method_params: Any,
) -> xr.Dataset:
    """Run ``method`` on every model x image and gather maps and measures in one Dataset.

    ``models``, ``images``: file paths (tasks load them where they run). ``window`` = (x, y, size) in HR
    pixels (``window_in_hr``, see the module docstring) or in SR pixels. ``hr``: the images are HR;
    each model gets their bicubic downscale by its scale, and PSNR/SSIM are measured against them.
    ``ratios``, ``seeds``: masking curves. ``cka_debiased``: the unbiased HSIC (needs >= 4 images).
    ``scheduler``: None/'threads' (in-process threads), 'local' (a LocalCluster of processes) or a Dask
    scheduler address. ``method_params`` go to the method (e.g. ``steps=50`` for LAM).

    Dims: model, model2 (CKA), image, channel, y, x (LR, NaN-padded to the largest model input), wy, wx
    (the window in SR pixels), region, reference, order, ratio (masking). Variables: input, attribution,
    saliency, sr_crop, hr_crop, diffusion_index, psnr, ssim, psnr_y, ssim_y, mask_psnr, mask_ssim
    (+ ``_random_std``), cka, elapsed_s, completeness_error, scale, offset, window_x_sr, window_y_sr.
    """
    method_params = check_method_params(method, method_params)
    if not models or not images:
        raise OnnxAttrError("compare needs at least one model and one image")
    model_paths = [str(m) for m in models]
    image_paths = [str(p) for p in images]
    win = window if isinstance(window, Window) else Window(*(int(v) for v in window))
    load = {"device": device, "value_range": float(value_range), "verify": verify}
    if method == "lam" and scheduler in (None, "threads", "local") and not {"batch_size", "memory_fraction"} & set(method_params):
        from .lam import DEFAULT_MEMORY_FRACTION

        # LAM sizes its batch from free memory; tasks run side by side, one per core, so share the budget
        method_params = {**method_params, "memory_fraction": DEFAULT_MEMORY_FRACTION / (os.cpu_count() or 1)}
    sizes = {Path(p).name: tuple(read_image(p).shape[2:]) for p in image_paths}
    runner = _Runner(scheduler)
    try:
        infos = runner.run(model_info, [{"path": p, "load": load} for p in model_paths], _NoBar())
        check_models(infos, hr, window_in_hr)
        check_windows(infos, sizes, win, hr, window_in_hr)
        common = {
            "load": load, "method": method, "window": win, "hr": hr, "in_hr": window_in_hr,
            "ratios": tuple(ratios), "seeds": seeds, "params": method_params,
        }
        jobs = [{"model_path": m, "image_path": p, **common} for m in model_paths for p in image_paths]
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc=f"compare ({method})", unit="map", disable=None if progress else True, leave=False) as bar:
            flat = runner.run(run_job, jobs, bar)
    finally:
        runner.close()
    results = [flat[i * len(image_paths) : (i + 1) * len(image_paths)] for i in range(len(model_paths))]
    attrs = {
        "method": "compare",
        "attribution_method": method,
        "window_x": win.x,
        "window_y": win.y,
        "window_size": win.size,
        "window_frame": "hr" if window_in_hr else "sr",
        "hr": hr,
        "cka_debiased": cka_debiased,
        "cka_features": "saliency maps (|sum_c A| / max), one row per image",
        "scheduler": scheduler or "threads",
        **versions(),
        **{f"method_{k}": v for k, v in method_params.items()},
    }
    return assemble(infos, image_paths, results, attrs, cka_debiased)


def save_study(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a study to a zarr store atomically (a temp store in the target folder, then renamed over)."""
    path = Path(path)
    if path.suffix != ".zarr":
        raise OnnxAttrError(f"study path {str(path)!r} should end in .zarr; pick a name like study.zarr")
    folder = existing_folder(path, "study")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=folder))
    old = folder / f".{path.name}.old"
    try:
        ds.to_zarr(tmp / "store.zarr", mode="w", zarr_format=2, consolidated=True)
        if path.exists():
            path.rename(old)
        (tmp / "store.zarr").rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_study(path: str | os.PathLike) -> xr.Dataset:
    """Open a study written by :func:`save_study`, fully into memory."""
    path = Path(path)
    if not path.is_dir():
        raise OnnxAttrError(f"study {str(path)!r} not found; pass a .zarr store written by save_study")
    with xr.open_zarr(path, consolidated=True) as ds:
        return ds.load()
