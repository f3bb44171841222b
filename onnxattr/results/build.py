"""A method's tensors -> one Dataset in the shared result layout (``results.schema``, docs/results.md).

Dims: ``window`` (one per explained window, always present), ``channel``, ``y``, ``x`` (LR input);
``Y``, ``X`` (SR output); methods add their own (e.g. ``layer``). Coordinates are pixel centres in one
HR frame (``lr_coords``, ``sr_coords``). Variables: ``input`` (channel, y, x),
``output`` (channel, Y, X), ``attribution`` (window, channel, y, x, signed), ``saliency`` (window, y, x)
= |sum_c attribution| / max and, computed here for every method from its saliency (one definition, LAM
Sec. 4.2, ``metrics.gini``): ``diffusion_index``, ``gini`` and ``reach`` (window,) (the saliency-weighted mean
distance of the input pixels from the window centre, LR px); optionally ``hr`` (channel, Y, X, aligned with the
output), and the method's per-window checks (window,). Coordinates of ``window``: ``window_x``, ``window_y``
(top-left column and row, HR frame), ``window_size``, ``window_x_sr``, ``window_y_sr`` (SR frame; see
``windows.geometry``). Attrs: ``schema_version``, ``method`` and its parameters, ``window_frame`` (the frame the
windows were given in), the model's facts (``ModelFacts.attrs``), versions, ``elapsed_s`` (the whole call), the
method's window-independent checks and, with HR, PSNR/SSIM of the output. Every variable and coordinate gets
``long_name``, ``units``, ``description`` from the schema and the method's own entries.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from ..arrays import to_numpy
from ..metrics import diffusion_index, gini, reach, saliency_pixels, sr_quality
from ..metrics import saliency as saliency_map
from ..windows.geometry import Window, align_hr, lr_centre, window_coords
from .finite import check_result
from .schema import COORDS, SCHEMA_VERSION, VARIABLES, Entry, describe

CHANNEL_NAMES = {1: ["Y"], 3: ["R", "G", "B"]}
# Per-window measures of the saliency computed here for every result with an attribution: no method passes its own.
SALIENCY_MEASURES = ("diffusion_index", "gini", "reach", "saliency_pixels", "saliency_share")
# A completeness error above this (a tenth of the explained change missing) is warned about. LAM's path sum falls
# about as 1 / steps (measured on the samples: 0.04-0.11 at 20 steps, 0.01-0.03 at 50, <= 0.015 at 100).
COMPLETENESS_LIMIT = 0.1
# The start of the warnings below, so that a study (``study.compare``) can gather them into one line each.
ZERO_WARNING = "the attribution of window(s)"
COMPLETENESS_WARNING = "completeness error"


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


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    import onnx
    import onnx2torch  # noqa: F401  (imported for its metadata)
    import onnxruntime
    from importlib.metadata import version

    from ..version import __version__

    return (("onnxattr_version", __version__), ("torch_version", torch.__version__),
            ("onnx_version", onnx.__version__), ("onnxruntime_version", onnxruntime.__version__),
            ("onnx2torch_version", version("onnx2torch")))


def versions() -> dict[str, str]:
    """Versions of onnxattr and the libraries that shape a result (read once a process)."""
    return dict(_versions())


def label_of(file_name: str) -> str:
    """A model's default label: its file name without ``.onnx`` (``--label`` gives another)."""
    return file_name.removesuffix(".onnx")


def lr_coords(h: int, w: int, scale: int) -> dict[str, np.ndarray]:
    """LR pixel centres in the shared HR frame: x = (i + 0.5) s, y = -(i + 0.5) s."""
    return {"y": -(np.arange(h) + 0.5) * scale, "x": (np.arange(w) + 0.5) * scale}


def sr_coords(h: int, w: int, offset: int) -> dict[str, np.ndarray]:
    """SR pixel centres in the shared HR frame: X = j + 0.5 - c/2, Y = -(j + 0.5 - c/2)."""
    return {"Y": -(np.arange(h) + 0.5 - offset / 2), "X": np.arange(w) + 0.5 - offset / 2}


def saliency_measures(sal: np.ndarray, windows: Sequence[Window], scale: int, offset: int
                      ) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """DI, Gini, reach and the 95 % mass pixels of each window's saliency map (K, h, w) (``metrics``): the one
    definition every method's result carries. DI = (1 - G) * 100 (LAM eq. 6); reach from the window's centre in LR
    pixels; ``saliency_pixels`` LAM_Demo's count_saliency_pixels, ``saliency_share`` the same over the LR pixels."""
    pixels = np.array([saliency_pixels(m) for m in sal])
    return {
        "diffusion_index": (("window",), np.array([diffusion_index(m) for m in sal])),
        "gini": (("window",), np.array([gini(m) for m in sal])),
        "reach": (("window",), np.array([reach(m, lr_centre(w, scale, offset)) for m, w in zip(sal, windows)])),
        "saliency_pixels": (("window",), pixels),
        "saliency_share": (("window",), pixels / sal[0].size),
    }


def completeness_warning(method: str, errors: Any, params: Mapping[str, Any]) -> None:
    """One warning when a window's completeness error exceeds ``COMPLETENESS_LIMIT``: the attribution misses more
    than a tenth of the target's change. Path methods (a ``steps`` parameter) are told to raise the steps."""
    if errors is None:
        return
    values = np.asarray(errors, dtype=np.float64)
    over = [k for k, v in enumerate(values) if v > COMPLETENESS_LIMIT]
    if not over:
        return
    worst = max(over, key=lambda k: values[k])
    steps = params.get("steps")
    fix = (f"raise --steps (now {steps}; the error falls about as 1 / steps, the LAM paper uses 50-100)"
           if steps is not None else "the attribution does not add up to the target's change: see the method's page in docs/")
    warnings.warn(f"{method}: {COMPLETENESS_WARNING} up to {values[worst]:.2f} (window {worst + 1}), above "
                  f"{COMPLETENESS_LIMIT:g} in {len(over)} of {len(values)} window(s); {fix}", stacklevel=4)


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
    layout: Mapping[str, Entry] | None = None,
) -> xr.Dataset:
    """Assemble a method's result in the shared layout.

    ``image`` (1, C, h, w) and ``output`` (1, C, H, W) are in [0, 1]; ``attribution`` is (K, C, h, w) for
    the K ``windows`` (SR pixels, given in ``frame``); ``window_checks`` are per-window numbers
    {name: K values} (variables on ``window``); ``data_vars`` adds method variables as {name: (dims,
    array)}; ``params`` and ``checks`` go to attrs; ``layout`` holds the schema entries of the method's own
    variables and coordinates (its registry entry's ``variables``).
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
                f"{method}: {ZERO_WARNING} {', '.join(str(k + 1) for k in zero)} of {len(a)} is zero "
                "everywhere: the baseline equals the image wherever the window looks (a flat region?); their "
                "diffusion index, Gini and reach are NaN (undefined)", stacklevel=3)
        sal = np.stack([saliency_map(m) for m in a])
        variables["attribution"] = (("window", "channel", "y", "x"), a)
        variables["saliency"] = (("window", "y", "x"), sal.astype(np.float32))
        variables.update(saliency_measures(sal, windows, int(model.scale), int(model.offset)))
    own = sorted(set(window_checks or {}) & set(SALIENCY_MEASURES))
    if own:
        raise ValueError(f"{method} passes its own {', '.join(own)}: build_dataset computes them from the saliency "
                         "for every method (one definition); drop them from window_checks")
    completeness_warning(method, (window_checks or {}).get("completeness_error"), params)
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
    facts = model.facts()
    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "window_frame": frame,
        **facts.attrs(),
        "model_label": label_of(facts.file),
        **versions(),
        **{k: v for k, v in params.items()},
        **(checks or {}),
        **quality,
        "elapsed_s": float(elapsed_s),
    }
    ds = xr.Dataset(variables, coords=all_coords)
    ds.attrs = attrs_of(attrs)
    return describe(ds, {**COORDS, **VARIABLES, **(layout or {})})
