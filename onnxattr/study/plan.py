"""Planning a study before anything runs: the windows of every image, the method's parameters, whether the
models can explain the same region, and whether every window fits every model x image.

Windows. Every image has one or more windows (x, y, size): one window or a list for all images, or a mapping
image -> window(s). With ``frame='hr'`` (the default) they are in HR pixels: the frame of the HR image with
``hr=True``, or of the LR image upscaled by the (shared) scale otherwise. For a model with output side s n + c a
window lies at (x + c/2, y + c/2) in the model's SR output (c even), so every model explains the same image
region. Models of different scales can only be mixed with HR images, whose frame they share; with ``frame='sr'``
the windows are used as they are in every SR output, which needs one scale and one offset for all models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import OnnxAttrError
from ..intake import ModelFacts
from ..methods.registry import method
from ..options import FRAMES
from ..results.build import label_of
from ..windows.csvfile import image_matches
from ..windows.geometry import Window, WindowSpec, as_windows, check_input_size, check_window, hr_shift


def distinct_paths(paths: Sequence[str], what: str) -> None:
    """Refuse a file given twice (by any path to it)."""
    resolved = [Path(p).resolve() for p in paths]
    twice = next((p for p, r in zip(paths, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise OnnxAttrError(f"{what} {twice} is given twice; give each {what} once")


def image_windows(window: WindowSpec | Mapping[str, WindowSpec], images: Sequence[str]) -> dict[str, list[Window]]:
    """The windows of every image: ``window`` (one or a list, for every image) or a mapping from an image
    (path, file name or stem) to its window(s). Errors for a key naming no image, an image without a
    window and a window given twice for one image."""
    if not isinstance(window, Mapping):
        given = [Window(*w) for w in as_windows(window)]
        per = {p: list(given) for p in images}
    else:
        per = {p: [] for p in images}
        for key, spec in window.items():
            matches = [p for p in images if image_matches(str(key), p)]
            if not matches:
                raise OnnxAttrError(
                    f"windows for {key!r}: no such image among the images "
                    f"({', '.join(Path(p).name for p in images)}); fix the name or add the image"
                )
            per[matches[0]] += [Window(*w) for w in as_windows(spec)]
        missing = [Path(p).name for p, ws in per.items() if not ws]
        if missing:
            raise OnnxAttrError(f"image {missing[0]} has no window; give it one or more windows (rows in the windows file)")
    for p, ws in per.items():
        seen: set[Window] = set()
        for w in ws:
            if w in seen:
                raise OnnxAttrError(f"{Path(p).name}: window x={w.x} y={w.y} size={w.size} is given twice; give each window once")
            seen.add(w)
    return per


def model_labels(labels: Sequence[str] | Mapping[str, str] | None, models: Sequence[str]) -> list[str]:
    """Each model's label, in model order: ``labels`` is None (every label the file name without .onnx), one
    label per model in order, or a mapping model (path, file name or stem) -> label (the others keep theirs).
    Errors for a count that does not match, a key naming no model and a label given twice."""
    out = [label_of(Path(p).name) for p in models]
    if labels is None:
        return out
    if isinstance(labels, Mapping):
        for key, label in labels.items():
            matches = [i for i, p in enumerate(models) if image_matches(str(key), p)]
            if not matches:
                raise OnnxAttrError(f"label {label!r} is for {key!r}, which is none of the models "
                                    f"({', '.join(Path(p).name for p in models)}); write LABEL=MODEL with a model given")
            out[matches[0]] = str(label)
    else:
        labels = [str(v) for v in labels]
        if len(labels) != len(models):
            raise OnnxAttrError(f"{len(labels)} label(s) for {len(models)} models; give one --label per model, in "
                                "model order, or LABEL=MODEL pairs")
        out = labels
    empty = [i for i, v in enumerate(out) if not v.strip()]
    if empty:
        raise OnnxAttrError(f"the label of {Path(models[empty[0]]).name} is empty; give it a name")
    twice = next((v for v in out if out.count(v) > 1), None)
    if twice is not None:
        raise OnnxAttrError(f"label {twice!r} names two models; give every model its own label")
    return out


def _kind_error(value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for a parameter whose default is ``default`` (None: nothing)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a word"
    return None


def check_method_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``name``'s parameters before any model loads: names (the method's keyword arguments), kinds
    (those of the defaults) and values (the method's own ``check_params``). Returns them, normalised."""
    m = method(name)
    defaults = m.defaults()
    for key, value in params.items():
        if key not in defaults:
            raise OnnxAttrError(
                f"{name} has no parameter {key!r}; its parameters are {', '.join(defaults)} (--param KEY=VALUE)"
            )
        kind = _kind_error(value, defaults[key])
        if kind is not None:
            raise OnnxAttrError(f"{name} parameter {key}={value!r} should be {kind} (default {defaults[key]!r})")
    checked = m.check_params(**params)
    return {k: checked.get(k, v) for k, v in params.items()}


def study_params(name: str, params: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What a study's cells depend on beyond their files and windows, as JSON values: the method, its parameters
    but those that only change how it runs (its registry entry's ``run_only``: batching), and ``options`` (hr,
    frame, ratios, seeds, value range, channel order)."""
    run_only = method(name).run_only
    out = {"method": name, **options, **{k: v for k, v in params.items() if k not in run_only}}
    return json.loads(json.dumps(out, default=str))


def sr_window(window: Window, offset: int, frame: str) -> Window:
    """The window in a model's SR pixels: (x + c/2, y + c/2) for a window in the HR frame, else unchanged."""
    if frame == "sr":
        return window
    shift = hr_shift(offset)
    return Window(window.x + shift, window.y + shift, window.size)


def lr_size(image_hw: tuple[int, int], scale: int, hr: bool) -> tuple[int, int]:
    """LR side lengths the model sees: the HR image downscaled by ``scale`` (``hr``) or the image itself."""
    return (image_hw[0] // scale, image_hw[1] // scale) if hr else image_hw


def check_models(facts: Sequence[ModelFacts], hr: bool, frame: str) -> None:
    """Errors for model sets that cannot explain the same region with the same window."""
    if frame not in FRAMES:
        raise OnnxAttrError(f"frame {frame!r}: use 'hr' (HR-image pixels, the default) or 'sr' (output pixels)")
    names = [f.file for f in facts]
    if len(set(names)) != len(names):
        raise OnnxAttrError("two models share a file name; give every model a distinct file name")
    if len({f.in_channels for f in facts}) > 1:
        raise OnnxAttrError("the models take different channel counts (RGB and gray); compare models of one kind")
    scales = sorted({f.scale for f in facts})
    if len(scales) > 1 and not (hr and frame == "hr"):
        raise OnnxAttrError(
            f"the models mix scales (x{', x'.join(map(str, scales))}): one LR image has no common HR frame, "
            "so one window would cover different regions; pass HR images (--hr) with the window in HR pixels"
        )
    if frame == "sr" and len({f.offset for f in facts}) > 1:
        raise OnnxAttrError(
            "the models' outputs differ in border (offsets "
            f"{', '.join(str(f.offset) for f in facts)}), so one SR-pixel window covers different regions; "
            "give the window in HR pixels (the default, drop --frame sr)"
        )
    for f in facts:
        if frame == "hr" and (f.offset > 0 or f.offset % 2):
            raise OnnxAttrError(
                f"{f.file}: output side {f.scale} n {f.offset:+d} has no whole-pixel HR alignment; "
                "give the window in SR pixels (--frame sr) and compare it only with models of the same law"
            )


def check_windows(
    facts: Sequence[ModelFacts], sizes: dict[str, tuple[int, int]], windows: dict[str, list[Window]], hr: bool,
    frame: str,
) -> None:
    """Validate every window for every model x image before any computation (one-line errors)."""
    for f in facts:
        for path, hw in sizes.items():
            name = Path(path).name
            h, w = lr_size(hw, f.scale, hr)
            if f.fixed_size and (h, w) != tuple(f.fixed_size):
                raise OnnxAttrError(
                    f"{f.file} only takes {f.fixed_size[1]}x{f.fixed_size[0]} inputs but {name} gives "
                    f"{w}x{h}; crop the images to that size first"
                )
            check_input_size(h, w, f.scale, f.offset, f"{f.file} on {name}")
            for win in windows[path]:
                label = f"{f.file} on {name}: window x={win.x} y={win.y} size={win.size} ({frame.upper()} frame)"
                check_window(sr_window(win, f.offset, frame), f.scale * h + f.offset, f.scale * w + f.offset, label,
                             hr_shift(f.offset) if frame == "hr" else 0)
