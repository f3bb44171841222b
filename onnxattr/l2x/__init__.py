"""L2X (Yu & Yang): reference-based attribution with one propagation rule per ONNX op type.

R = m * (x - x_ref) (paper eq. 2) with x_ref the Gaussian-blurred input (Sec. 3.2) and the
multipliers m propagated by :mod:`.rules`; completeness sum R = t(x) - t(x_ref) (eq. 1).
Positive and negative contributions (eqs. 3-4) come from the positive and negative parts of
Delta x = x - x_ref: R+ = m * max(Delta x, 0), R- = m * min(Delta x, 0), R = R+ + R-.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import xarray as xr

from ..blur import blur, check_blur
from ..errors import OnnxAttrError
from ..results import build_dataset
from ..target import Window, check_window
from .objective import TARGETS, make_objective
from .propagate import propagate, varying_nodes
from .rules import RULES, NoRuleError

__all__ = ["NoRuleError", "RULES", "TARGETS", "l2x", "rule_coverage"]


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


UNKNOWN_OPS = ("error", "gradient")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_params(
    *, sigma: float, kernel_size: int, target: str, pixel: Any, unknown_ops: str, dtype: Any, **_: object
) -> dict[str, Any]:
    """One-line errors for L2X parameters no run can use (checked before any model loads); the parameters,
    ``dtype`` given as 'float32' / 'float64' turned into the torch dtype."""
    check_blur(sigma, kernel_size)
    if target not in TARGETS:
        raise OnnxAttrError(f"unknown L2X target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "pixel" and (pixel is None or len(pixel) != 3):
        raise OnnxAttrError("target 'pixel' needs pixel=(channel, row, column) of the SR output (CLI --pixel C ROW COL)")
    if unknown_ops not in UNKNOWN_OPS:
        raise OnnxAttrError(f"unknown_ops={unknown_ops!r}: use one of {', '.join(UNKNOWN_OPS)}")
    dtype = DTYPES.get(dtype, dtype)
    if dtype not in DTYPES.values():
        raise OnnxAttrError(f"dtype={dtype!r}: L2X propagates in float32 or float64")
    return {"sigma": sigma, "kernel_size": kernel_size, "target": target, "pixel": pixel, "unknown_ops": unknown_ops,
            "dtype": dtype}


def l2x(
    model: Any,
    image: torch.Tensor,
    window: Window | tuple[int, int, int],
    *,
    sigma: float = 1.2,
    kernel_size: int = 9,
    target: str = "detector",
    pixel: tuple[int, int, int] | None = None,
    unknown_ops: str = "error",
    hr: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> xr.Dataset:
    """L2X attribution of ``target`` on the SR output of ``image`` (1, C, h, w) in [0, 1].

    ``window`` (x, y, size) in SR pixels; ``target``: ``detector`` (LAM's gradient detector D on
    the window, the default, so L2X and LAM answer the same question), ``sum`` (output summed
    over window and channels) or ``pixel`` (one SR value, ``pixel=(channel, row, column)``).
    The reference is ``blur(image, sigma, kernel_size)`` (LAM's kernel). ``unknown_ops='gradient'``
    uses the plain gradient for ops without a rule instead of failing. ``dtype``: float64 (default)
    propagates on a float64 copy of the graph, float32 on the graph itself (faster, completeness
    limited by float32 rounding of small differences).
    Returns the shared Dataset plus ``reference``, ``attribution_pos``, ``attribution_neg``;
    attrs hold ``completeness_error``, the target on input and reference and ``gradient_ops``.
    """
    start = time.perf_counter()
    check_params(sigma=sigma, kernel_size=kernel_size, target=target, pixel=pixel, unknown_ops=unknown_ops, dtype=dtype)
    model.check_input(image)
    x = image.to(model.device, torch.float32)
    x_ref = blur(x, sigma, kernel_size)
    oh, ow = model.output_size(x.shape[2], x.shape[3])
    win = check_window(window, oh, ow)
    objective = make_objective(target, win, pixel, (1, x.shape[1], oh, ow))
    run = propagate(model, x, x_ref, objective, unknown_ops, dtype)
    dx = (x - x_ref).to(run.multiplier.dtype)
    attribution = (run.multiplier * dx)[0]
    positive = (run.multiplier * dx.clamp(min=0))[0]
    negative = (run.multiplier * dx.clamp(max=0))[0]
    t, t_ref = float(run.target.x), float(run.target.ref)
    total = float(attribution.double().sum())
    return build_dataset(
        model=model,
        image=x,
        output=run.output.x,
        method="l2x",
        window=win,
        params={
            "sigma": float(sigma),
            "kernel_size": int(kernel_size),
            "target": target,
            "pixel": tuple(pixel) if pixel is not None else None,
            "unknown_ops": unknown_ops,
            "dtype": str(dtype).removeprefix("torch."),
        },
        elapsed_s=time.perf_counter() - start,
        attribution=attribution,
        checks={
            "completeness_error": completeness_error(total, t - t_ref),
            "target_value": t,
            "target_reference_value": t_ref,
            "attribution_sum": total,
            "gradient_ops": ", ".join(run.gradient_ops) or "none",
        },
        data_vars={
            "reference": (("channel", "y", "x"), x_ref[0]),
            "attribution_pos": (("channel", "y", "x"), positive),
            "attribution_neg": (("channel", "y", "x"), negative),
        },
        hr=hr,
    )
