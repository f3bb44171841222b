"""The receptive field R of a model, measured on the image with forward passes only.

One LR pixel at a time (``PROBES`` positions near the centre) is changed by half the value range in every channel
(x -> (x + 0.5) mod 1) and the model runs on the image and on each changed copy (one image per run, so no batching
effect can blur the answer). Every output pixel whose value changes at all, at HR position p, lies
max(|floor(p_row / s) - i_row|, |floor(p_col / s) - i_col|) LR px from the changed pixel i; R is the largest such
distance. Convolutions make R finite (the sum of their reaches); a global op (channel attention's mean over the
image, full self-attention) lets a pixel change the whole output: when the change reaches the output's border, R
is unbounded (None) and every block is intervened on over the whole image. Ops whose reach depends on the
position (window attention) are caught by the several probe positions and by ``cem``'s check of each crop
against the full image.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Forward = Callable[[torch.Tensor], torch.Tensor]
PROBES = ((0, 0), (-1, 2), (3, -2))  # offsets of the changed pixel from the image centre


def changed_reach(before: np.ndarray, after: np.ndarray, pixel: tuple[int, int], scale: int, offset: int) -> int | None:
    """The largest LR distance from ``pixel`` (row, col) of an output pixel that differs between the outputs
    ``before`` and ``after`` (C, H, W); None when the change reaches the output's border (unbounded)."""
    rows, cols = np.nonzero((before != after).any(axis=0))
    if rows.size == 0:
        return 0
    h, w = before.shape[1:]
    if rows.min() == 0 or cols.min() == 0 or rows.max() == h - 1 or cols.max() == w - 1:
        return None
    lr_rows = np.floor((rows - offset / 2) / scale).astype(int)
    lr_cols = np.floor((cols - offset / 2) / scale).astype(int)
    return int(max(np.abs(lr_rows - pixel[0]).max(), np.abs(lr_cols - pixel[1]).max()))


def measure_field(forward: Forward, image: torch.Tensor, scale: int, offset: int) -> int | None:
    """R in LR px for the model run by ``forward`` ((1, C, h, w) in [0, 1] -> output), probed on ``image``;
    None when unbounded (a change reaches the output's border)."""
    _, _, h, w = image.shape
    before = forward(image)[0].cpu().numpy()
    reach = 0
    for dy, dx in PROBES:
        i, j = min(max(h // 2 + dy, 0), h - 1), min(max(w // 2 + dx, 0), w - 1)
        changed = image.clone()
        changed[0, :, i, j] = (changed[0, :, i, j] + 0.5) % 1.0
        r = changed_reach(before, forward(changed)[0].cpu().numpy(), (i, j), scale, offset)
        if r is None:
            return None
        reach = max(reach, r)
    return reach
