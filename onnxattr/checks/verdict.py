"""The checks' outcomes in words: one line and a pass (1), fail (0) or not-run (NaN) per method and check.

* **randomisation** (Adebayo et al. 2018): Spearman's rank correlation of the map with the trained map, of |map|
  and of the signed map, averaged over the windows; the test statistic is the lower of the two (``rank_statistic``;
  they coincide for maps that are never negative). It passes when the map of the fully randomised network (the
  cascading test's last step) correlates below ``RANK_THRESHOLD``: the map follows the weights. A map that still
  correlates at ``RANK_THRESHOLD`` or more with every layer random is independent of the weights: it fails. The
  |map| ranking of a window keeps much of the receptive field's shape (pixels near the window rank first in a
  random network too), so for signed maps the signed correlation usually decides; the line gives both. It names
  the first layer after which the statistic stays below the threshold and, from the independent variant, the
  layer whose re-drawing alone changes the map most.
* **deletion** / **insertion** (Petsiuk et al. 2018): the map's normalised AUC, averaged over the windows, against
  both controls' means: deletion passes when it is lower than both (the map's first pixels take the window's
  detail away faster than random orders and random maps), insertion when it is higher than both.
"""

from __future__ import annotations

import numpy as np

RANK_THRESHOLD = 0.5  # Spearman |map| with every layer random at or above this: independent of the weights


def rank_statistic(spearman_abs: np.ndarray, spearman: np.ndarray) -> np.ndarray:
    """The randomisation test's statistic: the lower of the |map| and signed rank correlations (NaN only where both are)."""
    return np.fmin(spearman_abs, spearman)


def randomisation_verdict(cascading: tuple[np.ndarray, np.ndarray], independent: tuple[np.ndarray, np.ndarray] | None,
                          layers: list[str]) -> tuple[str, float]:
    """(line, pass) from the (|map|, signed) Spearman curves (step,) of the cascading and independent variants,
    each the mean over windows; ``layers``: the ONNX name of each step's layer."""
    stat = rank_statistic(*cascading)
    n = len(stat)
    if not np.isfinite(stat[-1]):
        return ("randomisation: no rank correlation with all layers random (a constant map, or a step without a "
                "map: see the failures)"), np.nan
    both = f"Spearman |map| {cascading[0][-1]:.2f}, signed {cascading[1][-1]:.2f} with all {n} layers random"
    sensitive = ""
    if independent is not None and np.isfinite(rank_statistic(*independent)).any():
        alone = rank_statistic(*independent)
        j = int(np.nanargmin(alone))
        sensitive = f"; alone, layer {j + 1} ({layers[j]}) changes it most ({alone[j]:.2f})"
    if stat[-1] >= RANK_THRESHOLD:
        return f"randomisation: map independent of the weights: {both} (>= {RANK_THRESHOLD:g}){sensitive}: fails", 0.0
    above = np.flatnonzero(~(stat < RANK_THRESHOLD))
    first = int(above[-1]) + 2 if above.size else 1
    return (f"randomisation: map follows the weights: {both}, below {RANK_THRESHOLD:g} from layer {first} of {n} on"
            f"{sensitive}: passes"), 1.0


def curve_verdict(curve: str, auc: np.ndarray, spread: np.ndarray) -> tuple[str, float]:
    """(line, pass) for ``curve`` ('deletion' or 'insertion') from the AUCs of the orders (map, random order,
    random map) and the controls' spreads, each the mean over windows."""
    if not np.isfinite(auc).all():
        return (f"{curve}: not measured: the baseline leaves the window's detector unchanged (a flat window?); "
                "pick a window with detail"), np.nan
    mine, order, rmap = auc
    better = mine < min(order, rmap) if curve == "deletion" else mine > max(order, rmap)
    word = "lower" if curve == "deletion" else "higher"
    return (f"{curve}: AUC {mine:.2f} vs random order {order:.2f} +- {spread[1]:.2f}, random map {rmap:.2f} "
            f"+- {spread[2]:.2f} ({word} is faithful): {'passes' if better else 'fails'}"), float(better)
