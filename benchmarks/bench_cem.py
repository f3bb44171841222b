#!/usr/bin/env python3
"""CEM's cost against its limits: the bare forwards it runs, the authors' loop shape, the coarse-to-fine rule,
K windows per call, and the receptive-field crop on a 256x256 image.

Sections (all on the CPU in onnxruntime unless --device says otherwise; medians of ``--repeats`` interleaved rounds
after a warm-up call, which also measures the model's memory law once):

* ``limit``  one ``cem`` call against replaying, through the same runner, every batch that call ran (the model's
  forwards and nothing else): CEM time / bare forwards (goal <= 1.15).
* ``shape``  the authors' loop shape (one call per window, every block, the whole image: ``field='full'``) against
  one call with the K windows (the shared, cropped forwards), for K = 1 and K = 4.
* ``windows`` one call with K = 4 windows against one call with one window and against 4 single calls (goal:
  K windows <= 1.1 x one call where the forwards are shared, i.e. the whole image is every window's field).
* ``crop``   a 256x256 HR crop of skimage's astronaut (LR 128x128) on waifu2x UpConv7 (finite field): ``field='auto'``
  against ``field='full'`` at K_c = 1, K_f = 0 (both timed once), and the count at the paper's K_c = 3, K_f = 50.
  Also the coarse-to-fine saving: the forwards of K_f draws on every block in the field against K_c draws on every
  block plus K_f on the selected ones.

Prints Markdown tables. Run from the repository root: ``.venv/bin/python benchmarks/bench_cem.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import torch
from common import median_times, timed

import onnxattr
import onnxattr.methods.cem as C
from onnxattr.image import downscale, read_image

ROOT = Path(__file__).resolve().parent.parent
FINITE = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"  # 7 unpadded convs: a finite field
GLOBAL = ROOT / "samples" / "waifu2x-upresnet10-x2.ts17.onnx"  # squeeze-excitation: an unbounded field
HR_IMAGE = ROOT / "samples" / "images" / "astronaut-hr-128.png"


def recorded(model, lr, hr, windows, **kw):
    """One ``cem`` call and the batches its runner ran."""
    original, batches = C.runner, []

    def recording(m, backend="auto"):
        run = original(m, backend)

        def forward(x: torch.Tensor) -> torch.Tensor:
            batches.append(x.clone())
            return run.forward(x)

        return dataclasses.replace(run, forward=forward)

    C.runner = recording
    try:
        ds = C.cem(model, lr, windows, hr=hr, **kw)
    finally:
        C.runner = original
    return ds, batches


def limit(model, lr, hr, windows, repeats: int, **kw) -> dict:
    """CEM time and the time of its batches' bare forwards (interleaved medians)."""
    ds, batches = recorded(model, lr, hr, windows, **kw)
    run = C.runner(model)

    def bare() -> None:
        for b in batches:
            run.forward(b)

    t_cem, t_bare = median_times([lambda: C.cem(model, lr, windows, hr=hr, **kw), bare], repeats)
    return {"forwards": len(batches), "images": sum(len(b) for b in batches), "cem": t_cem, "bare": t_bare,
            "ratio": t_cem / t_bare, "batch": ds.attrs["batch_size"], "R": ds.attrs["receptive_field"]}


def pair(path: Path, scale: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return downscale(read_image(path), scale)


def astronaut(side: int, scale: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """LR and HR of a side x side crop of skimage's astronaut (512x512) around the face."""
    from skimage import data

    hr = torch.from_numpy(data.astronaut()[96 : 96 + side, 160 : 160 + side].transpose(2, 0, 1).copy())[None].float() / 255
    return downscale(hr, scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fine", type=int, default=5, help="K_f of the limit, shape and windows sections")
    ap.add_argument("--sections", default="limit,shape,windows,crop")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    sections = args.sections.split(",")
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, onnxruntime CPU, median of {args.repeats}\n")
    kw = dict(block=8, coarse=3, fine=args.fine, tol=0.01, seed=0)
    lr, hr = pair(HR_IMAGE)
    # (model, LR, HR, one window, four adjacent windows whose fields overlap); UpResNet10 on a 96 px crop (its
    # output is 2 n - 52: the HR frame covers 26 .. 70)
    cases = {
        FINITE.name: (FINITE, lr, hr, [(56, 56, 16)], [(48, 48, 16), (64, 48, 16), (48, 64, 16), (64, 64, 16)]),
        GLOBAL.name: (GLOBAL, lr[:, :, 8:56, 8:56], hr[:, :, 16:112, 16:112], [(40, 40, 16)],
                      [(32, 32, 16), (48, 32, 16), (32, 48, 16), (48, 48, 16)]),
    }
    models = {name: onnxattr.load_model(c[0], device=args.device, forward_only=True) for name, c in cases.items()}
    for name, m in models.items():  # warm-up: the memory law, the field and the session's batching, once per model
        C.cem(m, cases[name][1], cases[name][3], hr=cases[name][2], **{**kw, "coarse": 1, "fine": 0})
    if "limit" in sections:
        print(f"### CEM against the bare forwards of its batches (K_c 3, K_f {args.fine})\n")
        print("| model | LR | windows | field R (LR px) | batches | forwards | batch | CEM s | bare forwards s | CEM / bare |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, m in models.items():
            _, lr_, hr_, one, four = cases[name]
            for wins in (one, four):
                r = limit(m, lr_, hr_, wins, args.repeats, **kw)
                print(f"| {name} | {lr_.shape[3]}x{lr_.shape[2]} | {len(wins)} | {r['R']:g} | {r['forwards']} | "
                      f"{r['images']} | {r['batch']} | {r['cem']:.2f} | {r['bare']:.2f} | {r['ratio']:.3f} |", flush=True)
    if "shape" in sections or "windows" in sections:
        print("\n### K windows per call (K_c 3; times with the forwards run in brackets)\n")
        print("| model | K_f | one window s | 4 windows, one call s | 4 single calls s | authors' shape, 4 windows s | "
              "4 in one / one | 4 in one / 4 single | authors' shape / ours (4 windows) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, m in models.items():
            _, lr, hr, one, four = cases[name]
            for fine in (args.fine, 0) if "windows" in sections else (args.fine,):
                k = {**kw, "fine": fine}
                fs = [lambda: C.cem(m, lr, one, hr=hr, **k), lambda: C.cem(m, lr, four, hr=hr, **k),
                      lambda: [C.cem(m, lr, [w], hr=hr, **k) for w in four]]
                t_one, t_four, t_single = median_times(fs, args.repeats, warmup=False)
                f_one, f_four = (C.cem(m, lr, w, hr=hr, **k).attrs["forwards"] for w in (one, four))
                shape = "shape" in sections and fine == args.fine
                t_authors = timed(lambda: [C.cem(m, lr, [w], hr=hr, field="full", **k) for w in four]) if shape else None
                print(f"| {name} | {fine} | {t_one:.2f} ({f_one}) | {t_four:.2f} ({f_four}) | {t_single:.2f} | "
                      f"{f'{t_authors:.1f}' if shape else '-'} | {t_four / t_one:.2f} | {t_four / t_single:.2f} | "
                      f"{f'{t_authors / t_four:.1f}' if shape else '-'} |", flush=True)
    if "crop" in sections:
        lr256, hr256 = astronaut(256)
        m = models[FINITE.name]
        win = [(120, 120, 16)]
        print("\n### Receptive-field crop, HR 256x256 (LR 128x128), waifu2x UpConv7, one 16 px window\n")
        t0 = time.perf_counter()
        paper = C.cem(m, lr256, win, hr=hr256, block=8, coarse=3, fine=50, tol=0.01, seed=0)
        t_paper = time.perf_counter() - t0
        cheap = dict(block=8, coarse=1, fine=0, tol=0.01, seed=0)
        t_auto = timed(lambda: C.cem(m, lr256, win, hr=hr256, **cheap))
        t_full = timed(lambda: C.cem(m, lr256, win, hr=hr256, field="full", **cheap))
        full_forward = t_full / (paper.sizes["block_y"] * paper.sizes["block_x"] - 4)
        estimate = paper.attrs["forwards_plain"] * full_forward
        print("| K_c, K_f | field | forwards | of the whole-image loop | pixel share | time s | speed-up |")
        print("|---|---|---|---|---|---|---|")
        print(f"| 1, 0 | full | {paper.sizes['block_y'] * paper.sizes['block_x'] - 4} | 1 | 1 | {t_full:.1f} | 1 |")
        print(f"| 1, 0 | auto (R = {paper.attrs['receptive_field']:g}) | {int(paper.field_blocks[0])} | "
              f"{int(paper.field_blocks[0]) / (paper.sizes['block_y'] * paper.sizes['block_x'] - 4):.3f} | | "
              f"{t_auto:.2f} | {t_full / t_auto:.0f} |")
        print(f"| 3, 50 | auto | {paper.attrs['forwards']} | {paper.attrs['forwards'] / paper.attrs['forwards_plain']:.3f} | "
              f"{paper.attrs['cost_share']:.4f} | {t_paper:.1f} | {estimate / t_paper:.0f} (whole-image loop "
              f"{paper.attrs['forwards_plain']} forwards x {full_forward:.3f} s = {estimate / 60:.0f} min, estimated) |")
        field = int(paper.field_blocks[0])
        fine = int(paper.fine_stage.values.sum())
        every = paper.sizes["block_y"] * paper.sizes["block_x"] - 4
        print(f"\nCoarse-to-fine: {field} blocks in the field, {fine} selected: K_c {field} x 3 + K_f {fine} x 50 = "
              f"{3 * field + 50 * fine} forwards against {50 * field} for K_f draws on every block of the field "
              f"({50 * field / (3 * field + 50 * fine):.1f}x fewer); over the whole image (the authors' loop) "
              f"{paper.attrs['forwards_plain']} against {50 * every} ({50 * every / paper.attrs['forwards_plain']:.1f}x fewer).")


if __name__ == "__main__":
    main()
