"""Cross-model studies: one attribution method on every model x image x window, with quality, fidelity and CKA.

``compare(models, images, window, method=...)`` plans the study (``plan``: windows, parameters, models, every
window against every model x image) and checks everything that can be checked before a store is made (the
parameters, the store's own, the images, the scheduler, every model file loaded and verified, their scales, the
windows), keeps the cells an earlier run of the same study finished (a ``.zarr`` study store,
``results.studystore``), runs one Dask task per model x image for the missing windows (``tasks``,
``scheduler``), writes each finished cell into the store as its task ends, and assembles the Dataset
(``assemble``). A store the run made itself is removed when the run fails before any cell is finished. Per cell: the method's maps, the diffusion index of the saliency, PSNR/SSIM of the SR output
against the HR image (``hr=True``) and the remove-and-replace masking curves (``metrics.masking``); per model
pair, the linear CKA of their saliency maps over the images and windows. See docs/compare.md for the layout.

A failing task's cells are recorded in ``cell_error`` and the others complete (``CellsFailed`` at the end).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from ..errors import CellsFailed, OnnxAttrError
from ..extras import require_study_extra
from ..image import hr_warnings, read_image
from ..intake import ModelFacts
from ..intake.onnxfile import sha256
from ..methods.registry import method
from ..metrics.masking import DEFAULT_RATIOS
from ..options import DEFAULT_SEEDS
from ..results.build import COMPLETENESS_LIMIT, COMPLETENESS_WARNING, ZERO_WARNING, versions
from ..results.studystore import Study
from ..windows.geometry import Window, WindowSpec
from .assemble import assemble, flat_cells
from .cells import Cell, CellResult, PairResult, TaskFailure, current, decode, digest, encode, gather, placeholder
from .plan import (check_method_params, check_models, check_windows, distinct_paths, image_windows, lr_size,
                   model_labels, sr_window, study_params)
from .scheduler import Runner, task_threads
from .tasks import model_facts, run_task


@dataclass(frozen=True)
class Plan:
    """A checked study: the files, every image's windows, the load options, the method and its parameters (as
    passed to each task, and as recorded for resuming) and the masking settings."""

    models: list[str]
    labels: list[str]
    images: list[str]
    windows: dict[str, list[Window]]
    load: dict[str, Any]
    method: str
    method_params: dict[str, Any]
    params: dict[str, Any]
    hr: bool
    frame: str
    ratios: tuple[float, ...]
    seeds: int
    checks: bool = False


def _now() -> np.datetime64:
    return np.datetime64(time.time_ns(), "ns")  # UTC


def _model_facts(runner: Runner, plan: Plan, study: Study | None,
                 threads: int | None) -> tuple[list[ModelFacts], list[ModelFacts]]:
    """Every model's facts, and those found by this run: from the study store where a model file was loaded before
    with these options (read only), else by loading it (once per worker)."""
    verified = bool(plan.load["verify"])
    known: dict[str, ModelFacts] = {}
    if study is not None:
        for p in plan.models:
            kept = study.model_facts(sha256(Path(p)), verified) if Path(p).is_file() else None
            facts = ModelFacts.from_json(kept) if kept is not None else None
            if facts is not None:
                known[p] = replace(facts, path=p)
    missing = [p for p in plan.models if p not in known]
    each = {"threads": task_threads(threads, runner.scheduler, len(missing)), "after": torch.get_num_threads()}
    new = [replace(f, path=p) for p, f in zip(missing, runner.run(
        model_facts, [{"path": p, "load": plan.load, **each} for p in missing]))]
    known.update({f.path: f for f in new})
    return [known[p] for p in plan.models], new


def _run_missing(runner: Runner, plan: Plan, cells: list[Cell], results: list[CellResult | None], keys: list[str],
                 study: Study | None, threads: int | None, progress: bool) -> None:
    """Compute the missing cells, one task per model x image for its missing windows (shared forward passes),
    filling ``results`` and writing each finished cell into the store as its task ends."""
    todo: dict[tuple[str, str], list[int]] = {}
    for n, cell in enumerate(cells):
        if results[n] is None:
            todo.setdefault((cell.model, cell.image), []).append(n)
    tasks = list(todo.values())
    each = {"threads": task_threads(threads, runner.scheduler, len(tasks)), "after": torch.get_num_threads()}
    common = {"load": plan.load, "method_name": plan.method, "hr": plan.hr, "frame": plan.frame,
              "ratios": plan.ratios, "seeds": plan.seeds, "params": plan.method_params, "checks": plan.checks}
    jobs = [{"model_path": cells[ns[0]].model, "image_path": cells[ns[0]].image,
             "windows": [cells[n].window for n in ns], **each, **common} for ns in tasks]
    from tqdm.auto import tqdm

    with tqdm(total=len(jobs), desc=f"compare ({plan.method})", unit="map", disable=None if progress else True,
              leave=False) as bar:

        def done(j: int, result: PairResult | TaskFailure) -> None:
            bar.update(1)
            now = _now()
            for t, n in enumerate(tasks[j]):
                if isinstance(result, TaskFailure):
                    results[n] = result  # type: ignore[call-overload]
                    continue
                cell = encode(result, t, now)
                if study is not None:
                    study.write(keys[n], cell)
                results[n] = decode(cell)

        runner.run(run_task, jobs, done)


def _fill_failed(plan: Plan, facts: list[ModelFacts], cells: list[Cell], results: list[Any],
                 sizes: dict[str, tuple[int, int]]) -> list[CellResult]:
    """Every cell's result, the failed ones (``TaskFailure``) as NaN placeholders shaped like a finished cell."""
    template = next(r for r in results if isinstance(r, CellResult))
    by_path = {f.path: f for f in facts}
    out = []
    for cell, r in zip(cells, results):
        if isinstance(r, TaskFailure):
            f = by_path[cell.model]
            shifted = sr_window(cell.window, f.offset, plan.frame)
            r = placeholder(template, lr_size(sizes[cell.image], f.scale, plan.hr), cell.window, (shifted.x, shifted.y),
                            r.error)
        out.append(r)
    return out


def _plan(models: Sequence[str | os.PathLike], images: Sequence[str | os.PathLike],
          window: WindowSpec | Mapping[str, WindowSpec], method_name: str, method_params: dict[str, Any],
          load: dict[str, Any], scheduler: str | None, hr: bool, frame: str, ratios: Sequence[float], seeds: int,
          value_range: float | str, channel_order: str, labels: Sequence[str] | Mapping[str, str] | None,
          checks: bool = False) -> Plan:
    """Check everything that needs no model: the method and its parameters, the optional packages, the files
    (none twice), the labels and the windows."""
    m = method(method_name)
    method_params = check_method_params(method_name, method_params)
    if m.needs_hr and not hr:
        raise OnnxAttrError(f"{method_name} measures against the HR image: pass HR images with --hr (API hr=True); each "
                            "model gets their bicubic downscale")
    load = {**load, "forward_only": m.forward_only and not checks}  # the checks' influence region takes gradients
    require_study_extra("dask", *(() if scheduler in (None, "threads") else ("distributed",)))
    if not models or not images:
        raise OnnxAttrError("compare needs at least one model and one image")
    model_paths, image_paths = [str(p) for p in models], [str(p) for p in images]
    distinct_paths(image_paths, "image")
    distinct_paths(model_paths, "model")
    names = model_labels(labels, model_paths)
    windows = image_windows(window, image_paths)
    params = study_params(method_name, {**m.defaults(), **method_params}, hr=hr, frame=frame, ratios=list(ratios),
                          seeds=seeds, value_range=str(value_range), channel_order=channel_order,
                          **({"checks": True} if checks else {}))  # studies without checks keep their digests
    share = m.memory_share
    if share and scheduler in (None, "threads", "local") and not ({share, *m.run_only} & set(method_params)):
        # the method sizes its work from free memory; tasks run side by side, one per core: share the budget
        method_params = {**method_params, share: m.defaults()[share] / (os.cpu_count() or 1)}
    return Plan(model_paths, names, image_paths, windows, load, method_name, method_params, params, hr, frame,
                tuple(ratios), seeds, checks)


def compare(
    models: Sequence[str | os.PathLike],
    images: Sequence[str | os.PathLike],
    window: WindowSpec | Mapping[str, WindowSpec],
    *,
    method: str = "lam",
    hr: bool = False,
    frame: str = "hr",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seeds: int = DEFAULT_SEEDS,
    cka_debiased: bool = False,
    scheduler: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    value_range: float | str = "auto",
    verify: bool = True,
    progress: bool = False,
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    store: str | os.PathLike | None = None,
    overwrite: bool = False,
    report: Callable[[str], None] | None = None,
    labels: Sequence[str] | Mapping[str, str] | None = None,
    checks: bool = False,
    **method_params: Any,
) -> xr.Dataset:
    """Run ``method`` on every model x image x window and gather maps and measures in one Dataset.

    ``models``, ``images``: file paths (tasks load them where they run). ``window``: (x, y, size) or a list
    of them for every image, or a mapping image (path, file name or stem) -> window(s), in HR pixels
    (``frame='hr'``, see ``plan``) or SR pixels (``frame='sr'``). ``hr``: the images are HR;
    each model gets their bicubic downscale by its scale, and PSNR/SSIM are measured against them.
    ``ratios``, ``seeds``: masking curves. ``checks``: also the deletion and insertion curves' AUCs of every
    cell's map with their controls (``checks.faithfulness``, ``seeds`` of each; docs/check.md).
    ``cka_debiased``: the unbiased HSIC (needs >= 4 maps).
    ``scheduler``: None/'threads' (in-process threads), 'local' (a LocalCluster of processes) or a Dask
    scheduler address. ``threads``: torch and onnxruntime threads per task (default: ``task_threads``, the
    cores shared among the tasks that run at once). ``labels``: the models' names in figures and summaries, one
    per model in order or a mapping model (path, file name or stem) -> label (default: file names without .onnx;
    the ``label`` coordinate). ``method_params`` go to the method (e.g. ``steps=50`` for LAM).

    Warnings are gathered per study, one line each: cells whose attribution is zero everywhere (flat windows) and
    cells whose completeness error exceeds ``results.build.COMPLETENESS_LIMIT``, not one line per cell.

    ``store``: a ``.zarr`` study store that resumes: each cell (model x image x window) is written into it as its
    task finishes, cells of an earlier run with the same model and image SHA-256, window and parameters are kept
    (a task computes the missing windows of one model x image), and the assembled study replaces the store's at
    the end. A store made with other parameters is refused unless ``overwrite``; the store is made only once the
    images, the scheduler, the models and the windows are checked, and a store this run made is removed when the
    run then fails without finishing a cell. ``report`` gets one line saying how many cells were kept. A failing cell does not stop the others: they complete (and are written), then
    ``CellsFailed`` (a one-line ``OnnxAttrError``, the study in its ``dataset``) is raised.

    Dims: model, model2 (CKA), image, window (the most windows of an image; NaN-padded), channel, y, x
    (LR, NaN-padded to the largest model input), wy, wx (the largest window, SR pixels), region,
    reference, order, ratio (masking). See docs/compare.md for the variables.
    """
    load = {"device": device, "value_range": value_range, "verify": verify, "channel_order": channel_order,
            "probe_size": tuple(probe_size) if probe_size else None}
    plan = _plan(models, images, window, method, method_params, load, scheduler, hr, frame, ratios, seeds,
                 value_range, channel_order, labels, checks)
    study = Study.check(store, plan.params, overwrite) if store is not None else None  # writes nothing yet
    try:
        return _study(plan, study, scheduler, threads, progress, report, cka_debiased)
    except BaseException:
        if study is not None:
            study.discard()  # a store this run made and left without a finished cell
        raise


def _study(plan: Plan, study: Study | None, scheduler: str | None, threads: int | None, progress: bool,
           report: Callable[[str], None] | None, cka_debiased: bool) -> xr.Dataset:
    """``compare`` after the plan: the images, the scheduler, the models and the windows checked, then the store
    made, the missing cells computed and the study assembled."""
    hr, frame, method = plan.hr, plan.frame, plan.method
    sizes = {p: tuple(read_image(p).shape[2:]) for p in plan.images}
    runner = Runner(scheduler)
    try:
        facts, new = _model_facts(runner, plan, study, threads)
        check_models(facts, hr, frame)
        check_windows(facts, sizes, plan.windows, hr, frame)
        if hr:
            for p in plan.images:
                hr_warnings(p, *sizes[p], sorted({f.scale for f in facts}))
        image_sha = {p: sha256(Path(p)) for p in plan.images}
        cells = [Cell(f.path, p, f.sha256, image_sha[p], w) for f in facts for p in plan.images for w in plan.windows[p]]
        keys = [c.key(digest(plan.params)) for c in cells]
        results: list[Any] = [None] * len(cells)
        if study is not None:
            study.create()
            for f in new:
                study.save_model_facts(f.sha256, bool(plan.load["verify"]), asdict(f))
            kept = {k: cell for k, cell in study.kept(keys).items() if current(cell)}
            results = [decode(kept[k]) if k in kept else None for k in keys]
            if report is not None:
                report(f"{study.path.name}: kept {len(kept)} of {len(cells)} cells (same model and image SHA-256, "
                       f"window and parameters), computing {len(cells) - len(kept)}")
        with warnings.catch_warnings():  # the per-cell lines; the study's own come after ``assemble``
            for start in (ZERO_WARNING, COMPLETENESS_WARNING):
                warnings.filterwarnings("ignore", message=re.escape(f"{plan.method}: {start}"))
            _run_missing(runner, plan, cells, results, keys, study, threads, progress)
    finally:
        runner.close()
    errors = [f"{cell.label}: {r.error}" for cell, r in zip(cells, results) if isinstance(r, TaskFailure)]
    where = str(study.path) if study is not None else "the result"
    if len(errors) == len(cells):
        raise CellsFailed(errors, len(cells), where)
    filled = _fill_failed(plan, facts, cells, results, sizes)
    by_pair: dict[tuple[str, str], list[CellResult]] = {}
    for cell, r in zip(cells, filled):
        by_pair.setdefault((cell.model, cell.image), []).append(r)
    grid = [[gather(by_pair[(f.path, p)]) for p in plan.images] for f in facts]
    attrs = {
        "method": "compare", "attribution_method": method, "window_frame": frame, "hr": hr,
        "cka_debiased": cka_debiased, "cka_features": "saliency maps (|sum_c A| / max), one row per image x window",
        "scheduler": scheduler or "threads", "checks": plan.checks, **versions(),
        **{f"method_{k}": v for k, v in plan.method_params.items()},
    }
    ds = assemble(facts, plan.images, plan.windows, grid, attrs, cka_debiased, plan.labels)
    study_warnings(ds, plan.params.get("steps"))
    if study is not None:
        study.save(ds)
    if errors:
        raise CellsFailed(errors, len(cells), where, ds)
    return ds


def _cells_text(ds: xr.Dataset, mask: np.ndarray) -> str:
    """'LABEL on IMAGE window X,Y,S' of the first cell where ``mask`` (model, image, window) holds."""
    i, j, k = (int(v[0]) for v in np.nonzero(mask))
    w = ds.isel(image=j, window=k)
    return (f"{ds.label.values[i]} on {ds.image.values[j]} window "
            f"{int(w.window_x)},{int(w.window_y)},{int(w.window_size)}")


def study_warnings(ds: xr.Dataset, steps: int | None) -> None:
    """One line each for the study's flat cells (attribution zero everywhere: DI, Gini and reach NaN, left out of
    the masking figure) and its cells whose completeness error exceeds ``COMPLETENESS_LIMIT``."""
    computed = ~np.isnat(ds.computed_at.values)
    flat = flat_cells(ds)
    total = int(computed.sum())
    if flat.any():
        warnings.warn(f"{int(flat.sum())} of {total} cells have zero attribution everywhere (flat windows: the "
                      f"baseline equals the image where they look), first {_cells_text(ds, flat)}; their DI, Gini "
                      "and reach are NaN and the masking figure leaves them out", stacklevel=3)
    error = ds.completeness_error.fillna(0).values
    over = computed & (error > COMPLETENESS_LIMIT)
    if over.any():
        worst = np.where(over, error, -np.inf) == error[over].max()
        fix = (f"raise --param steps= (now {steps}; the error falls about as 1 / steps, the LAM paper uses 50-100)"
               if steps is not None else "see the method's page in docs/")
        warnings.warn(f"{COMPLETENESS_WARNING} above {COMPLETENESS_LIMIT:g} in {int(over.sum())} of {total} cells, "
                      f"at most {error[over].max():.2f} ({_cells_text(ds, worst)}); {fix}", stacklevel=3)
