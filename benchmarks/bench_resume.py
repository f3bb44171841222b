"""Resuming a study: a full ``onnxattr compare -o study.zarr`` run, against a run SIGKILLed once half its
cells are written then rerun, and against a rerun of the finished study.

Each figure is the wall time of a fresh ``python -m onnxattr compare`` process (imports included), so the
rerun times hold what a resume costs beyond the cells it computes: start-up, reading the kept cells and
writing the assembled store. The killed run's time is not counted; the cells kept come from the rerun's
``--json`` summary.

Run: .venv/bin/python benchmarks/bench_resume.py [--steps 20] [--kill-at 4] [--out benchmarks/out/resume.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = [ROOT / "samples" / n for n in ("waifu2x-upconv7-x2.ts17.onnx", "waifu2x-upresnet10-x2.ts17.onnx")]
IMAGES = [ROOT / "samples" / "images" / n for n in ("astronaut-64.png", "chelsea-64.png", "coffee-64.png", "camera-gray-64.png")]


def command(store: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "onnxattr", "compare", *map(str, MODELS), "--images", *map(str, IMAGES),
            "--window", "60", "60", "16", "--param", f"steps={steps}", "--seeds", "2", "--ratios", "0.1,0.2",
            "--json", "-q", "-o", str(store)]


def run(store: Path, steps: int) -> tuple[float, dict]:
    """Seconds of one compare process and its --json summary."""
    t0 = time.perf_counter()
    res = subprocess.run(command(store, steps), capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"compare failed: {res.stderr.strip()}")
    return elapsed, json.loads(res.stdout)


def kill_after(store: Path, steps: int, cells: int) -> int:
    """Start compare and SIGKILL it once ``cells`` cells are in the store; the cells written by then."""
    proc = subprocess.Popen(command(store, steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while len(list((store / "cells").glob("*.nc"))) < cells and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list((store / "cells").glob("*.nc")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--kill-at", type=int, default=4, help="cells written before the SIGKILL (of 8)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "resume.json")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        full_s, full = run(folder / "full.zarr", args.steps)
        written = kill_after(folder / "resumed.zarr", args.steps, args.kill_at)
        rerun_s, rerun = run(folder / "resumed.zarr", args.steps)
        finished_s, finished = run(folder / "full.zarr", args.steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cells = full["cells_computed"]
    rows = [
        ("full run", full_s, full["cells_kept"], cells),
        (f"rerun after SIGKILL ({written} cells written)", rerun_s, rerun["cells_kept"], cells),
        ("rerun of the finished study", finished_s, finished["cells_kept"], cells),
    ]
    print(f"{len(MODELS)} models x {len(IMAGES)} images, LAM {args.steps} steps, 1 window, CPU\n")
    print("| run | wall s | cells kept | vs full run |\n|---|---|---|---|")
    for name, s, kept, total in rows:
        print(f"| {name} | {s:.1f} | {kept}/{total} | {s / full_s:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "rows": [dict(zip(("run", "wall_s", "kept", "cells"), r)) for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
