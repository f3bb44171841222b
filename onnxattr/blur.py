"""Gaussian kernels and the progressive-blur path (Gu & Dong 2021, eq. 3).

The blur is 2-D correlation per channel with reflect-101 borders (OpenCV's
``filter2D`` default, scipy's ``mode='mirror'``), anchored at the kernel centre
``l // 2`` as OpenCV does, computed in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import OnnxAttrError


def check_blur(sigma: float, kernel_size: int) -> None:
    """One-line errors for a blur no baseline can come from: sigma must be finite and > 0, the kernel >= 1 px."""
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise OnnxAttrError(f"sigma={sigma}: the blurred baseline needs a finite sigma > 0 (default 1.2)")
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise OnnxAttrError(f"kernel size {kernel_size} must be a whole number of at least 1 (default 9)")


def gaussian_kernel(sigma: float | torch.Tensor, size: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """k(sigma) = exp(-(xx^2 + yy^2) / (2 (sigma + eps)^2)) / sum, on ax = arange(-l//2 + 1, l//2 + 1).

    ``sigma`` may be a 1-D tensor of m values: the result is then (m, l, l). float64.
    """
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    ax = torch.arange(-size // 2 + 1, size // 2 + 1, dtype=torch.float64)
    r2 = ax[None, :] ** 2 + ax[:, None] ** 2
    k = torch.exp(-r2 / (2.0 * (sig.reshape(-1, 1, 1) + eps) ** 2))
    k = k / k.sum(dim=(1, 2), keepdim=True)
    return k if sig.ndim else k[0]


def reflect_101(n: int, lo: int, hi: int) -> torch.Tensor:
    """Source indices of an axis of ``n`` padded by ``lo`` before and ``hi`` after with reflect-101 borders
    (d c b | a b c d | c b a), reflected again as often as the padding needs: OpenCV's BORDER_REFLECT_101 and
    scipy's 'mirror' for any kernel, also one larger than the image (torch's reflect pad stops at n - 1)."""
    i = torch.arange(-lo, n + hi)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    j = i.remainder(period)
    return torch.where(j >= n, period - j, j)


def correlate(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``image`` (1, C, H, W) with each of ``kernels`` (m, l, l): (m, C, H, W).

    Reflect-101 padding of l//2 before and l - 1 - l//2 after (OpenCV anchor, ``reflect_101``), float64.
    """
    if kernels.ndim == 2:
        kernels = kernels[None]
    m, l, _ = kernels.shape
    _, c, h, w = image.shape
    lo, hi = l // 2, l - 1 - l // 2
    x = image.to(torch.float64).reshape(c, 1, h, w)
    x = x.index_select(2, reflect_101(h, lo, hi).to(x.device)).index_select(3, reflect_101(w, lo, hi).to(x.device))
    out = F.conv2d(x, kernels.to(device=x.device, dtype=torch.float64)[:, None])  # (C, m, H, W)
    return out.transpose(0, 1)


def blur(image: torch.Tensor, sigma: float, size: int = 9) -> torch.Tensor:
    """The blurred baseline k(sigma) (*) I for an image (1, C, H, W), in the image's dtype."""
    return correlate(image, gaussian_kernel(sigma, size)).to(image.dtype)


def blur_path_sigmas(sigma: float, steps: int) -> torch.Tensor:
    """sigma_i = sigma * (1 - i/m), i = 0..m (the reference code's linspace(sigma, 0, m + 1))."""
    return torch.linspace(sigma, 0.0, steps + 1, dtype=torch.float64)


def blur_path(image: torch.Tensor, sigma: float, steps: int, size: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and increments of the progressive-blur path, float64.

    Returns ``points`` x_i = k(sigma_i) (*) I for i = 0..m, shape (m+1, C, H, W), and ``deltas``
    x_i - x_{i-1} = (k(sigma_i) - k(sigma_{i-1})) (*) I for i = 1..m, shape (m, C, H, W),
    computed from the kernel differences so that they carry no cancellation error.
    """
    kernels = gaussian_kernel(blur_path_sigmas(sigma, steps), size)
    points = correlate(image, kernels)
    deltas = correlate(image, kernels[1:] - kernels[:-1])
    return points, deltas
