"""L2X cost vs one plain forward+backward of the same graph, and vs LAM (issue #4: L2X/fb <= 3).

`.venv/bin/python benchmarks/bench_l2x.py [--repeats 3] [--models NAME ...]`: on samples/images/coffee-64.png
with a 16-px window at the SR centre, the median over interleaved rounds of: fb32 / fb64 = one forward +
backward of LAM's detector through the converted graph in float32 / in a float64 copy (input gradient
only); L2X in float32 and in float64 (the default); one ``onnxattr.lam`` run with 50 steps.
L2X f32/fb32 and f64/fb64 are the method's own overhead at matched precision.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from pathlib import Path

import torch

import onnxattr
from onnxattr.target import Window, gradient_detector

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("waifu2x-upconv7-x2.ts17.onnx", "waifu2x-upresnet10-x2.ts17.onnx", "dat-light-x2.dynamo.onnx")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _forward_backward(graph: torch.nn.Module, image: torch.Tensor, window: Window, dtype: torch.dtype) -> None:
    x = image.to(dtype).requires_grad_(True)
    torch.autograd.grad(gradient_detector(graph(x), window), x)


def bench(path: Path, repeats: int) -> dict[str, float]:
    model = onnxattr.load_model(path)
    image = onnxattr.read_image(ROOT / "samples/images/coffee-64.png", channels=model.in_channels)
    oh, ow = model.output_size(image.shape[2], image.shape[3])
    window = Window((ow - 16) // 2, (oh - 16) // 2, 16)
    graph64 = copy.deepcopy(model.graph).to(torch.float64)
    runs = {
        "fb32": lambda: _forward_backward(model.graph, image, window, torch.float32),
        "fb64": lambda: _forward_backward(graph64, image, window, torch.float64),
        "l2x32": lambda: onnxattr.l2x(model, image, window, frame="sr", dtype=torch.float32),
        "l2x64": lambda: onnxattr.l2x(model, image, window, frame="sr"),
        "lam50": lambda: onnxattr.lam(model, image, window, frame="sr", steps=50),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            times[key].append(_timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=MODELS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| model | fb32 s | fb64 s | L2X f32 s | L2X f64 s | LAM-50 s | L2X f32/fb32 | L2X f64/fb64 | L2X f64/fb32 "
          "| LAM/L2X f64 | LAM/L2X f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        t = bench(ROOT / "samples" / name, args.repeats)
        print(f"| {name} | {t['fb32']:.3f} | {t['fb64']:.3f} | {t['l2x32']:.3f} | {t['l2x64']:.3f} | {t['lam50']:.2f} | "
              f"{t['l2x32'] / t['fb32']:.2f} | {t['l2x64'] / t['fb64']:.2f} | {t['l2x64'] / t['fb32']:.2f} | "
              f"{t['lam50'] / t['l2x64']:.1f} | {t['lam50'] / t['l2x32']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
