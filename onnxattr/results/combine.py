"""``combine``: results of several methods (or runs) on one model and image -> one Dataset along a ``run`` axis."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ..errors import OnnxAttrError


# Variables that depend on the model and image only, not on the method: kept once by ``combine``.
SHARED_VARIABLES = ("input", "output", "hr")
SHARED_TOLERANCE = 1e-4  # |a - b| allowed between runs' copies of a shared variable (float32 forward noise)


def combine(results: Sequence[xr.Dataset] | Mapping[str, xr.Dataset], dim: str = "run") -> xr.Dataset:
    """Results of several methods (or runs) on one model and image -> one Dataset with a ``dim`` axis.

    The axis is ``run``, not ``method``: ``ds.sel(method="lam")`` would silently select nothing, because
    ``method`` is a keyword of xarray's ``sel``. The method of each run is the ``method`` coordinate.

    ``results``: a list (labels from each result's ``method`` attr, repeated ones numbered ``lam-2``...)
    or a {label: result} mapping. The shared variables (``input``, ``output``, ``hr``) are kept once,
    after checking that every run's copy agrees within ``SHARED_TOLERANCE`` (outputs of different
    methods differ by float32 rounding, ~1e-6); every other variable gets the ``dim`` axis, NaN where a
    method has no such variable. Attrs equal in all runs stay attrs; the others (the method, its
    parameters and checks, ``elapsed_s``) become variables along ``dim``.
    """
    if isinstance(results, Mapping):
        labels, runs = [str(k) for k in results], list(results.values())
    else:
        runs = list(results)
        labels = _unique([str(r.attrs.get("method", "run")) for r in runs])
    if not runs:
        raise OnnxAttrError("combine needs at least one result")
    first = runs[0]
    for label, run in zip(labels[1:], runs[1:]):
        _check_same_inputs(first, run, labels[0], label)
    shared = [v for v in SHARED_VARIABLES if v in first]
    keys = set().union(*(r.attrs for r in runs))
    common = {k: first.attrs[k] for k in first.attrs if all(k in r.attrs and _same(r.attrs[k], first.attrs[k]) for r in runs)}
    per_run = sorted(keys - set(common))
    stripped = []
    for run in runs:
        part = run.drop_vars(shared, errors="ignore")
        part.attrs = {}
        stripped.append(part)
    out = xr.concat(stripped, dim=dim, data_vars="all", coords=_differing_coords(stripped), compat="equals", join="outer")
    out = out.assign_coords({dim: labels})
    for k in per_run:
        values = [r.attrs.get(k) for r in runs]
        text = any(isinstance(v, str) or np.size(v) != 1 for v in values)  # a list (LAM's field_box) as its numbers
        out[k] = ((dim,), np.array(["" if v is None else " ".join(map(str, np.ravel(v))) for v in values]) if text
                  else np.array([np.nan if v is None else np.asarray(v, dtype=np.float64).item() for v in values]))
        out[k].attrs = {"long_name": k.replace("_", " "), "description": f"the {k!r} attr of each run (absent: NaN or '')"}
    out[dim].attrs = {"long_name": "run", "description": "label of each combined result (its method, numbered if repeated)"}
    for v in shared:
        out[v] = first[v]
    if "method" in out.data_vars:
        out = out.set_coords("method")
    out.attrs = {**common, "combined_along": dim}
    return out


def _differing_coords(runs: Sequence[xr.Dataset]) -> list[str]:
    """The first run's non-index coordinates that differ between runs (e.g. their windows): concatenated along the
    run axis; the others (equal, or of one method alone, such as GL-AM's ``op_type``) are kept once. (xarray's
    ``coords="different"`` refuses a coordinate that some runs lack.)"""
    first = runs[0]
    return [name for name in first.coords if name not in first.dims
            and not all(name in r.coords and r[name].equals(first[name]) for r in runs)]


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return out


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b))) if not isinstance(a, str) else a == b


def _check_same_inputs(a: xr.Dataset, b: xr.Dataset, label_a: str, label_b: str) -> None:
    """Refuse results on different models or images: their maps would not share one frame."""
    for k in ("model_sha256", "scale", "offset"):
        if k in a.attrs and k in b.attrs and not _same(a.attrs[k], b.attrs[k]):
            raise OnnxAttrError(f"combine: {label_a} and {label_b} come from different models ({k}); "
                                "combine runs on one model and image, use compare for several")
    for v in SHARED_VARIABLES:
        if (v in a) != (v in b):
            continue
        if v in a and (a[v].shape != b[v].shape or float(np.nanmax(np.abs(a[v].values - b[v].values))) > SHARED_TOLERANCE):
            raise OnnxAttrError(f"combine: {label_a} and {label_b} differ in {v!r}; "
                                "combine runs on one model and image, use compare for several")
