"""The one result layout shared by every method (described in ``schema`` and docs/results.md),
atomic writing and reading, and ``combine`` for several runs on one model and image.

Dims: ``window`` (one per explained window, always present), ``channel``, ``y``, ``x`` (LR input);
``Y``, ``X`` (SR output); methods add their own (e.g. ``layer``). Coordinates are pixel centres in one
HR frame (``schema.lr_coords``, ``schema.sr_coords``). Variables: ``input`` (channel, y, x),
``output`` (channel, Y, X), ``attribution`` (window, channel, y, x, signed), ``saliency`` (window, y, x)
= |sum_c attribution| / max, ``reach`` (window,) = the saliency-weighted mean distance of the input
pixels from the window centre (LR px, ``metrics.reach``), optionally ``hr`` (channel, Y, X, aligned with the output), and the
method's per-window checks (window,). Coordinates of ``window``: ``window_x``, ``window_y`` (top-left
column and row, HR frame), ``window_size``, ``window_x_sr``, ``window_y_sr`` (SR frame; see ``target``).
Attrs: ``schema_version``, ``method`` and its parameters, ``window_frame`` (the frame the windows were
given in), model file name, sha256, scale, offset, value range, conversion error, device, versions,
``elapsed_s`` (the whole call), the method's window-independent checks and, with HR, PSNR/SSIM of the
output. Every variable and coordinate gets ``long_name``, ``units``, ``description`` from ``schema``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from .arrays import to_numpy
from .atomic import check_disk_space, existing_folder, regular_file, write_atomically
from .errors import OnnxAttrError
from .metrics import reach
from .finite import check_result
from .metrics import saliency as saliency_map
from .metrics import sr_quality
from .schema import SCHEMA_VERSION, describe, lr_coords, sr_coords
from .target import Window, align_hr, lr_centre, window_coords

CHANNEL_NAMES = {1: ["Y"], 3: ["R", "G", "B"]}


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return to_numpy(t, np.float32)


def _attr_value(v: Any) -> Any:
    """netCDF attrs hold numbers, strings and 1-D arrays: map bools (0/1) and tuples onto those.
    ``None`` (not set) is left to the caller: ``attrs_of`` drops it."""
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return int(v)
    if isinstance(v, (list, tuple)):
        return np.asarray(v) if all(isinstance(e, (int, float)) for e in v) else ", ".join(map(str, v))
    if isinstance(v, str):
        return str(v)  # plain str: torch's TorchVersion is a str subclass h5py cannot store
    if isinstance(v, (int, float, np.integer, np.floating, np.ndarray)):
        return v
    return str(v)


def attrs_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs for netCDF: ``None`` values are left out (CF: an absent attribute is not set), bools are 0/1."""
    return {k: _attr_value(v) for k, v in values.items() if v is not None}


def versions() -> dict[str, str]:
    """Versions of onnxattr and the libraries that shape a result."""
    import onnx
    import onnx2torch  # noqa: F401  (imported for its metadata)
    import onnxruntime
    from importlib.metadata import version

    from . import __version__

    return {
        "onnxattr_version": __version__,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "onnx2torch_version": version("onnx2torch"),
    }


def model_attrs(model: Any) -> dict[str, Any]:
    """Attrs that identify the model and the trust in its conversion."""
    return {
        "model_file": model.path.name,
        "model_sha256": model.sha256,
        "scale": model.scale,
        "offset": model.offset,
        "value_range": model.value_range,
        "value_range_source": model.value_range_source,
        "output_range": model.output_range,
        "output_range_source": model.output_range_source,
        "conversion_error": model.conversion_error if model.conversion_error is not None else float("nan"),
        "file_precision": model.adapter.precision,
        "precision_gap": model.precision_gap if model.precision_gap is not None else float("nan"),
        "layout": model.adapter.input_layout,
        "input_dtype": model.adapter.input_dtype,
        "output_dtype": model.adapter.output_dtype,
        "channel_order": model.adapter.channel_order,
        "size_rule": model.size_rule.describe(),
        "device": str(model.device),
    }


def build_dataset(
    *,
    model: Any,
    image: torch.Tensor,
    output: torch.Tensor,
    method: str,
    windows: Sequence[Window],
    frame: str,
    params: Mapping[str, Any],
    elapsed_s: float,
    attribution: torch.Tensor | np.ndarray | None = None,
    window_checks: Mapping[str, Any] | None = None,
    checks: Mapping[str, Any] | None = None,
    data_vars: Mapping[str, tuple[tuple[str, ...], Any]] | None = None,
    coords: Mapping[str, Any] | None = None,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """Assemble a method's result in the shared layout.

    ``image`` (1, C, h, w) and ``output`` (1, C, H, W) are in [0, 1]; ``attribution`` is (K, C, h, w) for
    the K ``windows`` (SR pixels, given in ``frame``); ``window_checks`` are per-window numbers
    {name: K values} (variables on ``window``); ``data_vars`` adds method variables as {name: (dims,
    array)}; ``params`` and ``checks`` go to attrs.
    """
    check_result(model, image, output, method, attribution, (data_vars or {}).get("path_objective", (None, None))[1])
    _, c, h, w = image.shape
    _, _, oh, ow = output.shape
    variables: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        "input": (("channel", "y", "x"), _np(image[0])),
        "output": (("channel", "Y", "X"), _np(output[0])),
    }
    quality: dict[str, float] = {}
    if attribution is not None:
        a = _np(attribution)
        zero = [k for k, m in enumerate(a) if not np.abs(m).max() > 0]
        if zero:
            warnings.warn(
                f"{method}: the attribution of window(s) {', '.join(str(k + 1) for k in zero)} of {len(a)} is zero "
                "everywhere: the baseline equals the image wherever the window looks (a flat region?); their "
                "diffusion index, Gini and reach are NaN (undefined)", stacklevel=3)
        sal = np.stack([saliency_map(m) for m in a])
        variables["attribution"] = (("window", "channel", "y", "x"), a)
        variables["saliency"] = (("window", "y", "x"), sal.astype(np.float32))
        variables["reach"] = (("window",), np.array([reach(m, lr_centre(w, model.scale, model.offset)) for m, w in zip(sal, windows)]))
    if hr is not None:
        hr = align_hr(hr, int(model.offset), (oh, ow))
        variables["hr"] = (("channel", "Y", "X"), _np(hr[0]))
        quality = sr_quality(output.detach().float().cpu(), hr.float().cpu(), border=int(model.scale))
    for name, values in (window_checks or {}).items():
        variables[name] = (("window",), np.asarray(values, dtype=np.float64))
    for name, (dims, value) in (data_vars or {}).items():
        variables[name] = (dims, value if isinstance(value, np.ndarray) and value.dtype.kind in "iufU" else _np(value))
    all_coords = {
        "channel": CHANNEL_NAMES.get(c, [str(i) for i in range(c)]),
        **lr_coords(h, w, int(model.scale)),
        **sr_coords(oh, ow, int(model.offset)),
        **window_coords(windows, model.offset),
        **(coords or {}),
    }
    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "window_frame": frame,
        **model_attrs(model),
        **versions(),
        **{k: v for k, v in params.items()},
        **(checks or {}),
        **quality,
        "elapsed_s": float(elapsed_s),
    }
    ds = xr.Dataset(variables, coords=all_coords)
    ds.attrs = attrs_of(attrs)
    return describe(ds)


STUDY_SUFFIX = ".zarr"


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` atomically: netCDF (h5netcdf) for ``.nc``, a zarr store for ``.zarr`` (studies).

    netCDF goes to a temp file in the target folder, then is renamed; a failed write leaves no file
    behind and an existing file is replaced only by a complete one. ``.zarr`` uses ``save_study``.
    """
    path = Path(path)
    if path.suffix == STUDY_SUFFIX:
        from .compare import save_study

        return save_study(ds, path)
    if path.suffix not in (".nc", ".nc4", ".netcdf"):
        raise OnnxAttrError(f"result path {str(path)!r} should end in .nc (netCDF) or .zarr; pick a name like out.nc")
    check_disk_space(existing_folder(path, "result"), ds.nbytes, "result")
    return write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), "result")


def load(path: str | os.PathLike) -> xr.Dataset:
    """Open a result fully into memory (the file is closed afterwards): a ``.nc`` file or a ``.zarr`` study."""
    path = Path(path)
    if path.suffix == STUDY_SUFFIX or path.is_dir():
        from .compare import load_study

        return load_study(path)
    regular_file(path, "result file", "pass a .nc file or .zarr study written by onnxattr")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as err:
        raise OnnxAttrError(f"{str(path)!r} is not a readable netCDF result ({err}); pass a .nc file written by onnxattr") from err


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
    out = xr.concat(stripped, dim=dim, data_vars="all", coords="different", compat="equals", join="outer")
    out = out.assign_coords({dim: labels})
    for k in per_run:
        values = [r.attrs.get(k) for r in runs]
        text = any(isinstance(v, str) for v in values)
        out[k] = ((dim,), np.array(["" if v is None else str(v) for v in values]) if text
                  else np.array([np.nan if v is None else np.asarray(v, dtype=np.float64).item() if np.size(v) == 1 else np.nan
                                 for v in values]))
        out[k].attrs = {"long_name": k.replace("_", " "), "description": f"the {k!r} attr of each run (absent: NaN or '')"}
    out[dim].attrs = {"long_name": "run", "description": "label of each combined result (its method, numbered if repeated)"}
    for v in shared:
        out[v] = first[v]
    if "method" in out.data_vars:
        out = out.set_coords("method")
    out.attrs = {**common, "combined_along": dim}
    return out


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
