"""Start-up cost: ``onnxattr --help``, an argument error, and loading + verifying each sample model
against what onnxruntime alone needs to import, open and run the file once; fresh loads (cache off) and
cached ones (the file loaded before: probes and graph from ``onnxattr.intake.cache``), and ``onnxattr inspect``
of a cached file (its node list and batch mode learned by an earlier ``inspect``, where the version keeps them),
and for ``--call-models`` a whole ``onnxattr cem`` call (one 16-px window, K_c = 1, K_f = 0, on a 128x128 HR photo)
and ``onnxattr glam`` call (one 16-px window on a 64x64 LR photo) of a file an earlier call of the same method
cached (the probes, the method's memory law, CEM's batching check, where the version keeps them).

Every figure is the wall time of a fresh Python process (imports included), median of interleaved
rounds, so the ratios compare runs taken under the same load.

Run: .venv/bin/python benchmarks/bench_startup.py [--repeats 3] [--models samples/*.onnx] [--before TREE]
     .venv/bin/python benchmarks/bench_startup.py --prepare   (the graph cleaning alone, in one process:
     ``onnxattr.converters.prepare`` against onnxscript.optimizer.optimize, interleaved)

``--before TREE`` also times a checkout of an earlier version (e.g. ``git worktree add /tmp/old main``; for
versions before the converters moved into the package, with ``onnxattr/converters`` linked to ``../converters``
there), its runs interleaved with this tree's, fresh and cached loads alike (each tree with its own cache folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE_ORDER = ["import", "reading", "reading cache", "probing", "converting", "rebuilding", "verifying"]
ONNXATTR = [sys.executable, "-m", "onnxattr"]
IMAGES = ROOT / "samples" / "images"
CALLS = {  # method -> its arguments after the model
    "cem": [str(IMAGES / "astronaut-hr-128.png"), "--hr", "--window", "48", "48", "16", "--coarse", "1", "--fine", "0"],
    "glam": [str(IMAGES / "chelsea-64.png"), "--window", "48", "48", "16"],
}

ORT_ALONE = """
import sys, numpy as np, onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
h, w = [d if isinstance(d, int) else s for d, s in zip(inp.shape[2:], (32, 48))]
c = inp.shape[1] if isinstance(inp.shape[1], int) else 3
sess.run(None, {inp.name: np.random.default_rng(0).random((1, c, h, w), dtype=np.float32)})
"""

LOAD = """
import json, sys, time
start = time.perf_counter()
import onnxattr
load_model = onnxattr.load_model  # imports the loader (torch, onnx, onnxruntime) here, in every version's layout
imported = time.perf_counter()
model = load_model(sys.argv[1])
print(json.dumps({"import": imported - start, **getattr(model, "load_seconds", {})}))
"""


def wall(cmd: list[str], expect: int = 0, tree: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds a fresh process takes (importing onnxattr from ``tree`` if given, with ``env`` added; it must exit
    with ``expect``) and its stdout."""
    env = {**os.environ, **(env or {}), **({"PYTHONPATH": str(tree)} if tree else {})}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree or ROOT, env=env)
    took = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return took, done.stdout


def bench_prepare(models: list[Path], repeats: int) -> None:
    """Median seconds of onnxscript's full optimizer (what prepare ran before) and of prepare's passes."""
    import logging

    import onnx
    import onnxscript.optimizer

    from onnxattr.converters import prepare

    logging.getLogger("onnxscript.optimizer").setLevel(logging.ERROR)
    print("| model | onnxscript.optimizer.optimize s | prepare s | nodes (both) |\n|---|---|---|---|")
    for model in models:
        proto = onnx.load(model)
        full, ours = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            a = onnxscript.optimizer.optimize(proto)
            full.append(time.perf_counter() - start)
            start = time.perf_counter()
            b = prepare(proto)
            ours.append(time.perf_counter() - start)
        nodes = f"{len(a.graph.node)}, {len(b.graph.node)}"
        print(f"| {model.name} | {statistics.median(full):.2f} | {statistics.median(ours):.2f} | {nodes} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", type=Path, default=sorted((ROOT / "samples").glob("*.onnx")))
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout to time side by side")
    parser.add_argument("--prepare", action="store_true", help="time the graph cleaning alone")
    parser.add_argument("--call-models", nargs="*", type=Path, default=[ROOT / "samples" / f for f in (
        "waifu2x-upconv7-x2.ts17.onnx", "dat-light-x4.dynamo.onnx")],
        help="models of the cached cem and glam calls (scale 2 or 4)")
    args = parser.parse_args()
    models = [m.resolve() for m in args.models]
    if args.prepare:
        bench_prepare(models, args.repeats)
        return

    cases: dict[str, tuple[list[str], int]] = {
        "onnxattr --help": (ONNXATTR + ["--help"], 0),
        "onnxattr lam --help": (ONNXATTR + ["lam", "--help"], 0),
        "onnxattr lam (missing arguments)": (ONNXATTR + ["lam"], 2),
        "onnxattr nosuch (unknown command)": (ONNXATTR + ["nosuch"], 2),
    }
    commands = list(cases)
    trees = {"after": None} if args.before is None else {"before": args.before.resolve(), "after": None}
    envs = {(kind, label): {"ONNXATTR_CACHE": "0"} for kind in ("load", "ort") for label in trees}
    for label in trees:
        folder = tempfile.mkdtemp(prefix=f"onnxattr-bench-cache-{label}-")
        for kind in ("cached", "inspect", *CALLS):
            envs[kind, label] = {"ONNXATTR_CACHE": "1", "ONNXATTR_CACHE_DIR": folder,
                                 "XDG_CONFIG_HOME": f"{folder}/config"}
    outputs = tempfile.mkdtemp(prefix="onnxattr-bench-calls-")
    for model in models:
        cases[f"ort {model.name}"] = ([sys.executable, "-c", ORT_ALONE, str(model)], 0)
        cases[f"load {model.name}"] = ([sys.executable, "-c", LOAD, str(model)], 0)
        cases[f"cached {model.name}"] = ([sys.executable, "-c", LOAD, str(model)], 0)
        cases[f"inspect {model.name}"] = ([*ONNXATTR, "inspect", str(model)], 0)
        for label, tree in trees.items():
            wall(cases[f"cached {model.name}"][0], tree=tree, env=envs["cached", label])  # fills the cache
            wall(cases[f"inspect {model.name}"][0], tree=tree, env=envs["inspect", label])  # and what inspect learns
    call_models = [m.resolve() for m in args.call_models]
    for model in call_models:
        for method, call in CALLS.items():
            for label, tree in trees.items():
                out = f"{outputs}/{method}-{label}-{model.stem}.nc"
                cases[f"{method} {model.name} {label}"] = ([*ONNXATTR, method, str(model), *call, "-q", "-o", out], 0)
                Path(out).unlink(missing_ok=True)
                wall(cases[f"{method} {model.name} {label}"][0], tree=tree, env=envs[method, label])  # fills the cache
    times: dict[tuple[str, str], list[float]] = {(t, name): [] for t in trees for name in cases}
    stages: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for name, (cmd, expect) in cases.items():
            for label, tree in trees.items():
                call = name.split()[0] in CALLS
                if call and not name.endswith(label) or label == "before" and name.split()[0] == "ort":
                    continue  # a call writes its tree's file; onnxruntime alone does not depend on the tree
                if call:
                    Path(cmd[-1]).unlink(missing_ok=True)
                took, out = wall(cmd, expect, tree, envs.get((name.split()[0], label)))
                times[label, name].append(took)
                if name.split()[0] in ("load", "cached"):
                    stages.setdefault((label, name), []).append(json.loads(out.strip().splitlines()[-1]))
                print(f"{label} {name}: {times[label, name][-1]:.2f} s", file=sys.stderr, flush=True)
    med = {key: statistics.median(t) for key, t in times.items() if t}
    labels = list(trees)

    print("| command | " + " | ".join(f"{t} s" for t in labels) + " |\n|---|" + "---|" * len(labels))
    for name in commands:
        print(f"| `{name}` | " + " | ".join(f"{med[t, name]:.2f}" for t in labels) + " |")
    print("\n| model | onnxruntime alone s | " + " | ".join(f"load + verify {t} s | ratio {t}" for t in labels)
          + " | " + " | ".join(f"cached {t} s | ratio {t}" for t in labels) + " |\n|---|---|"
          + "---|---|" * (2 * len(labels)))
    for model in models:
        ort_s = med["after", f"ort {model.name}"]
        keys = [(t, f"load {model.name}") for t in labels] + [(t, f"cached {model.name}") for t in labels]
        cells = [f"{med[k]:.2f} | {med[k] / ort_s:.1f}" for k in keys]
        print(f"| {model.name} | {ort_s:.2f} | " + " | ".join(cells) + " |")
    print("\n| model | onnxruntime alone s | " + " | ".join(f"inspect, cached, {t} s | ratio {t}" for t in labels)
          + " |\n|---|---|" + "---|---|" * len(labels))
    for model in models:
        ort_s = med["after", f"ort {model.name}"]
        cells = [f"{med[t, f'inspect {model.name}']:.2f} | {med[t, f'inspect {model.name}'] / ort_s:.1f}" for t in labels]
        print(f"| {model.name} | {ort_s:.2f} | " + " | ".join(cells) + " |")
    if call_models:
        print("\n| model | call | " + " | ".join(f"cached, {t} s" for t in labels) + " |\n|---|---|"
              + "---|" * len(labels))
        for model in call_models:
            for method in CALLS:
                cells = " | ".join(f"{med[t, f'{method} {model.name} {t}']:.2f}" for t in labels)
                print(f"| {model.name} | `onnxattr {method}` | {cells} |")
    if "before" in trees:
        print("\n| model | cached after / cached before | cached after / load after |\n|---|---|---|")
        for model in models:
            c = {t: med[t, f"cached {model.name}"] for t in labels}
            print(f"| {model.name} | {c['after'] / c['before']:.2f} | {c['after'] / med['after', f'load {model.name}']:.2f} |")
    print("\nWhere a load's time goes (medians, s; import = torch, onnx, onnxruntime and onnxattr):")
    for label in labels:
        names = sorted({k for (t, _), runs in stages.items() if t == label for r in runs for k in r}, key=lambda k: (STAGE_ORDER + [k]).index(k))
        print(f"\n{label}\n\n| model | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for kind in ("load", "cached"):
            for model in models:
                runs = stages[label, f"{kind} {model.name}"]
                cells = " | ".join(f"{statistics.median(r.get(k, 0.0) for r in runs):.2f}" for k in names)
                print(f"| {model.name}{' (cached)' if kind == 'cached' else ''} | {cells} |")


if __name__ == "__main__":
    main()
