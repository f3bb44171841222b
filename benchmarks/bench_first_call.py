"""The first ``lam()`` call of a process against a steady one: what a first call pays on top of the work.

Each round starts one fresh process per (model, LR size, cache state[, tree]): it imports onnxattr, LAM's module
and xarray's first Dataset (which imports dask), loads the model, then times ``onnxattr.lam`` (``--steps``, 50, a
16-px window (at most the output) at the SR centre of a chelsea-128 crop) four times: the first call and three
steady ones (their median: a shape used once in the first call is specialised in the second). The figure per
process is first / median(steady); the tables give the medians over the rounds, which are interleaved so that load
from other processes hits every case alike. Cache states: **warm** (the user cache holds the model's entry and what
an earlier process learned about it: one untimed process fills it before the rounds) and **cold**
(``ONNXATTR_CACHE=0``: nothing stored, the first call measures what it needs).

The floor: after each warm case a fresh process runs the bare passes of that call's shapes (its batches and
baseline, at its pass size: the window's field where LAM cropped) on the plain converted graph, four rounds; its
first / steady is what torch itself pays the first time it runs those shapes in a process (kernel and allocator
set-up), with none of onnxattr's work.

Run: .venv/bin/python benchmarks/bench_first_call.py [--repeats 3] [--sizes 32 64] [--steps 50] [--models ...] [--before TREE]

``--before TREE`` times an older checkout in the same rounds (each tree with its own cache folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = ["waifu2x-upconv7-x2.ts17", "waifu2x-upresnet10-x2.ts17", "dat-light-x4.dynamo"]

CHILD = """
import json, sys, time
start = time.perf_counter()
import numpy as np, xarray as xr
import onnxattr
lam = onnxattr.lam  # the method's module, imported
xr.Dataset({"a": ("x", np.zeros(1))})  # xarray's first Dataset imports dask (its duck-array check), once a process
imports = time.perf_counter() - start
path, size, steady, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
start = time.perf_counter()
model = onnxattr.load_model(path)
load = time.perf_counter() - start
image = onnxattr.read_image(sys.argv[4], model.in_channels)[:, :, :size, :size]
oh, ow = model.output_size(size, size)
k = min(16, oh, ow)
window = (ow // 2 - k // 2, oh // 2 - k // 2, k)
times = []
for _ in range(1 + steady):
    start = time.perf_counter()
    ds = lam(model, image, window, frame="sr", steps=steps)
    times.append(time.perf_counter() - start)
box = [int(v) for v in ds.attrs.get("field_box", [0, 0, size, size])]
print(json.dumps({"imports": imports, "load": load, "first": times[0], "steady": times[1:],
                  "batch": int(ds.attrs["batch_size"]), "pass_hw": [box[3] - box[1], box[2] - box[0]]}))
"""

BARE = """
import json, sys, time
import torch
import onnxattr
path, batch, h, w, steps = sys.argv[1], *map(int, sys.argv[2:6])
model = onnxattr.load_model(path)
graph, c = model.graph, model.in_channels

def round_():
    start = time.perf_counter()
    for n in [batch] * (steps // batch) + ([steps % batch] if steps % batch else []):
        x = torch.rand(n, c, h, w, requires_grad=True)
        torch.autograd.grad(graph(x).sum(), x)
    with torch.no_grad():
        graph(torch.rand(1, c, h, w))
    return time.perf_counter() - start

times = [round_() for _ in range(4)]
print(json.dumps({"first": times[0], "steady": times[1:]}))
"""


def run(model: Path, size: int, steps: int, tree: Path | None, env: dict[str, str], bare: dict | None = None) -> dict:
    """One fresh process: its first and steady call times; with ``bare`` (a call's result: its batch and pass size),
    those of the bare passes of that call's shapes on the plain converted graph instead."""
    env = {**os.environ, **env, **({"PYTHONPATH": str(tree)} if tree else {})}
    image = ROOT / "samples" / "images" / "chelsea-128.png"
    args = ([BARE, str(model), str(bare["batch"]), *map(str, bare["pass_hw"]), str(steps)] if bare
            else [CHILD, str(model), str(size), "3", str(image), str(steps)])
    done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, cwd=tree or ROOT, env=env)
    if done.returncode:
        raise SystemExit(f"{model.name} at {size}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="sample names or .onnx paths")
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout to time side by side")
    args = parser.parse_args()
    models = [Path(m) if m.endswith(".onnx") else ROOT / "samples" / f"{m}.onnx" for m in args.models]
    trees = {"after": None} if args.before is None else {"before": args.before.resolve(), "after": None}
    envs = {}
    for label in trees:
        folder = tempfile.mkdtemp(prefix=f"onnxattr-first-{label}-")
        envs[label, "warm"] = {"ONNXATTR_CACHE": "1", "ONNXATTR_CACHE_DIR": f"{folder}/cache",
                               "XDG_CONFIG_HOME": f"{folder}/config"}  # its own signing key
        envs[label, "cold"] = {"ONNXATTR_CACHE": "0"}
    cases = [(m, s, label, state) for m in models for s in args.sizes for label in trees for state in ("warm", "cold")]
    for m, s, label, state in cases:
        if state == "warm":
            run(m, s, args.steps, trees[label], envs[label, state])  # fills the cache (and what a call learns)
    got: dict[tuple, list[dict]] = {case: [] for case in cases}
    bare: dict[tuple, list[dict]] = {case: [] for case in cases}
    with open("/proc/loadavg") as f:
        loads = [f.read().split()[0]]
    for r in range(args.repeats):
        for case in cases:
            m, s, label, state = case
            got[case].append(run(m, s, args.steps, trees[label], envs[label, state]))
            res = got[case][-1]
            print(f"round {r + 1} {label} {state} {m.name} {s}: first {res['first']:.2f} s, steady "
                  f"{' '.join(f'{t:.2f}' for t in res['steady'])} s", file=sys.stderr, flush=True)
            if state == "warm":
                bare[case].append(run(m, s, args.steps, trees[label], envs[label, state], res))
        with open("/proc/loadavg") as f:
            loads.append(f.read().split()[0])
    print(f"load average (1 min) at the start and after each round: {', '.join(loads)}\n")
    print("| model | LR | tree | cache | imports s | load s | first s | steady s | first / steady | batch | bare passes "
          "first / steady |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        m, s, label, state = case
        runs = got[case]
        first = statistics.median(r["first"] for r in runs)
        steady = statistics.median(statistics.median(r["steady"]) for r in runs)
        ratio = statistics.median(r["first"] / statistics.median(r["steady"]) for r in runs)
        imports = statistics.median(r["imports"] for r in runs)
        load = statistics.median(r["load"] for r in runs)
        base = (f"{statistics.median(r['first'] / statistics.median(r['steady']) for r in bare[case]):.2f}"
                if bare[case] else "")
        print(f"| {m.stem} | {s}x{s} | {label} | {state} | {imports:.2f} | {load:.2f} | {first:.2f} | {steady:.2f} | "
              f"{ratio:.2f} | {runs[-1]['batch']} | {base} |")


if __name__ == "__main__":
    main()
