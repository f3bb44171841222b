"""The shared result layout as data: what every variable, coordinate and attr of a result means.

One table serves three readers: ``results.build`` and ``study.assemble`` copy each entry's ``long_name``,
``units`` and ``description`` into the attrs of the variable or coordinate, ``methods.registry.layout_problems``
checks a result against it, and docs/results.md describes it for people. A method's own variables (LAM's
``path_objective``, GL-AM's maps...) are declared in its registry entry (``methods.registry``) with the same
``Entry``; the ones several methods share are named here (``BASELINE``, ``COMPLETENESS_ERROR``...).

Frame. Every spatial coordinate is a pixel centre in **HR pixels** of one frame shared by the LR
input, the SR output and the HR image: LR pixel i -> (i + 0.5) s; SR pixel j of a model with output
side s n + c -> j + 0.5 - c / 2; HR pixel k -> k + 0.5. Columns (``x``, ``X``) grow to the right;
rows (``y``, ``Y``) are stored as negative heights, -(row centre), so that y grows upward as on a
plot and xarray's ``.plot()`` draws images upright; ``-ds.y`` is the distance below the top edge.
LR and SR maps of one run therefore overlay and align by label (``ds.saliency.interp(y=ds.Y, x=ds.X)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2  # 1: the unlabelled layout of onnxattr 0.1.0 (no schema_version attr)

@dataclass(frozen=True)
class Entry:
    """A variable or coordinate: its dims, CF-style ``long_name`` and ``units`` (UDUNITS; "1" for
    dimensionless, "" for labels), a one-line ``description`` and whether it is ``optional`` (present only
    with some options, e.g. ``hr`` with --hr)."""

    dims: tuple[str, ...]
    long_name: str
    units: str
    description: str
    optional: bool = False

    def attrs(self) -> dict[str, str]:
        out = {"long_name": self.long_name, "description": self.description}
        if self.units:
            out["units"] = self.units
        return out


HR_PX = "HR pixel"
SR_PX = "SR pixel"
LR_PX = "LR pixel"
_ROW = "-(row centre) in the shared HR frame: 0 at the top edge, growing upward, so images plot upright"
_COL = "column centre in the shared HR frame, growing to the right"

COORDS: dict[str, Entry] = {
    "channel": Entry(("channel",), "image channel", "", "R, G, B (or Y for gray models)"),
    "y": Entry(("y",), "LR row", HR_PX, f"LR pixel i at -(i + 0.5) * scale: {_ROW}"),
    "x": Entry(("x",), "LR column", HR_PX, f"LR pixel i at (i + 0.5) * scale: {_COL}"),
    "Y": Entry(("Y",), "SR row", HR_PX, f"SR pixel j at -(j + 0.5 - offset / 2): {_ROW}"),
    "X": Entry(("X",), "SR column", HR_PX, f"SR pixel j at j + 0.5 - offset / 2: {_COL}"),
    "window_x": Entry(("window",), "window left column", HR_PX,
                      "column of the window's top-left pixel in the HR frame (pixel k spans k .. k + 1); window_x_sr - offset / 2"),
    "window_y": Entry(("window",), "window top row", HR_PX,
                      "row of the window's top-left pixel in the HR frame (it spans -y = k .. k + 1 of the coordinates)"),
    "window_size": Entry(("window",), "window side", "pixel", "side of the square window (the same in the HR and SR frames)"),
    "window_x_sr": Entry(("window",), "window left column in the output", SR_PX, "column of the window's top-left pixel in the SR output"),
    "window_y_sr": Entry(("window",), "window top row in the output", SR_PX, "row of the window's top-left pixel in the SR output"),
}

LR = ("channel", "y", "x")
SR = ("channel", "Y", "X")
WLR = ("window", *LR)
W = ("window",)
VARIABLES: dict[str, Entry] = {
    "input": Entry(LR, "LR input", "1", "the image fed to the model, in [0, 1]"),
    "output": Entry(SR, "SR output", "1", "the model's output for the input, in [0, 1] units"),
    "hr": Entry(SR, "HR image", "1", "the HR image (--hr) cropped to the SR output's frame", optional=True),
    "attribution": Entry(WLR, "attribution", "1", "signed contribution of each input value to the window's target"),
    "saliency": Entry(("window", "y", "x"), "saliency", "1", "|sum over channels of attribution| / max (LAM's display map)"),
    "reach": Entry(W, "reach", LR_PX, "saliency-weighted mean distance of the input pixels from the window centre: "
                   "sum_p s(p) |p - centre| / sum_p s(p), on the saliency map; NaN for a zero map"),
    "diffusion_index": Entry(W, "diffusion index (DI)", "%", "DI = (1 - G) * 100 (LAM eq. 6), G the Gini index of the "
                             "saliency map (|sum over channels of attribution| / max, on the LR input's pixels): 100 for "
                             "a uniform map, about 100 / n for one concentrated on n pixels; NaN for a zero map"),
    "gini": Entry(W, "Gini index", "1", "G = sum_i (2i - n - 1) a_i / (n sum_i a_i) over the saliency map's n values "
                  "sorted ascending (LAM eq. 5, the LAM code's Gini); NaN for a zero map"),
    "saliency_pixels": Entry(W, "pixels below 95 % of the saliency mass", "1",
                             "LAM_Demo count_saliency_pixels: the largest saliency values whose running sum stays below "
                             "95 % of the total (the smallest set reaching it has one more); NaN for a zero map"),
    "saliency_share": Entry(W, "share of pixels below 95 % of the saliency mass", "1", "saliency_pixels / LR pixels"),
}

# Variables several methods hold (their registry entries name them).
BASELINE = Entry(LR, "baseline image", "1",
                 "the reference input the attribution is measured from: LAM's path start x_0, L2X's x_ref", optional=True)
COMPLETENESS_ERROR = Entry(W, "completeness error", "1",
                           "|sum A - (t(x) - t(baseline))| / |t(x) - t(baseline)|; NaN for the plain gradient")

_MI = ("model", "image")
_MIW = ("model", "image", "window")
_CURVE = ("model", "image", "window", "region", "reference", "order", "ratio")
STUDY_COORDS: dict[str, Entry] = {
    "model": Entry(("model",), "model", "", "model file name"),
    "label": Entry(("model",), "model label", "", "each model's name in figures and summaries (--label; default: the "
                   "file name without .onnx)"),
    "model2": Entry(("model2",), "model (CKA column)", "", "the models again, as the CKA matrix's columns"),
    "image": Entry(("image",), "image", "", "image file stem"),
    "channel": COORDS["channel"],
    "y": Entry(("y",), "LR row index", "1", "row of each model's LR input (the models' inputs differ with the scale: see lr_y)"),
    "x": Entry(("x",), "LR column index", "1", "column of each model's LR input (see lr_x)"),
    "lr_y": Entry(("model", "y"), "LR row", HR_PX, f"model's LR pixel i at -(i + 0.5) * scale: {_ROW}"),
    "lr_x": Entry(("model", "x"), "LR column", HR_PX, f"model's LR pixel i at (i + 0.5) * scale: {_COL}"),
    "wy": Entry(("wy",), "row in the window", HR_PX, "row of the window crops from the window's top edge, -(i + 0.5) (rows negative)"),
    "wx": Entry(("wx",), "column in the window", HR_PX, "column of the window crops from the window's left edge, i + 0.5"),
    "window_x": Entry(("image", "window"), "window left column", "pixel", "left column of each image's windows, in pixels of the frame of window_frame (hr: HR image, sr: output); NaN where an image has fewer windows"),
    "window_y": Entry(("image", "window"), "window top row", "pixel", "top row of each image's windows, in pixels of the frame of window_frame (hr: HR image, sr: output); NaN where an image has fewer windows"),
    "window_size": Entry(("image", "window"), "window side", "pixel", "side of each image's windows; NaN where an image has fewer windows"),
    "region": Entry(("region",), "masking region", "", "image: PSNR/SSIM of the whole output; window: of the window"),
    "reference": Entry(("reference",), "masking reference", "", "what the masked output is compared with: sr (unmasked output) or hr"),
    "order": Entry(("order",), "masking order", "", "attribution: most attributed pixels first; random: random order"),
    "ratio": Entry(("ratio",), "mask ratio", "1", "share of LR pixels replaced"),
    "check_curve": Entry(("check_curve",), "check curve", "", "deletion or insertion (compare --checks, docs/check.md)",
                         optional=True),
    "check_order": Entry(("check_order",), "check pixel order", "", "map: the map's; random_order and random_map: the controls",
                         optional=True),
}
STUDY_VARIABLES: dict[str, Entry] = {
    "input": Entry(("model", "image", "channel", "y", "x"), "LR input", "1", "each model's input, NaN-padded to the largest"),
    "attribution": Entry(("model", "image", "window", "channel", "y", "x"), "attribution", "1", "signed attribution map, NaN-padded"),
    "saliency": Entry(("model", "image", "window", "y", "x"), "saliency", "1", "|sum over channels of attribution| / max, NaN-padded"),
    "sr_crop": Entry(("model", "image", "window", "channel", "wy", "wx"), "SR output in the window", "1", "each model's output on the window"),
    "hr_crop": Entry(("image", "window", "channel", "wy", "wx"), "HR image in the window", "1", "the HR image on the window (--hr)", optional=True),
    "diffusion_index": Entry(_MIW, "diffusion index (DI)", "%", VARIABLES["diffusion_index"].description),
    "gini": Entry(_MIW, "Gini index", "1", VARIABLES["gini"].description),
    "reach": Entry(_MIW, "reach", LR_PX, VARIABLES["reach"].description),
    "elapsed_s": Entry(_MI, "method time", "s", "seconds of the method call(s) that explained this model x image's "
                       "windows, summed over the tasks that computed them (tasks run side by side: the sum can "
                       "exceed the command's wall time)"),
    "completeness_error": Entry(_MIW, "completeness error", "1", "|sum A - delta target| / |delta target|; NaN if the method has none"),
    **{q: Entry(_MI, f"{q.split('_')[0].upper()}{'-Y' if q.endswith('_y') else ''} vs HR", "dB" if "psnr" in q else "1",
                f"{q.split('_')[0].upper()} of the SR output against the HR image", optional=True)
       for q in ("psnr", "ssim", "psnr_y", "ssim_y")},
    "mask_psnr": Entry(_CURVE, "PSNR after masking", "dB", "remove-and-replace curve: PSNR (Y) of the masked output"),
    "mask_ssim": Entry(_CURVE, "SSIM after masking", "1", "remove-and-replace curve: SSIM (Y) of the masked output"),
    "mask_psnr_random_std": Entry(("model", "image", "window", "region", "reference", "ratio"), "PSNR spread over random orders", "dB",
                                  "standard deviation over the random masking seeds"),
    "mask_ssim_random_std": Entry(("model", "image", "window", "region", "reference", "ratio"), "SSIM spread over random orders", "1",
                                  "standard deviation over the random masking seeds"),
    "mask_pixels": Entry(("model", "image", "window", "region", "ratio"), "masked pixels", "1",
                         "LR pixels replaced (k) per region and ratio"),
    "cka": Entry(("model", "model2"), "CKA", "1", "CKA of the models' saliency maps over the images; NaN with too few images"),
    "scale": Entry(("model",), "scale", "1", "integer scale s of each model"),
    "offset": Entry(("model",), "output offset", "1", "c of the output size law s n + c"),
    "window_x_sr": Entry(_MIW, "window column in the SR output", SR_PX, "left column of the window in each model's SR output"),
    "window_y_sr": Entry(_MIW, "window row in the SR output", SR_PX, "top row of the window in each model's SR output"),
    "model_sha256": Entry(("model",), "model SHA-256", "", "SHA-256 of the model file"),
    "conversion_error": Entry(("model",), "conversion error", "1", "max |torch - onnxruntime| / max |onnxruntime|; NaN if not verified"),
    "computed_at": Entry(_MIW, "cell computed at", "", "UTC time each cell (model x image x window) was computed; NaT if it failed or the image has fewer windows"),
    "cell_error": Entry(_MIW, "cell error", "", "why the cell failed (its values are NaN); empty when it was computed"),
    **{f"check_{name}": Entry((*_MIW, "check_curve", "check_order"), long, "1", f"{desc} (compare --checks)", optional=True)
       for name, long, desc in (
           ("auc", "deletion/insertion AUC", "area under the normalised detector curve; controls: mean over seeds"),
           ("auc_std", "AUC spread", "standard deviation of the AUC over the control's seeds"),
           ("auc_psnr", "PSNR curve AUC", "area under the normalised PSNR curve (--hr)"),
           ("auc_psnr_std", "PSNR AUC spread", "standard deviation over the control's seeds (--hr)"))},
}

# Attrs of every single-method result (method parameters and checks come on top, see docs/results.md).
ATTRS: dict[str, str] = {
    "schema_version": "version of this layout (onnxattr.schema.SCHEMA_VERSION)",
    "method": "lam, l2x, glam or erf",
    "window_frame": "frame the windows were given in: hr (HR-image pixels) or sr (output pixels)",
    "model_file": "model file name",
    "model_label": "the model's name in figures (--label; default: the file name without .onnx)",
    "model_sha256": "SHA-256 of the model file",
    "scale": "integer scale s of the model (output side = s * input side + offset)",
    "offset": "offset c of the output size law (negative: the model crops its border)",
    "value_range": "1, or 255 for models fed 0..255 images",
    "output_range": "units of the model's output: 1 or 255 (the value range, but for files with one uint8 end)",
    "output_range_source": "as the input, uint8 output, detected or default (undecided)",
    "conversion_error": "max |torch - onnxruntime| / max |onnxruntime| on the probe; NaN if not verified",
    "device": "torch device the method ran on",
    "onnxattr_version": "version of onnxattr",
    "torch_version": "version of torch",
    "onnx_version": "version of onnx",
    "onnxruntime_version": "version of onnxruntime",
    "onnx2torch_version": "version of onnx2torch",
    "elapsed_s": "seconds the method took",
}

STUDY_ATTRS = ("schema_version", "method", "attribution_method", "window_frame",
               "hr", "cka_debiased", "cka_features", "masking_seeds", "scheduler", "onnxattr_version")

def describe(ds: Any, table: dict[str, Entry]) -> Any:
    """Copy the attrs of ``table`` (e.g. ``{**COORDS, **VARIABLES, **the method's own}``) onto every variable and
    coordinate of ``ds`` that it lists (in place)."""
    for name in ds.variables:
        if name in table:
            ds[name].attrs.update(table[name].attrs())
    return ds


# A sanity-check report (``onnxattr.checks``, docs/check.md): every method on one image's windows.
_M, _MW = ("method",), ("method", "window")
_CHECK_CURVE = ("method", "window", "curve", "order", "fraction")
CHECK_COORDS: dict[str, Entry] = {
    "method": Entry(_M, "method", "", "registered attribution method"),
    "check": Entry(("check",), "check", "", "randomisation, deletion or insertion"),
    "variant": Entry(("variant",), "randomisation variant", "",
                     "cascading: layers re-drawn from the output down to the step's; independent: the step's layer alone"),
    "step": Entry(("step",), "randomisation step", "1", "j: the j-th layer from the output (a layer: a group of parametrised nodes)"),
    "step_layer": Entry(("step",), "layer", "", "ONNX name of the step's parametrised node nearest the input"),
    "step_op_types": Entry(("step",), "layer op types", "", "ONNX op types of the step's parametrised nodes"),
    "step_nodes": Entry(("step",), "nodes in the layer", "1", "parametrised nodes re-drawn at the step (independent variant)"),
    "measure": Entry(("measure",), "similarity measure", "",
                     "spearman_abs, spearman (signed), ssim (of the saliency), top_overlap (top-k share of the region)"),
    "curve": Entry(("curve",), "curve", "", "deletion (pixels replaced by the baseline) or insertion (restored from it)"),
    "order": Entry(("order",), "pixel order", "", "map: the method's; random_order and random_map: the controls"),
    "fraction": Entry(("fraction",), "fraction of the region", "1", "share of the window's influence region deleted or inserted"),
    "channel": COORDS["channel"],
    "y": COORDS["y"],
    "x": COORDS["x"],
    **{k: COORDS[k] for k in ("window_x", "window_y", "window_size", "window_x_sr", "window_y_sr")},
}
CHECK_VARIABLES: dict[str, Entry] = {
    "input": VARIABLES["input"],
    "baseline": Entry(("method", *LR), "baseline image", "1",
                      "what deletion puts in: the method's own baseline, or the blurred image for a method without one"),
    "saliency": Entry(("method", "window", "y", "x"), "saliency", "1", "|sum_c A| / max of the trained model's map"),
    "influence_region": Entry(("window", "y", "x"), "influence region", "1",
                              "1 where an LR pixel can change the window (non-zero gradient), else 0"),
    "region_pixels": Entry(W, "influence region size", "1", "LR pixels in the window's influence region"),
    "similarity": Entry(("method", "variant", "step", "window", "measure"), "similarity to the trained map", "1",
                        "the randomised model's map against the trained model's, over the influence region"),
    "randomised_saliency": Entry(("method", "variant", "step", "window", "y", "x"), "saliency of the randomised model", "1",
                                 "|sum_c A| / max of the map at each randomisation step"),
    "detector": Entry(_CHECK_CURVE, "normalised detector", "1",
                      "(D(x_f) - D(x_S)) / (D(x) - D(x_S)): 1 at the image, 0 with the region replaced; controls: mean over seeds"),
    "detector_std": Entry(_CHECK_CURVE, "detector spread", "1", "standard deviation over the control's seeds (0 for the map)"),
    "auc": Entry(_CHECK_CURVE[:-1], "area under the detector curve", "1",
                 "trapezoid area of the normalised curve over the fraction: deletion lower, insertion higher is faithful"),
    "auc_std": Entry(_CHECK_CURVE[:-1], "AUC spread", "1", "standard deviation of the AUC over the control's seeds"),
    "detector_image": Entry(_MW, "detector at the image", "1", "D(F(x)) of the window"),
    "detector_baseline": Entry(_MW, "detector with the region replaced", "1", "D(F(x_S)): the influence region replaced by the baseline"),
    "psnr": Entry(_CHECK_CURVE, "window PSNR (Y) vs HR", "dB", "PSNR of the window against HR along the curve (--hr)", optional=True),
    "psnr_std": Entry(_CHECK_CURVE, "PSNR spread", "dB", "standard deviation over the control's seeds", optional=True),
    "auc_psnr": Entry(_CHECK_CURVE[:-1], "area under the PSNR curve", "1", "normalised as the detector's (--hr)", optional=True),
    "auc_psnr_std": Entry(_CHECK_CURVE[:-1], "PSNR AUC spread", "1", "over the control's seeds (--hr)", optional=True),
    "verdict": Entry(("method", "check"), "verdict", "", "the check's outcome in words, or why the method could not take part"),
    "passes": Entry(("method", "check"), "passes", "1", "1 passes, 0 fails, NaN not run"),
    "elapsed_s": Entry(_M, "method time", "s", "seconds of the method's map of the trained model"),
}
CHECK_ATTRS = ("schema_version", "method", "methods", "window_frame", "model_file", "model_sha256", "scale", "offset",
               "layers", "seed", "curve_steps", "curve_seeds", "onnxattr_version", "elapsed_s")
