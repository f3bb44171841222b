"""The CEM figure (Hu et al., TPAMI 2025, Fig. 1 and the authors' ``generate_CE_map``): LR input with the window,
the causal effect map and the SR and HR crops of the window.

The map is the authors': matplotlib's ``seismic`` (red: the block helps the window, blue: it hurts) over
+-``BOUND`` dB (2.5 dB for SR; larger effects are clipped), through their mapping v = sign(e) |e|^(1/1.2) /
BOUND^(1/1.2), one colour per block; the window's own blocks (not intervened on) are painted solid green, as theirs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.colors import FuncNorm
from matplotlib.figure import Figure

from .common import (STYLES, Panel, Style, as_rgb, choose, columns_for, draw_panels, figure_for, hr_panels, label_of, number,
                     title, window_lr, window_sr)

BOUND = 2.5  # dB, the authors' bound for SR
POWER = 1 / 1.2  # the authors' custom_mapping
WINDOW_FILL = "lime"
PANELS = ("input", "effect", "overlay", "sr", "hr")
DEFAULT = {"overview": PANELS, "paper": ("input", "effect", "sr", "hr")}
LR_SHARE = 0.1  # the authors' figure: 0.9 map + 0.1 image


def effect_norm(bound: float = BOUND) -> FuncNorm:
    """e -> 0.5 + 0.5 sign(e) |e|^(1/1.2) / bound^(1/1.2), clipped to [0, 1]: the authors' ``custom_mapping``
    followed by ``cmap(v * 0.5 + 0.5)``."""
    def forward(e: np.ndarray) -> np.ndarray:
        return np.sign(e) * np.abs(e) ** POWER

    def inverse(v: np.ndarray) -> np.ndarray:
        return np.sign(v) * np.abs(v) ** (1 / POWER)

    return FuncNorm((forward, inverse), vmin=-bound, vmax=bound, clip=True)


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """Panels: LR input + window (LR px), the effect map on the LR grid (``seismic`` on +-2.5 dB through the
    authors' power 1/1.2 mapping, the window green), the map over the input (the authors' 0.9 / 0.1 blend), the SR
    crop of the window and, with HR, the HR crop."""
    lr = as_rgb(ds["input"])
    paper = style.name == "paper"
    win = window_lr(ds)
    x, y, size = (int(v) for v in window_sr(ds))
    colours = colormaps[cmap or "seismic"].with_extremes(bad=WINDOW_FILL)
    effect = np.asarray(ds["effect"].values, dtype=np.float64)
    ticks = [-BOUND, -1.0, 0.0, 1.0, BOUND]
    blend = (1 - LR_SHARE) * colours(effect_norm()(np.ma.masked_invalid(effect)))[..., :3] + LR_SHARE * lr
    available = {
        "input": Panel("LR input" if paper else f"LR input {lr.shape[1]}x{lr.shape[0]}, window (LR px)", lr, window=win),
        "effect": Panel("causal effect" if paper else f"causal effect, {int(ds.attrs['block'])} px blocks", effect,
                        cmap=colours, norm=effect_norm(), label="effect (dB)" if paper else
                        f"PSNR drop of the window (dB), red helps, blue hurts, |e| > {BOUND:g} clipped",
                        window=win, ticks=ticks, tick_labels=[f"{t:g}" for t in ticks]),
        "overlay": Panel("over the input" if paper else f"over the input ({LR_SHARE:g} of it, as the authors)", blend),
        **hr_panels(ds, x, y, size, short=paper),
    }
    chosen = choose(available, panels, DEFAULT[style.name])
    cols = columns_for(len(chosen), style.max_columns)
    fig = figure_for(style, -(-len(chosen) // cols), cols, extra=0.4 if paper else 0.7)
    draw_panels(fig, chosen, style, cols)
    pos, neg, zero = (int(ds[f"{k}_blocks"]) for k in ("positive", "negative", "zero"))
    high, low, rng = (float(ds[f"effect_{k}"]) for k in ("max", "min", "range"))
    counts = f"+{pos} / -{neg} / 0: {zero} blocks"
    title(fig, f"{label_of(ds)}: CEM {counts}, range {number(rng, '.2f')} dB" if paper else (
        f"{label_of(ds)} ({ds.attrs['model_file']})   CEM {counts}   effect {number(low, '+.2f')} .. "
        f"{number(high, '+.2f')} dB (range {number(rng, '.2f')})   window PSNR {number(float(ds['psnr_window']), '.2f')} dB   "
        f"K_c {int(ds.attrs['coarse'])}, K_f {int(ds.attrs['fine'])}, tol {float(ds.attrs['tol']):g} dB"), style)
    return fig
