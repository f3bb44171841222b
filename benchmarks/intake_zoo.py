"""The intake zoo's table (issue #10): one file per category of third-party SR export, what ``load_model`` detects
and how the three methods do on it.

The files are built as ``tests/test_intake.py`` builds them (a float16 conversion with onnxconverter-common, onnx.helper
wrappers for channels-last, uint8 / BGR pre- and post-processing, a U-Net with size constraints, a model fed 0..255)
plus the float16 conversions of the waifu2x UpConv7 sample, an opset-9 legacy graph (``tests/test_legacy_ops.py``), the
U-Net exported at opset 9 (attribute-form Slice-1, as old Real-CUGAN exports) and an onnxruntime-extensions
``PrePostProcessor`` pipeline (uint8 H x W x 3 BGR in and out, ``tests/test_pipelines.py``; left out when the package is
missing). Each is loaded with no flag, then explained on a crop of coffee-64 that its size rule takes (8-px window at
SR (2, 2)): LAM (6 steps), L2X (float64, completeness error), GL-AM.

Run: .venv/bin/python benchmarks/intake_zoo.py
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]

import onnxattr  # noqa: E402
import test_intake as T  # noqa: E402
from nets import export  # noqa: E402

SAMPLE = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"


def build(folder: Path) -> dict[str, tuple[Path, str]]:
    """Category -> (file, what it stands for)."""
    tiny, mean = export(T.TinySR(), folder, "tiny"), export(T.MeanSR(), folder, "mean")
    files = {
        "fp16 weights, fp32 I/O": (T.fp16_file(tiny, folder / "fp16w.onnx", keep_io_types=True), "onnxconverter-common"),
        "full fp16 I/O": (T.fp16_file(tiny, folder / "fp16io.onnx", keep_io_types=False), "onnxconverter-common"),
        "UpConv7 sample, fp16 weights": (T.fp16_file(SAMPLE, folder / "u7w.onnx", keep_io_types=True), "real weights"),
        "UpConv7 sample, fp16 I/O": (T.fp16_file(SAMPLE, folder / "u7io.onnx", keep_io_types=False), "real weights"),
        "NHWC (tf2onnx-like)": (T.nhwc_file(tiny, folder / "nhwc.onnx"), "Transposes at both ends"),
        "uint8 NHWC BGR, pre + post": (T.uint8_bgr_file(mean, folder / "u8bgr.onnx"), "OpenCV pipeline"),
        "uint8 in, float 0..1 out": (T.uint8_in_file(mean, folder / "u8in.onnx"), "pre-processing only"),
        "float 0..1 in, uint8 out": (T.uint8_out_file(mean, folder / "u8out.onnx"), "post-processing only"),
        "U-Net, even sides >= 40": (export(T.UNetish(), folder, "unet", input_shape=(1, 3, 48, 48)), "crops inside"),
        "fed 0..255, no flag": (export(T.Range255(), folder, "r255"), "value range 255"),
    }
    from test_legacy_ops import legacy_espcn_file

    files["opset 9 (auto_pad, PRelu, Upsample-9)"] = (legacy_espcn_file(folder / "espcn9.onnx"), "2018-era exporter")
    files["U-Net, opset 9 (Slice-1)"] = (export(T.UNetish(), folder, "unet9", input_shape=(1, 3, 48, 48), opset=9),
                                         "attribute-form Slice")
    if importlib.util.find_spec("onnxruntime_extensions") is not None:
        from test_pipelines import extensions_pipeline, twin_file

        files["uint8 HWC BGR, PrePostProcessor"] = (extensions_pipeline(twin_file(folder, 17), folder / "ppp.onnx"),
                                                    "onnxruntime-extensions")
    return files


def row(name: str, path: Path, note: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = onnxattr.load_model(path, use_cache=False)
        x = onnxattr.read_image(ROOT / "samples" / "images" / "coffee-64.png", channels=m.in_channels)
        h, w = m.size_rule.fit(44, 44) if not m.fixed_size else m.fixed_size
        x = x[:, :, :h, :w].contiguous()
        win = (2, 2, 8)
        results = {}
        for method, kw in (("lam", {"steps": 6}), ("l2x", {}), ("glam", {})):
            try:
                ds = getattr(onnxattr, method)(m, x, win, frame="sr", **kw)
                maps = ds["attribution"].values if "attribution" in ds else ds["local"].values
                results[method] = ("ok" if np.isfinite(maps).all() else "NaN",
                                   float(ds["completeness_error"].max()) if "completeness_error" in ds else None)
            except Exception as err:  # noqa: BLE001  (a row says what failed)
                results[method] = (f"failed: {type(err).__name__}", None)
    a = m.adapter
    rng = f"{m.value_range:g} ({m.value_range_source})"
    if m.output_range_source != "as the input":
        rng += f" / out {m.output_range:g} ({m.output_range_source})"
    law = f"x{m.scale}{m.offset:+d}"
    compl = results["l2x"][1]
    return (f"| {name} | {note} | {a.input_layout} {a.input_dtype} -> {a.output_dtype} {a.orders} | {rng} | "
            f"{a.precision} | {m.size_rule.describe()}, {law} | {m.conversion_error:.1e} | {m.precision_gap:.1e} | "
            f"{results['lam'][0]} / {results['l2x'][0]} ({compl:.0e}) / {results['glam'][0]} |")


def main() -> None:
    print("| file | what | layout dtype order | value range | precision | sizes, law | conv. err | gap | "
          "lam / l2x (completeness) / glam |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, note) in build(Path(tmp)).items():
            print(row(name, path, note), flush=True)


if __name__ == "__main__":
    main()
