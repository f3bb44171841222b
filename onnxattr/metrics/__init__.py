"""Measures on attribution maps and SR outputs: pure functions on arrays."""

from .gini import diffusion_index, gini, saliency

__all__ = ["diffusion_index", "gini", "saliency"]
