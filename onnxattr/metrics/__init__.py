"""Measures on attribution maps and SR outputs: pure functions on arrays."""

from .cka import cka, cka_matrix, hsic
from .gini import diffusion_index, gini, reach, saliency
from .masking import DEFAULT_RATIOS, masking_curves, pixel_order
from .mass import mass_radii, saliency_pixels
from .quality import psnr, sr_quality, ssim

__all__ = [
    "DEFAULT_RATIOS",
    "cka",
    "cka_matrix",
    "diffusion_index",
    "gini",
    "hsic",
    "masking_curves",
    "mass_radii",
    "pixel_order",
    "reach",
    "psnr",
    "saliency",
    "saliency_pixels",
    "sr_quality",
    "ssim",
]
