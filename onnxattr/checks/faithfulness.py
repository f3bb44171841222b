"""Is a map faithful for its window? Deletion and insertion curves (Petsiuk, Das & Saenko, "RISE", BMVC 2018,
Sec. 4.1), made to inform for one SR window, with two controls.

**Region.** A window's influence region S (``influence_region``) holds the LR pixels through which the input
can change the window: those with a non-zero gradient of t_k = (sum of the window's SR values) + D_k at the image
or at a baseline, thresholded by ``metrics.masking``'s support rule. It is the masking curves' region (the
attribution's support, ``metrics.masking``) measured once from the model, so every method of a window shares
it and its curves share an x axis: the fraction f of S, 0 .. 1.

**Orders.** The map's: ``metrics.masking.pixel_order`` (sum_c |A_c| descending) restricted to S. Two controls,
``seeds`` of each: random orders (a permutation of S) and the orders of random maps (white noise blurred by a
Gaussian of ``RANDOM_MAP_SIGMA`` LR px: blobs like an attribution map's, no knowledge of the model), so a
score means something.

**Curves.** Deletion: x_f is the image with the first round(f |S|) pixels of the order replaced by the method's
baseline (``metrics.masking.mask_pixels``); insertion starts from x_S (all of S replaced, i.e. deletion at f = 1)
and restores the image's pixels in the same order. Each x_f runs forward (onnxruntime, ``masking.forward``);
recorded are the window's detector D_k (LAM's eq. 1, the number every method explains) and, with an HR image,
the window's PSNR (Y) against it.

**Normalised.** d(f) = (D(x_f) - D(x_S)) / (D(x) - D(x_S)): 1 at the image, 0 at x_S, on both curves, for every
method and model; AUC = the trapezoid integral of d over f in [0, 1]. Deletion: lower is more faithful (the
pixels ranked first matter most); insertion: higher. A window whose detector the baseline leaves unchanged
(|D(x) - D(x_S)| <= ``FLAT_GAP`` |D(x)|) has no normalised curve (NaN). The PSNR curves are normalised the same
way between PSNR(x) and PSNR(x_S).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter

from ..arrays import to_numpy
from ..errors import OnnxAttrError
from ..methods import memory
from ..methods.blur import blur
from ..metrics.masking import forward, mask_pixels, pixel_order, support_order
from ..metrics.quality import psnr
from ..options import DEFAULT_MEMORY_FRACTION
from ..windows.detector import window_detectors
from ..windows.geometry import Window

CURVES = ("deletion", "insertion")
ORDERS = ("map", "random_order", "random_map")
RANDOM_MAP_SIGMA = 2.0  # LR px: the blob size of the random-map control
FLAT_GAP = 1e-6  # relative |D(x) - D(x_S)| below which a window's curve cannot be normalised
MAX_BATCH = 16  # images per onnxruntime run
BLUR = (1.2, 9)  # sigma, kernel: the baseline of a method without one (LAM's and L2X's default)


def deletion_baseline(ds: xr.Dataset, image: torch.Tensor) -> np.ndarray:
    """What deletion puts in for a method's result: its own ``baseline``, else ``image`` (1, C, h, w) blurred by
    ``BLUR``."""
    return ds["baseline"].values if "baseline" in ds else to_numpy(blur(image.cpu(), *BLUR)[0], np.float32)


def fractions_of(steps: int) -> np.ndarray:
    """f = 0, 1/steps, ..., 1."""
    if steps < 2:
        raise OnnxAttrError(f"{steps} curve steps: the deletion and insertion curves need at least 2 (e.g. 16)")
    return np.linspace(0.0, 1.0, steps + 1)


def influence_region(model, image: torch.Tensor, windows: Sequence[Window],
                     baselines: Sequence[torch.Tensor] = ()) -> list[np.ndarray]:
    """S_k for each window: the flat LR pixel indices (ascending) where |d t_k / dx| summed over the image and the
    ``baselines`` (each (1, C, h, w)) passes ``masking.support_order``'s threshold; t_k = the window's SR sum + D_k.
    One forward and K backwards per input."""
    _, c, h, w = image.shape
    memory.require(memory.pass_law(model)(h, w), memory.free_memory(model.device),
                   f"the influence region of a {w}x{h} image", ["crop the image (--crop)", *memory.device_fix(model.device)],
                   model.device)
    total = torch.zeros(len(windows), c, h, w, dtype=torch.float64)
    for x0 in (image, *baselines):
        x = x0.to(model.device, torch.float32).detach().requires_grad_(True)
        with torch.enable_grad():
            out = model(x)
            d = window_detectors(out, windows)[0]
            for k, win in enumerate(windows):
                t = out[..., win.y : win.y + win.size, win.x : win.x + win.size].sum() + d[k]
                (g,) = torch.autograd.grad(t, x, retain_graph=k < len(windows) - 1)
                total[k] += g[0].abs().double().cpu()
    return [np.sort(support_order(g)) for g in total]


def control_orders(region: np.ndarray, shape: tuple[int, int], seeds: int) -> dict[str, list[np.ndarray]]:
    """The controls' orders of ``region``: ``seeds`` random permutations, and the orders of ``seeds`` random smooth
    maps (N(0, 1) noise blurred by RANDOM_MAP_SIGMA px, highest first) restricted to it."""
    maps = [gaussian_filter(np.random.default_rng([1, s]).standard_normal(shape), RANDOM_MAP_SIGMA) for s in range(seeds)]
    return {"random_order": [np.random.default_rng([0, s]).permutation(region) for s in range(seeds)],
            "random_map": [map_order((m - m.min())[None], region) for m in maps]}


def map_order(attribution: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``masking.pixel_order`` of a map (C, h, w), restricted to ``region``."""
    order = pixel_order(attribution)
    return order[np.isin(order, region)]


def forward_batch(model, height: int, width: int) -> int:
    """Images per forward: as many as fit in DEFAULT_MEMORY_FRACTION of the free memory by the model's forward +
    backward law (an upper bound of a forward's), at most MAX_BATCH; refused when one does not fit."""
    law, free = memory.pass_law(model), memory.free_memory(model.device)
    memory.require(law(height, width), free, f"a forward of a {width}x{height} image",
                   ["crop the image (--crop)", *memory.device_fix(model.device)], model.device)
    return max(1, memory.largest_batch(lambda n: n * law(height, width), int(DEFAULT_MEMORY_FRACTION * free), MAX_BATCH))


def window_curves(model, image: np.ndarray, baseline: np.ndarray, window: Window, region: np.ndarray,
                  orders: Sequence[np.ndarray], fractions: np.ndarray, hr: np.ndarray | None, batch: int
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Raw deletion and insertion curves of one window for each order (a permutation of ``region``):
    D_k as (order, curve, fraction), the window's PSNR (Y) against ``hr`` likewise (None without), and the
    endpoints D(x), D(x_S) (and PSNR(x), PSNR(x_S)) as a (2, 2) array [detector, psnr] x [image, x_S].

    ``image``, ``baseline`` (C, h, w) and ``hr`` (C, H, W, aligned with the output) in [0, 1]. The endpoints
    f = 0 and 1 are the image and x_S for every order: two forwards, then 2 (F - 1) per order."""
    n = len(region)
    x_s = mask_pixels(image, region, 1.0, n, fill=baseline)
    rows, cols = slice(window.y, window.y + window.size), slice(window.x, window.x + window.size)

    def measure(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = forward(model, xs.astype(np.float32), batch)
        d = window_detectors(torch.from_numpy(out), [window])[:, 0].double().numpy()
        if hr is None:
            return d, np.full(len(xs), np.nan)
        crop = np.clip(out[:, :, rows, cols], 0, 1)
        return d, np.atleast_1d(psnr(crop, np.clip(hr[:, rows, cols], 0, 1), y=True))

    ends_d, ends_p = measure(np.stack([image, x_s]))
    inner = fractions[1:-1]
    det = np.empty((len(orders), 2, len(fractions)))
    qual = np.empty_like(det)
    det[:, 0, 0], det[:, 0, -1], det[:, 1, 0], det[:, 1, -1] = ends_d[0], ends_d[1], ends_d[1], ends_d[0]
    qual[:, 0, 0], qual[:, 0, -1], qual[:, 1, 0], qual[:, 1, -1] = ends_p[0], ends_p[1], ends_p[1], ends_p[0]
    for i, order in enumerate(orders):
        xs = [mask_pixels(image, order, f, n, fill=baseline) for f in inner]
        xs += [mask_pixels(x_s, order, f, n, fill=image) for f in inner]
        d, p = measure(np.stack(xs))
        det[i, :, 1:-1], qual[i, :, 1:-1] = d.reshape(2, -1), p.reshape(2, -1)
    return det, (qual if hr is not None else None), np.array([ends_d, ends_p])


def normalised(values: np.ndarray, start: float, end: float) -> np.ndarray:
    """(v - end) / (start - end): 1 at the image, 0 at x_S; NaN when the two differ by at most FLAT_GAP |start|."""
    gap = start - end
    if not abs(gap) > FLAT_GAP * abs(start):
        return np.full(np.shape(values), np.nan)
    return (np.asarray(values) - end) / gap


def auc(curve: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``curve`` (..., fraction) over ``fractions``."""
    d = np.diff(fractions)
    return ((curve[..., 1:] + curve[..., :-1]) / 2 * d).sum(axis=-1)


def faithfulness(model, image: torch.Tensor, attributions: Mapping[str, np.ndarray], baselines: Mapping[str, np.ndarray],
                 windows: Sequence[Window], regions: Sequence[np.ndarray], *, steps: int = 16, seeds: int = 3,
                 hr: torch.Tensor | None = None) -> xr.Dataset:
    """Deletion and insertion curves of each method's maps (``attributions``: name -> (K, C, h, w)) for the K
    ``windows`` (SR pixels) on ``image`` (1, C, h, w), each replacing pixels by its method's ``baselines``
    (name -> (C, h, w)), over the windows' influence ``regions`` (``influence_region``); the controls run once
    per distinct baseline and window and are shared by the methods that use it.

    Returns dims (method, window, curve, order, fraction): ``detector`` (normalised d, mean over the seeds of a
    control) and ``detector_std`` (their std, 0 for the map), ``auc`` and ``auc_std`` (method, window, curve,
    order), ``detector_image`` and ``detector_baseline`` (method, window: D(x), D(x_S)), ``region_pixels``
    (window: |S|) and, with ``hr`` (1, C, H, W, aligned with the output), ``psnr``/``psnr_std`` (dB, raw) and
    ``auc_psnr``/``auc_psnr_std`` (normalised as d)."""
    if seeds < 1:
        raise OnnxAttrError("the deletion and insertion controls need at least one random seed (seeds >= 1)")
    fractions = fractions_of(steps)
    x = to_numpy(image[0], np.float32)
    target = to_numpy(hr[0], np.float32) if hr is not None else None
    names = list(attributions)
    k, (h, w) = len(windows), x.shape[1:]
    batch = forward_batch(model, h, w)
    curve_shape, auc_shape = (len(names), k, len(CURVES), len(ORDERS), len(fractions)), (len(names), k, len(CURVES), len(ORDERS))
    out = {v: np.full(curve_shape, np.nan) for v in ("detector", "detector_std", "psnr", "psnr_std")}
    out.update({v: np.full(auc_shape, np.nan) for v in ("auc", "auc_std", "auc_psnr", "auc_psnr_std")})
    ends = np.full((len(names), k, 2, 2), np.nan)
    controls: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}
    for m, name in enumerate(names):
        base = np.asarray(baselines[name], np.float32)
        for j, (win, region) in enumerate(zip(windows, regions)):
            key = (base.tobytes(), j)
            if key not in controls:
                ordered = control_orders(region, (h, w), seeds)
                controls[key] = window_curves(model, x, base, win, region, ordered["random_order"] + ordered["random_map"],
                                              fractions, target, batch)
            c_det, c_psnr, end = controls[key]
            det, qual, _ = window_curves(model, x, base, win, region, [map_order(attributions[name][j], region)],
                                         fractions, target, batch)
            ends[m, j] = end
            for var, area, mine, ctrl, (start, stop) in (("detector", "auc", det, c_det, end[0]),
                                                         ("psnr", "auc_psnr", qual, c_psnr, end[1])):
                if mine is None:
                    continue
                groups = [mine, ctrl[:seeds], ctrl[seeds:]]  # (n, curve, fraction) each: the map, the two controls
                shown = [normalised(g, start, stop) for g in groups] if var == "detector" else groups
                areas = [auc(normalised(g, start, stop), fractions) for g in groups]
                out[var][m, j] = np.stack([g.mean(axis=0) for g in shown], axis=1)
                out[f"{var}_std"][m, j] = np.stack([g.std(axis=0) for g in shown], axis=1)
                out[area][m, j] = np.stack([a.mean(axis=0) for a in areas], axis=1)
                out[f"{area}_std"][m, j] = np.stack([a.std(axis=0) for a in areas], axis=1)
    dims = ("method", "window", "curve", "order", "fraction")
    data = {
        "detector": (dims, out["detector"]), "detector_std": (dims, out["detector_std"]),
        "auc": (dims[:-1], out["auc"]), "auc_std": (dims[:-1], out["auc_std"]),
        "detector_image": (("method", "window"), ends[:, :, 0, 0]),
        "detector_baseline": (("method", "window"), ends[:, :, 0, 1]),
        "region_pixels": (("window",), np.array([len(r) for r in regions])),
    }
    if hr is not None:
        data.update({"psnr": (dims, out["psnr"]), "psnr_std": (dims, out["psnr_std"]),
                     "auc_psnr": (dims[:-1], out["auc_psnr"]), "auc_psnr_std": (dims[:-1], out["auc_psnr_std"])})
    return xr.Dataset(data, coords={"method": names, "curve": list(CURVES), "order": list(ORDERS), "fraction": fractions},
                      attrs={"curve_seeds": seeds, "random_map_sigma": RANDOM_MAP_SIGMA})
