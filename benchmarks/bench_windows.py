#!/usr/bin/env python3
"""Many windows per call: K windows in one call against K single-window calls (LAM by default).

The path's forwards do not depend on the window, so one call runs each path point forward once and
takes one backward per window; K single calls run K forwards and K backwards per point. Per model and
K: the median over ``--repeats`` of the one call's ``elapsed_s`` and of the sum of the K single calls'
``elapsed_s``, timed in turn (the order alternates between repeats) so that load on the machine hits
both alike; the maps of the two are checked to agree (max |difference| / max |map|).

    .venv/bin/python benchmarks/bench_windows.py samples/waifu2x-upconv7-x2.ts17.onnx --size 32 --steps 8
    .venv/bin/python benchmarks/bench_windows.py samples/dat-light-x2.dynamo.onnx --size 24 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

import onnxattr
from onnxattr.windows.geometry import Grid, grid_windows

IMAGE = Path(__file__).resolve().parents[1] / "samples" / "images" / "chelsea-64.png"


def run(method: str, model, image: torch.Tensor, windows: list[tuple[int, int, int]], kw: dict):
    return getattr(onnxattr, method)(model, image, windows, frame="sr", **kw)


def bench(path: Path, method: str, size: int, ks: list[int], repeats: int, window: int, kw: dict) -> list[dict]:
    model = onnxattr.load_model(path)
    image = onnxattr.read_image(IMAGE, channels=model.in_channels)[:, :, 8 : 8 + size, 8 : 8 + size]
    oh, ow = model.output_size(size, size)
    pool = [w.as_tuple() for w in grid_windows(Grid(window, window + 1), oh, ow)]
    if len(pool) < max(ks):
        pool = [w.as_tuple() for w in grid_windows(Grid(window, 1), oh, ow)][:: max(1, len(pool) // max(ks))]
    run(method, model, image, pool[:1], kw)  # warm-up
    rows = []
    for k in ks:
        wins = pool[:: max(1, len(pool) // k)][:k]
        shared, single, diff = [], [], 0.0
        for r in range(repeats):
            order = ("shared", "single") if r % 2 == 0 else ("single", "shared")
            for which in order:
                if which == "shared":
                    ds = run(method, model, image, wins, kw)
                    shared.append(float(ds.attrs["elapsed_s"]))
                else:
                    ones = [run(method, model, image, [w], kw) for w in wins]
                    single.append(sum(float(o.attrs["elapsed_s"]) for o in ones))
            a = ds["attribution"].values
            b = np.concatenate([o["attribution"].values for o in ones])
            diff = max(diff, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
        s, t = statistics.median(shared), statistics.median(single)
        rows.append({"model": path.name, "K": k, "shared": s, "single": t, "ratio": s / t, "max_rel_diff": diff})
        print(f"| {path.name} | {k} | {s:.2f} | {t:.2f} | {s / t:.2f} | {diff:.1e} |", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--method", default="lam", choices=["lam", "l2x", "glam"])
    p.add_argument("--size", type=int, default=32, help="LR crop side")
    p.add_argument("--steps", type=int, default=8, help="LAM path steps")
    p.add_argument("--window", type=int, default=4, help="window side (SR px)")
    p.add_argument("--ks", default="1,4,16,64")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    kw = {"steps": args.steps, "batch_size": min(8, args.steps)} if args.method == "lam" else {}
    print("| model | K | one call (s) | K single calls (s) | ratio | max rel. map difference |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        bench(path, args.method, args.size, [int(k) for k in args.ks.split(",")], args.repeats, args.window, kw)


if __name__ == "__main__":
    main()
