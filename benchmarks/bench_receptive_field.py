"""What the theoretical receptive field costs (``find_field``, the graph walk on boxes that
``onnxattr.receptive_field`` caches per model) next to one forward + backward of the model at 64 x 64, per bundled
model: medians of interleaved rounds.

    python benchmarks/bench_receptive_field.py [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import onnxattr
from onnxattr.methods.receptive_field import find_field

from common import median_times

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("waifu2x-upconv7-x2.ts17", "waifu2x-upresnet10-x2.ts17", "dat-light-x2.dynamo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| model | field | walk (s) | forward + backward at 64 x 64 (s) | ratio |")
    print("|---|---|---|---|---|")
    for name in MODELS:
        model = onnxattr.load_model(ROOT / "samples" / f"{name}.onnx")
        x = torch.rand(1, model.in_channels, 64, 64)

        def walk() -> None:
            find_field(model)

        def pass_() -> None:
            x.requires_grad_(True)
            model(x).sum().backward()

        field = find_field(model)
        t_walk, t_pass = median_times([walk, pass_], args.repeats)
        side = f"{field.side:g} px" if field.kind == "finite" else field.kind
        print(f"| {name} | {side} | {t_walk:.2f} | {t_pass:.2f} | {t_walk / t_pass:.1f} |")


if __name__ == "__main__":
    main()
