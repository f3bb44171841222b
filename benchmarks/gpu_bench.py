#!/usr/bin/env python3
"""The GPU benchmark table (issue #14): LAM, L2X, GL-AM and K-window sharing on a CNN and DAT-light.

For each model (waifu2x UpConv7 = the CNN, DAT-light x2 = the transformer) and LR side (64, 128; a crop of
samples/images/chelsea-128.png, a 16-px window at the SR centre), on the default device (CUDA if present):

* LAM-50: ``onnxattr.lam`` at its defaults (batch from the memory budget), against the authors' step-by-step
  loop and the limit, 50 bare forward+backward passes at the best batch of a sweep (``bench_lam.bench``);
  on CUDA the peak memory of one LAM run (``torch.cuda.max_memory_allocated``);
* L2X (float32 and float64) and GL-AM (local, global map) against one float32 forward+backward of the
  window detector (``bench_l2x.runs``, ``bench_glam.runs``), medians of interleaved rounds;
* K-window sharing: LAM with K windows in one call against K single-window calls, where ``lam`` takes a
  sequence of windows (otherwise the cell says it does not).

Every time is synchronised on CUDA (``timing.timed``). Parts run in order until ``--budget-s`` is spent;
the rest are marked skipped. Writes the Markdown table to stdout and to ``OUT/gpu_table.md`` (raw numbers
in ``OUT/gpu_results.json``). ``--quick`` shrinks everything for a CPU smoke run (the CNN at 32x32, 8 steps).

    python3 benchmarks/gpu_bench.py --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_glam  # noqa: E402
import bench_l2x  # noqa: E402
import bench_lam  # noqa: E402
from common import SR, median_times, timed  # noqa: E402

import onnxattr  # noqa: E402
from onnxattr.device import pick_device  # noqa: E402
from onnxattr.errors import OnnxAttrError  # noqa: E402
from onnxattr.windows.geometry import Window  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"CNN": "waifu2x-upconv7-x2.ts17.onnx", "DAT-light": "dat-light-x2.dynamo.onnx"}


@dataclass(frozen=True)
class Config:
    models: tuple[str, ...]
    sizes: tuple[int, ...]
    steps: int
    repeats: int
    batches: tuple[int, ...]
    windows: int


FULL = Config(("CNN", "DAT-light"), (64, 128), 50, 3, (1, 5, 10, 25, 50), 4)
QUICK = Config(("CNN",), (32,), 8, 1, (1, 4, 8), 2)


def centre_window(model, side: int) -> Window:
    oh, ow = model.output_size(side, side)
    return Window(ow // 2 - 8, oh // 2 - 8, 16)


def lam_part(model, side: int, cfg: Config) -> dict:
    r = bench_lam.bench(model, side, cfg.steps, cfg.repeats, list(cfg.batches))
    if model.device.type == "cuda":
        img = onnxattr.read_image(bench_lam.IMAGE, model.in_channels)[:, :, :side, :side]
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        onnxattr.lam(model, img, centre_window(model, side), steps=cfg.steps, **SR)
        torch.cuda.synchronize()
        r["peak_gib"] = (torch.cuda.max_memory_allocated() - base) / 2**30
    return r


def l2x_glam_part(model, side: int, cfg: Config) -> dict:
    img = onnxattr.read_image(bench_lam.IMAGE, model.in_channels)[:, :, :side, :side]
    win = centre_window(model, side)
    fs = bench_l2x.runs(model, img, win, keys=("fb32", "l2x32", "l2x64"))
    layers, glam_fs = bench_glam.runs(model, img, win)
    fs.update(local=glam_fs["local"], global_=glam_fs["global"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = dict(zip(fs, median_times(list(fs.values()), cfg.repeats, model.device)))
    return {**t, "layers": layers}


def windows_part(model, side: int, cfg: Config) -> dict:
    """K windows in one ``lam`` call vs K single-window calls; ``{'skipped': why}`` without that API."""
    img = onnxattr.read_image(bench_lam.IMAGE, model.in_channels)[:, :, :side, :side]
    c = centre_window(model, side)
    span = max(1, min(c.x, c.y) // max(1, cfg.windows - 1))
    wins = [Window(c.x - i * span, c.y - i * span, 16) for i in range(cfg.windows)]
    try:
        ds = onnxattr.lam(model, img, [w.as_tuple() for w in wins], steps=cfg.steps, **SR)
    except (TypeError, ValueError, OnnxAttrError) as err:
        return {"skipped": f"lam takes one window here (window= sequence: {type(err).__name__})"}
    if ds.sizes.get("window") != cfg.windows:
        return {"skipped": "lam returned no window dimension of length K"}
    shared = timed(lambda: onnxattr.lam(model, img, [w.as_tuple() for w in wins], steps=cfg.steps, **SR), model.device)
    singles = sum(timed(lambda w=w: onnxattr.lam(model, img, w.as_tuple(), steps=cfg.steps, **SR), model.device) for w in wins)
    return {"shared": shared, "singles": singles, "ratio": shared / singles}


def fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def row(name: str, side: int, cfg: Config, r: dict) -> str:
    lam, lg, kw = r.get("lam") or {}, r.get("l2x_glam") or {}, r.get("windows") or {}
    fb = lg.get("fb32")
    ratio = lambda a, b: None if a is None or not b else a / b  # noqa: E731
    cells = [
        name, f"{side}x{side}",
        f"{fmt(lam.get('lam'), '.2f')} ({lam.get('lam_batch', '-')})", fmt(lam.get("reference"), ".2f"),
        f"{fmt(lam.get('bare'), '.2f')} ({lam.get('best_bare_batch', '-')})",
        fmt(lam.get("ref_over_lam"), ".2f"), fmt(lam.get("lam_over_bare"), ".2f"), fmt(lam.get("peak_gib"), ".2f"),
        fmt(fb, ".4f"), fmt(lg.get("l2x32"), ".4f"), fmt(lg.get("l2x64"), ".4f"),
        fmt(ratio(lg.get("l2x32"), fb), ".2f"), fmt(ratio(lg.get("l2x64"), fb), ".2f"),
        fmt(lg.get("local"), ".4f"), fmt(lg.get("global_"), ".4f"),
        fmt(ratio(lg.get("local"), fb), ".2f"), fmt(ratio(lg.get("global_"), fb), ".2f"),
        fmt(kw.get("ratio"), ".2f") if "ratio" in kw else "n/a",
    ]
    return "| " + " | ".join(cells) + " |"


def header(cfg: Config) -> list[str]:
    m, k = cfg.steps, cfg.windows
    cols = [
        "model", "LR", f"LAM-{m} s (batch)", "loop s", "limit s (batch)", "loop/LAM", "LAM/limit", "LAM peak GiB",
        "fb s", "L2X f32 s", "L2X f64 s", "L2X f32/fb", "L2X f64/fb", "GL-AM local s", "GL-AM global s",
        "local/fb", "global/fb", f"LAM K={k} shared/singles",
    ]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def environment(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; device {device} (GPU: {gpu}); torch {torch.__version__}; "
        f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())}); Python {platform.python_version()}; "
        f"{torch.get_num_threads()} CPU threads"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU smoke sizes: the CNN at 32x32, 8 steps, 1 round")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting new parts after this many seconds")
    ap.add_argument("--out", type=Path, default=None, help="folder for gpu_table.md and gpu_results.json")
    ap.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    deadline = time.monotonic() + args.budget_s
    device = pick_device(args.device)
    notes, results = [environment(device)], {}
    lines = header(cfg)
    print("\n".join(lines), flush=True)
    for key in cfg.models:
        path = ROOT / "samples" / MODELS[key]
        model = None
        for side in cfg.sizes:
            r: dict = {}
            for part, fn in (("lam", lam_part), ("l2x_glam", l2x_glam_part), ("windows", windows_part)):
                if time.monotonic() > deadline:
                    notes.append(f"{key} {side}x{side} {part}: skipped, the time budget ({args.budget_s:.0f} s) is spent")
                    continue
                try:
                    if model is None:
                        t0 = time.perf_counter()
                        model = onnxattr.load_model(path, device=device)
                        notes.append(f"{key} = {path.name}: loaded in {time.perf_counter() - t0:.1f} s, batch mode "
                                     f"{model.batch_mode}, ORT providers {', '.join(model.session.get_providers())}")
                    r[part] = fn(model, side, cfg)
                    if "skipped" in r[part]:
                        notes.append(f"{key} {side}x{side} {part}: skipped, {r[part]['skipped']}")
                except Exception as err:  # noqa: BLE001  (one failing part must not lose the table)
                    if isinstance(err, torch.cuda.OutOfMemoryError):
                        torch.cuda.empty_cache()
                    first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
                    notes.append(f"{key} {side}x{side} {part}: failed, {type(err).__name__}: {first}")
                    traceback.print_exc(limit=3)
            results[f"{key} {side}"] = r
            lines.append(row(key, side, cfg, r))
            print(lines[-1], flush=True)
    table = "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"
    print("\n" + "\n".join(f"- {n}" for n in notes))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_table.md").write_text(table)
        raw = {"config": asdict(cfg), "notes": notes, "results": results}
        (args.out / "gpu_results.json").write_text(json.dumps(raw, indent=1, default=lambda o: float(np.asarray(o))))
        print(f"table written to {args.out / 'gpu_table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
