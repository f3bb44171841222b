"""Gaussian kernels and the progressive-blur path (Gu & Dong 2021, eq. 3).

The blur is 2-D correlation per channel with reflect-101 borders (OpenCV's
``filter2D`` default, scipy's ``mode='mirror'``), anchored at the kernel centre
``l // 2`` as OpenCV does, computed in float64 as two 1-D passes (the Gaussian
kernel is the outer product of a 1-D one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import OnnxAttrError


def check_blur(sigma: float, kernel_size: int) -> None:
    """One-line errors for a blur no baseline can come from: sigma must be finite and > 0, the kernel >= 1 px."""
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise OnnxAttrError(f"sigma={sigma}: the blurred baseline needs a finite sigma > 0 (default 1.2)")
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise OnnxAttrError(f"kernel size {kernel_size} must be a whole number of at least 1 (default 9)")


def gaussian_1d(sigma: float | torch.Tensor, size: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """g(sigma) = exp(-ax^2 / (2 (sigma + eps)^2)) / sum on ax = arange(-l//2 + 1, l//2 + 1): (l,) or (m, l). float64."""
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    ax = torch.arange(-size // 2 + 1, size // 2 + 1, dtype=torch.float64)
    g = torch.exp(-ax**2 / (2.0 * (sig.reshape(-1, 1) + eps) ** 2))
    g = g / g.sum(dim=1, keepdim=True)
    return g if sig.ndim else g[0]


def gaussian_kernel(sigma: float | torch.Tensor, size: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """k(sigma) = exp(-(xx^2 + yy^2) / (2 (sigma + eps)^2)) / sum = g(sigma) g(sigma)^T (``gaussian_1d``): (l, l) or
    (m, l, l). float64."""
    g = gaussian_1d(sigma, size, eps)
    return g[..., :, None] * g[..., None, :]


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


def correlate(image: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``image`` (1, C, H, W) with each separable kernel gy[i] gx[i]^T, for gx, gy of
    shape (m, l): (m, C, H, W), float64.

    Reflect-101 padding of l//2 before and l - 1 - l//2 after (OpenCV anchor, ``reflect_101``); one 1-D pass per
    axis, so memory and time grow with l, not l^2 (a 2-D kernel of 501 px took 24 GB on a 64x64 image).
    """
    m, l = gx.shape
    _, c, h, w = image.shape
    lo, hi = l // 2, l - 1 - l // 2
    x = image.to(torch.float64).reshape(c, 1, h, w)
    x = x.index_select(2, reflect_101(h, lo, hi).to(x.device)).index_select(3, reflect_101(w, lo, hi).to(x.device))
    x = F.conv2d(x, gx.to(x.device)[:, None, None, :])  # along rows: (C, m, H + l - 1, W)
    out = F.conv2d(x, gy.to(x.device)[:, None, :, None], groups=m)  # along columns, kernel i on map i: (C, m, H, W)
    return out.transpose(0, 1)


def blur(image: torch.Tensor, sigma: float, size: int = 9) -> torch.Tensor:
    """The blurred baseline k(sigma) (*) I for an image (1, C, H, W), in the image's dtype."""
    g = gaussian_1d(sigma, size)[None]
    return correlate(image, g, g).reshape(image.shape).to(image.dtype)


def blur_path_sigmas(sigma: float, steps: int) -> torch.Tensor:
    """sigma_i = sigma * (1 - i/m), i = 0..m (the reference code's linspace(sigma, 0, m + 1))."""
    return torch.linspace(sigma, 0.0, steps + 1, dtype=torch.float64)


def blur_path(image: torch.Tensor, sigma: float, steps: int, size: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and increments of the progressive-blur path, float64.

    Returns ``points`` x_i = k(sigma_i) (*) I for i = 0..m, shape (m+1, C, H, W), and ``deltas``
    x_i - x_{i-1} = (k(sigma_i) - k(sigma_{i-1})) (*) I for i = 1..m, shape (m, C, H, W),
    computed from the kernel differences so that they carry no cancellation error.
    """
    g = gaussian_1d(blur_path_sigmas(sigma, steps), size)
    points = correlate(image, g, g)
    # k_i - k_{i-1} = (g_i - g_{i-1}) g_i^T + g_{i-1} (g_i - g_{i-1})^T: two separable kernels, each from the small
    # difference itself, so the increments carry no cancellation error
    dg = g[1:] - g[:-1]
    deltas = correlate(image, g[1:], dg) + correlate(image, dg, g[:-1])
    return points, deltas
