"""Conversion overhead: forward+backward time of the converted graph / the original torch module.

For each architecture: build the torch module (random init), export it (TorchScript, opset 17,
dynamic size), load it with onnxattr (verified against onnxruntime), then time one forward and
one backward of LAM's gradient detector to the input on a 64x64 LR image, for the original
module and for the converted graph, interleaved, median of repeats.

Run: .venv/bin/python benchmarks/bench_conversion.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import onnxattr
from onnxattr.converters import export_onnx
from onnxattr.target import Window, gradient_detector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples"))


def _upconv7() -> nn.Module:
    from make_samples import UpConv7

    return UpConv7()


def _compact() -> nn.Module:
    from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

    return SRVGGNetCompact(num_feat=32, num_conv=8, upscale=2)


def _rcan() -> nn.Module:
    from spandrel.architectures.RCAN.__arch.rcan_arch import RCAN

    return RCAN(scale=2, n_resgroups=2, n_resblocks=2, n_feats=32, reduction=8)


def _swinir() -> nn.Module:
    from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

    return SwinIR(upscale=2, img_size=64, window_size=8, embed_dim=48, depths=[2, 2], num_heads=[2, 2],
                  mlp_ratio=2.0, upsampler="pixelshuffledirect")


ARCHS: dict[str, tuple[Callable[[], nn.Module], bool]] = {
    # name: (builder, dynamic export)
    "waifu2x-upconv7": (_upconv7, True),
    "Compact": (_compact, True),
    "RCAN-small": (_rcan, True),
    "SwinIR-small": (_swinir, False),
}


def fwd_bwd(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, window: Window) -> float:
    xi = x.clone().requires_grad_()
    t = time.perf_counter()
    gradient_detector(f(xi.clone()), window).sum().backward()  # clone: RCAN scales its input in place
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, 64x64 LR, median of {args.repeats}")
    print(f"| arch | original fwd+bwd s | converted fwd+bwd s | converted / original | conversion error |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, dynamic) in ARCHS.items():
            torch.manual_seed(0)
            module = build().eval().requires_grad_(False)
            path = export_onnx(module, Path(tmp) / f"{name}.onnx", exporter="torchscript", dynamic=dynamic,
                               input_shape=(1, 3, 64, 64))
            model = onnxattr.load_model(path)
            x = torch.rand(1, 3, 64, 64)
            out_h, out_w = model.output_size(64, 64)
            window = Window(out_w // 2 - 8, out_h // 2 - 8, 16)
            orig, conv = [], []
            for _ in range(2):  # warm-up
                fwd_bwd(module, x, window), fwd_bwd(model, x, window)
            for _ in range(args.repeats):
                orig.append(fwd_bwd(module, x, window))
                conv.append(fwd_bwd(model, x, window))
            o, c = statistics.median(orig), statistics.median(conv)
            print(f"| {name} | {o:.4f} | {c:.4f} | {c / o:.2f} | {model.conversion_error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
