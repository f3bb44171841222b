#!/usr/bin/env python3
"""What one step of the randomisation test costs beyond its maps: the re-drawn copy of the model.

For each sample model it times, as the median of ``--repeats`` interleaved rounds after one warm-up round:

* ``copy``   ``checks.weights.redrawn`` of every parametrised node + ``intake.reweight.reweighted`` (conversion,
             onnxruntime session, verification on the probe): what each step adds;
* ``lam``, ``l2x``, ``glam``  one map of each method on the trained model (LAM with ``--steps``), 16-px window at the
             SR centre of a crop of ``samples/images/chelsea-128.png`` (``--size`` LR px);
* ``curves`` ``checks.faithfulness`` of one map (16 curve steps, 3 seeds per control): the faithfulness test's forwards.

The step's overhead is copy / (lam + l2x + glam). Prints a Markdown table.
Run from the repository root: ``.venv/bin/python benchmarks/bench_checks.py``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from common import SR, median_times

import onnxattr
from onnxattr.checks.faithfulness import faithfulness, influence_region
from onnxattr.checks.weights import redrawn, weight_nodes
from onnxattr.intake.reweight import reweighted
from onnxattr.windows.geometry import Window

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["waifu2x-upconv7-x2.ts17.onnx", "dat-light-x2.dynamo.onnx"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=64, help="LR side of the image crop")
    ap.add_argument("--steps", type=int, default=50, help="LAM path steps")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"| model | nodes | copy s | lam-{args.steps} s | l2x s | glam s | curves s | copy / maps |")
    print("|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        model = onnxattr.load_model(ROOT / "samples" / name)
        image = onnxattr.read_image(ROOT / "samples" / "images" / "chelsea-128.png")[:, :, :args.size, :args.size]
        oh, ow = model.output_size(args.size, args.size)
        win = Window(ow // 2 - 8, oh // 2 - 8, 16)
        nodes = weight_nodes(model.proto)
        lam = onnxattr.lam(model, image, win.as_tuple(), steps=args.steps, **SR)
        (region,) = influence_region(model, image, [win], [torch.from_numpy(lam.baseline.values)[None]])

        def copy() -> None:
            reweighted(model, redrawn(model.proto, nodes, seed=0))

        runs = [
            copy,
            lambda: onnxattr.lam(model, image, win.as_tuple(), steps=args.steps, **SR),
            lambda: onnxattr.l2x(model, image, win.as_tuple(), **SR),
            lambda: onnxattr.glam(model, image, win.as_tuple(), **SR),
            lambda: faithfulness(model, image, {"lam": lam.attribution.values}, {"lam": lam.baseline.values}, [win],
                                 [region]),
        ]
        t = median_times(runs, args.repeats)
        print(f"| {name} | {len(nodes)} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2f} | {t[3]:.2f} | {t[4]:.2f} | "
              f"{t[0] / sum(t[1:4]):.3f} |", flush=True)


if __name__ == "__main__":
    main()
