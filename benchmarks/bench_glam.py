#!/usr/bin/env python3
"""GL-AM cost vs one forward+backward and vs LAM (50 steps) on the sample models.

For each model (LR image samples/images/coffee-64.png, a 16-px window at the SR centre) it times, as the
median of ``--repeats`` interleaved rounds after one warm-up round:

* ``fb``     one forward + one backward of LAM's gradient detector on the window (``model(x)``);
* ``local``  the whole GL-AM local map: ``local_keys`` (1 forward + 1 backward) + resizing + eq. 2;
* ``global`` the whole GL-AM global map: ``global_products`` (1 forward + 1 backward) + eq. 5;
* ``lam``    ``onnxattr.lam`` with 50 steps (batched as LAM chooses), timed once.

Targets (issue #5): local / fb <= 2, global / fb <= 3. Prints a Markdown table.
Run from the repository root: ``.venv/bin/python benchmarks/bench_glam.py``.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

import onnxattr
from onnxattr.errors import OnnxAttrError
from onnxattr.target import Window, gradient_detector

G = importlib.import_module("onnxattr.glam")
ROOT = Path(__file__).resolve().parent.parent
MODELS = [
    "waifu2x-upconv7-x2.ts17.onnx",
    "waifu2x-upresnet10-x2.ts17.onnx",
    "dat-light-x2.dynamo.onnx",
]


def median_times(fs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each function over ``repeats`` interleaved rounds (after one warm-up round),
    so that load from other processes hits every function alike."""
    times: list[list[float]] = [[] for _ in fs]
    for r in range(repeats + 1):
        for f, ts in zip(fs, times):
            t = time.perf_counter()
            f()
            if r:
                ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def bench(path: Path, repeats: int, lam_steps: int) -> dict[str, float | int | str]:
    model = onnxattr.load_model(path)
    x = onnxattr.read_image(ROOT / "samples/images/coffee-64.png", model.in_channels)
    size = model.output_size(*x.shape[2:])
    win = Window(size[1] // 2 - 8, size[0] // 2 - 8, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers, _ = G.choose_layers(model, None, None)

    def fb() -> None:
        xi = x.clone().requires_grad_(True)
        gradient_detector(model(xi), win).sum().backward()

    def local() -> None:
        _, keys = G.local_keys(model, x, layers, win)
        G.glocal(torch.stack([G.to_output(k, size) for k in keys]))

    def global_() -> None:
        G.glocal(torch.stack([G.scale_unit(p.abs()) for p in G.global_products(model, x, layers, size)]))

    t_fb, t_local, t_global = median_times([fb, local, global_], repeats)
    t = time.perf_counter()
    onnxattr.lam(model, x, win.as_tuple(), frame="sr", steps=lam_steps)
    t_lam = time.perf_counter() - t
    return {"model": path.name, "layers": len(layers), "fb": t_fb, "local": t_local, "global": t_global, "lam": t_lam}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lam-steps", type=int, default=50)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print("| model | layers | fwd+bwd s | local s | global s | LAM-50 s | local/fb | global/fb | LAM/local | LAM/(local+global) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        path = ROOT / "samples" / name
        if not path.is_file():
            continue
        try:
            r = bench(path, args.repeats, args.lam_steps)
        except (OnnxAttrError, RuntimeError) as err:
            print(f"| {name} | skipped: {str(err)[:90]} |")
            continue
        print(
            f"| {r['model']} | {r['layers']} | {r['fb']:.3f} | {r['local']:.3f} | {r['global']:.3f} | {r['lam']:.2f} | "
            f"{r['local'] / r['fb']:.2f} | {r['global'] / r['fb']:.2f} | {r['lam'] / r['local']:.1f} | "
            f"{r['lam'] / (r['local'] + r['global']):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
