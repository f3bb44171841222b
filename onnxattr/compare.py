"""Cross-model studies: one attribution method on every model x image, with quality, fidelity and CKA.

``compare(models, images, window, method=...)`` runs the method (LAM, L2X or GL-AM) for each model x
image pair as one Dask task, then measures, per pair: the diffusion index of the saliency, PSNR/SSIM of
the SR output against the HR image (with ``hr=True``), and the remove-and-replace masking curves
(``metrics.masking``); and, per model pair, the linear CKA of their saliency maps over the images
(``metrics.cka``). Tasks receive file paths and load each model once per worker process
(``_model``), so no torch graph crosses a process boundary. See docs/compare.md for the layout.

Windows. Every image has one or more windows (x, y, size): one window or a list for all images, or a
mapping image -> window(s) (the CLI's ``--windows FILE`` with an image column). With ``frame='hr'``
(the default) they are in HR pixels: the frame of the HR image with ``hr=True``, or of the LR image
upscaled by the (shared) scale otherwise. For a model with output side s n + c a window lies at
(x + c/2, y + c/2) in the model's SR output (c even), so every model explains the same image region.
Models of different scales can only be mixed with HR images, whose frame they share; with
``frame='sr'`` the windows are used as they are in every SR output, which needs one scale and one
offset for all models. Each model x image is one task that explains all its windows at once (shared
forward passes).

Studies that resume. With ``store=`` each window of a task's result is a cell (``cells``: model x image
x window) written into the zarr store as the task finishes; a rerun keeps the cells whose files, window
and parameters match (``study``) and computes the missing windows of each model x image in one task. A
failing task's cells are recorded in ``cell_error`` and the others complete (``CellsFailed`` at the end).
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from .cells import QUALITY, Cell, decode, digest, encode, gather, placeholder
from .device import thread_count
from .errors import CellsFailed, OnnxAttrError, first_line
from .image import downscale, read_image
from .metrics import DEFAULT_RATIOS, cka_matrix, diffusion_index, masking_curves, sr_quality
from .model import SRModel, load_model
from .onnxfile import sha256
from .options import METHODS
from .results import attrs_of, versions
from .schema import SCHEMA_VERSION, describe
from .study import Study, check_study_path, read_store, study_params, write_store
from .target import FRAMES, Window, WindowSpec, align_hr, as_windows, check_input_size, check_window, hr_shift
from .windowfile import image_matches

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


def _model(
    path: str,
    device: str | None,
    value_range: float | str,
    verify: bool,
    channel_order: str = "rgb",
    probe_size: tuple[int, int] | None = None,
) -> SRModel:
    """The model at ``path``, loaded once per process (threads share it; onnxruntime and inference-only
    torch graphs are safe to call from several threads)."""
    key = (str(Path(path).resolve()), device, str(value_range), bool(verify), channel_order, probe_size)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                _MODELS[key] = load_model(path, device=device, verify=verify, value_range=value_range,
                                          channel_order=channel_order, probe_size=probe_size)
            except OnnxAttrError as err:  # subclasses with other __init__ signatures do not unpickle on a client
                raise OnnxAttrError(str(err)) from None
        return _MODELS[key]


def model_info(path: str, load: dict[str, Any], threads: int | None = None, after: int | None = None) -> ModelInfo:
    """Task: load (and cache) the model on the worker and report its geometry (``threads`` as in :func:`run_cell`)."""
    with thread_count(threads, after):
        m = _model(path, **load)
    err = m.conversion_error if m.conversion_error is not None else float("nan")
    return ModelInfo(str(path), m.scale, m.offset, m.in_channels, m.fixed_size, m.sha256, err)


def sr_window(window: Window, offset: int, frame: str) -> Window:
    """The window in a model's SR pixels: (x + c/2, y + c/2) for a window in the HR frame, else unchanged."""
    if frame == "sr":
        return window
    shift = hr_shift(offset)
    return Window(window.x + shift, window.y + shift, window.size)


def image_windows(window: WindowSpec | Mapping[str, WindowSpec], images: Sequence[str]) -> dict[str, list[Window]]:
    """The windows of every image: ``window`` (one or a list, for every image) or a mapping from an image
    (path, file name or stem) to its window(s). Errors for a key naming no image, an image without a
    window and a window given twice for one image."""
    if not isinstance(window, Mapping):
        given = [Window(*w) for w in as_windows(window)]
        per = {p: list(given) for p in images}
    else:
        per = {p: [] for p in images}
        for key, spec in window.items():
            matches = [p for p in images if image_matches(str(key), p)]
            if not matches:
                raise OnnxAttrError(
                    f"windows for {key!r}: no such image among the images "
                    f"({', '.join(Path(p).name for p in images)}); fix the name or add the image"
                )
            per[matches[0]] += [Window(*w) for w in as_windows(spec)]
        missing = [Path(p).name for p, ws in per.items() if not ws]
        if missing:
            raise OnnxAttrError(f"image {missing[0]} has no window; give it one or more windows (rows in the windows file)")
    for p, ws in per.items():
        seen: set[Window] = set()
        for w in ws:
            if w in seen:
                raise OnnxAttrError(f"{Path(p).name}: window x={w.x} y={w.y} size={w.size} is given twice; give each window once")
            seen.add(w)
    return per


def lr_size(image_hw: tuple[int, int], scale: int, hr: bool) -> tuple[int, int]:
    """LR side lengths the model sees: the HR image downscaled by ``scale`` (``hr``) or the image itself."""
    return (image_hw[0] // scale, image_hw[1] // scale) if hr else image_hw


def check_models(infos: Sequence[ModelInfo], hr: bool, frame: str) -> None:
    """Errors for model sets that cannot explain the same region with the same window."""
    if frame not in FRAMES:
        raise OnnxAttrError(f"frame {frame!r}: use 'hr' (HR-image pixels, the default) or 'sr' (output pixels)")
    names = [Path(i.path).name for i in infos]
    if len(set(names)) != len(names):
        raise OnnxAttrError("two models share a file name; give every model a distinct file name")
    if len({i.in_channels for i in infos}) > 1:
        raise OnnxAttrError("the models take different channel counts (RGB and gray); compare models of one kind")
    scales = sorted({i.scale for i in infos})
    if len(scales) > 1 and not (hr and frame == "hr"):
        raise OnnxAttrError(
            f"the models mix scales (x{', x'.join(map(str, scales))}): one LR image has no common HR frame, "
            "so one window would cover different regions; pass HR images (--hr) with the window in HR pixels"
        )
    if frame == "sr" and len({i.offset for i in infos}) > 1:
        raise OnnxAttrError(
            "the models' outputs differ in border (offsets "
            f"{', '.join(str(i.offset) for i in infos)}), so one SR-pixel window covers different regions; "
            "give the window in HR pixels (the default, drop --frame sr)"
        )
    for i in infos:
        if frame == "hr" and (i.offset > 0 or i.offset % 2):
            raise OnnxAttrError(
                f"{Path(i.path).name}: output side {i.scale} n {i.offset:+d} has no whole-pixel HR alignment; "
                "give the window in SR pixels (--frame sr) and compare it only with models of the same law"
            )


def check_windows(
    infos: Sequence[ModelInfo], sizes: dict[str, tuple[int, int]], windows: dict[str, list[Window]], hr: bool, frame: str
) -> None:
    """Validate every window for every model x image before any computation (one-line errors)."""
    for i in infos:
        for path, hw in sizes.items():
            name = Path(path).name
            h, w = lr_size(hw, i.scale, hr)
            if i.fixed_size and (h, w) != tuple(i.fixed_size):
                raise OnnxAttrError(
                    f"{Path(i.path).name} only takes {i.fixed_size[1]}x{i.fixed_size[0]} inputs but {name} gives "
                    f"{w}x{h}; crop the images to that size first"
                )
            check_input_size(h, w, i.scale, i.offset, f"{Path(i.path).name} on {name}")
            for win in windows[path]:
                label = f"{Path(i.path).name} on {name}: window x={win.x} y={win.y} size={win.size} ({frame.upper()} frame)"
                check_window(sr_window(win, i.offset, frame), i.scale * h + i.offset, i.scale * w + i.offset, label,
                             hr_shift(i.offset) if frame == "hr" else 0)


def require_study_extra(*modules: str) -> None:
    """One clear line when an optional package of the ``study`` extra (dask, distributed, zarr) is missing."""
    from importlib.util import find_spec

    missing = [m for m in modules if find_spec(m) is None]
    if missing:
        raise OnnxAttrError(
            f"studies need {' and '.join(missing)}, which come with the 'study' extra; "
            "install it with: pip install 'onnxattr[study]'"
        )


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


def method_defaults(method: str) -> dict[str, Any]:
    """The parameters ``compare`` passes on to ``method`` with their defaults."""
    return {
        n: p.default for n, p in inspect.signature(_method(method)).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _NOT_PARAMS
    }


def check_method_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``method``'s parameters before any model loads: names (the method's keyword arguments), kinds
    (those of the defaults) and values (the method's own ``check_params``). Returns them, normalised."""
    fn = _method(method)
    defaults = method_defaults(method)
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
    windows: list[Window],
    hr: bool,
    frame: str,
    ratios: Sequence[float],
    seeds: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Task: one model x image, all its windows in one method call. Returns numpy arrays and numbers only
    (cheap to ship back); per-window values are lists in window order."""
    model = _model(model_path, **load)
    image = read_image(image_path, channels=model.in_channels)
    lr, hr_image = downscale(image, model.scale) if hr else (image, None)
    out_hw = model.output_size(*lr.shape[2:])
    hr_image = align_hr(hr_image, model.offset, out_hw) if hr_image is not None else None
    wins = [sr_window(w, model.offset, frame) for w in windows]
    ds = _method(method)(model, lr, wins, frame="sr", hr=hr_image, **params)
    attribution = ds["attribution"].values
    sal = ds["saliency"].values
    output = ds["output"].values

    def crops(a: np.ndarray) -> list[np.ndarray]:
        return [a[:, w.y : w.y + w.size, w.x : w.x + w.size] for w in wins]

    return {
        "input": lr[0].numpy(),
        "attribution": attribution,
        "saliency": sal,
        "sr_crop": crops(output),
        "hr_crop": crops(hr_image[0].numpy()) if hr_image is not None else None,
        "diffusion_index": ds["diffusion_index"].values if "diffusion_index" in ds else [diffusion_index(m) for m in sal],
        "quality": sr_quality(output, hr_image[0], border=model.scale) if hr_image is not None else {},
        "curves": [masking_curves(model, lr, a, ratios=ratios, seeds=seeds, hr=hr_image, window=w)
                   for a, w in zip(attribution, wins)],
        "elapsed_s": float(ds.attrs["elapsed_s"]),
        "completeness_error": ds["completeness_error"].values if "completeness_error" in ds else np.full(len(wins), np.nan),
        "window_sr": [(w.x, w.y) for w in wins],
    }


def run_cell(threads: int | None = None, after: int | None = None, **kw: Any) -> dict[str, Any]:
    """Task: :func:`run_job` with ``threads`` torch (and onnxruntime) threads (then ``after``, the caller's count),
    or ``{"error": line}`` when it fails, so that one cell's failure leaves the other cells running."""
    try:
        with thread_count(threads, after):
            return run_job(**kw)
    except Exception as err:  # noqa: BLE001  (recorded per cell; compare reports them all at the end)
        return {"error": first_line(err) if isinstance(err, OnnxAttrError) else f"{type(err).__name__}: {first_line(err)}"}


# ------------------------------------------------------------------ scheduling
def task_threads(threads: int | None, scheduler: str | None, tasks: int) -> int | None:
    """Threads for each task: ``threads`` when given; on this machine's threads or LocalCluster (one task per
    core at once) the cores shared among the tasks that run side by side, cores // min(tasks, cores) (1 for a
    study of several cells: two threads per task on two cores spin at every op boundary, benchmarks/README.md,
    "Threads"); a remote cluster's workers keep their own setting (None)."""
    if threads is not None or scheduler not in (None, "threads", "local"):
        return threads
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(tasks, cores)))


Done = Callable[[int, Any], None]  # called in this thread with (job index, result) as each job finishes


def _run_threads(fn: Callable, jobs: list[dict[str, Any]], done: Done) -> list[Any]:
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(fn, pure=False)(**kw) for kw in jobs]
    index = {t.key: i for i, t in enumerate(tasks)}

    class _Done(Callback):
        def _posttask(self, key, result, dsk, state, id):  # noqa: A002  (dask's signature)
            if key in index:
                done(index[key], result)

    with _Done():
        return list(dask.compute(*tasks, scheduler="threads"))


def _run_distributed(fn: Callable, jobs: list[dict[str, Any]], done: Done, client: Any) -> list[Any]:
    from distributed import as_completed

    futures = [client.submit(fn, pure=False, **kw) for kw in jobs]
    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures):
        done(index[future.key], future.result())
    return client.gather(futures)


def _check_address(address: str) -> None:
    """ValueError unless ``address`` is a Dask scheduler address: [scheme://]host:port, scheme one of Dask's."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    scheme, location = parse_address(address)
    if scheme not in backends:
        raise ValueError(f"unknown address scheme {scheme!r}; Dask's are {', '.join(sorted(backends))}")
    if scheme in ("tcp", "tls", "ws", "wss"):
        parse_host_port(location)


SCHEDULER_PROBE_S = 10.0  # seconds a Dask scheduler has to answer the connection handshake
WORKER_WAIT_S = 30.0  # seconds a scheduler without workers has to get one


def _probe_scheduler(address: str) -> None:
    """TimeoutError or OSError unless a Dask scheduler completes distributed's connection handshake at ``address``
    within ``SCHEDULER_PROBE_S`` seconds. Client() itself waits for ever on a port that accepts and stays silent,
    and reads an HTTP server's reply (a dashboard port) as a 3 EiB message. The probe runs its own event loop in
    a thread, so it works where one already runs (Jupyter)."""
    import asyncio

    from distributed.comm import connect

    seconds = SCHEDULER_PROBE_S

    async def probe() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        await comm.close()

    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(probe())
        except BaseException as err:  # noqa: BLE001  (reported below, whatever it is)
            failed.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds + 5)
    if thread.is_alive() or (failed and isinstance(failed[0], (TimeoutError, asyncio.TimeoutError))):
        raise TimeoutError(f"it does not answer as a Dask scheduler within {seconds:g} s")
    if failed:
        raise OSError(first_line(failed[0]) or f"{type(failed[0]).__name__} during the handshake")


class _Runner:
    """Runs lists of tasks on the threaded scheduler (``None``/'threads'), a new LocalCluster of worker
    processes ('local') or an existing Dask cluster (its scheduler address, e.g. 'tcp://host:8786')."""

    def __init__(self, scheduler: str | None) -> None:
        self.scheduler = scheduler
        self.client = self.cluster = None
        if scheduler in (None, "threads"):
            return
        from distributed import Client, LocalCluster

        if scheduler == "local":
            self.cluster = LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            try:
                _check_address(scheduler)  # before a client starts its event loop (a failed one breaks the next)
                _probe_scheduler(scheduler)  # a port that accepts but never answers hangs Client() for good
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as err:
                raise OnnxAttrError(
                    f"cannot reach the Dask scheduler {scheduler!r} ({first_line(err)}); pass 'threads', 'local' or the "
                    "scheduler's address, e.g. tcp://host:8786"
                ) from err
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                self.close()
                raise OnnxAttrError(
                    f"the Dask scheduler {scheduler!r} has no workers (waited {WORKER_WAIT_S:g} s); start some "
                    f"(dask worker {scheduler}) or pass --scheduler local"
                ) from None

    def run(self, fn: Callable, jobs: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        """Results of ``fn(**job)`` in job order; ``done`` sees each as it finishes."""
        if not jobs:
            return []
        done = done or (lambda i, r: None)
        if self.client is None:
            return _run_threads(fn, jobs, done)
        return _run_distributed(fn, jobs, done, self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


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


def _by_window(results: list[list[dict[str, Any]]], key: str, k: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """(model, image, window, ...) array of the per-window values ``key``, NaN-padded to ``k`` windows and,
    for arrays of several sizes (window crops), to the largest trailing shape."""
    items = [[list(r[key]) for r in row] for row in results]
    arrays = [np.asarray(a, dtype=np.float64) for row in items for per in row for a in per]
    shape = shape if shape is not None else tuple(np.max([a.shape for a in arrays], axis=0)) if arrays[0].ndim else ()
    out = np.full((len(items), len(items[0]), k, *shape), np.nan)
    for i, row in enumerate(items):
        for j, per in enumerate(row):
            for w, a in enumerate(per):
                a = np.asarray(a, dtype=np.float64)
                out[(i, j, w, *(slice(0, n) for n in a.shape))] = a
    return out


def _per_window(results: list[list[dict[str, Any]]], key: str, k: int, fill: Any, dtype: Any) -> np.ndarray:
    """(model, image, window) array of the per-window scalars ``key``, ``fill`` beyond an image's windows."""
    out = np.full((len(results), len(results[0]), k), fill, dtype=dtype)
    for i, row in enumerate(results):
        for j, r in enumerate(row):
            out[i, j, : len(r[key])] = r[key]
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


def assemble(
    infos: Sequence[ModelInfo],
    images: Sequence[str],
    windows: dict[str, list[Window]],
    results: list[list[dict[str, Any]]],
    attrs: dict[str, Any],
    cka_debiased: bool,
) -> xr.Dataset:
    """One Dataset with dims (model, image, window, ...) from the models x images grid of ``cells.gather``
    results (failed cells: ``cells.placeholder``)."""
    first = next(r for row in results for r in row if not all(r["error"]))
    c = first["input"].shape[0]
    k = max(len(windows[p]) for p in images)
    mi, miw = ("model", "image"), ("model", "image", "window")
    h = max(r["input"].shape[-2] for row in results for r in row)
    w = max(r["input"].shape[-1] for row in results for r in row)
    saliency = _by_window(results, "saliency", k, (h, w))
    valid = np.array([[j < len(windows[p]) for j in range(k)] for p in images])
    curve = first["curve"][0]
    data: dict[str, Any] = {
        "input": (("model", "image", "channel", "y", "x"), _padded([[r["input"] for r in row] for row in results], (c,))),
        "attribution": ((*miw, "channel", "y", "x"), _by_window(results, "attribution", k, (c, h, w)).astype(np.float32)),
        "saliency": ((*miw, "y", "x"), saliency.astype(np.float32)),
        "sr_crop": ((*miw, "channel", "wy", "wx"), _by_window(results, "sr_crop", k).astype(np.float32)),
        "diffusion_index": (miw, _by_window(results, "diffusion_index", k)),
        "completeness_error": (miw, _by_window(results, "completeness_error", k)),
        "window_x_sr": (miw, _by_window([[{"v": [x for x, _ in r["window_sr"]]} for r in row] for row in results], "v", k)),
        "window_y_sr": (miw, _by_window([[{"v": [y for _, y in r["window_sr"]]} for r in row] for row in results], "v", k)),
        "elapsed_s": (mi, np.array([[r["elapsed_s"] for r in row] for row in results])),
        "scale": (("model",), np.array([i.scale for i in infos])),
        "offset": (("model",), np.array([i.offset for i in infos])),
        "model_sha256": (("model",), np.array([i.sha256 for i in infos])),
        "conversion_error": (("model",), np.array([i.conversion_error for i in infos])),
        "cka": (("model", "model2"), _cka(saliency, valid, cka_debiased)),
    }
    for name, var in (("psnr", "mask_psnr"), ("ssim", "mask_ssim"), ("psnr_random_std", "mask_psnr_random_std"),
                      ("ssim_random_std", "mask_ssim_random_std"), ("masked_pixels", "mask_pixels")):
        curves = [[{"v": [cv[name].values for cv in r["curve"]]} for r in row] for row in results]
        data[var] = ((*miw, *curve[name].dims), _by_window(curves, "v", k, curve[name].shape))
    data["computed_at"] = (miw, _per_window(results, "computed_at", k, np.datetime64("NaT", "ns"), "datetime64[ns]"))
    data["cell_error"] = (miw, _per_window(results, "error", k, "", object).astype(str))
    if first["hr_crop"][0] is not None:  # each image x window's HR crop from its first finished cell
        per_image = [{"hr_crop": [next((row[j]["hr_crop"][n] for row in results if not row[j]["error"][n]),
                                       results[0][j]["hr_crop"][n]) for n in range(len(windows[p]))]}
                     for j, p in enumerate(images)]
        data["hr_crop"] = (("image", "window", "channel", "wy", "wx"), _by_window([per_image], "hr_crop", k)[0].astype(np.float32))
        for q in QUALITY:
            data[q] = (mi, np.array([[r["quality"][q] for r in row] for row in results]))
    models = [Path(i.path).name for i in infos]
    h, w = data["input"][1].shape[-2:]
    scales = np.array([i.scale for i in infos], dtype=np.float64)[:, None]
    ds = xr.Dataset(
        data,
        coords={
            "model": models,
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
            **_window_coords(windows, images, k),
        },
    )
    ds.attrs = attrs_of({"schema_version": SCHEMA_VERSION, **attrs, "masking_seeds": curve.attrs["seeds"]})
    return describe(ds, study=True)


# ------------------------------------------------------------------------- API
def _model_infos(runner: _Runner, paths: list[str], load: dict[str, Any], study: Study | None,
                 threads: int | None) -> list[ModelInfo]:
    """Every model's ``ModelInfo``: from the study store where a model file was loaded before with these
    options, else by loading it (once per worker); new ones are kept in the store."""
    verified = bool(load["verify"])
    known: dict[str, ModelInfo] = {}
    if study is not None:
        for p in paths:
            cached = study.model_info(sha256(Path(p)), verified) if Path(p).is_file() else None
            if cached is not None:
                known[p] = ModelInfo(path=p, **{**cached, "fixed_size": tuple(cached["fixed_size"]) if cached["fixed_size"] else None})
    missing = [p for p in paths if p not in known]
    each = {"threads": task_threads(threads, runner.scheduler, len(missing)), "after": torch.get_num_threads()}
    for info in runner.run(model_info, [{"path": p, "load": load, **each} for p in missing]):
        known[info.path] = info
        if study is not None:
            study.save_model_info(info.sha256, verified, {k: v for k, v in vars(info).items() if k != "path"})
    return [known[p] for p in paths]


def _now() -> np.datetime64:
    return np.datetime64(time.time_ns(), "ns")  # UTC


def compare(
    models: Sequence[str | os.PathLike],
    images: Sequence[str | os.PathLike],
    window: WindowSpec | Mapping[str, WindowSpec],
    *,
    method: str = "lam",
    hr: bool = False,
    frame: str = "hr",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seeds: int = 5,
    cka_debiased: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    value_range: float | str = "auto",
    verify: bool = True,
    progress: bool = False,
    channel_order: str = "rgb",
    probe_size: tuple[int, int] | None = None,
    store: str | os.PathLike | None = None,
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
    **method_params: Any,
) -> xr.Dataset:
    """Run ``method`` on every model x image x window and gather maps and measures in one Dataset.

    ``models``, ``images``: file paths (tasks load them where they run). ``window``: (x, y, size) or a list
    of them for every image, or a mapping image (path, file name or stem) -> window(s), in HR pixels
    (``frame='hr'``, see the module docstring) or SR pixels (``frame='sr'``). ``hr``: the images are HR;
    each model gets their bicubic downscale by its scale, and PSNR/SSIM are measured against them.
    ``ratios``, ``seeds``: masking curves. ``cka_debiased``: the unbiased HSIC (needs >= 4 maps).
    ``scheduler``: None/'threads' (in-process threads), 'local' (a LocalCluster of processes) or a Dask
    scheduler address. ``threads``: torch and onnxruntime threads per task (default: ``task_threads``, the
    cores shared among the tasks that run at once). ``method_params`` go to the method (e.g. ``steps=50`` for LAM).

    ``store``: a ``.zarr`` study store that resumes (``study``): each cell (model x image x window) is
    written into it as its task finishes, cells of an earlier run with the same model and image SHA-256,
    window and parameters are kept (a task computes the missing windows of one model x image), and the assembled study replaces the store's at the end. A store
    made with other parameters is refused unless ``overwrite``. ``report`` gets one line saying how many
    cells were kept. A failing cell does not stop the others: they complete (and are written), then
    ``CellsFailed`` (a one-line ``OnnxAttrError``, the study in its ``dataset``) is raised.

    Dims: model, model2 (CKA), image, window (the most windows of an image; NaN-padded), channel, y, x
    (LR, NaN-padded to the largest model input), wy, wx (the largest window, SR pixels), region,
    reference, order, ratio (masking). See docs/compare.md for the variables.
    """
    _method(method)
    method_params = check_method_params(method, method_params)
    require_study_extra("dask", *(() if scheduler in (None, "threads") else ("distributed",)))
    if not models or not images:
        raise OnnxAttrError("compare needs at least one model and one image")
    model_paths = [str(m) for m in models]
    image_paths = [str(p) for p in images]
    for paths, what in ((image_paths, "image"), (model_paths, "model")):
        resolved = [Path(p).resolve() for p in paths]
        twice = next((p for p, r in zip(paths, resolved) if resolved.count(r) > 1), None)
        if twice is not None:
            raise OnnxAttrError(f"{what} {twice} is given twice; give each {what} once")
    windows = image_windows(window, image_paths)
    load = {"device": device, "value_range": value_range, "verify": verify, "channel_order": channel_order,
            "probe_size": tuple(probe_size) if probe_size else None}
    params = study_params(method, {**method_defaults(method), **method_params}, hr=hr, frame=frame, ratios=list(ratios), seeds=seeds,
                          value_range=str(value_range), channel_order=channel_order)
    study = Study.open(store, params, overwrite) if store is not None else None
    if method == "lam" and scheduler in (None, "threads", "local") and not {"batch_size", "memory_fraction"} & set(method_params):
        from .lam import DEFAULT_MEMORY_FRACTION

        # LAM sizes its batch from free memory; tasks run side by side, one per core, so share the budget
        method_params = {**method_params, "memory_fraction": DEFAULT_MEMORY_FRACTION / (os.cpu_count() or 1)}
    sizes = {p: tuple(read_image(p).shape[2:]) for p in image_paths}
    runner = _Runner(scheduler)
    try:
        infos = _model_infos(runner, model_paths, load, study, threads)
        check_models(infos, hr, frame)
        check_windows(infos, sizes, windows, hr, frame)
        image_sha = {p: sha256(Path(p)) for p in image_paths}
        cells = [Cell(i.path, p, i.sha256, image_sha[p], w) for i in infos for p in image_paths for w in windows[p]]
        keys = [c.key(digest(params)) for c in cells]
        results: list[dict[str, Any] | None] = [None] * len(cells)
        if study is not None:
            kept = study.kept(keys)
            results = [kept.get(k) for k in keys]
            if report is not None:
                report(f"{study.path.name}: kept {len(kept)} of {len(cells)} cells (same model and image SHA-256, "
                       f"window and parameters), computing {len(cells) - len(kept)}")
        todo: dict[tuple[str, str], list[int]] = {}  # the missing windows of each model x image: one task
        for n, cell in enumerate(cells):
            if results[n] is None:
                todo.setdefault((cell.model, cell.image), []).append(n)
        common = {
            "load": load, "method": method, "hr": hr, "frame": frame,
            "ratios": tuple(ratios), "seeds": seeds, "params": method_params,
        }
        tasks = list(todo.values())
        each = {"threads": task_threads(threads, scheduler, len(tasks)), "after": torch.get_num_threads()}
        jobs = [{"model_path": cells[ns[0]].model, "image_path": cells[ns[0]].image,
                 "windows": [cells[n].window for n in ns], **each, **common} for ns in tasks]
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc=f"compare ({method})", unit="map", disable=None if progress else True, leave=False) as bar:

            def done(j: int, result: dict[str, Any]) -> None:
                bar.update(1)
                now = _now()
                for t, n in enumerate(tasks[j]):
                    if "error" in result:
                        results[n] = {"error": result["error"]}
                        continue
                    cell = encode(result, t, now)
                    if study is not None:
                        study.write(keys[n], cell)
                    results[n] = decode(cell)

            runner.run(run_cell, jobs, done)
    finally:
        runner.close()
    errors = [f"{cell.label}: {r['error']}" for cell, r in zip(cells, results) if r["error"]]
    where = str(study.path) if study is not None else "the result"
    if len(errors) == len(cells):
        raise CellsFailed(errors, len(cells), where)
    template = next(r for r in results if not r["error"])
    offsets = {i.path: i.offset for i in infos}
    scales = {i.path: i.scale for i in infos}
    for n, cell in enumerate(cells):
        if results[n]["error"]:
            shifted = sr_window(cell.window, offsets[cell.model], frame)
            lr_hw = lr_size(sizes[cell.image], scales[cell.model], hr)
            results[n] = placeholder(template, lr_hw, cell.window, (shifted.x, shifted.y), results[n]["error"])
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell, r in zip(cells, results):
        by_pair.setdefault((cell.model, cell.image), []).append(r)
    grid = [[gather(by_pair[(i.path, p)]) for p in image_paths] for i in infos]
    attrs = {
        "method": "compare",
        "attribution_method": method,
        "window_frame": frame,
        "hr": hr,
        "cka_debiased": cka_debiased,
        "cka_features": "saliency maps (|sum_c A| / max), one row per image x window",
        "scheduler": scheduler or "threads",
        **versions(),
        **{f"method_{k}": v for k, v in method_params.items()},
    }
    ds = assemble(infos, image_paths, windows, grid, attrs, cka_debiased)
    if study is not None:
        study.save(ds)
    if errors:
        raise CellsFailed(errors, len(cells), where, ds)
    return ds


def save_study(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a study to a zarr store in one step (a temp store beside the target, then put in its place
    under the store's lock; see ``store``). A resumable store's cells are dropped: the store holds ``ds``."""
    path = check_study_path(path)
    return write_store(ds, path, keep_cells=False)


def load_study(path: str | os.PathLike) -> xr.Dataset:
    """Open a study written by :func:`save_study` or ``compare(store=...)``, fully into memory."""
    path = Path(path)
    if not path.is_dir():
        raise OnnxAttrError(f"study {str(path)!r} not found; pass a .zarr store written by save_study")
    require_study_extra("zarr")
    return read_store(path)
