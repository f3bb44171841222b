"""Local attribution maps (LAM; Gu & Dong, CVPR 2021, Sec. 3.3-4) and their path-integral neighbours.

For an SR network F, the gradient detector D on an output window (``target.gradient_detector``,
eq. 1) and a path x_0 -> x_m from a baseline to the LR image I, the attribution is the right
Riemann sum of the path integral (eq. 2, discretised as eq. 4 and the authors' code):

    A = sum_{i=1..m} dD(F(x_i))/dx_i * (x_i - x_{i-1})        (elementwise, per channel)

Paths (``path=``):

* ``"lam"``: progressive blur, x_i = k(sigma (1 - i/m)) (*) I (eq. 3), baseline x_0 = k(sigma) (*) I;
* ``"ig_blur"``: straight line from the blurred baseline, x_i = x_0 + (i/m) (I - x_0);
* ``"ig_black"``: straight line from black, x_0 = 0 (integrated gradients);
* ``"gradient"``: the plain gradient dD(F(I))/dI, one pass.

Completeness (Sundararajan et al.; the paper's check after eq. 4): sum(A) = D(F(I)) - D(F(x_0))
for the exact integral; ``completeness_error`` says how far the m-step sum is from it.
The path is evaluated in batches of steps whose size comes from the memory estimate (``estimate``). The path does not
depend on the window: for K windows each batch of points runs forward once and takes one backward
per window (``window_gradients``), so K windows cost one forward and K backwards per step.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from . import memory
from .blur import blur, blur_path, check_blur
from .errors import OnnxAttrError
from .metrics import diffusion_index, gini, saliency
from .model import SRModel
from .options import DEFAULT_MEMORY_FRACTION, PATHS
from .results import build_dataset
from .target import WindowSpec, align_hr, resolve_windows, window_detectors

# Default caps on the batch on a CPU: beyond ~10 images, or ~256 MiB of activations (the forward + backward
# law P(h, w) times the batch), a pass costs more per step as its tensors leave the caches. Measured on the
# quiet 2-core machine (benchmarks/README.md, LAM): waifu2x 64x64 (23 MiB a point) best at batch 5-10, 25 is
# 1.35x slower; Real-ESRGAN Compact x4 at 64x64 (37 MiB) best at 5, at 128x128 (148 MiB) best at 1 (5: +7%, 10: +32%).
CPU_MAX_BATCH = 8
CPU_BATCH_BYTES = 256 * 2**20
# Bytes per window, point and input value of a batch's gradients: float32 from autograd (4), their float64
# copy (8) and the weighted copy summed into A (8).
GRADIENT_BYTES = 20


@dataclass(frozen=True)
class IntegrationPath:
    """The points where gradients are taken and their weights, float64 on the CPU.

    ``points`` (m, C, H, W): x_1..x_m; ``weights`` (m, C, H, W) (may be an expanded view):
    x_i - x_{i-1}; ``baseline`` (1, C, H, W): x_0, or None for the plain gradient.
    """

    points: torch.Tensor
    weights: torch.Tensor
    baseline: torch.Tensor | None


@dataclass(frozen=True)
class PathResult:
    """What ``path_attribution`` returns: A (K, C, H, W) float64, D at every point (K, m) float64,
    and the network output at the last point (1, C', H', W')."""

    attribution: torch.Tensor
    values: torch.Tensor
    last_output: torch.Tensor


def make_path(image: torch.Tensor, path: str, steps: int, sigma: float, kernel_size: int) -> IntegrationPath:
    """The path of ``path`` (one of ``PATHS``) from its baseline to ``image`` (1, C, H, W), m = ``steps``."""
    img = image.detach().cpu().to(torch.float64)
    if path == "lam":
        points, deltas = blur_path(img, sigma, steps, kernel_size)
        return IntegrationPath(points[1:], deltas, points[:1])
    if path == "gradient":
        return IntegrationPath(img, torch.ones_like(img), None)
    if path == "ig_blur":
        base = blur(img, sigma, kernel_size)
    elif path == "ig_black":
        base = torch.zeros_like(img)
    else:
        raise OnnxAttrError(f"unknown path {path!r}; pick one of {', '.join(PATHS)}")
    alphas = torch.arange(1, steps + 1, dtype=torch.float64).reshape(-1, 1, 1, 1) / steps
    points = base + alphas * (img - base)
    points[-1] = img[0]
    return IntegrationPath(points, ((img - base) / steps).expand_as(points), base)


def window_gradients(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dD_k/dx for every column k of ``d`` (N, K) computed from ``x`` (N, ...): (K, N, ...).

    Items of a batch are independent, so d(sum_n D_k(n))/dx holds every item's gradient. One backward
    per window through the one graph of the forward (kept with ``retain_graph`` until the last).
    """
    k = d.shape[1]
    grads = [torch.autograd.grad(d[:, i].sum(), x, retain_graph=i < k - 1)[0] for i in range(k)]
    return torch.stack(grads)


def path_attribution(
    f: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    weights: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> PathResult:
    """A_k = sum_i dD_k(F(x_i))/dx_i * w_i over ``points`` x_i (m, C, H, W), ``batch_size`` points per pass.

    ``f`` maps a float32 batch to outputs, ``objective`` outputs to one value per item and window (N, K);
    each pass is one forward and K backwards. Gradients come back in float32 and are accumulated in
    float64. ``on_batch(n)`` is called after each pass with the number of points it covered.
    """
    m = points.shape[0]
    total: torch.Tensor | None = None
    values: torch.Tensor | None = None
    out = None
    for start in range(0, m, batch_size):
        stop = min(start + batch_size, m)
        x = points[start:stop].to(torch.float32).requires_grad_(True)
        out = f(x)
        d = objective(out)
        grads = window_gradients(d, x).detach().cpu().to(torch.float64)
        if total is None:
            total = torch.zeros((d.shape[1], *points.shape[1:]), dtype=torch.float64)
            values = torch.empty((d.shape[1], m), dtype=torch.float64)
        total += (grads * weights[start:stop]).sum(dim=1)
        values[:, start:stop] = d.detach().cpu().to(torch.float64).T
        if on_batch is not None:
            on_batch(stop - start)
    assert out is not None and total is not None and values is not None
    return PathResult(total, values, out[-1:].detach())


def path_bytes(channels: int, height: int, width: int, steps: int, path: str) -> int:
    """The path's float64 tensors on the CPU, 8 C h w bytes times (2m + 1) for 'lam' (points x_0..x_m and the
    m increments), m + 2 for the straight paths (points, baseline, image), 2 for 'gradient'."""
    count = {"lam": 2 * steps + 1, "gradient": 2}.get(path, steps + 2)
    return 8 * count * channels * height * width


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

    ``window``: (x, y, size), several, or a ``target.Grid``, in the HR frame (``frame='hr'``, HR-image
    pixels) or the output's (``frame='sr'``); see ``target``. For each window k
    A_k = sum_{i=1..m} dD_k(F(x_i))/dx_i * (x_i - x_{i-1}) (eq. 4 as the authors' code computes it) along
    the path ``path`` (see the module docstring); the forwards are shared by all windows. ``batch_size``
    points run per pass; by default as many as fit in ``memory_fraction`` of the free RAM (or free CUDA
    memory) by ``estimate``, at most ``CPU_MAX_BATCH`` on a CPU (``choose_batch``). ``hr``:
    the HR image (HR frame or already aligned with the output). Returns the shared result layout plus
    ``baseline`` (channel, y, x) and ``path_objective`` (window, step) = D_k(F(x_i)), i = 0..m; per
    window ``diffusion_index`` and ``gini`` of the saliency, ``completeness_error``, ``objective_input``
    and ``objective_baseline``; attrs: the parameters, the batch size used and ``elapsed_s``.
    """
    t0 = time.perf_counter()
    model.check_input(image)
    check_params(path=path, steps=steps, sigma=sigma, kernel_size=kernel_size, batch_size=batch_size,
                 memory_fraction=memory_fraction)
    out_hw = model.output_size(image.shape[2], image.shape[3])
    wins = resolve_windows(window, model.offset, *out_hw, frame=frame)
    hr = align_hr(hr, model.offset, out_hw) if hr is not None else None

    def objective(out: torch.Tensor) -> torch.Tensor:
        return window_detectors(out, wins)

    _, c, h, w = image.shape
    batch = choose_batch(model, h, w, steps=steps, path=path, windows=len(wins), batch_size=batch_size,
                         memory_fraction=memory_fraction)
    route = make_path(image, path, steps, sigma, kernel_size)
    m = route.points.shape[0]
    with tqdm(total=m, unit="step", desc="lam", disable=None if progress else True, leave=False) as bar:  # a terminal only
        res = path_attribution(model, route.points, route.weights, objective, batch, bar.update)

    d_input = res.values[:, -1].numpy()
    k = len(wins)
    d_base, completeness = np.full(k, np.nan), np.full(k, np.nan)
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray | torch.Tensor]] = {}
    if route.baseline is not None:
        with torch.no_grad():
            d_base = objective(model(route.baseline))[0].cpu().double().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # a non-finite objective is refused below (check_result)
            gap = d_input - d_base
            total = res.attribution.sum(dim=(1, 2, 3)).numpy()
            completeness = np.where(gap != 0, np.abs(total - gap) / np.abs(gap), np.nan)
        data_vars["path_objective"] = (("window", "step"), np.concatenate([d_base[:, None], res.values.numpy()], axis=1))
        data_vars["baseline"] = (("channel", "y", "x"), route.baseline[0])
    sal = [saliency(a) for a in res.attribution]
    params = {
        "path": path,
        "steps": steps,
        "sigma": sigma,
        "kernel_size": kernel_size,
        "batch_size": batch,
        "batch_size_requested": batch_size,
        "memory_fraction": memory_fraction,
        "memory_estimate_bytes": estimate(model, h, w, steps=steps, path=path, windows=len(wins), batch=batch),
        "batch_mode": model.batch_mode,
    }
    window_checks = {
        "diffusion_index": [diffusion_index(s) for s in sal],
        "gini": [gini(s) for s in sal],
        "completeness_error": completeness,
        "objective_input": d_input,
        "objective_baseline": d_base,
    }
    return build_dataset(
        model=model,
        image=image,
        output=res.last_output,
        method="lam",
        windows=wins,
        frame=frame,
        params=params,
        elapsed_s=time.perf_counter() - t0,
        attribution=res.attribution,
        window_checks=window_checks,
        data_vars=data_vars,
        coords={"step": np.arange(steps + 1)} if route.baseline is not None else None,
        hr=hr,
    )
