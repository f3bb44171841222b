"""Local attribution maps (LAM; Gu & Dong, CVPR 2021, Sec. 3.3-4) and their path-integral neighbours.

For an SR network F, the gradient detector D on an output window (``windows.detector``, eq. 1) and a path
x_0 -> x_m from a baseline to the LR image I (``paths``), the attribution is the right Riemann sum of the path
integral (eq. 2, discretised as eq. 4 and the authors' code):

    A = sum_{i=1..m} dD(F(x_i))/dx_i * (x_i - x_{i-1})        (elementwise, per channel)

Completeness (Sundararajan et al.; the paper's check after eq. 4): sum(A) = D(F(I)) - D(F(x_0))
for the exact integral; ``completeness_error`` says how far the m-step sum is from it.
The path is evaluated in batches of steps whose size comes from the memory estimate (``estimate``). The path does not
depend on the window: for K windows each batch of points runs forward once and takes one backward
per window (``paths.window_gradients``), so K windows cost one forward and K backwards per step.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..errors import OnnxAttrError
from ..intake import SRModel
from ..options import DEFAULT_MEMORY_FRACTION, PATHS
from ..results.build import build_dataset
from ..windows.detector import window_detectors
from ..windows.geometry import Window, WindowSpec, align_hr, resolve_windows
from . import memory
from .blur import check_blur
from .paths import IntegrationPath, PathResult, make_path, path_attribution, path_bytes
from .registry import METHODS

# Default caps on the batch on a CPU: beyond ~10 images, or ~256 MiB of activations (the forward + backward
# law P(h, w) times the batch), a pass costs more per step as its tensors leave the caches. Measured on the
# quiet 2-core machine (benchmarks/README.md, LAM): waifu2x 64x64 (23 MiB a point) best at batch 5-10, 25 is
# 1.35x slower; Real-ESRGAN Compact x4 at 64x64 (37 MiB) best at 5, at 128x128 (148 MiB) best at 1 (5: +7%, 10: +32%).
CPU_MAX_BATCH = 8
CPU_BATCH_BYTES = 256 * 2**20
# Bytes per window, point and input value of a batch's gradients: float32 from autograd (4), their float64
# copy (8) and the weighted copy summed into A (8).
GRADIENT_BYTES = 20


def estimate(model: SRModel, height: int, width: int, *, steps: int, path: str, windows: int, batch: int) -> int:
    """Peak bytes of ``lam`` on the model's device for an h x w image, K = ``windows``, n = ``batch``:

        n P(h, w) + GRADIENT_BYTES K n C h w + 8 K C h w  (+ ``path_bytes`` on the CPU, where the path lives too)

    with P the model's forward + backward law (``memory.pass_law``) and 8 K C h w the float64 sum A."""
    c = model.in_channels
    need = batch * memory.pass_law(model)(height, width) + (GRADIENT_BYTES * batch + 8) * windows * c * height * width
    return need + (path_bytes(c, height, width, steps, path) if model.device.type == "cpu" else 0)


def choose_batch(model: SRModel, height: int, width: int, *, steps: int, path: str, windows: int,
                 batch_size: int | None, memory_fraction: float) -> int:
    """Path points per pass, checked against the free memory (``memory.free_memory``) before anything is allocated.

    ``batch_size`` is kept when ``estimate`` says it fits in the free memory, else refused naming the batch that
    fits. By default: the largest batch that fits in ``memory_fraction`` of it, at most the path's points (and
    on a CPU ``CPU_MAX_BATCH`` and ``CPU_BATCH_BYTES`` of activations), with a warning when memory lowers it below
    that; refused when even one point does not fit. On CUDA the path (on the CPU) is checked against the CPU's free memory first.
    """
    m = 1 if path == "gradient" else steps
    dev, cpu, c = model.device, torch.device("cpu"), model.in_channels
    image = f"a {width}x{height} image"
    if dev.type != "cpu":
        memory.require(path_bytes(c, height, width, steps, path), memory.free_memory(cpu),
                       f"LAM's {steps}-step {path} path for {image}", ["pass fewer steps (--steps)", "crop the image (--crop)"], cpu)

    def need(n: int) -> int:
        return estimate(model, height, width, steps=steps, path=path, windows=windows, batch=n)

    def refuse(n: int, smaller: int) -> None:
        fixes = [f"pass --batch-size {smaller}"] if smaller else []
        if dev.type == "cpu" and 2 * path_bytes(c, height, width, steps, path) > need(n):
            fixes.append("pass fewer steps (--steps)")
        memory.require(need(n), free, f"LAM at batch {n} for {image}",
                       [*fixes, "crop the image (--crop)", *memory.device_fix(dev)], dev)

    free = memory.free_memory(dev)
    if batch_size is not None:
        batch = min(batch_size, m)
        if need(batch) > free:
            refuse(batch, memory.largest_batch(need, free, batch))
        return batch
    wanted = m
    if dev.type == "cpu":
        wanted = min(m, CPU_MAX_BATCH, max(1, CPU_BATCH_BYTES // max(memory.pass_law(model)(height, width), 1)))
    batch = memory.largest_batch(need, int(memory_fraction * free), wanted)
    if batch == 0:
        if need(1) > free:
            refuse(1, 0)
        batch = 1
    if batch < wanted:
        warnings.warn(f"LAM runs {batch} path point(s) per pass, not {wanted}: {wanted} need about "
                      f"{memory.size_text(need(wanted))}, over {memory_fraction:g} of the {memory.size_text(free)} free "
                      f"on {dev.type} (--memory-fraction)", stacklevel=3)
    return batch


def check_params(
    *, path: str, steps: int, sigma: float, kernel_size: int, batch_size: int | None, memory_fraction: float, **_: object
) -> dict[str, object]:
    """One-line errors for LAM parameters no run can use (checked before any model loads); the parameters."""
    fraction = memory_fraction
    if path not in PATHS:
        raise OnnxAttrError(f"unknown path {path!r}; pick one of {', '.join(PATHS)}")
    if steps < 1:
        raise OnnxAttrError(f"steps={steps}: the path needs at least 1 step (the paper uses 50-100)")
    if path in ("lam", "ig_blur"):
        check_blur(sigma, kernel_size)
    if batch_size is not None and batch_size < 1:
        raise OnnxAttrError(f"batch size {batch_size} must be at least 1 (or leave it unset)")
    if not 0 < fraction <= 1:
        raise OnnxAttrError(f"memory fraction {fraction} must lie in (0, 1]")
    return {"path": path, "steps": steps, "sigma": sigma, "kernel_size": kernel_size, "batch_size": batch_size,
            "memory_fraction": memory_fraction}


def lam(
    model: SRModel,
    image: torch.Tensor,
    window: WindowSpec,
    *,
    frame: str = "hr",
    steps: int = 50,
    sigma: float = 1.2,
    kernel_size: int = 9,
    path: str = "lam",
    batch_size: int | None = None,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    progress: bool = False,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """LAM of ``model`` for the output window(s) ``window`` on the LR ``image`` (1, C, h, w).

    ``window``: (x, y, size), several, or a ``Grid``, in the HR frame (``frame='hr'``, HR-image
    pixels) or the output's (``frame='sr'``); see ``windows.geometry``. For each window k
    A_k = sum_{i=1..m} dD_k(F(x_i))/dx_i * (x_i - x_{i-1}) (eq. 4 as the authors' code computes it) along
    the path ``path`` (see ``paths``); the forwards are shared by all windows. ``batch_size``
    points run per pass; by default as many as fit in ``memory_fraction`` of the free RAM (or free CUDA
    memory) by ``estimate``, at most ``CPU_MAX_BATCH`` on a CPU (``choose_batch``). ``hr``:
    the HR image (HR frame or already aligned with the output). Returns the shared result layout plus
    ``baseline`` (channel, y, x) and ``path_objective`` (window, step) = D_k(F(x_i)), i = 0..m; per
    window ``completeness_error``, ``objective_input``
    and ``objective_baseline``; attrs: the parameters, the batch size used and ``elapsed_s``.
    """
    t0 = time.perf_counter()
    model.check_input(image)
    check_params(path=path, steps=steps, sigma=sigma, kernel_size=kernel_size, batch_size=batch_size,
                 memory_fraction=memory_fraction)
    out_hw = model.output_size(image.shape[2], image.shape[3])
    wins = resolve_windows(window, model.offset, *out_hw, frame=frame)
    _, _, h, w = image.shape
    batch = choose_batch(model, h, w, steps=steps, path=path, windows=len(wins), batch_size=batch_size,
                         memory_fraction=memory_fraction)
    route = make_path(image, path, steps, sigma, kernel_size)
    with tqdm(total=route.points.shape[0], unit="step", desc="lam", disable=None if progress else True,
              leave=False) as bar:  # drawn on a terminal only
        res = path_attribution(model, route.points, route.weights, lambda out: window_detectors(out, wins), batch,
                               bar.update)
    params = {
        "path": path, "steps": steps, "sigma": sigma, "kernel_size": kernel_size, "batch_size": batch,
        "batch_size_requested": batch_size, "memory_fraction": memory_fraction,
        "memory_estimate_bytes": estimate(model, h, w, steps=steps, path=path, windows=len(wins), batch=batch),
        "batch_mode": model.batch_mode,
    }
    window_checks, data_vars = _checks(model, wins, route, res)
    return build_dataset(
        model=model, image=image, output=res.last_output, method="lam", windows=wins, frame=frame, params=params,
        elapsed_s=time.perf_counter() - t0, attribution=res.attribution, window_checks=window_checks,
        data_vars=data_vars, coords={"step": np.arange(steps + 1)} if route.baseline is not None else None,
        hr=align_hr(hr, model.offset, out_hw) if hr is not None else None, layout=METHODS["lam"].variables,
    )


def _checks(model: SRModel, wins: list[Window], route: IntegrationPath, res: PathResult
            ) -> tuple[dict[str, Any], dict[str, tuple[tuple[str, ...], Any]]]:
    """The per-window checks of a LAM result (completeness error, D at the input and at the baseline; DI, Gini
    and reach of the saliency come from ``build_dataset``, as for every method) and the path variables
    (``path_objective`` D_k(F(x_i)), i = 0..m, and ``baseline``).

    completeness_error = |sum A_k - (D_k(F(I)) - D_k(F(x_0)))| / |D_k(F(I)) - D_k(F(x_0))|: one extra forward, of
    the baseline; NaN for the plain gradient (no baseline) and where the gap is 0."""
    d_input = res.values[:, -1].numpy()
    k = len(wins)
    d_base, completeness = np.full(k, np.nan), np.full(k, np.nan)
    data_vars: dict[str, tuple[tuple[str, ...], Any]] = {}
    if route.baseline is not None:
        with torch.no_grad():
            d_base = window_detectors(model(route.baseline), wins)[0].cpu().double().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # a non-finite objective is refused (results.finite)
            gap = d_input - d_base
            total = res.attribution.sum(dim=(1, 2, 3)).numpy()
            completeness = np.where(gap != 0, np.abs(total - gap) / np.abs(gap), np.nan)
        data_vars["path_objective"] = (("window", "step"), np.concatenate([d_base[:, None], res.values.numpy()], axis=1))
        data_vars["baseline"] = (("channel", "y", "x"), route.baseline[0])
    checks = {"completeness_error": completeness, "objective_input": d_input, "objective_baseline": d_base}
    return checks, data_vars
