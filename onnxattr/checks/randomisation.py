"""The model parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
Sec. 3.1): a map that explains the network must change when the network's weights are replaced by random ones.

Layers (``weights.layer_groups``) are re-drawn from the output towards the input:

* **cascading**: step j re-draws layers 1 .. j (counted from the output), so the last step's network is random;
* **independent**: step j re-draws layer j alone, the others stay trained.

At every step the re-drawn copy (``weights.redrawn``, then ``intake.reweight.reweighted``: converted, run and
verified as a load) is explained by each method through its own function, exactly as the trained model, and
each window's map is compared with the trained model's by ``metrics.similarity`` over the window's influence
region. One copy per step serves every method; the loaded model is never touched.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import OnnxAttrError, first_line
from ..intake.reweight import reweighted
from ..methods import memory
from ..metrics.gini import saliency
from ..metrics.similarity import MEASURES, map_similarity
from .weights import WeightNode, layer_groups, redrawn, weight_nodes

VARIANTS = ("cascading", "independent")

# A method run on a model: its maps (K, C, h, w) for the check's windows.
Run = Callable[[object], np.ndarray]


@dataclass
class Randomised:
    """What the test found: ``similarity`` (method, variant, step, window, measure), the ``saliency`` of each
    step's map (method, variant, step, window, h, w), the layers (``groups``, from the output), the variants
    run, per method a line for each step it could not take part in (``failures``) and the warnings the copies
    raised (each message once, in order; the warning filters in force decide which are raised)."""

    similarity: np.ndarray
    saliency: np.ndarray
    groups: list[list[WeightNode]]
    variants: tuple[str, ...]
    failures: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def plan(model, layers: int | None) -> list[list[WeightNode]]:
    """The test's layers for ``model`` (``layers`` steps, None: every parametrised node)."""
    return layer_groups(weight_nodes(model.proto), layers)


def step_nodes(groups: Sequence[Sequence[WeightNode]], variant: str, step: int) -> list[WeightNode]:
    """The nodes re-drawn at ``step`` (0-based) of ``variant``."""
    return [n for g in (groups[: step + 1] if variant == "cascading" else [groups[step]]) for n in g]


def randomisation(model, runs: Mapping[str, Run], trained: Mapping[str, np.ndarray], regions: Sequence[np.ndarray],
                  groups: list[list[WeightNode]], *, variants: Sequence[str] = VARIANTS, seed: int = 0,
                  on_step: Callable[[str, int], None] | None = None) -> Randomised:
    """Explain re-drawn copies of ``model`` with every method of ``runs`` (name -> run(model) -> maps (K, C, h, w))
    and compare each window's map with ``trained`` (name -> (K, C, h, w)) over ``regions`` (flat LR indices).

    A step whose copy or a method fails with a one-line error (a copy that does not verify, a map that is not
    finite) is NaN for the methods concerned and named in ``failures``; other errors propagate. ``on_step(variant,
    step)`` is called before each step."""
    names = list(runs)
    k, c, h, w = next(iter(trained.values())).shape
    shape = (len(names), len(variants), len(groups))
    similarity = np.full((*shape, k, len(MEASURES)), np.nan)
    maps = np.full((*shape, k, h, w), np.nan, dtype=np.float32)
    out = Randomised(similarity, maps, groups, tuple(variants), {n: [] for n in names})
    weights = 3 * 4 * sum(n.values for g in groups for n in g)  # the copy's proto, torch graph and onnxruntime session
    memory.require(weights, memory.free_memory(model.device), "a copy of the model with re-drawn weights",
                   ["free some memory", *memory.device_fix(model.device)], model.device)
    for v, variant in enumerate(variants):
        for s in range(len(groups)):
            if on_step is not None:
                on_step(variant, s)
            label = f"{variant} step {s + 1} of {len(groups)}"
            with warnings.catch_warnings(record=True) as caught:
                try:
                    copy = reweighted(model, redrawn(model.proto, step_nodes(groups, variant, s), seed))
                    memory.inherit(copy, model)
                except OnnxAttrError as err:
                    for name in names:
                        out.failures[name].append(f"{label}: {first_line(err)}")
                    continue
                for m, name in enumerate(names):
                    try:
                        a = runs[name](copy)
                    except OnnxAttrError as err:
                        out.failures[name].append(f"{label}: {first_line(err)}")
                        continue
                    for j in range(k):
                        sim = map_similarity(trained[name][j], a[j], regions[j])
                        similarity[m, v, s, j] = [sim[q] for q in MEASURES]
                        maps[m, v, s, j] = saliency(a[j])
            out.warnings += [t for t in dict.fromkeys(first_line(w.message) for w in caught) if t not in out.warnings]
    return out
