"""What a study runs on a worker: loading a model once per process, reporting its facts, and one task that
explains the windows of one model x image with one method call, then measures them.

Tasks receive file paths and load each model once per worker process (``worker_model``), so no torch graph
crosses a process boundary; what comes back is small and plain (``ModelFacts``, ``PairResult``, ``TaskFailure``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..device import thread_count
from ..errors import OnnxAttrError, first_line
from ..image import downscale, read_image
from ..checks.faithfulness import deletion_baseline, faithfulness, influence_region
from ..intake import ModelFacts, SRModel, load_model
from ..methods.registry import method
from ..metrics import masking_curves, sr_quality
from ..windows.geometry import Window, align_hr
from .cells import PairResult, TaskFailure
from .plan import sr_window

_MODELS: dict[tuple[Any, ...], SRModel] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(
    path: str,
    device: str | None,
    value_range: float | str,
    verify: bool,
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    forward_only: bool = False,
) -> SRModel:
    """The model at ``path``, loaded once per process (threads share it; onnxruntime and inference-only
    torch graphs are safe to call from several threads); ``forward_only`` as ``load_model``'s."""
    key = (str(Path(path).resolve()), device, str(value_range), bool(verify), channel_order, probe_size, forward_only)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                _MODELS[key] = load_model(path, device=device, verify=verify, value_range=value_range,
                                          channel_order=channel_order, probe_size=probe_size, forward_only=forward_only)
            except OnnxAttrError as err:  # subclasses with other __init__ signatures do not unpickle on a client
                raise OnnxAttrError(str(err)) from None
        return _MODELS[key]


def model_facts(path: str, load: dict[str, Any], threads: int | None = None, after: int | None = None) -> ModelFacts:
    """Task: load (and keep) the model on the worker and report its facts (``threads`` as in :func:`run_task`)."""
    with thread_count(threads, after):
        return worker_model(path, **load).facts()


def explain_pair(
    model_path: str,
    image_path: str,
    *,
    load: dict[str, Any],
    method_name: str,
    windows: Sequence[Window],
    hr: bool,
    frame: str,
    ratios: Sequence[float],
    seeds: int,
    params: dict[str, Any],
    checks: bool = False,
) -> PairResult:
    """One model x image, all its windows in one method call (its result holds DI, Gini and reach per window,
    ``results.build``), then per window the crops and the masking curves, and the SR output's quality against HR;
    with ``checks``, the deletion and insertion AUCs of ``checks.faithfulness`` (``seeds`` per control)."""
    model = worker_model(model_path, **load)
    image = read_image(image_path, channels=model.in_channels)
    lr, hr_image = downscale(image, model.scale) if hr else (image, None)
    out_hw = model.output_size(*lr.shape[2:])
    hr_image = align_hr(hr_image, model.offset, out_hw) if hr_image is not None else None
    wins = [sr_window(w, model.offset, frame) for w in windows]
    ds = method(method_name).function(model, lr, wins, frame="sr", hr=hr_image, **params)
    attribution, saliency, output = ds["attribution"].values, ds["saliency"].values, ds["output"].values

    def crops(a: np.ndarray) -> list[np.ndarray]:
        return [a[:, w.y : w.y + w.size, w.x : w.x + w.size] for w in wins]

    return PairResult(
        input=lr[0].numpy(), attribution=attribution, saliency=saliency, sr_crop=crops(output),
        hr_crop=crops(hr_image[0].numpy()) if hr_image is not None else None,
        diffusion_index=ds["diffusion_index"].values, gini=ds["gini"].values, reach=ds["reach"].values,
        completeness_error=ds["completeness_error"].values if "completeness_error" in ds else np.full(len(wins), np.nan),
        quality=sr_quality(output, hr_image[0], border=model.scale) if hr_image is not None else {},
        curves=[masking_curves(model, lr, a, ratios=ratios, seeds=seeds, hr=hr_image, window=w)
                for a, w in zip(attribution, wins)],
        elapsed_s=float(ds.attrs["elapsed_s"]), window_sr=[(w.x, w.y) for w in wins],
        checks=window_checks(model, lr, ds, wins, seeds, hr_image) if checks else None,
    )


def window_checks(model: SRModel, lr: Any, ds: Any, wins: Sequence[Window], seeds: int, hr: Any) -> Any:
    """The deletion and insertion curves' AUCs of a method result's maps (``checks.faithfulness``), replacing pixels
    by its baseline (the blurred image for a method without one)."""
    base = deletion_baseline(ds, lr)
    regions = influence_region(model, lr, wins, [lr.new_tensor(base)[None]])
    name = str(ds.attrs["method"])
    curves = faithfulness(model, lr, {name: ds["attribution"].values}, {name: base}, wins, regions, seeds=seeds, hr=hr)
    return curves[[v for v in curves.data_vars if v.startswith("auc")]]


def run_task(threads: int | None = None, after: int | None = None, **kw: Any) -> PairResult | TaskFailure:
    """Task: :func:`explain_pair` with ``threads`` torch (and onnxruntime) threads (then ``after``, the caller's
    count), or a ``TaskFailure`` with its line, so that one task's failure leaves the others running."""
    try:
        with thread_count(threads, after):
            return explain_pair(**kw)
    except Exception as err:  # noqa: BLE001  (recorded per cell; compare reports them all at the end)
        return TaskFailure(first_line(err) if isinstance(err, OnnxAttrError) else f"{type(err).__name__}: {first_line(err)}")
