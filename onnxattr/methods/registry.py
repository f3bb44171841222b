"""The method registry: every attribution method, declared once.

Each ``Method`` names its module (which defines the method's function, ``check_params`` and ``estimate``), its
figure module, the variables its results add to the shared layout (``results.schema``), its trust checks (the
CLI's summary) and the parameters that change how it runs rather than what it computes. The CLI's command list,
``compare``'s ``--method``, ``show``'s figure and the docs tables all read this table; adding a method is one
module, one entry here and its CLI options (docs/architecture.md).

Pure data and lazy imports: the CLI builds its commands from here without loading torch.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

from ..errors import OnnxAttrError
from ..options import ERF_MASSES
from ..results.schema import (ATTRS, BASELINE, CHECK_ATTRS, CHECK_COORDS, CHECK_VARIABLES, COMPLETENESS_ERROR, COORDS,
                              HR_PX, SCHEMA_VERSION, STUDY_ATTRS, STUDY_COORDS, STUDY_VARIABLES, VARIABLES, WLR, Entry, W)

# The checks every result with an attribution holds (``results.build``), reported before each method's own ``checks``.
SHARED_CHECKS = {"diffusion_index": "diffusion index", "gini": "Gini", "reach": "reach (LR px)",
                 "saliency_pixels": "pixels for 95 %"}
# Keyword arguments of a method that callers (compare, the CLI) set themselves: not method parameters.
CALLER_ARGS = ("hr", "progress", "frame")
# Attrs a method's checks may name that only some runs write (LAM's receptive field, with --receptive-field).
OPTIONAL_ATTRS = ("receptive_field",)


@dataclass(frozen=True)
class Method:
    """One attribution method.

    ``module`` defines ``<name>(model, image, window, *, frame, hr, ...) -> xr.Dataset``, ``check_params(**params)``
    (one-line errors before any model loads; returns the normalised parameters) and ``estimate(model, h, w, ...)``
    (peak bytes). ``figure`` is the module whose ``draw(ds, style, panels, cmap)`` draws one window of a result.
    ``variables``: the variables and coordinates the method adds to ``results.schema``'s layout. ``checks``: the
    variables or attrs that say how far to trust a result, with their labels. ``run_only``: parameters that change
    how the method runs, not its result (a study keeps cells computed with other values). ``memory_share``: the
    parameter giving the share of free memory one call may take, divided among tasks that run side by side.
    ``needs_hr``: the method measures against the HR image (refused without it, before any model loads).
    ``forward_only``: the method runs the model forward only (models load without conversion: ``load_model``'s
    ``forward_only``). ``graph_params``: the parameters that make such a method run the loaded torch graph, not the
    ONNX file (the checks re-draw the graph's weights).
    """

    name: str
    summary: str
    module: str
    figure: str
    variables: Mapping[str, Entry] = field(default_factory=dict)
    checks: Mapping[str, str] = field(default_factory=dict)
    run_only: tuple[str, ...] = ()
    memory_share: str | None = None
    needs_hr: bool = False
    forward_only: bool = False
    graph_params: Mapping[str, Any] = field(default_factory=dict)

    def implementation(self) -> ModuleType:
        """The method's module (imported on first use)."""
        return importlib.import_module(self.module)

    @property
    def function(self) -> Callable[..., Any]:
        """The method itself: ``function(model, image, window, **params) -> xr.Dataset``."""
        return getattr(self.implementation(), self.name)

    def defaults(self) -> dict[str, Any]:
        """The method's parameters (its keyword-only arguments but ``CALLER_ARGS``) with their defaults."""
        return {n: p.default for n, p in inspect.signature(self.function).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in CALLER_ARGS}

    def check_params(self, **params: Any) -> dict[str, Any]:
        """The method's own checks of its parameters (defaults filled in); the normalised parameters."""
        return self.implementation().check_params(**{**self.defaults(), **params})

    def estimate(self, *args: Any, **kwargs: Any) -> int:
        """Peak bytes of one call (the method's ``estimate``)."""
        return self.implementation().estimate(*args, **kwargs)

    def table(self) -> dict[str, Entry]:
        """The whole layout of its results: the shared coordinates and variables and its own."""
        return {**COORDS, **VARIABLES, **self.variables}


def _cem() -> dict[str, Entry]:
    """CEM's variables: the effect maps, the block grid, the counts and the range of each window."""
    blocks = ("window", "block_y", "block_x")
    ends = {f"effect_{end}_{axis}": Entry(W, f"block of the effect {end}", HR_PX,
                                          f"{'column' if axis == 'x' else '-(row)'} of the nominal centre of the first "
                                          f"block (row-major) holding effect_{end}, as block_{axis}")
            for end in ("max", "min") for axis in ("x", "y")}
    counts = {f"{sign}_blocks": Entry(W, f"{sign} blocks", "1", f"blocks outside the window whose effect is {rule}")
              for sign, rule in (("positive", "> 0 (they help)"), ("negative", "< 0 (they hurt)"),
                                 ("zero", "0 (|effect| < tol, or outside the receptive field)"))}
    return {
        "block_y": Entry(("block_y",), "block row", HR_PX, "nominal centre of block row r, -(r + 0.5) b, in the shared HR frame"),
        "block_x": Entry(("block_x",), "block column", HR_PX, "nominal centre of block column c, (c + 0.5) b"),
        "effect": Entry(("window", "y", "x"), "causal effect", "dB",
                        "PSNR_0 - mean PSNR with the pixel's block replaced, on the LR grid; NaN on the window's own blocks"),
        "effect_blocks": Entry(blocks, "causal effect per block", "dB",
                               "PSNR_0 - mean_k PSNR_k of the window with the block replaced by patch k; NaN on its own blocks"),
        "fine_stage": Entry(blocks, "fine stage", "1", "1 where a coarse draw moved the PSNR by >= tol: K_f fine draws"),
        **counts,
        "field_blocks": Entry(W, "blocks in the field", "1", "blocks intervened on: in the receptive field, not the window's"),
        "psnr_window": Entry(W, "window PSNR", "dB", "PSNR_0: uint8-rounded output vs HR on the window, unperturbed"),
        "effect_max": Entry(W, "largest effect", "dB", "largest block effect outside the window"),
        "effect_min": Entry(W, "smallest effect", "dB", "smallest block effect outside the window"),
        "effect_range": Entry(W, "effect range", "dB", "effect_max - effect_min"),
        **ends,
    }


def _views() -> dict[str, Entry]:
    """GL-AM's maps: the sum, consensus and variation of the local (window) and global views."""
    return {
        f"{view}{part}": Entry(("window", "Y", "X") if view == "local" else ("Y", "X"), f"GL-AM {view} {name}", "1",
                               f"{desc} of the {view} view, scaled to [0, 1]")
        for view in ("local", "global")
        for part, name, desc in (("", "sum", "sum over layers"), ("_consensus", "consensus", "layer consensus"),
                                 ("_variation", "variation", "variation across layers"))
    }


def radius_name(share: float) -> str:
    """The ERF variable holding the radius of ``share`` of the mass: erf_r20, erf_r50, erf_r95."""
    return f"erf_r{round(100 * share)}"


def _radii() -> dict[str, Entry]:
    """The ERF's radii (``radius_name``), one per share of ``options.ERF_MASSES``."""
    return {radius_name(t): Entry(W, f"ERF radius of {100 * t:g} % of the mass", "LR px",
                                            f"smallest distance from the window's centre within which the ERF holds "
                                            f"{100 * t:g} % of its mass") for t in ERF_MASSES}


METHODS: dict[str, Method] = {m.name: m for m in (
    Method(
        "lam", "Local attribution map (LAM) of an output window.", "onnxattr.methods.lam", "onnxattr.plot.lam",
        variables={
            "step": Entry(("step",), "path step", "1", "i of the path point x_i; 0 is the baseline", optional=True),
            "baseline": BASELINE,
            "path_objective": Entry(("window", "step"), "objective along the path", "1",
                                    "D(F(x_i)) at each path point, i = 0 the baseline (attr objective: the D)",
                                    optional=True),
            "path_attribution": Entry(("window", "step"), "attribution mass of each path step", "1",
                                      "sum over channels and pixels of dD/dx_i * (x_i - x_{i-1}); 0 at i = 0; the "
                                      "cumulative sum ends at sum A", optional=True),
            "path_increment": Entry(("step",), "path increment", "1",
                                    "|x_i - x_{i-1}|_2 over channels and pixels; 0 at i = 0", optional=True),
            "completeness_error": COMPLETENESS_ERROR,
            "objective_input": Entry(W, "objective at the input", "1", "D(F(x)) of the window"),
            "objective_baseline": Entry(W, "objective at the baseline", "1", "D(F(x_0)); NaN for the plain gradient"),
        },
        checks={"completeness_error": "completeness error", "receptive_field": "theoretical RF (LR px)"},
        run_only=("batch_size", "memory_fraction", "field_crop"),
        memory_share="memory_fraction",
    ),
    Method(
        "l2x", "L2X attribution of an output window (per-op rules).", "onnxattr.methods.l2x", "onnxattr.plot.l2x",
        variables={
            "baseline": BASELINE,
            "attribution_pos": Entry(WLR, "positive-part attribution R+", "1", "contributions of inputs above the baseline"),
            "attribution_neg": Entry(WLR, "negative-part attribution R-", "1", "contributions of inputs below the baseline"),
            "completeness_error": COMPLETENESS_ERROR,
            "target_value": Entry(W, "target at the input", "1", "t(x): the explained number of the window"),
            "target_reference_value": Entry(W, "target at the baseline", "1", "t(x_ref)"),
            "attribution_sum": Entry(W, "sum of the attribution", "1", "sum of R over channels and pixels"),
        },
        checks={"completeness_error": "completeness error", "target_value": "target",
                "target_reference_value": "target at baseline"},
    ),
    Method(
        "glam", "GL-AM local and global attribution maps of an output window.", "onnxattr.methods.glam",
        "onnxattr.plot.glam",
        variables={
            "layer": Entry(("layer",), "explained layer", "", "fx node name of each explained layer"),
            "op_type": Entry(("layer",), "ONNX op type", "", "op type of each explained layer"),
            "global_layer": Entry(("global_layer",), "global-view layer", "", "layer i + 1 of each consecutive pair"),
            "global_source": Entry(("global_layer",), "global-view source layer", "", "layer i of each consecutive pair"),
            "global_op_type": Entry(("global_layer",), "ONNX op type", "", "op type of each global-view layer"),
            **_views(),
            "local_layers": Entry(("window", "layer", "Y", "X"), "GL-AM local map per layer", "1",
                                  "each layer's local (window) map in the SR frame, / max"),
            "global_layers": Entry(("global_layer", "Y", "X"), "GL-AM global map per layer pair", "1",
                                   "each consecutive layer pair's global map in the SR frame, / max"),
            "attributed_share": Entry(W, "attributed pixel share (local)", "1",
                                      "share of LR pixels with local attribution > 0"),
        },
        checks={"attributed_share": "attributed pixels (local)",
                "global_attributed_share": "attributed pixels (global)"},
    ),
    Method(
        "erf", "Effective receptive field (ERF) of an output pixel or window over images.", "onnxattr.methods.erf",
        "onnxattr.plot.erf",
        variables={
            "corner": Entry(("corner",), "box corner", "", "x0, y0 (left, top) and x1, y1 (right, bottom), inclusive"),
            "erf": Entry(("window", "y", "x"), "effective receptive field", "1",
                         "mean over the images of sum_c |dD/dx_c|, D the output summed over the window and channels"),
            **_radii(),
            "outside_share": Entry(W, "ERF mass outside the theoretical field", "1",
                                   "share of the ERF outside receptive_box (0 up to rounding); NaN where the field is not finite"),
            "receptive_box": Entry(("window", "corner"), "theoretical receptive field of the window", "LR px",
                                   "the LR pixels (indices) the window's output can depend on by the graph; NaN where the "
                                   "field is unbounded or unknown"),
        },
        checks={**{radius_name(t): f"r{100 * t:g} (LR px)" for t in ERF_MASSES},
                "receptive_field": "theoretical RF (LR px)", "outside_share": "ERF outside the RF"},
        run_only=("batch_size", "memory_fraction"),
        memory_share="memory_fraction",
    ),
    Method(
        "cem", "Causal effect map (CEM) of an output window: PSNR change when input blocks are replaced.",
        "onnxattr.methods.cem", "onnxattr.plot.cem",
        variables=_cem(),
        checks={"positive_blocks": "positive blocks", "negative_blocks": "negative blocks",
                "effect_range": "effect range (dB)", "psnr_window": "window PSNR (dB)", "forwards": "forwards"},
        run_only=("field", "backend", "batch_size", "memory_fraction"),
        memory_share="memory_fraction",
        needs_hr=True,
        forward_only=True,
        graph_params={"backend": "torch"},
    ),
)}


def usable(hr: bool) -> list[str]:
    """The registered methods that can run with the HR image (``hr``) or without it (those not ``needs_hr``)."""
    return [name for name, m in METHODS.items() if hr or not m.needs_hr]


def method(name: str) -> Method:
    """The registered method ``name``; a one-line error naming the known ones."""
    if name not in METHODS:
        raise OnnxAttrError(f"method {name!r}: use one of {', '.join(METHODS)}")
    return METHODS[name]


def layout_problems(ds: Any) -> list[str]:
    """How ``ds`` (a single-method result, a study or a check report) departs from its layout: missing or unknown
    names, wrong dims, missing attrs; empty when it matches."""
    out = []
    name = str(ds.attrs.get("method"))
    kinds = {"compare": ({**STUDY_COORDS, **STUDY_VARIABLES}, STUDY_ATTRS), "check": ({**CHECK_COORDS, **CHECK_VARIABLES}, CHECK_ATTRS)}
    if name not in (*METHODS, *kinds):
        return [f"method {name!r} is not one of {', '.join(METHODS)}, {' or '.join(kinds)}"]
    table = kinds[name][0] if name in kinds else METHODS[name].table()
    for var, entry in table.items():
        if var not in ds.variables:
            if not entry.optional:
                out.append(f"{var}: missing")
            continue
        if ds[var].dims != entry.dims:
            out.append(f"{var}: dims {ds[var].dims}, expected {entry.dims}")
        for key, value in entry.attrs().items():
            if ds[var].attrs.get(key) != value:
                out.append(f"{var}: attr {key} is {ds[var].attrs.get(key)!r}")
    out += [f"{var}: not in the schema" for var in ds.variables if var not in table]
    required = kinds[name][1] if name in kinds else [*ATTRS, *(c for c in METHODS[name].checks
                                                              if c not in table and c not in OPTIONAL_ATTRS)]
    out += [f"attr {a}: missing" for a in required if a not in ds.attrs]
    out += [f"attr {a}: 'none' string (unset values are left out)" for a, v in ds.attrs.items()
            if isinstance(v, str) and v == "none"]
    if ds.attrs.get("schema_version") != SCHEMA_VERSION:
        out.append(f"schema_version {ds.attrs.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return out
