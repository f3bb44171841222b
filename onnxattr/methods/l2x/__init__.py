"""L2X (Yu & Yang): reference-based attribution with one propagation rule per ONNX op type.

R = m * (x - x_ref) (paper eq. 2) with x_ref the Gaussian-blurred input (Sec. 3.2) and the
multipliers m propagated by :mod:`.rules`; completeness sum R = t(x) - t(x_ref) (eq. 1).
Positive and negative contributions (eqs. 3-4) come from the positive and negative parts of
Delta x = x - x_ref: R+ = m * max(Delta x, 0), R- = m * min(Delta x, 0), R = R+ + R-.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
import xarray as xr

from .. import memory
from ..blur import blur, check_blur
from ...errors import OnnxAttrError
from ...options import UNKNOWN_OPS
from ...results.build import build_dataset
from ...windows.detector import check_objective, check_objective_windows
from ...windows.geometry import Window, WindowSpec, align_hr, hr_shift, resolve_windows
from ..registry import METHODS
from .objective import TARGETS, make_objective
from .propagate import propagate, varying_nodes
from .rules import RULES, NoRuleError

__all__ = ["NoRuleError", "RULES", "TARGETS", "l2x", "rule_coverage"]
_SOURCES = sorted(str(p) for p in Path(__file__).parent.glob("*.py"))  # the code a propagation's peak depends on


def rule_coverage(model: Any) -> dict[str, list[str]]:
    """Op types of ``model`` by rule kind: ``exact``, ``approximate``, ``missing`` (on the image's path,
    no rule) and ``constant`` (only on weight/shape paths, no rule needed)."""
    varying = varying_nodes(model.graph, model.op_type)
    cover: dict[str, set[str]] = {"exact": set(), "approximate": set(), "missing": set(), "constant": set()}
    on_path = {model.op_type(n.name) for n in model.graph.graph.nodes if n.op == "call_module" and n.name in varying}
    for n in model.graph.graph.nodes:
        op = model.op_type(n.name) if n.op == "call_module" else ""
        if not op:
            continue
        if op not in on_path:
            cover["constant"].add(op)
        elif op in RULES:
            cover[RULES[op].kind].add(op)  # type: ignore[attr-defined]
        else:
            cover["missing"].add(op)
    return {k: sorted(v) for k, v in cover.items()}


def completeness_error(total: float, delta: float) -> float:
    """|sum R - Delta t| / |Delta t| (Delta t = 0 gives the absolute error)."""
    return abs(total - delta) / abs(delta) if delta != 0 else abs(total)


DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Values of dtype per window and input value: the K multipliers (their list and their stack), then the
# attribution, its positive and negative parts and one temporary of their products.
WINDOW_VALUES = 6


def _weights(model: Any, dtype: torch.dtype) -> int:
    """Bytes of the float64 copy of the graph ``propagate`` makes (with the float32 weights it is made from); 0 in float32."""
    if dtype == torch.float32:
        return 0
    return 12 * sum(t.numel() for t in [*model.graph.parameters(), *model.graph.buffers()])


def _ratio(model: Any, dtype: torch.dtype) -> float:
    """r: the peak of one propagation with one window at the law's first probe size, the graph copy left out,
    over the model's forward + backward peak there (kept with the model's cache entry, under a hash of this module
    and the rules that propagate)."""
    def measure() -> float:
        h, w = memory.probe_size(model)
        x = torch.rand(1, model.in_channels, h, w, device=model.device)
        oh, ow = model.output_size(h, w)
        objective = make_objective("detector", [Window(0, 0, min(8, oh, ow))])
        peak = memory.measure_peak(lambda: propagate(model, x, blur(x, 1.2, 9), objective, "gradient", dtype))
        return max(peak - _weights(model, dtype), 0) / memory.pass_peak(model, h, w)

    return memory.learned(model, f"l2x-{str(dtype).removeprefix('torch.')}", measure, _SOURCES)


def estimate(model: Any, height: int, width: int, *, windows: int, dtype: torch.dtype = torch.float64) -> int:
    """Peak bytes of ``l2x`` for an h x w image and K = ``windows``:

        weights + r P(h, w) + WINDOW_VALUES K C h w b

    with P the model's forward + backward peak at batch 1 (``memory.pass_peak``), r its ratio to one propagation (``_ratio``:
    two sides, the rules' saved tensors, float64), b the bytes of ``dtype`` and weights the float64 graph copy."""
    values = WINDOW_VALUES * windows * model.in_channels * height * width * torch.finfo(dtype).bits // 8
    return _weights(model, dtype) + int(_ratio(model, dtype) * memory.pass_peak(model, height, width)) + values


def check_params(
    *, sigma: float, kernel_size: int, target: str, pixel: Any, unknown_ops: str, dtype: Any, objective: str = "grad",
    reduce: str = "sum", **_: object
) -> dict[str, Any]:
    """One-line errors for L2X parameters no run can use (checked before any model loads); the parameters,
    ``dtype`` given as 'float32' / 'float64' turned into the torch dtype."""
    check_blur(sigma, kernel_size)
    if target not in TARGETS:
        raise OnnxAttrError(f"unknown L2X target {target!r}; choose one of {', '.join(TARGETS)}")
    check_objective(objective, reduce)
    if target != "detector" and (objective, reduce) != ("grad", "sum"):
        raise OnnxAttrError(f"--objective / --reduce choose the window objective of --target detector, not of target "
                            f"{target!r}; pass --target detector (--target sum is --objective intensity)")
    if target == "pixel" and (pixel is None or len(pixel) not in (2, 3)):
        raise OnnxAttrError("target 'pixel' needs pixel=(x, y) or (x, y, channel) (CLI --pixel X Y [--channel C])")
    if target != "pixel" and pixel is not None:
        raise OnnxAttrError(f"a pixel is explained only with target 'pixel', not {target!r}; pass --target pixel "
                            "(API target='pixel') or drop --pixel / --channel")
    if unknown_ops not in UNKNOWN_OPS:
        raise OnnxAttrError(f"unknown_ops={unknown_ops!r}: use one of {', '.join(UNKNOWN_OPS)}")
    dtype = DTYPES.get(dtype, dtype)
    if dtype not in DTYPES.values():
        raise OnnxAttrError(f"dtype={dtype!r}: L2X propagates in float32 or float64")
    return {"sigma": sigma, "kernel_size": kernel_size, "target": target, "pixel": pixel, "unknown_ops": unknown_ops,
            "dtype": dtype, "objective": objective, "reduce": reduce}


def pixel_window(pixel: Sequence[int], offset: int, out_shape: tuple[int, ...], frame: str) -> tuple[Window, int | None]:
    """The 1-px window (SR pixels) of ``pixel`` = (x, y) or (x, y, channel) given in ``frame`` (checked by
    ``check_params``), and the channel."""
    x, y, *rest = (int(v) for v in pixel)
    channel = rest[0] if rest else None
    shift = hr_shift(offset) if frame == "hr" else 0
    _, oc, oh, ow = out_shape
    if not (0 <= x + shift < ow and 0 <= y + shift < oh):
        raise OnnxAttrError(
            f"pixel x={x} y={y} ({frame.upper()} frame) is x={x + shift} y={y + shift} in the {ow}x{oh} SR output, "
            f"outside it; give {-shift} <= x <= {ow - 1 - shift} and {-shift} <= y <= {oh - 1 - shift} in the same frame"
        )
    if channel is not None and not 0 <= channel < oc:
        raise OnnxAttrError(f"pixel channel {channel} does not exist: the output has {oc} channel(s); pass --channel "
                            f"0 to {oc - 1}, or leave it out for the sum of the channels")
    return Window(x + shift, y + shift, 1), channel


def l2x(
    model: Any,
    image: torch.Tensor,
    window: WindowSpec | None = None,
    *,
    frame: str = "hr",
    sigma: float = 1.2,
    kernel_size: int = 9,
    target: str = "detector",
    objective: str = "grad",
    reduce: str = "sum",
    pixel: Sequence[int] | None = None,
    unknown_ops: str = "error",
    hr: torch.Tensor | None = None,
    dtype: torch.dtype | str = torch.float64,
) -> xr.Dataset:
    """L2X attribution of ``target`` on the SR output of ``image`` (1, C, h, w) in [0, 1].

    ``window``: (x, y, size), several, or a ``target.Grid``, in ``frame`` ('hr' HR-image pixels, the
    default, or 'sr' output pixels; see ``target``). ``target``: ``detector`` (the window objective D, LAM's
    gradient detector by default, so L2X and LAM answer the same question; ``objective`` 'intensity' or 'gabor' and
    ``reduce`` 'mean' as ``windows.detector``, linear and so exact), ``sum`` (output summed over
    window and channels) or ``pixel`` (one SR value: ``pixel=(x, y)`` summed over channels or
    ``(x, y, channel)``, in ``frame``; no window). All windows share one forward of x and x_ref and take
    one backward each. The reference is ``blur(image, sigma, kernel_size)`` (LAM's kernel).
    ``unknown_ops='gradient'`` uses the plain gradient for ops without a rule instead of failing.
    ``dtype``: float64 (default) propagates on a float64 copy of the graph, float32 on the graph itself
    (faster, completeness limited by float32 rounding of small differences).
    Returns the shared Dataset plus ``baseline`` (x_ref), ``attribution_pos``, ``attribution_neg`` (window, ...);
    per window ``completeness_error``, ``target_value``, ``target_reference_value``, ``attribution_sum``;
    attrs ``gradient_ops`` and the parameters.
    """
    start = time.perf_counter()
    dtype = check_params(sigma=sigma, kernel_size=kernel_size, target=target, pixel=pixel, unknown_ops=unknown_ops,
                         dtype=dtype, objective=objective, reduce=reduce)["dtype"]
    model.check_input(image)
    x = image.to(model.device, torch.float32)
    x_ref = blur(x, sigma, kernel_size)
    oh, ow = model.output_size(x.shape[2], x.shape[3])
    wins, channel = _targets(model, window, target, pixel, (1, x.shape[1], oh, ow), frame)
    if target == "detector":
        check_objective_windows(objective, wins, oh, ow)
    _require_memory(model, x, len(wins), dtype)
    run = propagate(model, x, x_ref, make_objective(target, wins, channel, objective, reduce), unknown_ops, dtype)
    dx = (x - x_ref).to(run.multiplier.dtype)
    attribution = (run.multiplier * dx)[:, 0]
    t, t_ref = run.target.x.double().cpu().numpy(), run.target.ref.double().cpu().numpy()
    totals = attribution.double().sum(dim=(1, 2, 3)).cpu().numpy()
    return build_dataset(
        model=model, image=x, output=run.output.x, method="l2x", windows=wins, frame=frame,
        params={
            "sigma": float(sigma), "kernel_size": int(kernel_size), "target": target,
            **({"objective": objective, "reduce": reduce} if target == "detector" else {}),
            "pixel": tuple(pixel) if pixel is not None else None, "unknown_ops": unknown_ops,
            "dtype": str(dtype).removeprefix("torch."),
        },
        elapsed_s=time.perf_counter() - start,
        attribution=attribution,
        window_checks={
            "completeness_error": [completeness_error(s, d) for s, d in zip(totals, t - t_ref)],
            "target_value": t,
            "target_reference_value": t_ref,
            "attribution_sum": totals,
        },
        checks={"gradient_ops": ", ".join(run.gradient_ops)},
        data_vars={
            "baseline": (("channel", "y", "x"), x_ref[0]),  # R+ and R- (eqs. 3-4) from the parts of Delta x
            "attribution_pos": (("window", "channel", "y", "x"), (run.multiplier * dx.clamp(min=0))[:, 0]),
            "attribution_neg": (("window", "channel", "y", "x"), (run.multiplier * dx.clamp(max=0))[:, 0]),
        },
        hr=align_hr(hr, model.offset, (oh, ow)) if hr is not None else None,
        layout=METHODS["l2x"].variables,
    )


def _targets(model: Any, window: WindowSpec | None, target: str, pixel: Sequence[int] | None,
             out_shape: tuple[int, ...], frame: str) -> tuple[list[Window], int | None]:
    """The windows (SR pixels) whose ``target`` is explained and, for the pixel target, its channel (None: summed)."""
    if target == "pixel":
        if window is not None:
            raise OnnxAttrError("target 'pixel' explains one output value: drop the window (--window / --windows / "
                                "--grid; API window=None) and give the value with --pixel X Y (API pixel=(x, y))")
        win, channel = pixel_window(pixel, model.offset, out_shape, frame)
        return [win], channel
    if window is None:
        raise OnnxAttrError("L2X needs a window (x, y, size), several, or a grid (CLI --window / --windows / --grid)")
    return resolve_windows(window, model.offset, out_shape[2], out_shape[3], frame=frame), None


def _require_memory(model: Any, x: torch.Tensor, windows: int, dtype: torch.dtype) -> None:
    """Refuse, before propagating, work whose ``estimate`` exceeds the free memory (one line with the fixes)."""
    memory.require(estimate(model, x.shape[2], x.shape[3], windows=windows, dtype=dtype), memory.free_memory(model.device),
                   f"L2X of {windows} window(s) for a {x.shape[3]}x{x.shape[2]} image",
                   [*(["pass --float32"] if dtype == torch.float64 else []), "explain fewer windows", "crop the image (--crop)",
                    *memory.device_fix(model.device)], model.device)
