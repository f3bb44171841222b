"""Tensors or arrays in, NumPy out: the one conversion the metrics and results share."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x: torch.Tensor | np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    """``x`` as a NumPy array of ``dtype``; a tensor leaves its graph and device first. No copy where none is needed."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)
