"""Remove-and-replace fidelity curves (Yu & Yang, L2X, Sec. 4.2 and Fig. 3a), made to inform for a window.

LR pixels are ranked by s(p) = sum_c |A_c(p)| (descending; ties keep raster order). Masking k pixels
replaces them, in every channel, by the image's per-channel mean mu_c = mean_p I_c(p); the masked image
goes through the model (forward only, onnxruntime) and the SR output is measured against the unmasked
SR output (reference 'sr') and, when given, the HR image (reference 'hr'): PSNR and SSIM on the Y
channel, outputs clipped to [0, 1] (see ``quality``), over two regions:

* 'image': the whole output less a border of ``scale`` px, as the paper; a ratio r masks
  k = round(r h w) pixels of the whole image;
* 'window' (when a window is given): the SR window the attribution explains. Here a ratio r masks
  k = round(r |S|) pixels of the window's **influence region** S, the attribution's support
  {p : s(p) > SUPPORT_RTOL max s} (LAM and L2X maps are exactly zero where the window's receptive field
  ends; GL-AM maps are smooth, so their support is wider): attribution order masks the top k of S,
  random order k random pixels of S. With ratios of the whole image a 16-px window's influence region
  (well under 5% of a 64x64 input) is gone at the first ratio, so every attribution-ordered curve sits
  at its floor and says nothing; relative to S the curves show how fast the top-ranked pixels matter.

Random orders: one permutation per seed, shared by all ratios so that masks grow by inclusion; the
curves hold the mean over seeds, the ``*_random_std`` variables the standard deviation (ddof 0). A
faithful attribution lowers the curves faster than random.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from ..arrays import to_numpy
from ..errors import OnnxAttrError
from ..options import DEFAULT_RATIOS, DEFAULT_SEEDS
from ..windows.geometry import Window
from .quality import SSIM_WINDOW, psnr, ssim

#: pixels with s(p) above this share of max s form the attribution's support (the window's influence region).
SUPPORT_RTOL = 1e-6


def pixel_order(attribution: torch.Tensor | np.ndarray) -> np.ndarray:
    """Flat LR pixel indices sorted by sum_c |A_c| descending (stable); ``attribution`` is (C, h, w)."""
    a = np.abs(to_numpy(attribution, np.float64)).sum(axis=0).ravel()
    return np.argsort(-a, kind="stable")


def mask_pixels(image: np.ndarray, order: np.ndarray, ratio: float, among: int | None = None,
                fill: np.ndarray | None = None) -> np.ndarray:
    """``image`` (C, h, w) with the first round(ratio n) pixels of ``order`` set to the per-channel mean, or to
    ``fill`` (C, h, w)'s pixels there (a baseline image: the deletion and insertion curves of ``checks``);
    n = ``among`` (the size of the set ``order`` ranks) or h w."""
    if not 0.0 <= ratio <= 1.0:
        raise OnnxAttrError(f"mask ratio {ratio} must lie in [0, 1] (e.g. 0.05 for 5%)")
    c, h, w = image.shape
    k = int(round(ratio * (h * w if among is None else among)))
    out = image.reshape(c, h * w).copy()
    chosen = order[:k]
    out[:, chosen] = image.reshape(c, -1).mean(axis=1, keepdims=True) if fill is None else fill.reshape(c, -1)[:, chosen]
    return out.reshape(c, h, w)


def support_order(attribution: torch.Tensor | np.ndarray, rtol: float = SUPPORT_RTOL) -> np.ndarray:
    """The attribution's support {p : s(p) > rtol max s} as flat indices in ``pixel_order``."""
    a = np.abs(to_numpy(attribution, np.float64)).sum(axis=0).ravel()
    order = pixel_order(attribution)
    return order[: int((a > rtol * a.max()).sum())] if a.max() > 0 else order[:0]


def forward(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """SR outputs of (N, C, h, w) images in onnxruntime, ``batch_size`` images per run when the export
    batches correctly (``model.batch_mode == 'native'``), else image by image via ``model.run_ort``."""
    if model.batch_mode != "native":
        return model.run_ort(x)
    outs = [
        model.session.run(None, {model.spec.input_name: (x[i : i + batch_size] * model.value_range).astype(np.float32)})[0]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) / model.output_range


def masking_curves(
    model,
    image: torch.Tensor | np.ndarray,
    attribution: torch.Tensor | np.ndarray,
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seeds: int = DEFAULT_SEEDS,
    hr: torch.Tensor | np.ndarray | None = None,
    window: Window | None = None,
    batch_size: int = 16,
) -> xr.Dataset:
    """Fidelity curves of one attribution: Dataset with ``psnr``, ``ssim`` (region, reference, order, ratio),
    ``psnr_random_std``, ``ssim_random_std`` (region, reference, ratio) and ``masked_pixels`` (region,
    ratio); order is 'attribution' or 'random' (mean over ``seeds``), reference 'sr' (the unmasked SR
    output) and 'hr' when ``hr`` is given, region 'image' (ratios of the image) and 'window' (ratios of
    the attribution's support, see the module docstring) when ``window`` (SR pixels) is given (SSIM NaN
    for windows under 11 px). Attrs: ``support_pixels`` (|S|), ``seeds``, ``border``.

    ``image`` is the LR input (C, h, w) or (1, C, h, w) in [0, 1]; ``hr`` must be aligned with the SR
    output. Ratio 0 reproduces the unmasked output exactly (PSNR inf against 'sr').
    """
    img = to_numpy(image, np.float32).reshape(-1, *np.shape(image)[-2:])
    c, h, w = img.shape
    if tuple(np.shape(attribution)[-3:]) != (c, h, w):
        raise OnnxAttrError(f"attribution {tuple(np.shape(attribution))} does not match the image {img.shape}")
    if seeds < 1:
        raise OnnxAttrError("masking needs at least one random seed (seeds >= 1)")
    reference = forward(model, img[None], batch_size)

    def outputs_of(ranked: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Outputs for every order (ranked, then one permutation of ``pool`` per seed) x ratio, clipped."""
        orders = [ranked] + [np.random.default_rng(s).permutation(pool) for s in range(seeds)]
        masked = np.stack([mask_pixels(img, o, r, len(pool)) for o in orders for r in ratios])
        out = np.repeat(reference, len(masked), axis=0)
        todo = [i for i, r in enumerate(list(ratios) * len(orders)) if round(r * len(pool)) > 0]
        if todo:
            out[todo] = forward(model, masked[todo], batch_size)
        return np.clip(out, 0, 1)

    refs = {"sr": np.clip(reference, 0, 1)}
    if hr is not None:
        refs["hr"] = np.clip(to_numpy(hr, np.float32).reshape(reference.shape), 0, 1)
    regions = {"image": (slice(None), slice(None), model.scale, outputs_of(pixel_order(attribution), np.arange(h * w)))}
    support = support_order(attribution)
    if window is not None:
        rows, cols = slice(window.y, window.y + window.size), slice(window.x, window.x + window.size)
        regions["window"] = (rows, cols, 0, outputs_of(support, support))
    shape = (1 + seeds, len(ratios))
    full = (len(regions), len(refs), *shape)
    values = {"psnr": np.empty(full), "ssim": np.full(full, np.nan)}
    for i, (rows, cols, border, outputs) in enumerate(regions.values()):
        out = outputs[..., rows, cols]
        for j, ref in enumerate(refs.values()):
            values["psnr"][i, j] = psnr(out, ref[..., rows, cols], border=border, y=True).reshape(shape)
            if min(out.shape[-2:]) - 2 * border >= SSIM_WINDOW:
                values["ssim"][i, j] = ssim(out, ref[..., rows, cols], border=border, y=True).reshape(shape)
    data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for name, v in values.items():  # v: (region, reference, 1 + seeds, ratio)
        random = v[:, :, 1:]
        with np.errstate(invalid="ignore"):  # inf - inf at ratio 0 against 'sr'
            data[name] = (("region", "reference", "order", "ratio"), np.stack([v[:, :, 0], random.mean(axis=2)], axis=2))
            data[f"{name}_random_std"] = (("region", "reference", "ratio"), np.nan_to_num(random.std(axis=2), nan=0.0))
    data["masked_pixels"] = (("region", "ratio"), np.array([[round(r * n) for r in ratios]
                                                             for n in [h * w, len(support)][: len(regions)]]))
    return xr.Dataset(
        data,
        coords={
            "region": list(regions),
            "reference": list(refs),
            "order": ["attribution", "random"],
            "ratio": np.asarray(ratios, dtype=float),
        },
        attrs={"seeds": seeds, "border": model.scale, "channel": "Y", "support_pixels": len(support),
               "support_rtol": SUPPORT_RTOL, "window_ratio_of": "attribution support"},
    )
