"""A plain re-implementation of the authors' CEM loop for SR (J-FHu/CEM, HEAD 5fd1d9b), one intervention at a
time, to check ``onnxattr.methods.cem`` against. Our own code, written from /work/notes/cem-reference.md.

Where the authors do each step:
  one run        demo_causal_effect_calculation.py main(): ToTensor -> model -> clip(0, 1) ->
                 np.uint8(np.round(x * 255)) -> ROI crop.
  PSNR           CEM_Demo/SaliencyModel/utils.py calculate_psnr(): RGB, float64, no border crop,
                 20 log10(255 / sqrt(mse)), inf when mse == 0.
  coarse / fine  main(): K_c draws for every block (the ROI's too); fine stage on the blocks with
                 max_k |PSNR_0 - PSNR_c[k]| >= tol; K_f fresh draws.
  combination    demo_CEM_generation.py main(): the fine draws' mean REPLACES the coarse mean;
                 effect = PSNR_0 - mean; |effect| < tol -> 0.
  ROI / counts   demo_CEM_generation.py main() and CEM_Demo/utils.py generate_CE_map().

Differences from the authors, on purpose: the grid has ceil(H/b) rows and ceil(W/b) columns (theirs counts both
from the width and fails on non-square images); the patch index of each intervention comes from ``draw(stage,
row, col, k)`` (theirs: unseeded ``random.choice(os.listdir(dir))``, in the same order); the patches are LR blocks
given as arrays in the image's channel order (theirs: cv2-read BGR pasted into RGB); ``quantize_inputs=False``
feeds the LR image and the patches as given (theirs are uint8 images); the counts leave the ROI out (theirs count
its 999 marker as positive).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.round(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * 255))


def psnr(a_u8: np.ndarray, b_u8: np.ndarray) -> float:
    """calculate_psnr with its defaults: float64, all channels, no border, max 255."""
    mse = np.mean((a_u8.astype(np.float64) - b_u8.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 20.0 * np.log10(255.0 / np.sqrt(mse))


def cem_reference(model_fn: Callable[[torch.Tensor], torch.Tensor], lr: np.ndarray, hr: np.ndarray,
                  roi: tuple[int, int, int], block_hr: int, scale: int, patches: list[np.ndarray], coarse: int,
                  fine: int, tol: float, draw: Callable[[str, int, int, int], int], quantize_inputs: bool = True) -> dict:
    """CEM of one ROI (x, y, size; HR px of an output aligned with ``hr``) one intervention at a time.

    ``lr`` (H, W, C) and ``hr`` (sH, sW, C) in [0, 1]; ``patches``: LR blocks (b, b, C) in [0, 1] with
    b = block_hr // scale; ``draw(stage, r, c, k)`` the patch index of draw k on block (r, c) in stage 'coarse' or
    'fine'. Returns the block effects (ROI NaN), the counts, the range and the raw PSNRs."""
    b = block_hr // scale
    img0 = to_u8(lr) if quantize_inputs else np.asarray(lr, dtype=np.float32)
    pool = [to_u8(p) if quantize_inputs else np.asarray(p, dtype=np.float32) for p in patches]
    hr_u8 = to_u8(hr)
    H, W = img0.shape[:2]
    rows, cols = math.ceil(H / b), math.ceil(W / b)
    x, y, size = roi
    gt = hr_u8[y:y + size, x:x + size]

    @torch.no_grad()
    def roi_psnr(img: np.ndarray) -> float:
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()[None].float()
        if quantize_inputs:
            t = t.div(255)  # = ToTensor
        out = model_fn(t)[0].detach().cpu().numpy().transpose(1, 2, 0).clip(0, 1)  # float32, as theirs
        return psnr(np.uint8(np.round(out * 255))[y:y + size, x:x + size], gt)

    def intervene(stage: str, r: int, c: int, k: int) -> float:
        img = img0.copy()
        target = img[r * b:(r + 1) * b, c * b:(c + 1) * b]
        target[...] = pool[draw(stage, r, c, k)][:target.shape[0], :target.shape[1]]
        return roi_psnr(img)

    p0 = roi_psnr(img0)
    pc = np.zeros((rows, cols, coarse))
    for r in range(rows):
        for c in range(cols):
            for k in range(coarse):
                pc[r, c, k] = intervene("coarse", r, c, k)
    selected = np.max(np.abs(p0 - pc), axis=2) >= tol  # the largest single draw, not the mean
    pf = np.zeros((rows, cols, fine))
    for r in range(rows):
        for c in range(cols):
            if selected[r, c]:
                for k in range(fine):
                    pf[r, c, k] = intervene("fine", r, c, k)
    mean = pc.mean(axis=2)
    if fine > 0:
        mean = np.where(selected, pf.mean(axis=2), mean)  # the fine mean replaces the coarse mean
    effect = p0 - mean
    effect[np.abs(effect) < tol] = 0.0

    roi_mask = np.zeros((rows, cols), bool)  # demo_CEM_generation.py main()'s slicing
    roi_mask[y // block_hr:(y + size) // block_hr, x // block_hr:(x + size) // block_hr] = True
    out = np.where(roi_mask, np.nan, effect)
    rest = effect[~roi_mask]
    counts = {"negative": int(np.sum(rest < 0)), "positive": int(np.sum(rest > 0)), "zero": int(np.sum(rest == 0))}
    z = np.where(roi_mask, 0.0, effect)  # generate_CE_map(): the ROI set to 0 before min / max
    ends = {"max": float(z.max()), "min": float(z.min()), "range": float(z.max() - z.min()),
            "argmax": tuple(int(v) for v in np.unravel_index(np.argmax(z), z.shape)),
            "argmin": tuple(int(v) for v in np.unravel_index(np.argmin(z), z.shape))}
    return {"effect_blocks": out, "counts": counts, "range": ends, "psnr_origin": p0, "psnr_coarse": pc,
            "psnr_fine": pf, "fine_selected": selected}
