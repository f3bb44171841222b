"""Threads: the torch / onnxruntime thread count for one run and for tasks side by side (issue #15).

* **single**: one ``onnxattr.lam`` call (LAM-``--steps``, default batch) on a 64x64 LR crop of chelsea-128, for each
  waifu2x sample, at each thread count of ``--threads``;
* **compare**: ``onnxattr.compare`` of both waifu2x samples x 4 LR images (one 16-px window, LAM-``--steps``, masking
  ratio 0.1, 1 seed) on the threaded scheduler, at each per-task thread count (``compare(threads=...)``); two
  tasks run at once on a 2-core machine.

Wall time and process CPU time (user + system) of each, median over ``--repeats`` interleaved rounds (rotating
order) after a warm-up round (model loads and conversions cached in the process).

Run: .venv/bin/python benchmarks/bench_threads.py [--repeats 3] [--steps 50] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import onnxattr  # noqa: E402
from common import SR  # noqa: E402

SAMPLES = ROOT / "samples"
MODELS = [SAMPLES / "waifu2x-upconv7-x2.ts17.onnx", SAMPLES / "waifu2x-upresnet10-x2.ts17.onnx"]
IMAGES = [SAMPLES / "images" / f"{n}-64.png" for n in ("chelsea", "coffee", "astronaut", "camera-gray")]


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of the process) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(fs: list[Callable[[], tuple[float, float]]], repeats: int) -> list[tuple[float, float]]:
    for f in fs:
        f()
    runs: list[list[tuple[float, float]]] = [[] for _ in fs]
    for r in range(repeats):
        for i in [(r + k) % len(fs) for k in range(len(fs))]:
            runs[i].append(fs[i]())
    return [(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in runs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores; median of {args.repeats} interleaved rounds")
    print("| run | threads | wall s | CPU s | wall vs 1 thread |")
    print("|---|---|---|---|---|")
    hr = onnxattr.read_image(SAMPLES / "images" / "chelsea-128.png")
    image = hr[:, :, 32:96, 32:96].contiguous()
    for path in MODELS:
        model = onnxattr.load_model(path)
        h, w = model.output_size(64, 64)

        def single(n: int) -> tuple[float, float]:
            torch.set_num_threads(n)
            return timed(lambda: onnxattr.lam(model, image, (w // 2 - 8, h // 2 - 8, 16), steps=args.steps, **SR))

        rows = interleaved([lambda n=n: single(n) for n in args.threads], args.repeats)
        for n, (wall, cpu) in zip(args.threads, rows):
            print(f"| lam {path.stem} | {n} | {wall:.2f} | {cpu:.2f} | {wall / rows[0][0]:.2f} |", flush=True)
    torch.set_num_threads(max(args.threads))

    def study(n: int) -> tuple[float, float]:
        return timed(lambda: onnxattr.compare([str(m) for m in MODELS], [str(i) for i in IMAGES], (60, 60, 16),
                                              steps=args.steps, ratios=(0.1,), seeds=1, threads=n))

    rows = interleaved([lambda n=n: study(n) for n in args.threads], args.repeats)
    for n, (wall, cpu) in zip(args.threads, rows):
        print(f"| compare 2 models x 4 images | {n} per task | {wall:.2f} | {cpu:.2f} | {wall / rows[0][0]:.2f} |")


if __name__ == "__main__":
    main()
