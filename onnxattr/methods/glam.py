"""GL-AM: glocal attribution maps (Liu, Jacob, Song, Liotta), local (eqs. 1-2) and global (eqs. 3-5).

Notation (paper): layer i's feature map fea_i (C_i x h_i x w_i), its gradient g_i, the channel
weights W_i,c = mean_{y,x} g_i,c (as in Grad-CAM) and the key map
``key_i = sum_c W_i,c * g_i,c`` (h_i x w_i). Every key is resized bicubically to the SR output
size and normalised, n(m) = |m| / max |m| (0 stays 0). Then

* consensus  C = sum_i n(key_i)                                   (eq. 2 / 5, first term)
* variation  V = sum_{i>=1} |n(key_i) - n(key_{i-1})|  ("abs", default)
             V = sum_{i>=1} (n(key_i) - n(key_{i-1}))  ("signed", the literal eq. 2 / 5)
* map        G = r(n(C) + n(V)),  r(m) = (m - min(m, 0)) / (max - min(m, 0)) in [0, 1]

Local map (eqs. 1-2): g_i = d T_ROI / d fea_i from ONE backward of LAM's gradient detector on the
window (or another objective of the LAM toolbox: ``windows.detector``). Global map (eqs. 3-5): for consecutive chosen layers i, j = i + 1,
g_{j->i} = d T_Global(fea_j) / d fea_i with T_Global = sum of the gradient map of the whole fea_j,
and eq. 4 fea_global_j = fea_j x key_{j->i}; all pairs come from ONE forward in which every chosen
layer's output re-enters as a detached leaf, and ONE backward of sum_j T_Global(fea_j).
``docs/glam.md`` lists every choice the paper leaves open. With ``smooth`` / ``noise`` (``smooth``) both passes run on
N noisy copies and the per-layer maps are combined before the consensus and variation.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
import xarray as xr
from torch import fx

from ..errors import OnnxAttrError
from ..intake import NodeInfo, SRModel
from ..options import DEFAULT_LAYERS, VARIATIONS
from ..results.build import build_dataset
from ..windows.detector import check_objective, check_objective_windows, gradient_map, window_objectives
from ..windows.geometry import Window, WindowSpec, align_hr, resolve_windows
from . import memory
from .registry import METHODS
from .smooth import active, check_smooth, combine, noisy_copies

# float32 maps at the SR size per window and layer: to_output's maps, their stack, glocal's normalised copies.
MAP_VALUES = 3

# Side ratios a layer may have to the input (layer side = ratio * input side + offset).
_RATIOS = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 1, 2, 3, 4, 6, 8)


# ------------------------------------------------------------------ layer layouts
@dataclass(frozen=True)
class Layer:
    """A chosen node whose output is a spatial map: layout 'nchw', 'nhwc' or 'nlc' (tokens, row-major),
    side = ``ratio`` * input side + ``offset``."""

    node: NodeInfo
    layout: str
    ratio: float
    offset: int

    @property
    def name(self) -> str:
        return self.node.name

    def spatial(self, t: torch.Tensor, in_hw: tuple[int, int]) -> torch.Tensor:
        """The node's output (or its gradient) as (1, C, h_i, w_i)."""
        if self.layout == "nchw":
            return t
        if self.layout == "nhwc":
            return t.permute(0, 3, 1, 2)
        h, w = (round(self.ratio * s) + self.offset for s in in_hw)
        if t.shape[1] != h * w:
            raise OnnxAttrError(f"layer {self.name} has {t.shape[1]} tokens, expected {h}x{w} for this input")
        return t.transpose(1, 2).reshape(1, t.shape[2], h, w)


def _side_law(a: int, b: int, in_a: int, in_b: int) -> tuple[float, int] | None:
    """(ratio, offset) with a = ratio * in_a + offset, b = ratio * in_b + offset, ratio in _RATIOS.

    A square probe (fixed-size models) cannot separate ratio and offset: then a == b is required and
    the ratio with the smallest |offset| (at most ratio * in_a / 2) is taken.
    """
    if min(a, b) < 1:
        return None
    if in_a != in_b:
        ratio = (b - a) / (in_b - in_a)
        matches = [r for r in _RATIOS if abs(r - ratio) < 1e-9]
    else:
        matches = sorted((r for r in _RATIOS if a == b and abs(a - r * in_a) <= r * in_a / 2), key=lambda r: abs(a - r * in_a))
    if not matches:
        return None
    offset = a - matches[0] * in_a
    return (matches[0], int(round(offset))) if abs(offset - round(offset)) < 1e-9 else None


def layout_of(node: NodeInfo, probe_hw: tuple[int, int]) -> Layer | None:
    """How a node's probe output shape maps onto the image grid, or None (e.g. Gemm on pooled
    vectors, attention matrices, window-partitioned tokens)."""
    s, (ph, pw) = node.shape, probe_hw
    if len(s) == 4 and s[0] == 1:
        for layout, (a, b) in (("nchw", s[2:4]), ("nhwc", s[1:3])):
            law = _side_law(a, b, ph, pw)
            if law:
                return Layer(node, layout, *law)
    if len(s) == 3 and s[0] == 1:
        for r in _RATIOS:
            h, w = r * ph, r * pw
            if h == int(h) and w == int(w) and h * w == s[1]:
                return Layer(node, "nlc", r, 0)
    return None


def choose_layers(model: SRModel, op_types: Iterable[str] | None, pattern: str | None) -> tuple[list[Layer], list[str]]:
    """Spatial layers among ``model.select(op_types=..., pattern=...)`` (graph order) and the skipped names."""
    nodes = model.select(op_types=list(op_types or DEFAULT_LAYERS), pattern=pattern)
    probe = model.fixed_size or model.probe_size
    layers, skipped = [], []
    for n in nodes:
        layer = layout_of(n, probe)
        (layers.append(layer) if layer else skipped.append(n.name))
    if skipped:
        warnings.warn(
            f"GL-AM skips {len(skipped)} selected node(s) whose output is not an image-shaped map "
            f"(e.g. {skipped[0]}); see the skipped_layers attr",
            stacklevel=3,
        )
    if len(layers) < 2:
        raise OnnxAttrError(
            f"GL-AM needs at least 2 image-shaped layers, the selection has {len(layers)}; "
            "widen --layers / --pattern (see `onnxattr inspect --nodes`)"
        )
    return layers, skipped


def mixed_pairs(graph: fx.GraphModule, names: Sequence[str]) -> list[str]:
    """Layers i whose output reaches a chosen layer other than i + 1 without passing another chosen
    layer (skip connections): their global gradient also holds those layers' direct terms."""
    chosen = set(names)
    nodes = {n.name: n for n in graph.graph.nodes}
    mixed = []
    for i, name in enumerate(names[:-1]):
        reached, stack, seen = set(), list(nodes[name].users), set()
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            if n.name in chosen:
                reached.add(n.name)
            else:
                stack.extend(n.users)
        if reached - {names[i + 1]}:
            mixed.append(name)
    return mixed


# ------------------------------------------------------------------ pure tensor core
def channel_key(grad: torch.Tensor) -> torch.Tensor:
    """key = sum_c W_c * g_c with W_c = mean_{y,x} g_c (Grad-CAM weights; eqs. 1-2, 3): (1, C, h, w) -> (h, w)."""
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return (weights * grad).sum(dim=1)[0]


def resize(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize (align_corners=False) of an (h, w) map to ``size``."""
    return F.interpolate(m[None, None].double(), size=size, mode="bicubic", align_corners=False)[0, 0]


def scale_unit(m: torch.Tensor) -> torch.Tensor:
    """m / max |m| (an all-zero map stays zero): [0, 1] for maps >= 0, [-1, 1] otherwise."""
    peak = m.abs().max()
    return m / peak if peak > 0 else m


def to_output(key: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """n(key) = |bicubic(key)| / max, in [0, 1] at the SR output size."""
    return scale_unit(resize(key, size).abs())


def consensus(maps: torch.Tensor) -> torch.Tensor:
    """sum_i n_i over the layer axis of (L, H, W) (first term of eqs. 2 and 5)."""
    return maps.sum(dim=0)


def variation(maps: torch.Tensor, kind: str = "abs") -> torch.Tensor:
    """sum_{i>=1} |n_i - n_{i-1}| ('abs') or sum_{i>=1} (n_i - n_{i-1}) = n_last - n_0 ('signed')."""
    diff = maps[1:] - maps[:-1]
    if kind == "abs":
        return diff.abs().sum(dim=0)
    if kind == "signed":
        return diff.sum(dim=0)
    raise OnnxAttrError(f"variation {kind!r}: use one of {', '.join(VARIATIONS)}")


def rescale(m: torch.Tensor) -> torch.Tensor:
    """(m - min(m, 0)) / (max - min(m, 0)): m / max for maps >= 0, min-max otherwise; in [0, 1]."""
    low = torch.clamp(m.min(), max=0.0)
    span = m.max() - low
    return (m - low) / span if span > 0 else m - low


def glocal(maps: torch.Tensor, kind: str = "abs") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G, n(C), n(V)) of eq. 2 / 5 from the per-layer maps (L, H, W): G = r(n(C) + n(V))."""
    cons, var = scale_unit(consensus(maps)), scale_unit(variation(maps, kind))
    return rescale(cons + var), cons, var


def feature_product(fea_j: torch.Tensor, grad_i: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Eq. 4, fea_j x key_{j->i}, as an (H, W) map before normalisation.

    With W_c = mean_{y,x} grad_i,c: sum_c fea_j,c * W_c * grad_i,c when fea_j and grad_i have one shape;
    otherwise bicubic(sum_c fea_j,c) * bicubic(sum_c W_c * grad_i,c) at the output size.
    """
    weighted = grad_i.mean(dim=(2, 3), keepdim=True) * grad_i
    if weighted.shape == fea_j.shape:
        return resize((fea_j * weighted).sum(dim=1)[0], size)
    return resize(fea_j.sum(dim=1)[0], size) * resize(weighted.sum(dim=1)[0], size)


def to_lr(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average an SR-space map down to the LR input size."""
    return F.adaptive_avg_pool2d(m[None, None], size)[0, 0]


def attributed_share(m: torch.Tensor) -> float:
    """The paper's attributed pixel share (Sec. IV-D2): fraction of pixels above the map's mean."""
    return float((m > m.mean()).double().mean())


# ------------------------------------------------------------------ passes on a model
def local_keys(
    model: SRModel, x: torch.Tensor, layers: Sequence[Layer], windows: Sequence[Window], objective: str = "grad",
    reduce: str = "sum",
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """One forward, then ONE backward per window of T_ROI = the window objective (eq. 1: LAM's gradient detector;
    ``windows.detector.window_objectives``): the SR output and, per window, key_i = channel_key(d T_ROI / d fea_i) for
    every layer (eq. 2 before resizing)."""
    names = [l.name for l in layers]
    acts: dict[str, torch.Tensor] = {}

    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        acts[name] = value
        return value

    hw = tuple(x.shape[2:])
    x = x.to(model.device, torch.float32).detach().requires_grad_(True)
    with torch.enable_grad():
        out = model.run(x, names, record)
        d = window_objectives(out, windows, objective, reduce)[0]
        wrt = [acts[n] for n in names]
        keys = []
        for k in range(len(windows)):
            grads = torch.autograd.grad(d[k], wrt, retain_graph=k < len(windows) - 1, allow_unused=True)
            keys.append([
                channel_key(l.spatial(g if g is not None else torch.zeros_like(a), hw))
                for l, a, g in zip(layers, wrt, grads)
            ])
    return out.detach(), keys


def global_products(model: SRModel, x: torch.Tensor, layers: Sequence[Layer], size: tuple[int, int]) -> list[torch.Tensor]:
    """Eqs. 3-4 for every consecutive pair (i, j = i + 1): one forward where each layer's output
    re-enters as a detached leaf, ONE backward of sum_j T_Global(fea_j), T_Global = sum of gradient_map(fea_j)."""
    hw = tuple(x.shape[2:])
    by_name = {l.name: l for l in layers}
    feas: dict[str, torch.Tensor] = {}
    leaves: dict[str, torch.Tensor] = {}

    def reenter(name: str, value: torch.Tensor) -> torch.Tensor:
        feas[name] = by_name[name].spatial(value, hw)
        leaves[name] = value.detach().requires_grad_(True)
        return leaves[name]

    with torch.enable_grad():
        model.run(x, list(by_name), reenter)
        total = sum(gradient_map(feas[l.name]).sum() for l in layers[1:])
        wrt = [leaves[l.name] for l in layers[:-1]]
        grads = torch.autograd.grad(total, wrt, allow_unused=True) if total.requires_grad else [None] * len(wrt)
    products = []
    for i, (src, dst) in enumerate(zip(layers[:-1], layers[1:])):
        g = grads[i] if grads[i] is not None else torch.zeros_like(wrt[i])
        products.append(feature_product(feas[dst.name].detach(), src.spatial(g, hw), size))
    return products


def views(local_layers: torch.Tensor, global_layers: torch.Tensor, kind: str) -> tuple[tuple, tuple]:
    """The glocal (G, n(C), n(V)) of each window's layer maps (K, L, H, W) and of the global ones (L - 1, H, W)."""
    local = tuple(torch.stack(v) for v in zip(*(glocal(m, kind) for m in local_layers)))
    return local, glocal(global_layers, kind)


def maps(
    model: SRModel, x: torch.Tensor, layers: Sequence[Layer], windows: Sequence[Window], size: tuple[int, int], kind: str,
    objective: str = "grad", reduce: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor, tuple, torch.Tensor, tuple, tuple[float, float, float]]:
    """Both passes: (output, local_layers (K, L, H, W), glocal of each window's layers, global_layers (L - 1, H, W),
    their glocal, (t0, t1, t2) the times before, between and after them)."""
    t0 = time.perf_counter()
    output, keys = local_keys(model, x, layers, windows, objective, reduce)
    local_layers = torch.stack([torch.stack([to_output(k, size) for k in per_window]) for per_window in keys])
    t1 = time.perf_counter()
    global_layers = torch.stack([scale_unit(p.abs()) for p in global_products(model, x, layers, size)])
    local, global_ = views(local_layers, global_layers, kind)
    return output, local_layers, local, global_layers, global_, (t0, t1, time.perf_counter())


def _law(model: SRModel, layers: Sequence[Layer]) -> memory.PeakLaw:
    """The peak law of ``maps`` for one window (``memory.fit_law`` on its own passes: the taps, the re-entered
    leaves and the SR-size maps follow the model's sizes as its forward + backward does), per layer selection, kept
    with the model's cache entry (``memory.learned_law``)."""
    def measure(h: int, w: int) -> int:
        x = torch.rand(1, model.in_channels, h, w, device=model.device)
        size = model.output_size(h, w)
        return memory.measure_peak(lambda: maps(model, x, layers, [Window(0, 0, min(8, *size))], size, "abs"))

    law = memory.learned_law(model, "glam-" + ",".join(l.name for l in layers),
                             lambda: memory.fit_law(measure, model.size_rule), [__file__])
    assert law is not None  # fit_law always finds one
    return law


def estimate(model: SRModel, height: int, width: int, layers: Sequence[Layer], *, windows: int, copies: int = 1) -> int:
    """Peak bytes of ``glam`` for an h x w image, L = len(``layers``), K = ``windows`` and G = ``copies`` (noisy
    copies, ``smooth``):

        G(h, w) + 4 MAP_VALUES (K - 1) L H W + 4 (G + 1) (K + 1) L H W  (the last term only with G > 1)

    with G the law of both passes for one window (``_law``) and H x W the SR size: each further window adds its
    L keys resized to the SR size and their normalised copies; each copy keeps its layer maps until they combine."""
    oh, ow = model.output_size(height, width)
    kept = 4 * (copies + 1) * (windows + 1) * len(layers) * oh * ow if copies > 1 else 0
    return _law(model, layers)(height, width) + 4 * MAP_VALUES * (windows - 1) * len(layers) * oh * ow + kept


# ------------------------------------------------------------------ the method
def check_params(*, layers: Iterable[str] | str | None, pattern: str | None, variation: str, objective: str = "grad",
                 reduce: str = "sum", smooth: int = 1, noise: float = 0.0, smooth_type: str = "smoothgrad",
                 **_: object) -> dict[str, Any]:
    """One-line errors for GL-AM parameters no run can use (checked before any model loads); the parameters,
    ``layers`` given as one comma-separated string split into op types."""
    if variation not in VARIATIONS:
        raise OnnxAttrError(f"variation {variation!r}: use one of {', '.join(VARIATIONS)}")
    check_objective(objective, reduce)
    check_smooth(smooth, noise, smooth_type)
    if isinstance(layers, str):
        layers = [t.strip() for t in layers.split(",") if t.strip()]
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as err:
            raise OnnxAttrError(f"pattern {pattern!r} is not a regular expression ({err}); e.g. pattern='body\\.1'") from None
    return {"layers": layers, "pattern": pattern, "variation": variation, "objective": objective, "reduce": reduce,
            "smooth": smooth, "noise": noise, "smooth_type": smooth_type}


def glam(
    model: SRModel,
    image: torch.Tensor,
    window: WindowSpec,
    *,
    frame: str = "hr",
    layers: Iterable[str] | None = None,
    pattern: str | None = None,
    variation: str = "abs",
    objective: str = "grad",
    reduce: str = "sum",
    smooth: int = 1,
    noise: float = 0.0,
    smooth_type: str = "smoothgrad",
    seed: int = 0,
    hr: torch.Tensor | None = None,
) -> xr.Dataset:
    """GL-AM local and global maps of ``image`` (1, C, h, w) in [0, 1] for the output window(s) ``window``.

    ``window``: (x, y, size), several, or a ``Grid``, in ``frame`` ('hr' HR-image pixels, the
    default, or 'sr' output pixels; see ``windows.geometry``); the local maps share one forward and take one
    backward per window. ``layers``: ONNX op types to explain (default Conv, ConvTranspose, Gemm, MatMul;
    nodes without an image-shaped output are skipped), ``pattern``: regex on node names, ``variation``:
    'abs' | 'signed'. ``objective`` / ``reduce``: the local view's T_ROI (``windows.detector``; the global view's
    T_Global is the paper's). ``smooth`` N / ``noise`` sigma: both passes on N noisy copies (seeded by ``seed``), each
    layer's map combined by ``smooth_type`` before the consensus and variation. Returns the shared Dataset plus ``local``, ``local_consensus``, ``local_variation``
    (window, Y, X), ``local_layers`` (window, layer, Y, X) and the window-free ``global``,
    ``global_consensus``, ``global_variation`` (Y, X), ``global_layers`` (global_layer, Y, X); see docs/glam.md.
    """
    layers = check_params(layers=layers, pattern=pattern, variation=variation, objective=objective, reduce=reduce,
                          smooth=smooth, noise=noise, smooth_type=smooth_type)["layers"]
    model.check_input(image)
    size = model.output_size(*image.shape[2:])
    wins = resolve_windows(window, model.offset, *size, frame=frame)
    check_objective_windows(objective, wins, *size)
    chosen, skipped = choose_layers(model, layers, pattern)
    copies = smooth if active(noise) else 1
    _require_memory(model, image, chosen, len(wins), copies)
    if not active(noise):
        output, local_layers, local, global_layers, global_, (t0, t1, t2) = maps(
            model, image.to(model.device, torch.float32), chosen, wins, size, variation, objective, reduce)
    else:
        output, local_layers, local, global_layers, global_, (t0, t1, t2) = _smoothed(
            model, image, chosen, wins, size, variation, objective, reduce, (smooth, noise, smooth_type, seed))
    lr_hw = tuple(image.shape[2:])
    lr_local = torch.stack([to_lr(m, lr_hw) for m in local[0]])
    c = image.shape[1]
    names = [l.name for l in chosen]
    return build_dataset(
        model=model, image=image, output=output, method="glam", windows=wins, frame=frame,
        params={"layers": ", ".join(layers or DEFAULT_LAYERS), "pattern": pattern, "variation": variation,
                "objective": objective, "reduce": reduce,
                **({"smooth": smooth, "noise": noise, "smooth_type": smooth_type, "seed": seed} if active(noise) else {})},
        elapsed_s=t2 - t0, attribution=(lr_local / c)[:, None].expand(-1, c, -1, -1),
        window_checks={
            "attributed_share": [attributed_share(m) for m in lr_local],
        },
        checks={
            "global_attributed_share": attributed_share(to_lr(global_[0], lr_hw)),
            "local_elapsed_s": t1 - t0,
            "global_elapsed_s": t2 - t1,
            "skipped_layers": ", ".join(skipped),
            "global_mixed_layers": ", ".join(mixed_pairs(model.graph, names)),
        },
        data_vars={
            **{f"local{part}": (("window", "Y", "X"), m) for part, m in zip(_PARTS, local)},
            "local_layers": (("window", "layer", "Y", "X"), local_layers),
            **{f"global{part}": (("Y", "X"), m) for part, m in zip(_PARTS, global_)},
            "global_layers": (("global_layer", "Y", "X"), global_layers),
        },
        coords={
            "layer": names,
            "op_type": ("layer", [l.node.op_type for l in chosen]),
            "global_layer": names[1:],
            "global_source": ("global_layer", names[:-1]),
            "global_op_type": ("global_layer", [l.node.op_type for l in chosen[1:]]),
        },
        hr=align_hr(hr, model.offset, size) if hr is not None else None,
        layout=METHODS["glam"].variables,
    )


_PARTS = ("", "_consensus", "_variation")  # the (G, n(C), n(V)) of ``glocal``, as variable name suffixes


def _smoothed(model: SRModel, image: torch.Tensor, layers: Sequence[Layer], windows: Sequence[Window],
              size: tuple[int, int], kind: str, objective: str, reduce: str, smoothing: tuple[int, float, str, int]
              ) -> tuple[torch.Tensor, torch.Tensor, tuple, torch.Tensor, tuple, tuple[float, float, float]]:
    """``maps`` on the noisy copies (``smooth.noisy_copies``; one pass pair each, GL-AM runs one image at a time),
    every layer map combined over the copies by the smooth type, then the views; the output of the image itself and
    the summed local and global times."""
    smooth, noise, smooth_type, seed = smoothing
    runs = [maps(model, x[None].to(model.device, torch.float32), layers, windows, size, kind, objective, reduce)
            for x in noisy_copies(image, smooth, noise, seed)]
    local_layers = combine(torch.stack([r[1] for r in runs]), smooth_type)
    global_layers = combine(torch.stack([r[3] for r in runs]), smooth_type)
    local, global_ = views(local_layers, global_layers, kind)
    t_local = sum(r[5][1] - r[5][0] for r in runs)
    t_global = sum(r[5][2] - r[5][1] for r in runs)
    with torch.no_grad():
        output = model(image.to(model.device, torch.float32)).detach()
    return output, local_layers, local, global_layers, global_, (0.0, t_local, t_local + t_global)


def _require_memory(model: SRModel, image: torch.Tensor, layers: Sequence[Layer], windows: int, copies: int = 1) -> None:
    """Refuse, before any pass, work whose ``estimate`` exceeds the free memory (one line with the fixes)."""
    memory.require(estimate(model, *image.shape[2:], layers, windows=windows, copies=copies), memory.free_memory(model.device),
                   f"GL-AM of {windows} window(s) and {len(layers)} layers for a {image.shape[3]}x{image.shape[2]} image",
                   ["explain fewer windows", "choose fewer layers (--layers / --pattern)", "crop the image (--crop)",
                    *memory.device_fix(model.device)], model.device)


__all__ = [
    "DEFAULT_LAYERS",
    "Layer",
    "attributed_share",
    "channel_key",
    "choose_layers",
    "consensus",
    "feature_product",
    "glam",
    "global_products",
    "glocal",
    "estimate",
    "layout_of",
    "local_keys",
    "maps",
    "mixed_pairs",
    "rescale",
    "resize",
    "scale_unit",
    "views",
    "to_lr",
    "to_output",
    "variation",
]
