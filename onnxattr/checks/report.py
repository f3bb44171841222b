"""``check``: every registered method on one image's windows, and every sanity and faithfulness check of its
maps, as one Dataset (docs/check.md).

Each method runs once on the trained model through its registry function; its maps then go through

1. the deletion and insertion curves with their controls (``faithfulness``), over the windows' influence
   regions, the controls shared by the methods that share a baseline;
2. the model parameter randomisation test (``randomisation``): one re-drawn copy of the model per step, explained
   by every method;
3. the verdicts (``verdict``).

A method that cannot run on the model, or whose result holds no attribution map, takes part in no check: its
verdicts say why, in one line. The Dataset's layout is ``results.schema.CHECK_COORDS`` / ``CHECK_VARIABLES``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..arrays import to_numpy
from ..errors import OnnxAttrError, first_line
from ..methods.registry import CALLER_ARGS, METHODS, method, usable
from ..metrics.gini import saliency
from ..metrics.similarity import DEFAULT_TOP, MEASURES
from ..results.build import CHANNEL_NAMES, attrs_of, label_of, lr_coords, versions
from ..results.schema import CHECK_COORDS, CHECK_VARIABLES, SCHEMA_VERSION, describe
from ..windows.geometry import WindowSpec, align_hr, resolve_windows, window_coords
from .faithfulness import CURVES, deletion_baseline, faithfulness, fractions_of, influence_region
from .randomisation import VARIANTS, Randomised, plan, randomisation
from .verdict import RANK_THRESHOLD, curve_verdict, randomisation_verdict

CHECKS = ("randomisation", "deletion", "insertion")
DEFAULT_LAYERS = 12  # randomisation steps (layers of parametrised nodes), evenly spaced over the graph


def method_params(names: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Each method's parameters (``params``: method -> {name: value}), checked by name and by the method's own
    ``check_params`` before any model runs; a forward-only method gets its registry ``graph_params`` (a given value
    that differs is refused)."""
    params = dict(params or {})
    for name in params:
        if name not in names:
            raise OnnxAttrError(f"parameters for {name!r}, which is not among the checked methods ({', '.join(names)})")
    out = {}
    for name in names:
        given = dict(params.get(name, {}))
        known = METHODS[name].defaults()
        unknown = [k for k in given if k not in known or k in CALLER_ARGS]
        if unknown:
            raise OnnxAttrError(f"{name} has no parameter {unknown[0]!r}; its parameters are {', '.join(known)}")
        fixed = METHODS[name].graph_params  # the checks re-draw the torch graph's weights: a method runs on it
        clash = [k for k in given if k in fixed and given[k] != fixed[k]]
        if clash:
            raise OnnxAttrError(f"{name}.{clash[0]}={given[clash[0]]!r}: the checks run {name} with "
                                f"{clash[0]}={fixed[clash[0]]!r} (the torch graph whose weights they re-draw); leave it out")
        out[name] = {**given, **fixed}
        METHODS[name].check_params(**out[name])
    return out


def cost_line(names: Sequence[str], groups: int, variants: int, windows: int, steps: int, seeds: int) -> str:
    """What a check costs, in maps, model copies and forwards, before it starts."""
    maps = len(names) * (1 + groups * variants)
    forwards = windows * 2 * (steps - 1) * (len(names) + 2 * seeds) + 2 * windows
    return (f"check: {len(names)} method(s) x (1 trained + {groups} layers x {variants} variant(s)) = {maps} maps, "
            f"{groups * variants} re-drawn model copies, about {forwards} forwards for the curves")


def check(
    model: Any,
    image: torch.Tensor,
    window: WindowSpec,
    *,
    methods: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    frame: str = "hr",
    hr: torch.Tensor | None = None,
    layers: int | None = DEFAULT_LAYERS,
    independent: bool = True,
    seed: int = 0,
    curve_steps: int = 16,
    curve_seeds: int = 3,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> xr.Dataset:
    """Sanity and faithfulness checks of every method's map of ``image`` (1, C, h, w) for the window(s) ``window``.

    ``methods``: registered method names (default: ``methods.registry.usable``: all, those that measure against HR
    only with ``hr``), each run with its ``params`` (method -> {name: value}); a forward-only method (CEM) runs
    the torch graph (its registry ``graph_params``), whose weights the randomisation re-draws. ``window`` in ``frame`` as the methods take it; ``hr``: the HR image
    (PSNR curves). ``layers``: randomisation steps, groups of parametrised nodes evenly spaced from the output
    (None: every node its own step); ``independent``: also re-draw each layer alone; ``seed``: of the re-drawn
    weights. ``curve_steps``, ``curve_seeds``: points of the deletion and insertion curves, seeds of each control.
    ``report`` gets the cost before the work starts and the expected time once the trained maps are made.
    Returns the layout of ``results.schema.CHECK_VARIABLES`` (docs/check.md).
    """
    t0 = time.perf_counter()
    names = list(methods) if methods else usable(hr is not None)
    for name in names:
        if method(name).needs_hr and hr is None:
            raise OnnxAttrError(f"{name} measures against the HR image: pass IMAGE as the HR image with --hr (API hr=), "
                                "or check the other methods")
    if len(set(names)) != len(names):
        raise OnnxAttrError(f"methods {', '.join(names)}: name each method once")
    params = method_params(names, params)
    fractions_of(curve_steps)  # refuses too few curve steps before any map
    model.check_input(image)
    out_hw = model.output_size(*image.shape[2:])
    wins = resolve_windows(window, model.offset, *out_hw, frame=frame)
    hr_sr = align_hr(hr, model.offset, out_hw) if hr is not None else None
    groups = plan(model, layers)
    variants = VARIANTS if independent else VARIANTS[:1]
    say = report or (lambda line: None)
    say(cost_line(names, len(groups), len(variants), len(wins), curve_steps, curve_seeds))

    def run(name: str, m: Any) -> xr.Dataset:
        entry = METHODS[name]
        ds = entry.function(m, image, wins, frame="sr", hr=hr_sr if entry.needs_hr else None, **params[name])
        if "attribution" not in ds:
            raise OnnxAttrError(f"{name}'s result holds no attribution map to check")
        return ds

    trained: dict[str, np.ndarray] = {}
    baselines: dict[str, np.ndarray] = {}
    elapsed = {name: float("nan") for name in names}
    refused: dict[str, str] = {}
    seen: list[warnings.WarningMessage] = []  # the trained maps' warnings: shown now, not again for the copies
    for name in names:
        try:
            with warnings.catch_warnings(record=True) as caught:
                ds = run(name, model)
        except OnnxAttrError as err:
            refused[name] = f"{name} cannot take part: {first_line(err)}"
            continue
        finally:
            seen += caught
        trained[name] = ds["attribution"].values
        baselines[name] = deletion_baseline(ds, image)
        elapsed[name] = float(ds.attrs["elapsed_s"])
    for w in seen:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not trained:
        raise OnnxAttrError(f"no method could explain the model: {'; '.join(refused.values())}")
    seconds = sum(elapsed[n] for n in trained) * len(groups) * len(variants)
    say(f"check: the randomisation test takes about {seconds / 60:.1f} min of maps (the trained maps took "
        + ", ".join(f"{n} {elapsed[n]:.1f} s" for n in trained) + ")")
    distinct = {b.tobytes(): b for b in baselines.values()}
    regions = influence_region(model, image, wins, [torch.from_numpy(b)[None] for b in distinct.values()])
    faith = faithfulness(model, image, trained, baselines, wins, regions, steps=curve_steps, seeds=curve_seeds, hr=hr_sr)
    with tqdm(total=len(groups) * len(variants), unit="step", desc="check", disable=None if progress else True,
              leave=False) as bar:
        rand = randomisation(model, {n: (lambda m, n=n: run(n, m)["attribution"].values) for n in trained}, trained,
                             regions, groups, variants=variants, seed=seed, on_step=lambda v, s: bar.update(1))
    shown = {first_line(w.message) for w in seen}
    for text in rand.warnings:
        if text not in shown:
            warnings.warn(f"a model with re-drawn weights: {text}", stacklevel=2)
    ds = _dataset(model, image, wins, frame, names, trained, baselines, elapsed, refused, regions, faith, rand)
    ds.attrs = attrs_of({
        "schema_version": SCHEMA_VERSION, "method": "check", "methods": ", ".join(names), "window_frame": frame,
        **model.facts().attrs(), "model_label": label_of(model.facts().file), **versions(), "layers": layers if layers is not None else "all",
        "parametrised_nodes": sum(len(g) for g in groups), "seed": seed, "curve_steps": curve_steps,
        "curve_seeds": curve_seeds, "random_map_sigma": faith.attrs["random_map_sigma"], "rank_threshold": RANK_THRESHOLD,
        "top_share": DEFAULT_TOP, "hr": hr is not None,
        **{f"{n}_{k}": v for n in names for k, v in params[n].items()},
        **{f"{n}_failed_steps": "; ".join(lines) for n, lines in rand.failures.items() if lines},
        "elapsed_s": time.perf_counter() - t0,
    })
    return describe(ds, {**CHECK_COORDS, **CHECK_VARIABLES})


def _verdicts(names: Sequence[str], refused: Mapping[str, str], faith: xr.Dataset, rand: Randomised
              ) -> tuple[np.ndarray, np.ndarray]:
    """(verdict lines, passes) on (method, check)."""
    lines = np.full((len(names), len(CHECKS)), "", dtype=object)
    passes = np.full((len(names), len(CHECKS)), np.nan)
    tried = list(rand.failures)
    layers = [g[-1].name for g in rand.groups]
    ranks = [MEASURES.index("spearman_abs"), MEASURES.index("spearman")]
    for m, name in enumerate(names):
        if name in refused:
            lines[m] = refused[name]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN means: a window without a value
            curves = np.nanmean(rand.similarity[tried.index(name)][..., ranks], axis=2)  # (variant, step, measure)
            aucs = faith.auc.sel({"method": name}).mean("window").values
            spread = faith.auc_std.sel({"method": name}).mean("window").values
        pairs = [(c[:, 0], c[:, 1]) for c in curves]
        text, ok = randomisation_verdict(pairs[0], pairs[1] if len(pairs) > 1 else None, layers)
        failed = rand.failures[name]
        if failed:
            text += f" ({len(failed)} step(s) without a map: {failed[0]})"
        lines[m, 0], passes[m, 0] = text, ok
        for c, curve in enumerate(CURVES):
            lines[m, 1 + c], passes[m, 1 + c] = curve_verdict(curve, aucs[c], spread[c])
    return lines.astype(str), passes


def _dataset(model: Any, image: torch.Tensor, wins: list, frame: str, names: list[str], trained: dict[str, np.ndarray],
             baselines: dict[str, np.ndarray], elapsed: dict[str, float], refused: dict[str, str],
             regions: list[np.ndarray], faith: xr.Dataset, rand: Randomised) -> xr.Dataset:
    """The report's variables on the full method list (a method that could not run: NaN and its line)."""
    _, c, h, w = image.shape
    k = len(wins)
    tried = list(rand.failures)

    def full(values: np.ndarray, of: Sequence[str]) -> np.ndarray:
        out = np.full((len(names), *values.shape[1:]), np.nan, dtype=np.float64 if values.dtype.kind == "f" else values.dtype)
        for i, n in enumerate(of):
            out[names.index(n)] = values[i]
        return out

    region = np.zeros((k, h * w), dtype=np.int8)
    for j, r in enumerate(regions):
        region[j, r] = 1
    lines, passes = _verdicts(names, refused, faith, rand)
    faith = faith.reindex(method=names)
    data: dict[str, Any] = {
        "input": (("channel", "y", "x"), to_numpy(image[0], np.float32)),
        "baseline": (("method", "channel", "y", "x"), full(np.stack([baselines[n] for n in trained]), list(trained)).astype(np.float32)),
        "saliency": (("method", "window", "y", "x"),
                     full(np.stack([[saliency(a) for a in trained[n]] for n in trained]), list(trained)).astype(np.float32)),
        "influence_region": (("window", "y", "x"), region.reshape(k, h, w)),
        "similarity": (("method", "variant", "step", "window", "measure"), full(rand.similarity, tried)),
        "randomised_saliency": (("method", "variant", "step", "window", "y", "x"), full(rand.saliency, tried).astype(np.float32)),
        **{v: faith[v] for v in faith.data_vars},
        "verdict": (("method", "check"), lines),
        "passes": (("method", "check"), passes),
        "elapsed_s": (("method",), np.array([elapsed[n] for n in names])),
    }
    coords = {
        "method": names, "check": list(CHECKS), "variant": list(rand.variants), "step": np.arange(1, len(rand.groups) + 1),
        "step_layer": ("step", [g[-1].name for g in rand.groups]),
        "step_op_types": ("step", [", ".join(sorted({n.op_type for n in g})) for g in rand.groups]),
        "step_nodes": ("step", np.array([len(g) for g in rand.groups])),
        "measure": list(MEASURES), "channel": CHANNEL_NAMES.get(c, [str(i) for i in range(c)]),
        **lr_coords(h, w, int(model.scale)), **window_coords(wins, model.offset),
    }
    return xr.Dataset(data, coords=coords)
