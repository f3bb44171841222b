"""Local attribution maps (LAM; Gu & Dong, CVPR 2021, Sec. 3.3-4) and their path-integral neighbours.

For an SR network F, the gradient detector D on an output window (``windows.detector``, eq. 1; or the authors'
toolbox's other objectives, the window's intensity and its Gabor response) and a path
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
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..errors import OnnxAttrError
from ..intake import SRModel
from ..options import DEFAULT_MEMORY_FRACTION, PATHS
from ..results.build import build_dataset
from ..windows.detector import check_objective, check_objective_windows, objective_reach, window_objectives
from ..windows.geometry import Window, WindowSpec, align_hr, resolve_windows
from . import memory
from .baselines import check_baseline
from .blur import check_blur
from .paths import IntegrationPath, PathResult, make_path, path_attribution, path_bytes
from .receptive_field import receptive_field as theoretical_field
from .receptive_field.region import Region, agrees, field_region
from .registry import METHODS
from .smooth import active, check_smooth, combine, noisy_copies

# Default caps on the batch on a CPU: beyond ~10 images, or ~256 MiB of activations (the forward + backward
# law P(h, w) times the batch), a pass costs more per step as its tensors leave the caches. Measured on the
# quiet 2-core machine (benchmarks/README.md, LAM): waifu2x 64x64 (23 MiB a point) best at batch 5-10, 25 is
# 1.35x slower; Real-ESRGAN Compact x4 at 64x64 (37 MiB) best at 5, at 128x128 (148 MiB) best at 1 (5: +7%, 10: +32%).
CPU_MAX_BATCH = 8
CPU_BATCH_BYTES = 256 * 2**20
# Bytes per window, point and input value of a batch's gradients: float32 from autograd (4), their float64
# copy (8) and the weighted copy summed into A (8).
GRADIENT_BYTES = 20


def estimate(model: SRModel, height: int, width: int, *, steps: int, path: str, windows: int, batch: int,
             copies: int = 1, crop: tuple[int, int] | None = None) -> int:
    """Peak bytes of ``lam`` on the model's device for an h x w image whose passes run on a crop of h' x w' (``crop``;
    the image by default), K = ``windows``, n = ``batch``, G = ``copies`` (noisy copies, ``smooth``):

        n P(h', w') + GRADIENT_BYTES K n C h' w' + 8 K G C h w  (+ G ``path_bytes`` on the CPU, where the paths live too)

    with P the model's forward + backward peak at batch 1 (``memory.pass_peak``) and 8 K G C h w the float64 sums A of every copy."""
    c = model.in_channels
    ph, pw = crop or (height, width)
    need = batch * (memory.pass_peak(model, ph, pw) + GRADIENT_BYTES * windows * c * ph * pw)
    need += 8 * copies * windows * c * height * width
    return need + (copies * path_bytes(c, height, width, steps, path) if model.device.type == "cpu" else 0)


def choose_batch(model: SRModel, height: int, width: int, *, steps: int, path: str, windows: int,
                 batch_size: int | None, memory_fraction: float, copies: int = 1,
                 crop: tuple[int, int] | None = None) -> int:
    """Path points per pass, checked against the free memory (``memory.free_memory``) before anything is allocated.

    ``batch_size`` is kept when ``estimate`` says it fits in the free memory, else refused naming the batch that
    fits. By default: the largest batch that fits in ``memory_fraction`` of it, at most the paths' points (and
    on a CPU ``CPU_MAX_BATCH`` and ``CPU_BATCH_BYTES`` of activations), with a warning when memory lowers it below
    that; refused when even one point does not fit. On CUDA the path (on the CPU) is checked against the CPU's free memory first.
    ``crop``: the passes' h' x w' (``estimate``).
    """
    m = (1 if path == "gradient" else steps) * copies
    dev, cpu, c = model.device, torch.device("cpu"), model.in_channels
    image = f"a {width}x{height} image"
    paths = copies * path_bytes(c, height, width, steps, path)
    if dev.type != "cpu":
        memory.require(paths, memory.free_memory(cpu), f"LAM's {steps}-step {path} path for {image}",
                       ["pass fewer steps (--steps)", "crop the image (--crop)"], cpu)

    def need(n: int) -> int:
        return estimate(model, height, width, steps=steps, path=path, windows=windows, batch=n, copies=copies, crop=crop)

    def refuse(n: int, smaller: int) -> None:
        fixes = [f"pass --batch-size {smaller}"] if smaller else []
        if dev.type == "cpu" and 2 * paths > need(n):
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
        peak = memory.pass_peak(model, *(crop or (height, width)))
        wanted = min(m, CPU_MAX_BATCH, max(1, CPU_BATCH_BYTES // max(peak, 1)))
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
    *, path: str, steps: int, sigma: float, kernel_size: int, batch_size: int | None, memory_fraction: float,
    baseline: str = "gaussian", objective: str = "grad", reduce: str = "sum", smooth: int = 1, noise: float = 0.0,
    smooth_type: str = "smoothgrad", field_crop: bool = True, **_: object
) -> dict[str, object]:
    """One-line errors for LAM parameters no run can use (checked before any model loads); the parameters."""
    fraction = memory_fraction
    if path not in PATHS:
        raise OnnxAttrError(f"unknown path {path!r}; pick one of {', '.join(PATHS)}")
    if steps < 1:
        raise OnnxAttrError(f"steps={steps}: the path needs at least 1 step (the paper uses 50-100)")
    if path in ("lam", "ig_blur") or (path, baseline) == ("i_gradient", "blur"):
        check_blur(sigma, kernel_size)
    check_baseline(baseline)
    if baseline != "gaussian" and path != "i_gradient":
        raise OnnxAttrError(f"baseline {baseline!r} is the baseline of --path i_gradient (LAM_Demo saliency_map_I_gradient); "
                            f"pass --path i_gradient, or drop --baseline for --path {path}")
    check_objective(objective, reduce)
    check_smooth(smooth, noise, smooth_type)
    if batch_size is not None and batch_size < 1:
        raise OnnxAttrError(f"batch size {batch_size} must be at least 1 (or leave it unset)")
    if not 0 < fraction <= 1:
        raise OnnxAttrError(f"memory fraction {fraction} must lie in (0, 1]")
    if not isinstance(field_crop, (bool, np.bool_)):
        raise OnnxAttrError(f"field_crop={field_crop!r}: pass True or False")
    return {"path": path, "steps": steps, "sigma": sigma, "kernel_size": kernel_size, "batch_size": batch_size,
            "memory_fraction": memory_fraction, "baseline": baseline, "objective": objective, "reduce": reduce,
            "smooth": smooth, "noise": noise, "smooth_type": smooth_type, "field_crop": bool(field_crop)}


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
    baseline: str = "gaussian",
    objective: str = "grad",
    reduce: str = "sum",
    smooth: int = 1,
    noise: float = 0.0,
    smooth_type: str = "smoothgrad",
    seed: int = 0,
    receptive_field: bool = False,
    field_crop: bool = True,
    batch_size: int | None = None,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    progress: bool = False,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """LAM of ``model`` for the output window(s) ``window`` on the LR ``image`` (1, C, h, w).

    ``window``: (x, y, size), several, or a ``Grid``, in the HR frame (``frame='hr'``, HR-image
    pixels) or the output's (``frame='sr'``); see ``windows.geometry``. For each window k
    A_k = sum_{i=1..m} dD_k(F(x_i))/dx_i * (x_i - x_{i-1}) (eq. 4 as the authors' code computes it) along
    the path ``path`` (see ``paths``; ``baseline`` is the baseline of 'i_gradient'); the forwards are shared by all
    windows. D is ``objective`` ('grad' LAM's gradient detector, 'intensity', 'gabor'; ``windows.detector``)
    reduced by ``reduce`` ('sum', 'mean'). ``smooth`` N > 1 or ``noise`` sigma > 0: the map of N noisy copies
    (``smooth``, seeded by ``seed``), combined by ``smooth_type``, their paths in the same batches.
    ``receptive_field``: add the graph's theoretical receptive field (``receptive_field``; a graph walk, seconds for a
    transformer). ``field_crop``: where the graph's field is finite, run the passes on the crop the windows depend on
    (``receptive_field.region``; the same map, 0 outside the crop, at the crop's cost; attr ``field_box``).
    ``batch_size`` points run per pass; by default as many as fit in ``memory_fraction`` of the free RAM
    (or free CUDA memory) by ``estimate``, at most ``CPU_MAX_BATCH`` on a CPU (``choose_batch``). ``hr``: the HR image
    (HR frame or already aligned with the output). Returns the shared result layout plus ``baseline`` (channel, y, x)
    and the path results (window, step): ``path_objective`` D_k(F(x_i)) and ``path_attribution`` the attribution mass
    of step i (0 at the baseline, summing to sum A_k), with ``path_increment`` |x_i - x_{i-1}| (step); per window
    ``completeness_error``, ``objective_input`` and ``objective_baseline`` (DI, Gini, reach and the 95 % mass pixels
    of the saliency come from ``build_dataset``, as for every method); attrs: the parameters, the batch size used and ``elapsed_s``.
    """
    t0 = time.perf_counter()
    model.check_input(image)
    check_params(path=path, steps=steps, sigma=sigma, kernel_size=kernel_size, batch_size=batch_size,
                 memory_fraction=memory_fraction, baseline=baseline, objective=objective, reduce=reduce, smooth=smooth,
                 noise=noise, smooth_type=smooth_type, field_crop=field_crop)
    out_hw = model.output_size(image.shape[2], image.shape[3])
    wins = resolve_windows(window, model.offset, *out_hw, frame=frame)
    check_objective_windows(objective, wins, *out_hw)
    _, _, h, w = image.shape
    region, output = (_crop_for(model, image, wins, out_hw, objective, reduce, memory_fraction) if field_crop
                      else (None, None))
    crop = region.crop if region is not None else _whole
    pass_hw = tuple(crop(image).shape[2:])
    copies = smooth if active(noise) else 1
    batch = choose_batch(model, h, w, steps=steps, path=path, windows=len(wins), batch_size=batch_size,
                         memory_fraction=memory_fraction, copies=copies, crop=pass_hw)
    starts = noisy_copies(image, smooth, noise, seed) if active(noise) else image
    route = _route([make_path(x[None], path, steps, sigma, kernel_size, baseline) for x in starts])
    run_wins = [region.window(win) for win in wins] if region is not None else wins

    def d_of(out: torch.Tensor) -> torch.Tensor:
        return window_objectives(out, run_wins, objective, reduce)

    with tqdm(total=route.points.shape[0], unit="step", desc="lam", disable=None if progress else True,
              leave=False) as bar:  # drawn on a terminal only
        res = path_attribution(model, crop(route.points), crop(route.weights), d_of, batch, bar.update, copies=copies)
    if region is not None:
        res = replace(res, attribution=region.embed(res.attribution, h, w))
    attribution = combine(res.attribution, smooth_type, dim=1) if active(noise) else res.attribution[:, 0]
    if output is None and active(noise):  # the output of the image itself, not of its last noisy copy
        with torch.no_grad():
            output = model(image).detach()
    output = res.last_output if output is None else output
    params = {
        "path": path, "steps": steps, "sigma": sigma, "kernel_size": kernel_size,
        "baseline": baseline if path == "i_gradient" else None, "objective": objective, "reduce": reduce,
        **({"smooth": smooth, "noise": noise, "smooth_type": smooth_type, "seed": seed} if active(noise) else {}),
        "field_crop": field_crop, "field_box": region.box() if region is not None else None,
        "batch_size": batch, "batch_size_requested": batch_size, "memory_fraction": memory_fraction,
        "memory_estimate_bytes": estimate(model, h, w, steps=steps, path=path, windows=len(wins), batch=batch,
                                          copies=copies, crop=pass_hw),
        "batch_mode": model.batch_mode,
    }
    window_checks, data_vars = _checks(model, wins, route, res, attribution, d_of, batch,
                                       smooth_type if active(noise) else "smoothgrad", crop)
    return build_dataset(
        model=model, image=image, output=output, method="lam", windows=wins, frame=frame, params=params,
        elapsed_s=time.perf_counter() - t0, attribution=attribution, window_checks=window_checks,
        checks=theoretical_field(model).attrs() if receptive_field else None,
        data_vars=data_vars, coords={"step": np.arange(steps + 1)} if route.baseline is not None else None,
        hr=align_hr(hr, model.offset, out_hw) if hr is not None else None, layout=METHODS["lam"].variables,
    )


def _whole(x: torch.Tensor) -> torch.Tensor:
    return x


def _crop_for(model: SRModel, image: torch.Tensor, wins: list[Window], out_hw: tuple[int, int], objective: str,
              reduce: str, memory_fraction: float) -> tuple[Region | None, torch.Tensor | None]:
    """The crop LAM's passes run on (``field_region`` of what the objective reads, its walk within ``memory_fraction``
    of the free RAM), checked on the image (``agrees``: those output pixels and D), and the image's output when that
    check computed it (``out_hw``: the image's output size)."""
    reaches = [objective_reach(objective, win, *out_hw) for win in wins]
    budget = memory_fraction * memory.free_memory(torch.device("cpu"))
    region = field_region(model, image.shape[2], image.shape[3], reaches, budget)
    if region is None:
        return None, None
    with torch.no_grad():
        whole, part = model(image).detach(), model(region.crop(image)).detach()
    moved = [region.window(win) for win in wins]

    def objectives(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return window_objectives(a, wins, objective, reduce), window_objectives(b, moved, objective, reduce)

    return (region if agrees(region, reaches, whole, part, objectives) else None), whole


def _route(routes: list[IntegrationPath]) -> IntegrationPath:
    """One path, or the paths of several copies one after the other (baselines stacked)."""
    if len(routes) == 1:
        return routes[0]
    base = [r.baseline for r in routes]
    return IntegrationPath(torch.cat([r.points for r in routes]), torch.cat([r.weights for r in routes]),
                           None if base[0] is None else torch.cat(base))  # type: ignore[arg-type]


def _checks(model: SRModel, wins: list[Window], route: IntegrationPath, res: PathResult, attribution: torch.Tensor,
            d_of: Any, batch: int, smooth_type: str, crop: Any = _whole
            ) -> tuple[dict[str, Any], dict[str, tuple[tuple[str, ...], Any]]]:
    """The per-window checks of a LAM result (DI, Gini and 95 % pixels of the saliency, completeness error, D at the
    input and at the baseline) and the path variables: ``path_objective`` D_k(F(x_i)), ``path_attribution`` the mass
    of step i (0 at i = 0), ``path_increment`` |x_i - x_{i-1}|_2 (i = 0..m, means over the G copies) and ``baseline``.

    completeness_error = |sum A_k - (D_k(F(I)) - D_k(F(x_0)))| / |D_k(F(I)) - D_k(F(x_0))| (means over the copies): one
    extra forward per copy, of its baseline (its ``crop``, where the passes ran); NaN for the plain gradient (no
    baseline), where the gap is 0, and for smoothgrad_sq / vargrad (no completeness)."""
    k, copies = len(wins), res.attribution.shape[1]
    m = res.values.shape[1] // copies
    values = res.values.reshape(k, copies, m)
    d_input = values[:, :, -1].mean(dim=1).numpy()
    d_base, completeness = np.full(k, np.nan), np.full(k, np.nan)
    data_vars: dict[str, tuple[tuple[str, ...], Any]] = {}
    if route.baseline is not None:
        with torch.no_grad():
            d_bases = torch.cat([d_of(model(crop(route.baseline[i : i + batch]))) for i in range(0, copies, batch)])
        d_bases = d_bases.cpu().double().T  # (K, G)
        d_base = d_bases.mean(dim=1).numpy()
        if smooth_type == "smoothgrad":
            with np.errstate(divide="ignore", invalid="ignore"):  # a non-finite objective is refused (results.finite)
                gap = d_input - d_base
                total = attribution.sum(dim=(1, 2, 3)).numpy()
                completeness = np.where(gap != 0, np.abs(total - gap) / np.abs(gap), np.nan)

        def per_step(first: torch.Tensor, points: torch.Tensor) -> np.ndarray:
            """Step 0's values (rows, G, 1) and every point's (rows, G m) as (rows, m + 1), the mean over the copies."""
            return torch.cat([first, points.reshape(-1, copies, m)], dim=2).mean(dim=1).numpy()

        zero = torch.zeros(k, copies, 1, dtype=torch.float64)
        norms = route.weights.reshape(copies * m, -1).norm(dim=1)
        data_vars["path_objective"] = (("window", "step"), per_step(d_bases[:, :, None], values))
        data_vars["path_attribution"] = (("window", "step"), per_step(zero, res.masses))
        data_vars["path_increment"] = (("step",), per_step(zero[:1], norms[None])[0])
        data_vars["baseline"] = (("channel", "y", "x"), route.baseline.mean(dim=0))
    checks = {"completeness_error": completeness, "objective_input": d_input, "objective_baseline": d_base}
    return checks, data_vars
