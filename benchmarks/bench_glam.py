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
import inspect
import warnings
from pathlib import Path
from typing import Callable

import torch
from common import SR, median_times, timed

import onnxattr
from onnxattr.errors import OnnxAttrError
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector

G = importlib.import_module("onnxattr.glam")
ROOT = Path(__file__).resolve().parent.parent
MODELS = [
    "waifu2x-upconv7-x2.ts17.onnx",
    "waifu2x-upresnet10-x2.ts17.onnx",
    "dat-light-x2.dynamo.onnx",
]


def runs(model, x: torch.Tensor, win: Window) -> tuple[int, dict[str, Callable[[], object]]]:
    """The number of explained layers and the timed functions fb, local, global on ``model``'s device."""
    x = x.to(model.device)
    size = model.output_size(*x.shape[2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers, _ = G.choose_layers(model, None, None)

    def fb() -> None:
        xi = x.clone().requires_grad_(True)
        gradient_detector(model(xi), win).sum().backward()

    multi = "windows" in inspect.signature(G.local_keys).parameters  # then: windows in, keys per window out

    def local() -> None:
        _, keys = G.local_keys(model, x, layers, [win] if multi else win)
        G.glocal(torch.stack([G.to_output(k, size) for k in (keys[0] if multi else keys)]))

    def global_() -> None:
        G.glocal(torch.stack([G.scale_unit(p.abs()) for p in G.global_products(model, x, layers, size)]))

    return len(layers), {"fb": fb, "local": local, "global": global_}


def bench(path: Path, repeats: int, lam_steps: int, device: str | None = None) -> dict[str, float | int | str]:
    model = onnxattr.load_model(path, device=device)
    x = onnxattr.read_image(ROOT / "samples/images/coffee-64.png", model.in_channels)
    size = model.output_size(*x.shape[2:])
    win = Window(size[1] // 2 - 8, size[0] // 2 - 8, 16)
    n_layers, fs = runs(model, x, win)
    t_fb, t_local, t_global = median_times(list(fs.values()), repeats, model.device)
    t_lam = timed(lambda: onnxattr.lam(model, x, win.as_tuple(), steps=lam_steps, **SR), model.device)
    return {"model": path.name, "layers": n_layers, "fb": t_fb, "local": t_local, "global": t_global, "lam": t_lam}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lam-steps", type=int, default=50)
    ap.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
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
            r = bench(path, args.repeats, args.lam_steps, args.device)
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
