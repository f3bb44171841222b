"""The one result layout shared by every method, and atomic writing.

Dims: ``window`` (one per explained window, always present), ``channel``, ``y``, ``x`` (LR input);
``Y``, ``X`` (SR output); methods add their own (e.g. ``layer``). Variables: ``input`` (channel, y, x),
``output`` (channel, Y, X), ``attribution`` (window, channel, y, x, signed), ``saliency`` (window, y, x)
= |sum_c attribution| / max, optionally ``hr`` (channel, Y, X, aligned with the output), and the
method's per-window checks (window,). Coordinates of ``window``: ``window_x``, ``window_y`` (top-left
column and row, HR frame), ``window_size``, ``window_x_sr``, ``window_y_sr`` (SR frame; see ``target``).
Attrs: ``method`` and its parameters, ``window_frame`` (the frame the windows were given in), model
file name, sha256, scale, offset, value range, conversion error, device, versions, ``elapsed_s`` (the
whole call) and the method's window-independent checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from .arrays import to_numpy
from .atomic import write_atomically
from .errors import OnnxAttrError
from .finite import check_result
from .metrics import saliency as saliency_map
from .target import Window, window_coords

CHANNEL_NAMES = {1: ["Y"], 3: ["R", "G", "B"]}


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return to_numpy(t, np.float32)


def _attr_value(v: Any) -> Any:
    """netCDF attrs hold numbers, strings and 1-D arrays: map bools, None and tuples onto those."""
    if isinstance(v, bool) or isinstance(v, np.bool_):
        return int(v)
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return np.asarray(v) if all(isinstance(e, (int, float)) for e in v) else ", ".join(map(str, v))
    if isinstance(v, str):
        return str(v)  # plain str: torch's TorchVersion is a str subclass h5py cannot store
    if isinstance(v, (int, float, np.integer, np.floating, np.ndarray)):
        return v
    return str(v)


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
        "conversion_error": model.conversion_error if model.conversion_error is not None else float("nan"),
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
    if attribution is not None:
        a = _np(attribution)
        variables["attribution"] = (("window", "channel", "y", "x"), a)
        variables["saliency"] = (("window", "y", "x"), np.stack([saliency_map(m) for m in a]).astype(np.float32))
    if hr is not None:
        variables["hr"] = (("channel", "Y", "X"), _np(hr[0]))
    for name, values in (window_checks or {}).items():
        variables[name] = (("window",), np.asarray(values, dtype=np.float64))
    for name, (dims, value) in (data_vars or {}).items():
        variables[name] = (dims, value if isinstance(value, np.ndarray) and value.dtype.kind in "iufU" else _np(value))
    all_coords = {
        "channel": CHANNEL_NAMES.get(c, [str(i) for i in range(c)]),
        "y": np.arange(h),
        "x": np.arange(w),
        "Y": np.arange(oh),
        "X": np.arange(ow),
        **window_coords(windows, model.offset),
        **(coords or {}),
    }
    attrs: dict[str, Any] = {
        "method": method,
        "window_frame": frame,
        **model_attrs(model),
        **versions(),
        **{k: v for k, v in params.items()},
        **(checks or {}),
        "elapsed_s": float(elapsed_s),
    }
    ds = xr.Dataset(variables, coords=all_coords)
    ds.attrs = {k: _attr_value(v) for k, v in attrs.items()}
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to netCDF (h5netcdf) atomically: a temp file in the target folder, then rename.

    A failed write leaves no file behind; an existing file is replaced only by a complete one.
    """
    path = Path(path)
    if path.suffix not in (".nc", ".nc4", ".netcdf"):
        raise OnnxAttrError(f"result path {str(path)!r} should end in .nc (netCDF); pick a name like out.nc")
    return write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), "result")


def load(path: str | os.PathLike) -> xr.Dataset:
    """Open a result file fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.is_file():
        raise OnnxAttrError(f"result file {str(path)!r} not found; pass a .nc file written by onnxattr")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as err:
        raise OnnxAttrError(f"{str(path)!r} is not a readable netCDF result ({err}); pass a .nc file written by onnxattr") from err
