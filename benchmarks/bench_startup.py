"""Start-up cost: ``onnxattr --help``, an argument error, and loading + verifying each sample model
against what onnxruntime alone needs to import, open and run the file once.

Every figure is the wall time of a fresh Python process (imports included), median of interleaved
rounds, so the ratios compare runs taken under the same load.

Run: .venv/bin/python benchmarks/bench_startup.py [--repeats 3] [--models samples/*.onnx]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNXATTR = [sys.executable, "-m", "onnxattr"]

ORT_ALONE = """
import sys, numpy as np, onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
h, w = [d if isinstance(d, int) else s for d, s in zip(inp.shape[2:], (32, 48))]
c = inp.shape[1] if isinstance(inp.shape[1], int) else 3
sess.run(None, {inp.name: np.random.default_rng(0).random((1, c, h, w), dtype=np.float32)})
"""

LOAD = """
import sys, onnxattr
onnxattr.load_model(sys.argv[1])
"""


def wall(cmd: list[str], expect: int = 0) -> float:
    """Seconds a fresh process takes; it must exit with ``expect``."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", type=Path, default=sorted((ROOT / "samples").glob("*.onnx")))
    args = parser.parse_args()

    cases: dict[str, tuple[list[str], int]] = {
        "onnxattr --help": (ONNXATTR + ["--help"], 0),
        "onnxattr lam --help": (ONNXATTR + ["lam", "--help"], 0),
        "onnxattr lam (missing arguments)": (ONNXATTR + ["lam"], 2),
    }
    for model in args.models:
        cases[f"ort {model.name}"] = ([sys.executable, "-c", ORT_ALONE, str(model)], 0)
        cases[f"load {model.name}"] = ([sys.executable, "-c", LOAD, str(model)], 0)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (cmd, expect) in cases.items():
            times[name].append(wall(cmd, expect))
    med = {name: statistics.median(t) for name, t in times.items()}

    print("| command | s |\n|---|---|")
    for name in list(cases)[:3]:
        print(f"| `{name}` | {med[name]:.2f} |")
    print("\n| model | onnxruntime alone s | load + verify s | ratio |\n|---|---|---|---|")
    for model in args.models:
        ort_s, load_s = med[f"ort {model.name}"], med[f"load {model.name}"]
        print(f"| {model.name} | {ort_s:.2f} | {load_s:.2f} | {load_s / ort_s:.1f} |")


if __name__ == "__main__":
    main()
