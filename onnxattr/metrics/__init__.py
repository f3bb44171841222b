"""Measures on attribution maps and SR outputs: pure functions on arrays."""

from .cka import cka, cka_matrix, hsic
from .gini import diffusion_index, gini, reach, saliency
from .masking import DEFAULT_RATIOS, masking_curves, pixel_order
from .quality import psnr, sr_quality, ssim

__all__ = [
    "DEFAULT_RATIOS",
    "cka",
    "cka_matrix",
    "diffusion_index",
    "gini",
    "hsic",
    "masking_curves",
    "pixel_order",
    "reach",
    "psnr",
    "saliency",
    "sr_quality",
    "ssim",
]
