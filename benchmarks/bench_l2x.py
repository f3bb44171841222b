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
import warnings
from pathlib import Path
from typing import Callable

import torch
from common import SR, median_times

import onnxattr
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("waifu2x-upconv7-x2.ts17.onnx", "waifu2x-upresnet10-x2.ts17.onnx", "dat-light-x2.dynamo.onnx")
KEYS = ("fb32", "fb64", "l2x32", "l2x64", "lam50")


def _forward_backward(graph: torch.nn.Module, image: torch.Tensor, window: Window, dtype: torch.dtype) -> None:
    x = image.to(next(graph.parameters()).device, dtype).detach().requires_grad_(True)  # never flag the caller's image
    torch.autograd.grad(gradient_detector(graph(x), window), x)


def runs(model, image: torch.Tensor, window: Window, keys: tuple[str, ...] = KEYS) -> dict[str, Callable[[], object]]:
    """The timed functions named by ``keys`` (see the module docstring), on ``model``'s device."""
    image = image.to(model.device)
    graph64 = copy.deepcopy(model.graph).to(torch.float64) if "fb64" in keys else None
    every = {
        "fb32": lambda: _forward_backward(model.graph, image, window, torch.float32),
        "fb64": lambda: _forward_backward(graph64, image, window, torch.float64),
        "l2x32": lambda: onnxattr.l2x(model, image, window, dtype=torch.float32, **SR),
        "l2x64": lambda: onnxattr.l2x(model, image, window, **SR),
        "lam50": lambda: onnxattr.lam(model, image, window, steps=50, **SR),
    }
    return {k: every[k] for k in keys}


def bench(path: Path, repeats: int, device: str | None = None) -> dict[str, float]:
    model = onnxattr.load_model(path, device=device)
    image = onnxattr.read_image(ROOT / "samples/images/coffee-64.png", channels=model.in_channels)
    oh, ow = model.output_size(image.shape[2], image.shape[3])
    window = Window((ow - 16) // 2, (oh - 16) // 2, 16)
    fs = runs(model, image, window)
    return dict(zip(fs, median_times(list(fs.values()), repeats, model.device, warmup=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| model | fb32 s | fb64 s | L2X f32 s | L2X f64 s | LAM-50 s | L2X f32/fb32 | L2X f64/fb64 | L2X f64/fb32 "
          "| LAM/L2X f64 | LAM/L2X f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        t = bench(ROOT / "samples" / name, args.repeats, args.device)
        print(f"| {name} | {t['fb32']:.3f} | {t['fb64']:.3f} | {t['l2x32']:.3f} | {t['l2x64']:.3f} | {t['lam50']:.2f} | "
              f"{t['l2x32'] / t['fb32']:.2f} | {t['l2x64'] / t['fb64']:.2f} | {t['l2x64'] / t['fb32']:.2f} | "
              f"{t['lam50'] / t['l2x64']:.1f} | {t['lam50'] / t['l2x32']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
