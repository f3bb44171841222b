"""PSNR and SSIM of SR outputs against a reference, on all channels or on the Y channel.

Conventions of SR papers: images are floats in [0, 1] (data range R = 1), ``border`` pixels
(usually the scale s) are cropped from every side before measuring, and Y is the BT.601 luma of
``onnxattr.image.rgb_to_y`` (MATLAB's rgb2ycbcr, Y in [16/255, 235/255], still measured with R = 1).
One-channel images are taken as they are for Y. Batches are measured image by image.

SSIM is the definition of Wang, Bovik, Sheikh & Simoncelli (2004) as their ``ssim_index.m`` computes
it: an 11 x 11 Gaussian window with sigma 1.5 (normalised to sum 1), population (biased) local moments,
C1 = (0.01 R)^2, C2 = (0.03 R)^2, the map evaluated only where the window fits ('valid'), averaged
over the map and then over channels. This equals scikit-image's
``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=0)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OnnxAttrError
from ..image import rgb_to_y

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _batch(a: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(C, H, W) or (N, C, H, W) -> (N, C, H, W) float64."""
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a.detach().cpu()).to(torch.float64)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise OnnxAttrError(f"image of shape {tuple(t.shape)}: quality measures take (C, H, W) or (N, C, H, W)")
    return t


def _prepare(
    sr: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray, border: int, y: bool
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both as (N, C', H', W') after the border crop and the optional Y conversion; True if ``sr`` was one image."""
    single = np.ndim(sr) == 3
    a, b = _batch(sr), _batch(ref)
    if a.shape[1:] != b.shape[1:]:
        raise OnnxAttrError(
            f"SR output {tuple(a.shape[1:])} and reference {tuple(b.shape[1:])} differ in shape; "
            "align the reference with the SR output first"
        )
    if border:
        a, b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
    if a.shape[-1] < 1 or a.shape[-2] < 1:
        raise OnnxAttrError(f"the border crop of {border} px leaves nothing of the image; use a larger image")
    if y and a.shape[1] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    return a, b, single


def _result(values: torch.Tensor, single: bool) -> float | np.ndarray:
    v = values.numpy()
    return float(v[0]) if single else v


def psnr(
    sr: torch.Tensor | np.ndarray,
    ref: torch.Tensor | np.ndarray,
    *,
    border: int = 0,
    y: bool = False,
    data_range: float = 1.0,
) -> float | np.ndarray:
    """PSNR = 10 log10(R^2 / MSE) in dB, MSE over channels and pixels after cropping ``border`` px.

    ``sr`` is (C, H, W) -> float, or (N, C, H, W) -> (N,) array; ``ref`` (C, H, W) or (1, C, H, W) is
    broadcast over the batch. Identical images give inf. ``y``: measure the Y channel only.
    """
    a, b, single = _prepare(sr, ref, border, y)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return _result(10.0 * torch.log10(data_range**2 / mse), single)


def _gaussian_window(channels: int) -> torch.Tensor:
    ax = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(ax**2) / (2 * SSIM_SIGMA**2))
    w = torch.outer(g, g)
    return (w / w.sum()).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)


def ssim(
    sr: torch.Tensor | np.ndarray,
    ref: torch.Tensor | np.ndarray,
    *,
    border: int = 0,
    y: bool = False,
    data_range: float = 1.0,
) -> float | np.ndarray:
    """Mean SSIM (Wang et al. 2004) after cropping ``border`` px; shapes and ``y`` as for :func:`psnr`.

    With local Gaussian-weighted means mu, variances s^2 and covariance s_ab (window 11, sigma 1.5):
    SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)), averaged over
    the 'valid' map and channels; C1 = (0.01 R)^2, C2 = (0.03 R)^2. 1 for identical images.
    """
    a, b, single = _prepare(sr, ref, border, y)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise OnnxAttrError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} px after the border crop, got "
            f"{a.shape[-1]}x{a.shape[-2]}; use larger images"
        )
    b = b.expand_as(a)
    c = a.shape[1]
    w = _gaussian_window(c)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return _result(s.mean(dim=(1, 2, 3)), single)


def sr_quality(sr: torch.Tensor | np.ndarray, hr: torch.Tensor | np.ndarray, border: int) -> dict[str, float]:
    """PSNR and SSIM of one SR output against its HR image, both clipped to [0, 1]: keys ``psnr``, ``ssim``
    (all channels) and ``psnr_y``, ``ssim_y`` (Y channel), ``border`` px cropped (use the scale)."""
    a, b = _batch(sr).clamp(0, 1), _batch(hr).clamp(0, 1)
    return {
        "psnr": float(psnr(a, b, border=border)[0]),
        "ssim": float(ssim(a, b, border=border)[0]),
        "psnr_y": float(psnr(a, b, border=border, y=True)[0]),
        "ssim_y": float(ssim(a, b, border=border, y=True)[0]),
    }
