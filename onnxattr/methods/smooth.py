"""SmoothGrad and VarGrad on a gradient method (Smilkov et al. 2017; Adebayo et al. 2018; Captum's NoiseTunnel).

A method's map M is computed on N noisy copies x + e_n of the input, e_n ~ N(0, sigma^2) per value (the image in
[0, 1]; not clipped, as Smilkov et al. and Captum), and combined per value:

* ``smoothgrad``: (1/N) sum_n M(x + e_n);
* ``smoothgrad_sq``: (1/N) sum_n M(x + e_n)^2;
* ``vargrad``: (1/N) sum_n M(x + e_n)^2 - ((1/N) sum_n M(x + e_n))^2 (the variance, as Captum).

The copies run in the method's own batches (LAM: every copy's path points in one stream of passes). ``seed`` makes
the noise reproducible.
"""

from __future__ import annotations

import torch

from ..errors import OnnxAttrError
from ..options import SMOOTH_TYPES


def active(noise: float) -> bool:
    """Whether the noise tunnel is on (``noise`` > 0)."""
    return noise > 0


def check_smooth(smooth: int, noise: float, smooth_type: str) -> None:
    """One-line errors for noise-tunnel parameters no run can use."""
    if not isinstance(smooth, int) or isinstance(smooth, bool) or smooth < 1:
        raise OnnxAttrError(f"smooth={smooth!r}: the number of noisy copies must be a whole number of at least 1")
    if not (isinstance(noise, (int, float)) and noise >= 0 and noise < float("inf")):
        raise OnnxAttrError(f"noise={noise!r}: the noise's standard deviation must be a finite number >= 0 "
                            "(in [0, 1] image units; Smilkov et al. use 0.1-0.2)")
    if smooth_type not in SMOOTH_TYPES:
        raise OnnxAttrError(f"smooth type {smooth_type!r}: use one of {', '.join(SMOOTH_TYPES)}")
    if smooth > 1 and noise == 0:
        raise OnnxAttrError(f"--smooth {smooth} averages noisy copies but the noise is 0; pass --noise SIGMA "
                            "(e.g. 0.1) or drop --smooth")
    if smooth_type == "vargrad" and smooth < 2 and noise > 0:
        raise OnnxAttrError("vargrad is the variance over the noisy copies: pass --smooth N with N >= 2")


def noisy_copies(image: torch.Tensor, smooth: int, noise: float, seed: int = 0) -> torch.Tensor:
    """``smooth`` copies of every image of ``image`` (N, C, H, W) with Gaussian noise of standard deviation
    ``noise`` (float64, CPU generator seeded with ``seed``): (N smooth, C, H, W), the copies of image 0 first."""
    gen = torch.Generator().manual_seed(seed)
    x = image.detach().cpu().to(torch.float64)
    e = torch.randn((x.shape[0], smooth, *x.shape[1:]), generator=gen, dtype=torch.float64) * noise
    return (x[:, None] + e).reshape(-1, *x.shape[1:])


def combine(maps: torch.Tensor, smooth_type: str, dim: int = 0) -> torch.Tensor:
    """The maps of the copies along ``dim`` combined by ``smooth_type`` (see the module docstring)."""
    mean = maps.mean(dim=dim)
    if smooth_type == "smoothgrad":
        return mean
    square = (maps**2).mean(dim=dim)
    return square if smooth_type == "smoothgrad_sq" else (square - mean**2).clamp(min=0)
