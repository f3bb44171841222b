"""Causal effect maps (CEM; Hu, Gu, Yu, Yu, Li, You, Lu, Dong, "Interpreting Low-level Vision Models with Causal
Effect Maps", TPAMI 2025; code J-FHu/CEM) of output windows, forward passes only.

For the HR image I_HR, the LR input x and an output window (ROI), each block of b HR px (b/s LR px) of x is replaced
by patches drawn from a pool of natural-image patches (``patches``), and

    effect(block) = PSNR(F(x)_ROI, HR_ROI) - mean_k PSNR(F(x_k)_ROI, HR_ROI)      (dB; ``effects``)

over K draws x_k: > 0 the block helps restore the window, < 0 it hurts. Coarse-to-fine: K_c draws on every block,
K_f on the blocks where one coarse draw moved the PSNR by >= tol; |effect| < tol is 0; the window's own blocks are
not intervened on. The work is shared: one forward serves every window whose field holds the block, the fine stage
runs only where a window asks for it, a block outside every window's receptive field is exactly 0 without a forward,
and each forward runs on the input crop that holds the concerned windows' fields (``grid``; exact). The model runs
in onnxruntime on the file or as the torch graph (``runner``). docs/cem.md lists every choice.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ...errors import OnnxAttrError
from ...image import downscale
from ...intake import SRModel
from ...options import DEFAULT_MEMORY_FRACTION
from ...patches import POOL_IMAGES, POOL_SIZE, bundled_pool, patch_files, read_patches
from ...results.build import build_dataset
from ...windows.geometry import Window, WindowSpec, align_hr, resolve_windows
from .. import memory
from ..registry import METHODS
from . import effects
from .effects import Summary, summarise, window_psnr
from .field import measure_field
from .grid import BlockGrid, Rect, check_aligned, crop_for
from .runner import BACKENDS, Runner, choose_batch, runner

FIELDS = ("auto", "full")
CROP_TOLERANCE = 1e-5  # a crop's window outputs within this of the full image's ([0, 1] units) are used
DRAW_STREAMS = {"coarse": 0, "fine": 1}  # default_rng([seed, stream]) of each stage's draws


def check_params(*, block: int, coarse: int, fine: int, tol: float, patches: Any, seed: int, field: str,
                 backend: str, batch_size: int | None, memory_fraction: float, **_: object) -> dict[str, Any]:
    """One-line errors for CEM parameters no run can use (before any model loads); the parameters."""
    for name, value, least in (("block", block, 1), ("coarse", coarse, 1), ("fine", fine, 0), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise OnnxAttrError(f"{name}={value!r}: pass a whole number >= {least}")
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol >= 0):
        raise OnnxAttrError(f"tol={tol!r}: pass a number of dB >= 0 (the paper: 0.01)")
    if field not in FIELDS:
        raise OnnxAttrError(f"field {field!r}: use 'auto' (measure the receptive field) or 'full' (every block, whole image)")
    if backend not in BACKENDS:
        raise OnnxAttrError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if batch_size is not None and batch_size < 1:
        raise OnnxAttrError(f"batch size {batch_size} must be at least 1 (or leave it unset)")
    if not 0 < memory_fraction <= 1:
        raise OnnxAttrError(f"memory fraction {memory_fraction} must lie in (0, 1]")
    if isinstance(patches, (str, Path)):
        patch_files(patches)
    elif patches is not None and not isinstance(patches, torch.Tensor):
        raise OnnxAttrError(f"patches: pass a folder of patch images, a (N, C, b, b) tensor or None, not {type(patches).__name__}")
    return {"block": block, "coarse": coarse, "fine": fine, "tol": tol, "patches": patches, "seed": seed,
            "field": field, "backend": backend, "batch_size": batch_size, "memory_fraction": memory_fraction}


def estimate(model: SRModel, height: int, width: int, *, batch: int, backend: str = "auto") -> int:
    """Peak bytes of one batch of ``batch`` h x w forwards: batch (P(h, w) + the batch's input and output copies)
    with P the backend's forward law (``runner.Runner.image_bytes``)."""
    return batch * runner(model, backend).image_bytes(height, width, model.output_size(height, width), model.in_channels)


# ------------------------------------------------------------------ the patch pool
def patch_pool(patches: Any, block: int, channels: int, seed: int) -> tuple[torch.Tensor, str]:
    """The HR patches (N, C, b, b) in [0, 1] and how they were got: the bundled pool, a folder's or the caller's."""
    if patches is None:
        return (bundled_pool(block, channels, seed),
                f"bundled: {POOL_SIZE} patches cut at seeded positions from {', '.join(POOL_IMAGES)}")
    if isinstance(patches, (str, Path)):
        pool = read_patches(patches, block, channels)
        return pool, f"folder {patches}: {len(pool)} patches (central {block} px)"
    if patches.ndim != 4 or tuple(patches.shape[1:]) != (channels, block, block):
        raise OnnxAttrError(f"patches tensor {tuple(patches.shape)}: pass (N, {channels}, {block}, {block}) HR patches in [0, 1]")
    return patches.float().clamp(0, 1), f"given: {len(patches)} patches"


def lr_blocks(pool: torch.Tensor, scale: int) -> torch.Tensor:
    """HR patches (N, C, b, b) -> LR blocks (N, C, b/s, b/s) by the bicubic downscale that makes LR from HR."""
    return downscale(pool, scale)[0] if scale > 1 else pool


# ------------------------------------------------------------------ the stages
@dataclass
class Stage:
    """One stage's PSNRs: ``psnr`` (K_w, rows, cols, K) of each draw per window, ``p0`` (K_w, rows, cols) of the
    unperturbed crop each block ran in (NaN where not run)."""

    psnr: np.ndarray
    p0: np.ndarray


class Crops:
    """The input crop of each set of windows, each checked once against the full image (``CROP_TOLERANCE``) and
    holding its unperturbed window PSNRs; a crop that fails the check is replaced by the whole image, with a warning."""

    def __init__(self, run: Runner, x: torch.Tensor, full: torch.Tensor, grid: BlockGrid, wins: Sequence[Window],
                 refs: Sequence[np.ndarray], radius: int | None, rule: Any, model_name: str) -> None:
        self.run, self.x, self.full, self.grid, self.wins, self.refs = run, x, full, grid, wins, refs
        self.radius, self.rule, self.model_name = radius, rule, model_name
        self.rects: dict[frozenset[int], Rect] = {}
        self.p0: dict[Rect, dict[int, float]] = {}
        self.forwards, self.failed = 0, False

    def window_out(self, out: torch.Tensor, k: int, rect: Rect) -> torch.Tensor:
        w, s = self.wins[k], self.grid.scale
        y, x = w.y - s * rect[0], w.x - s * rect[2]
        return out[:, :, y : y + w.size, x : x + w.size]

    def rect(self, windows: frozenset[int]) -> Rect:
        if windows not in self.rects:
            rect = crop_for(self.grid, [self.wins[k] for k in windows], self.radius, self.rule)
            whole = (0, self.grid.height, 0, self.grid.width)
            if rect != whole:
                out = self.run.forward(self.x[:, :, rect[0] : rect[1], rect[2] : rect[3]].to(self.run.feed))
                self.forwards += 1
                gap = max(float((self.window_out(out, k, rect).cpu() - self.window_out(self.full, k, whole).cpu()).abs().max())
                          for k in windows)
                if not gap <= CROP_TOLERANCE:
                    warnings.warn(f"{self.model_name}: the receptive-field crop {rect} changes the window output by "
                                  f"{gap:.2g} (the model is not shift-equivariant there); CEM runs on the whole image",
                                  stacklevel=4)
                    rect, out, self.failed = whole, self.full, True
            else:
                out = self.full
            self.rects[windows] = rect
            known = self.p0.setdefault(rect, {})
            for k in windows:
                if k not in known:
                    known[k] = float(window_psnr(self.window_out(out, k, rect), self.refs[k])[0])
        return self.rects[windows]


def run_stage(crops: Crops, items: list[tuple[int, int, int, frozenset[int]]], draws: np.ndarray, blocks: torch.Tensor,
              windows: int, batch_size: int | None, memory_fraction: float, bar: Any) -> tuple[Stage, int, int]:
    """Run the interventions ``items`` ((row, col, draw, windows concerned)): block (row, col) replaced by
    ``blocks[draws[row, col, draw]]``, grouped by crop and batched. Returns the stage's PSNRs, the forwards run and
    their LR pixels."""
    grid, run = crops.grid, crops.run
    rows, cols = grid.shape
    stage = Stage(np.full((windows, rows, cols, draws.shape[-1]), np.nan), np.full((windows, rows, cols), np.nan))
    groups: dict[Rect, list[tuple[int, int, int, frozenset[int]]]] = {}
    for item in items:
        groups.setdefault(crops.rect(item[3]), []).append(item)
    used, pixels = 0, 0
    # batches are built in NumPy on the CPU (right after an onnxruntime run torch's threads wake slowly), else on the device
    on_cpu = run.feed.type == "cpu"
    blocks = blocks.numpy() if on_cpu else blocks.to(run.feed)
    for rect, group in groups.items():
        y0, y1, x0, x1 = rect
        base = crops.x[:, :, y0:y1, x0:x1]
        base = np.ascontiguousarray(base.numpy()) if on_cpu else base.to(run.feed)
        out_hw = (grid.scale * (y1 - y0) + grid.offset, grid.scale * (x1 - x0) + grid.offset)
        n = choose_batch(run, (y1 - y0, x1 - x0), out_hw, base.shape[1], len(group), batch_size, memory_fraction)
        used = max(used, n)
        for start in range(0, len(group), n):
            chunk = group[start : start + n]
            batch = np.repeat(base, len(chunk), axis=0) if on_cpu else base.repeat(len(chunk), 1, 1, 1)
            for i, (r, c, d, _) in enumerate(chunk):
                a, b_, e, f = grid.rect(r, c)
                batch[i, :, a - y0 : b_ - y0, e - x0 : f - x0] = blocks[draws[r, c, d], :, : b_ - a, : f - e]
            out = run.forward(torch.as_tensor(batch))
            for k in sorted(set().union(*(item[3] for item in chunk))):
                psnr = window_psnr(crops.window_out(out, k, rect), crops.refs[k])
                for i, (r, c, d, concerned) in enumerate(chunk):
                    if k in concerned:
                        stage.psnr[k, r, c, d] = psnr[i]
                        stage.p0[k, r, c] = crops.p0[rect][k]
            pixels += len(chunk) * (y1 - y0) * (x1 - x0)
            bar.update(len(chunk))
    return stage, used, pixels


def receptive_field(model: SRModel, x: torch.Tensor) -> int | None:
    """``field.measure_field`` on the model's float32 core in onnxruntime (no uint8 or float16 rounding hides a change),
    once per model and image size."""
    def measure() -> int | None:
        return measure_field(lambda t: torch.from_numpy(model.run_ort(t.numpy())), x, model.scale, model.offset)

    return memory.cached(model, f"cem-field-{x.shape[2]}x{x.shape[3]}", measure)


def _refuse_infinite(p0: np.ndarray, stages: Sequence[Stage], wins: Sequence[Window]) -> None:
    """CEM's PSNRs are finite unless a window's output equals the HR image: refuse, naming the window."""
    for k, w in enumerate(wins):
        if not np.isfinite(p0[k]) or any(np.isinf(s.psnr[k]).any() or np.isinf(s.p0[k]).any() for s in stages):
            raise OnnxAttrError(
                f"window x={w.x} y={w.y} size={w.size} (SR px): the output there equals the HR image exactly (PSNR "
                "infinite) with or without an intervention, so the effect in dB is undefined; pick another window")


# ------------------------------------------------------------------ the method
def cem(
    model: SRModel,
    image: torch.Tensor,
    window: WindowSpec,
    *,
    frame: str = "hr",
    block: int = 8,
    coarse: int = 3,
    fine: int = 50,
    tol: float = 0.01,
    patches: str | Path | torch.Tensor | None = None,
    seed: int = 0,
    field: str = "auto",
    backend: str = "auto",
    batch_size: int | None = None,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    progress: bool = False,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """The causal effect map of ``model`` for the output window(s) ``window`` on the LR ``image`` (1, C, h, w),
    against the HR image ``hr`` (required: CEM measures PSNR against the ground truth; HR frame or aligned).

    ``window``: (x, y, size), several, or a ``Grid``, in ``frame`` ('hr' or 'sr'); each must lie on the grid of
    ``block`` HR px (a multiple of the scale). ``coarse`` K_c and ``fine`` K_f draws, ``tol`` dB; ``patches``: None
    (the bundled pool), a folder of patch images (e.g. DIV2K 8x8 PNGs) or (N, C, b, b) HR patches; ``seed`` seeds
    the pool and every draw. ``field``: 'auto' (measure the receptive field: blocks outside it are 0, forwards run on
    crops) or 'full' (every block, whole image). ``backend``: 'auto', 'onnxruntime' (the file) or 'torch' (the
    graph). ``batch_size`` interventions per forward (default from the memory law and ``memory_fraction``).

    Returns the shared layout (``attribution`` = effect / C per channel, so that ``saliency`` = |effect| / max) plus
    ``effect`` (window, y, x) and ``effect_blocks`` (window, block_y, block_x) in dB (NaN on the window's own blocks),
    ``fine_stage``, the counts ``positive_blocks``, ``negative_blocks``, ``zero_blocks``, ``field_blocks``, the
    range ``effect_max``, ``effect_min``, ``effect_range`` with the block centres of its ends, and ``psnr_window``.
    """
    t0 = time.perf_counter()
    check_params(block=block, coarse=coarse, fine=fine, tol=tol, patches=patches, seed=seed, field=field,
                 backend=backend, batch_size=batch_size, memory_fraction=memory_fraction)
    if hr is None:
        raise OnnxAttrError("CEM measures the window's PSNR against the HR image: pass the HR image (CLI: IMAGE with "
                            "--hr, which makes the LR input by bicubic downscaling; API: hr=...)")
    model.check_input(image)
    s, c, name = model.scale, model.in_channels, model.path.name
    if block % s:
        raise OnnxAttrError(f"block {block} px is not a multiple of {name}'s scale {s} (a block is b HR px = b/s LR "
                            f"px); pass --block {max(s, block // s * s)} or {(block // s + 1) * s}")
    _, _, h, w = image.shape
    out_hw = model.output_size(h, w)
    wins = resolve_windows(window, model.offset, *out_hw, frame=frame)
    grid = BlockGrid(block, s, model.offset, h, w)
    check_aligned(grid, wins, frame)
    hr_aligned = align_hr(hr, model.offset, out_hw)
    pool, pool_text = patch_pool(patches, block, c, seed)
    blocks = lr_blocks(pool, s)
    run = runner(model, backend)
    x = image.detach().float().cpu()
    full = run.forward(x.to(run.feed))
    if not torch.isfinite(full).all():
        raise OnnxAttrError(f"{name} outputs NaN or Inf on this image in {run.name}; check the image and --value-range")
    refs = [effects.to_u8(hr_aligned[0, :, v.y : v.y + v.size, v.x : v.x + v.size].float().cpu()) for v in wins]
    p0 = np.array([float(window_psnr(full[:, :, v.y : v.y + v.size, v.x : v.x + v.size], ref)[0])
                   for v, ref in zip(wins, refs)])
    _refuse_infinite(p0, [], wins)
    radius = receptive_field(model, x) if field == "auto" else None
    crops = Crops(run, x, full, grid, wins, refs, radius, model.size_rule, name)
    for k in range(len(wins)):  # each window's own crop, checked against the full image
        crops.rect(frozenset([k]))
    checked = crops.forwards
    if crops.failed:  # a model that is not shift-equivariant: no field, no crops
        radius = None
        crops = Crops(run, x, full, grid, wins, refs, radius, model.size_rule, name)
    rows, cols = grid.shape
    in_window = np.stack([grid.window_mask(v) for v in wins])
    concerned = np.stack([grid.field_mask(v, radius) for v in wins])
    rng = {stage: np.random.default_rng([seed, stream]) for stage, stream in DRAW_STREAMS.items()}
    draws_c = rng["coarse"].integers(len(blocks), size=(rows, cols, coarse))
    draws_f = rng["fine"].integers(len(blocks), size=(rows, cols, fine))

    def items(mask: np.ndarray, k_draws: int) -> list[tuple[int, int, int, frozenset[int]]]:
        return [(r, q, d, frozenset(np.flatnonzero(mask[:, r, q]).tolist()))
                for r, q in zip(*np.nonzero(mask.any(axis=0))) for d in range(k_draws)]

    todo = items(concerned, coarse)
    with tqdm(total=len(todo), unit="forward", desc="cem", disable=None if progress else True, leave=False) as bar:
        first, batch_c, pixels_c = run_stage(crops, todo, draws_c, blocks, len(wins), batch_size, memory_fraction, bar)
        with np.errstate(invalid="ignore"):
            selected = concerned & effects.fine_selected(first.p0[..., None], first.psnr, tol) & (fine > 0)
        todo_f = items(selected, fine)
        bar.total += len(todo_f)
        bar.refresh()
        second, batch_f, pixels_f = run_stage(crops, todo_f, draws_f, blocks, len(wins), batch_size, memory_fraction, bar)
    _refuse_infinite(p0, [first, second], wins)
    e = effects.effect(first.p0, first.psnr, second.p0, second.psnr, selected, tol)
    e = np.where(concerned, e, 0.0)
    blocks_effect = np.where(in_window, np.nan, e)
    summaries = [summarise(e[k], in_window[k]) for k in range(len(wins))]
    plain = int(sum((~in_window[k]).sum() * coarse + selected[k].sum() * fine for k in range(len(wins))))
    forwards = len(todo) + len(todo_f)
    lr_effect = np.repeat(np.repeat(blocks_effect, grid.lr_block, axis=1), grid.lr_block, axis=2)[:, :h, :w]
    attribution = torch.from_numpy(np.nan_to_num(lr_effect, nan=0.0) / c).float()[:, None].expand(-1, c, -1, -1)
    params = {
        "block": block, "coarse": coarse, "fine": fine, "tol": tol, "seed": seed, "field": field, "backend": backend,
        "patches": str(patches) if isinstance(patches, (str, Path)) else None, "patch_pool": pool_text,
        "patch_count": len(pool), "patches_sha256": hashlib.sha256(pool.numpy().tobytes()).hexdigest(),
        "batch_size": max(batch_c, batch_f), "batch_size_requested": batch_size, "memory_fraction": memory_fraction,
    }
    checks = {
        "runner": run.name, "receptive_field": float("nan") if radius is None else radius,
        "forwards": forwards, "forwards_plain": plain, "crop_forwards": checked + crops.forwards,
        "cost_share": (pixels_c + pixels_f) / max(plain * h * w, 1),
        "graph_error": getattr(model, "graph_error", None),
    }
    return _dataset(model, image, full, wins, frame, params, checks, time.perf_counter() - t0, attribution,
                    lr_effect, blocks_effect, selected, concerned, summaries, p0, grid, hr_aligned)


def _dataset(model: SRModel, image: torch.Tensor, full: torch.Tensor, wins: list[Window], frame: str,
             params: dict[str, Any], checks: dict[str, Any], elapsed: float, attribution: torch.Tensor,
             lr_effect: np.ndarray, blocks_effect: np.ndarray, selected: np.ndarray, concerned: np.ndarray,
             summaries: list[Summary], p0: np.ndarray, grid: BlockGrid, hr: torch.Tensor) -> xr.Dataset:
    """The result in the shared layout with CEM's variables (``methods.registry``)."""
    block_y, block_x = grid.centres()
    blocks = ("window", "block_y", "block_x")
    data_vars = {
        "effect": (("window", "y", "x"), lr_effect.astype(np.float32)),
        "effect_blocks": (blocks, blocks_effect),
        "fine_stage": (blocks, selected.astype(np.int8)),
        **{f"{sign}_blocks": (("window",), np.array([getattr(m, sign) for m in summaries]))
           for sign in ("positive", "negative", "zero")},
        "field_blocks": (("window",), concerned.sum(axis=(1, 2))),
    }
    window_checks = {
        "psnr_window": p0, "effect_max": [m.high for m in summaries], "effect_min": [m.low for m in summaries],
        "effect_range": [m.range for m in summaries],
        "effect_max_x": [block_x[m.argmax[1]] for m in summaries], "effect_max_y": [block_y[m.argmax[0]] for m in summaries],
        "effect_min_x": [block_x[m.argmin[1]] for m in summaries], "effect_min_y": [block_y[m.argmin[0]] for m in summaries],
    }
    with warnings.catch_warnings():  # the shared note on a zero map speaks of baselines; CEM says it its own way
        warnings.filterwarnings("ignore", message=".*is zero everywhere")
        ds = build_dataset(
            model=model, image=image, output=full, method="cem", windows=wins, frame=frame, params=params,
            elapsed_s=elapsed, attribution=attribution, window_checks=window_checks, checks=checks,
            data_vars=data_vars, coords={"block_y": block_y, "block_x": block_x}, hr=hr,
            layout=METHODS["cem"].variables,
        )
    zero = [str(k + 1) for k, m in enumerate(summaries) if m.positive + m.negative == 0]
    if zero:
        warnings.warn(f"cem: no block changes the PSNR of window(s) {', '.join(zero)} by {params['tol']:g} dB or more "
                      "(tol): their maps are zero, and their diffusion index and reach undefined", stacklevel=3)
    return ds


__all__ = ["cem", "check_params", "estimate", "lr_blocks", "patch_pool"]
