"""The effective receptive field (ERF; Luo et al., NeurIPS 2016) as SR papers draw it (MambaIR ``analysis/erf.py``,
VMamba ``get_erf.py``, SMFANet ``plt/main_erf.py``, after RepLKNet's ``visualize_erf.py``).

For an output window W_k (by default the centre pixel of the SR output, (W' // 2, H' // 2) as those scripts take
it; or a point, or any window) and N images x_n:

    ERF_k(p) = (1/N) sum_n sum_c |d D_k(F(x_n)) / d x_n,c(p)|,   D_k(O) = sum over channels and W_k of O

the magnitude of the gradient of the window's output with respect to each LR input pixel, summed over the input
channels and averaged over the images (the scripts take ReLU(gradient) instead of |.|, of ReLU(output) for the
classification nets, and sum instead of average in SMFANet). The images run in batches with one backward per window.
A result holds the map in LR pixels (``erf``), the radii around the window's centre that hold 20 / 50 / 95 % of its
mass (``metrics.mass_radii``), and the graph's theoretical receptive field (``receptive_field``): its side in the
attrs and, where finite, each window's box and the share of the ERF outside it (0 up to rounding).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..errors import OnnxAttrError
from ..intake import SRModel
from ..metrics import mass_radii
from ..options import DEFAULT_MEMORY_FRACTION, ERF_MASSES
from ..results.build import build_dataset
from ..windows.detector import window_objectives
from ..windows.geometry import Window, WindowSpec, align_hr, lr_centre, resolve_windows
from . import memory
from .lam import CPU_BATCH_BYTES, CPU_MAX_BATCH, GRADIENT_BYTES
from .paths import window_gradients
from .receptive_field import output_boxes, receptive_field, window_box
from .registry import METHODS, radius_name
from .smooth import active, check_smooth, combine, noisy_copies

CORNERS = ("x0", "y0", "x1", "y1")


def estimate(model: SRModel, height: int, width: int, *, images: int, windows: int, batch: int, copies: int = 1) -> int:
    """Peak bytes of ``erf`` for N = ``images`` h x w images, K = ``windows``, n = ``batch``, G = ``copies``:

        n P(h, w) + GRADIENT_BYTES K n C h w + 8 K N (G + 1) C h w

    with P the model's forward + backward peak at batch 1 (``memory.pass_peak``) and 8 K N G C h w the float64 |gradients| of every
    image and copy (then their mean)."""
    c = model.in_channels
    sums = 8 * windows * images * (copies + 1) * c * height * width
    return batch * memory.pass_peak(model, height, width) + GRADIENT_BYTES * windows * batch * c * height * width + sums


def choose_batch(model: SRModel, height: int, width: int, *, images: int, windows: int, copies: int,
                 batch_size: int | None, memory_fraction: float) -> int:
    """Images per pass: ``batch_size`` when it fits in the free memory, else the largest that fits in
    ``memory_fraction`` of it (on a CPU at most ``CPU_MAX_BATCH`` and ``CPU_BATCH_BYTES`` of activations)."""
    n = images * copies
    dev = model.device

    def need(b: int) -> int:
        return estimate(model, height, width, images=images, windows=windows, batch=b, copies=copies)

    free = memory.free_memory(dev)
    what = f"the ERF of {windows} window(s) on {images} {width}x{height} image(s)"
    fixes = ["pass a smaller --batch-size", "explain fewer windows", "pass fewer or smaller images",
             *memory.device_fix(dev)]
    if batch_size is not None:
        memory.require(need(min(batch_size, n)), free, what, fixes, dev)
        return min(batch_size, n)
    wanted = n
    if dev.type == "cpu":
        wanted = min(n, CPU_MAX_BATCH, max(1, CPU_BATCH_BYTES // max(memory.pass_peak(model, height, width), 1)))
    batch = memory.largest_batch(need, int(memory_fraction * free), wanted)
    if batch == 0:
        memory.require(need(1), free, what, fixes, dev)
        batch = 1
    if batch < wanted:
        warnings.warn(f"ERF runs {batch} image(s) per pass, not {wanted} (--memory-fraction)", stacklevel=3)
    return batch


def check_params(*, point: Sequence[int] | None, batch_size: int | None, memory_fraction: float, smooth: int = 1,
                 noise: float = 0.0, smooth_type: str = "smoothgrad", **_: object) -> dict[str, Any]:
    """One-line errors for ERF parameters no run can use (checked before any model loads); the parameters."""
    if point is not None and len(point) != 2:
        raise OnnxAttrError(f"point {point!r}: give the output pixel as (x, y) (CLI --point X Y)")
    if batch_size is not None and batch_size < 1:
        raise OnnxAttrError(f"batch size {batch_size} must be at least 1 (or leave it unset)")
    if not 0 < memory_fraction <= 1:
        raise OnnxAttrError(f"memory fraction {memory_fraction} must lie in (0, 1]")
    check_smooth(smooth, noise, smooth_type)
    return {"point": point, "batch_size": batch_size, "memory_fraction": memory_fraction, "smooth": smooth,
            "noise": noise, "smooth_type": smooth_type}


def erf_windows(window: WindowSpec | None, point: Sequence[int] | None, offset: int, out_h: int, out_w: int,
                frame: str) -> list[Window]:
    """The explained windows (SR pixels): ``window`` as every method takes it, the 1-px window at ``point`` (x, y) in
    ``frame``, or by default the centre pixel (W' // 2, H' // 2) of the SR output."""
    if window is not None and point is not None:
        raise OnnxAttrError("give the ERF a point (--point) or windows (--window / --windows / --grid), not both")
    if point is not None:
        return resolve_windows([(int(point[0]), int(point[1]), 1)], offset, out_h, out_w, frame=frame)
    if window is None:
        return resolve_windows([(out_w // 2, out_h // 2, 1)], offset, out_h, out_w, frame="sr")
    return resolve_windows(window, offset, out_h, out_w, frame=frame)


def gradient_magnitudes(model: SRModel, images: torch.Tensor, wins: Sequence[Window], batch: int, copies: int,
                        smooth_type: str, on_batch: Any = None) -> torch.Tensor:
    """(K, N, C, h, w) float64: for every window k and image n, |d D_k / d x_n| per channel, the G = ``copies`` noisy
    copies of each image (consecutive in ``images``) combined by ``smooth_type``. One forward per batch of images and
    one backward per window."""
    items, k = images.shape[0], len(wins)
    out = torch.zeros((k, items, *images.shape[1:]), dtype=torch.float64)
    for start in range(0, items, batch):
        x = images[start : start + batch].to(torch.float32).requires_grad_(True)
        d = window_objectives(model(x), wins, "intensity", "sum")
        out[:, start : start + batch] = window_gradients(d, x).detach().cpu().to(torch.float64).abs()
        if on_batch is not None:
            on_batch(x.shape[0])
    return combine(out.reshape(k, items // copies, copies, *images.shape[1:]), smooth_type, dim=2)


def _within_field(model: SRModel, maps: np.ndarray, wins: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Each window's theoretical box (x0, y0, x1, y1; LR pixel indices) at the maps' input size and the share of its
    ERF map (K, h, w) outside it (NaN for a zero map)."""
    lr_boxes, _ = output_boxes(model, *maps.shape[1:])
    boxes = np.array([window_box(lr_boxes, win.x, win.y, win.size) for win in wins])
    outside = np.full(len(wins), np.nan)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        beyond = maps[k].copy()
        beyond[y0 : y1 + 1, x0 : x1 + 1] = 0
        if maps[k].sum() > 0:
            outside[k] = beyond.sum() / maps[k].sum()
    return boxes, outside


def erf(
    model: SRModel,
    image: torch.Tensor,
    window: WindowSpec | None = None,
    *,
    frame: str = "hr",
    point: Sequence[int] | None = None,
    smooth: int = 1,
    noise: float = 0.0,
    smooth_type: str = "smoothgrad",
    seed: int = 0,
    batch_size: int | None = None,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    progress: bool = False,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """The ERF of ``model`` over the N images ``image`` (N, C, h, w) in [0, 1] for the output window(s) ``window``
    (as every method takes them; a ``Grid`` gives the ERF of every window position), the 1-px window at ``point``
    (x, y) in ``frame``, or by default the centre pixel of the SR output.

    ERF_k = (1/N) sum_n sum_c |dD_k/dx_n,c|, D_k the output summed over the window and channels (module docstring);
    with ``smooth`` / ``noise`` each image's map is combined over noisy copies first (``smooth_type``). ``batch_size``
    images (and copies) per pass (default: from the memory budget). ``hr``: the HR image of the first LR image.
    Returns the shared layout (``input`` and ``output`` of the first image; ``attribution`` the per-channel mean
    |gradient|, whose channel sum is the ERF) plus ``erf`` (window, y, x), per window ``erf_r20``, ``erf_r50``,
    ``erf_r95`` (LR px from the window's centre), ``diffusion_index``, ``outside_share`` and ``receptive_box``
    (window, corner; LR pixel indices), attrs ``image_count``, ``receptive_field`` and its note.
    """
    t0 = time.perf_counter()
    check_params(point=point, batch_size=batch_size, memory_fraction=memory_fraction, smooth=smooth, noise=noise,
                 smooth_type=smooth_type)
    model.check_input(image)
    n, c, h, w = image.shape
    out_hw = model.output_size(h, w)
    wins = erf_windows(window, point, model.offset, *out_hw, frame)
    copies = smooth if active(noise) else 1
    batch = choose_batch(model, h, w, images=n, windows=len(wins), copies=copies, batch_size=batch_size,
                         memory_fraction=memory_fraction)
    items = noisy_copies(image, smooth, noise, seed) if active(noise) else image
    with tqdm(total=items.shape[0], unit="image", desc="erf", disable=None if progress else True, leave=False) as bar:
        grads = gradient_magnitudes(model, items, wins, batch, copies, smooth_type if active(noise) else "smoothgrad",
                                    bar.update)
    attribution = grads.mean(dim=1)  # (K, C, h, w)
    maps = attribution.sum(dim=1).numpy()
    with torch.no_grad():
        output = model(image[:1]).detach()
    field = receptive_field(model)
    boxes, outside = _within_field(model, maps, wins) if field.kind == "finite" else (
        np.full((len(wins), 4), np.nan), np.full(len(wins), np.nan))
    radii = np.stack([mass_radii(m, lr_centre(win, model.scale, model.offset), ERF_MASSES) for m, win in zip(maps, wins)])
    params = {
        "point": tuple(point) if point is not None else None, "image_count": n,
        **({"smooth": smooth, "noise": noise, "smooth_type": smooth_type, "seed": seed} if active(noise) else {}),
        "batch_size": batch, "batch_size_requested": batch_size, "memory_fraction": memory_fraction,
        "memory_estimate_bytes": estimate(model, h, w, images=n, windows=len(wins), batch=batch, copies=copies),
        "batch_mode": model.batch_mode,
    }
    return build_dataset(
        model=model, image=image[:1], output=output, method="erf", windows=wins, frame=frame if window is not None or
        point is not None else "sr", params=params, elapsed_s=time.perf_counter() - t0, attribution=attribution,
        window_checks={
            **{radius_name(t): radii[:, i] for i, t in enumerate(ERF_MASSES)},
            "outside_share": outside,
        },
        checks=field.attrs(),
        data_vars={"erf": (("window", "y", "x"), maps.astype(np.float32)),
                   "receptive_box": (("window", "corner"), boxes)},
        coords={"corner": list(CORNERS)},
        hr=align_hr(hr, model.offset, out_hw) if hr is not None else None, layout=METHODS["erf"].variables,
    )
