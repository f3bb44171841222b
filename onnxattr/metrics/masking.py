"""Remove-and-replace fidelity curves (Yu & Yang, L2X, Sec. 4.2 and Fig. 3a).

LR pixels are ranked by s(p) = sum_c |A_c(p)| (descending; ties keep raster order). For a ratio r the
first k = round(r h w) pixels are replaced, in every channel, by the image's per-channel mean
mu_c = mean_p I_c(p); the masked image goes through the model (forward only, onnxruntime) and the SR
output is measured against the unmasked SR output (reference 'sr') and, when given, the HR image
(reference 'hr'): PSNR and SSIM on the Y channel, outputs clipped to [0, 1] (see ``quality``), over two
regions: 'image' (the whole output less a border of ``scale`` px, as the paper) and, when a window is
given, 'window' (the SR window the attribution explains: the local question a LAM/L2X map answers). The same with random orders: one permutation per seed, shared by all
ratios so that masks grow by inclusion; the curves hold the mean over seeds, the ``*_random_std``
variables the standard deviation (ddof 0). A faithful attribution lowers the curves faster than random.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr

from ..arrays import to_numpy
from ..errors import OnnxAttrError
from ..target import Window
from .quality import SSIM_WINDOW, psnr, ssim

DEFAULT_RATIOS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
DEFAULT_SEEDS = 5


def pixel_order(attribution: torch.Tensor | np.ndarray) -> np.ndarray:
    """Flat LR pixel indices sorted by sum_c |A_c| descending (stable); ``attribution`` is (C, h, w)."""
    a = np.abs(to_numpy(attribution, np.float64)).sum(axis=0).ravel()
    return np.argsort(-a, kind="stable")


def mask_pixels(image: np.ndarray, order: np.ndarray, ratio: float) -> np.ndarray:
    """``image`` (C, h, w) with the first round(ratio h w) pixels of ``order`` set to the per-channel mean."""
    if not 0.0 <= ratio <= 1.0:
        raise OnnxAttrError(f"mask ratio {ratio} must lie in [0, 1] (e.g. 0.05 for 5%)")
    c, h, w = image.shape
    k = int(round(ratio * h * w))
    out = image.reshape(c, h * w).copy()
    out[:, order[:k]] = image.reshape(c, -1).mean(axis=1, keepdims=True)
    return out.reshape(c, h, w)


def forward(model, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """SR outputs of (N, C, h, w) images in onnxruntime, ``batch_size`` images per run when the export
    batches correctly (``model.batch_mode == 'native'``), else image by image via ``model.run_ort``."""
    if model.batch_mode != "native":
        return model.run_ort(x)
    vr = model.value_range
    outs = [
        model.session.run(None, {model.spec.input_name: (x[i : i + batch_size] * vr).astype(np.float32)})[0]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) / vr


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
    """Fidelity curves of one attribution: Dataset with ``psnr``, ``ssim`` (region, reference, order, ratio)
    and ``psnr_random_std``, ``ssim_random_std`` (region, reference, ratio); order is 'attribution' or
    'random' (mean over ``seeds``), reference 'sr' (the unmasked SR output) and 'hr' when ``hr`` is given,
    region 'image' and 'window' when ``window`` (SR pixels) is given (SSIM NaN for windows under 11 px).

    ``image`` is the LR input (C, h, w) or (1, C, h, w) in [0, 1]; ``hr`` must be aligned with the SR
    output. Ratio 0 reproduces the unmasked output exactly (PSNR inf against 'sr').
    """
    img = to_numpy(image, np.float32).reshape(-1, *np.shape(image)[-2:])
    c, h, w = img.shape
    if tuple(np.shape(attribution)[-3:]) != (c, h, w):
        raise OnnxAttrError(f"attribution {tuple(np.shape(attribution))} does not match the image {img.shape}")
    if seeds < 1:
        raise OnnxAttrError("masking needs at least one random seed (seeds >= 1)")
    orders = [pixel_order(attribution)] + [np.random.default_rng(s).permutation(h * w) for s in range(seeds)]
    masked = np.stack([mask_pixels(img, o, r) for o in orders for r in ratios])
    reference = forward(model, img[None], batch_size)
    todo = [i for i, r in enumerate(list(ratios) * len(orders)) if round(r * h * w) > 0]
    outputs = np.repeat(reference, len(masked), axis=0)
    if todo:
        outputs[todo] = forward(model, masked[todo], batch_size)
    outputs, reference = np.clip(outputs, 0, 1), np.clip(reference, 0, 1)
    refs = {"sr": reference}
    if hr is not None:
        refs["hr"] = np.clip(to_numpy(hr, np.float32).reshape(reference.shape), 0, 1)
    regions = {"image": (slice(None), slice(None), model.scale)}
    if window is not None:
        regions["window"] = (slice(window.y, window.y + window.size), slice(window.x, window.x + window.size), 0)
    shape = (len(orders), len(ratios))
    full = (len(regions), len(refs), *shape)
    values = {"psnr": np.empty(full), "ssim": np.full(full, np.nan)}
    for i, (rows, cols, border) in enumerate(regions.values()):
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
    return xr.Dataset(
        data,
        coords={
            "region": list(regions),
            "reference": list(refs),
            "order": ["attribution", "random"],
            "ratio": np.asarray(ratios, dtype=float),
        },
        attrs={"seeds": seeds, "border": model.scale, "channel": "Y"},
    )
