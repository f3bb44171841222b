"""Conversion overhead: forward+backward time of the converted graph / the original torch module (issue #15).

For each architecture of the conversion zoo (``tests/zoo.py``: spandrel archs plus EDSR/FSRCNN, tiny, random
init), each exporter (TorchScript opset 17, dynamo opset 18), the waifu2x samples (their torch modules from
``samples/make_samples.py``, random init: the time does not depend on the weights) and a Real-ESRGAN Compact at
its released realesr-animevideov3 size and an EDSR-like SiLU network fed 0..255 (``tests/nets.SiLUResNet``, TorchScript
opset 13): export, load with onnxattr (verified against onnxruntime), then time one
forward and one backward of LAM's gradient detector (16-px window at the SR centre) to the input at batch 1, for

* **original**: the torch module;
* **full**: the converted graph as onnx2torch builds it (what taps run; what every call ran before issue #15);
* **fast**: ``model(x)``, the untapped path (``onnxattr.fastgraph``: specialised to the input shape);

at each LR size and thread count, interleaved (rotating order), median of ``--repeats`` rounds after a warm-up.

``--lam``: LAM-50 (``onnxattr.lam`` at its defaults) on the Compact / the limit, 50 bare forward+backward passes
of the original module at the best batch of ``--batches``, 1 thread, interleaved medians.

Run: .venv/bin/python benchmarks/bench_conversion.py [--repeats 5] [--sizes 64 128] [--threads 1 2] [--lam]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "samples"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import onnxattr  # noqa: E402
from common import SR  # noqa: E402
from nets import SiLUResNet  # noqa: E402
from onnxattr.converters import export_onnx  # noqa: E402
from onnxattr.windows.geometry import Window  # noqa: E402
from onnxattr.windows.detector import gradient_detector  # noqa: E402
from zoo import ARCHS as ZOO  # noqa: E402
from zoo import EXPORTERS, spandrel_arch  # noqa: E402


class Case(NamedTuple):
    build: Callable[[], nn.Module]
    dynamic: bool = True
    exporters: tuple[str, ...] = EXPORTERS
    opset: int | None = None  # the exporter's default when None


def _sample(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import make_samples

        return getattr(make_samples, name)()

    return build


# realesr-animevideov3: SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4, act_type="prelu")
compact_v3 = spandrel_arch("Compact.__arch.SRVGG", "SRVGGNetCompact", num_feat=64, num_conv=16, upscale=4)

CASES: dict[str, Case] = {
    **{name: Case(arch.build, arch.dynamic) for name, arch in ZOO.items()},
    "waifu2x-upconv7": Case(_sample("UpConv7")),
    "waifu2x-upresnet10": Case(_sample("UpResNet10")),
    "Compact-v3": Case(compact_v3),
    # EDSR-like, SiLU residual blocks, fed 0..255 (Div and Mul by 255 at the ends, Clip), TorchScript at opset 13:
    # each SiLU is Sigmoid * Mul (fused into F.silu by the fast graph)
    "SiLU-ResNet-255": Case(lambda: SiLUResNet(channels=64, blocks=8), exporters=("torchscript",), opset=13),
}


def fwd_bwd(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, window: Window) -> float:
    """Seconds of one forward and one backward of the window's gradient detector to the input."""
    xi = x.clone().requires_grad_()
    t = time.perf_counter()
    gradient_detector(f(xi), window).sum().backward()
    return time.perf_counter() - t


def interleaved(fs: list[Callable[[], float]], repeats: int) -> list[float]:
    """Median of each timer over ``repeats`` rounds after one warm-up round, the order rotated every round."""
    times: list[list[float]] = [[] for _ in fs]
    for f in fs:
        f()
    for r in range(repeats):
        for i in [(r + k) % len(fs) for k in range(len(fs))]:
            times[i].append(fs[i]())
    return [statistics.median(t) for t in times]


def centre(model: onnxattr.SRModel, size: int) -> Window:
    h, w = model.output_size(size, size)
    return Window(w // 2 - 8, h // 2 - 8, 16)


def loaded(name: str, case: Case, exporter: str, size: int, folder: Path) -> tuple[nn.Module, onnxattr.SRModel]:
    """The original module (eval, frozen) and its converted file, loaded and verified."""
    torch.manual_seed(0)
    module = case.build().eval().requires_grad_(False)
    path = folder / f"{name}-{exporter}-{size if not case.dynamic else 'dyn'}.onnx"
    if not path.exists():
        export_onnx(module, path, exporter=exporter, dynamic=case.dynamic, input_shape=(1, 3, size, size),
                    opset=case.opset)
    return differentiable(module), onnxattr.load_model(path)


# Modules whose eval forward writes a channel slice in place (x[:, :idx] = conv(x[:, :idx])), which autograd
# refuses; their training forward is the same arithmetic out of place (split, conv, concat; no dropout or norm).
IN_PLACE_EVAL = ("PLKConv2d", "RectSparsePLKConv2d")


def differentiable(module: nn.Module) -> nn.Module:
    """The module with the ``IN_PLACE_EVAL`` submodules on their out-of-place (training) path, so the original
    can be timed forward + backward (PLKSR, RealPLKSR); the rest stays in eval mode."""
    for sub in module.modules():
        if type(sub).__name__ in IN_PLACE_EVAL:
            sub.training = True
    return module


def rows(name: str, case: Case, exporter: str, sizes: list[int], threads: list[int], repeats: int,
         folder: Path) -> Iterator[str]:
    """One table row per (LR size, thread count)."""
    for size in sizes:
        module, model = loaded(name, case, exporter, size, folder)
        x, window = torch.rand(1, 3, size, size), centre(model, size)
        vr = model.value_range

        def full(xi: torch.Tensor) -> torch.Tensor:
            return model.graph(xi * vr) / vr

        for n in threads:
            torch.set_num_threads(n)
            o, f, s = interleaved([lambda g=g: fwd_bwd(g, x, window) for g in (module, full, model)], repeats)
            yield (f"| {name} | {exporter} | {size} | {n} | {o:.4f} | {f:.4f} | {s:.4f} | {f / o:.2f} | {s / o:.2f} | "
                   f"{model.conversion_error:.0e} |")


def lam_vs_limit(size: int, steps: int, batches: list[int], repeats: int, folder: Path) -> str:
    """LAM-``steps`` on the Compact / ``steps`` bare forward+backward passes of its original at the best batch."""
    torch.set_num_threads(1)
    module, model = loaded("Compact-v3", CASES["Compact-v3"], "dynamo", size, folder)
    x, window = torch.rand(1, 3, size, size), centre(model, size)

    def bare(batch: int) -> float:
        t = time.perf_counter()
        for _ in range(steps // batch):
            fwd_bwd(module, x.expand(batch, -1, -1, -1), window)
        return time.perf_counter() - t

    def lam() -> float:
        t = time.perf_counter()
        run = onnxattr.lam(model, x, (window.x, window.y, window.size), steps=steps, **SR)
        lam.batch = run.attrs.get("batch_size")
        return time.perf_counter() - t

    timings = interleaved([lam, *[lambda b=b: bare(b) for b in batches]], repeats)
    best = min(range(len(batches)), key=lambda i: timings[1 + i])
    sweep = "/".join(f"{t:.2f}" for t in timings[1:])
    return (f"| Compact-v3 dynamo | {size} | {timings[0]:.2f} ({lam.batch}) | {timings[1 + best]:.2f} ({batches[best]}) | "
            f"{timings[0] / timings[1 + best]:.2f} | {sweep} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--archs", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--exporters", nargs="+", default=list(EXPORTERS), choices=list(EXPORTERS))
    ap.add_argument("--lam", action="store_true", help="also LAM-50 on the Compact vs its limit")
    ap.add_argument("--lam-steps", type=int, default=50)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 5, 10])
    args = ap.parse_args()
    print(f"torch {torch.__version__}; batch 1; median of {args.repeats} interleaved rounds")
    print("| arch | exporter | LR | threads | original s | full s | fast s | full / original | fast / original "
          "| conversion error |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.archs:
            case = CASES[name]
            for exporter in (e for e in args.exporters if e in case.exporters):
                try:
                    for row in rows(name, case, exporter, args.sizes, args.threads, args.repeats, Path(tmp)):
                        print(row, flush=True)
                except Exception as err:  # noqa: BLE001  (one arch failing to export or load does not stop the table)
                    print(f"| {name} | {exporter} | failed: {type(err).__name__}: {str(err).splitlines()[0][:100]} |")
        if args.lam:
            print(f"\nLAM-{args.lam_steps} / {args.lam_steps} bare forward+backward passes of the original module, "
                  f"1 thread, median of {args.repeats}")
            print("| model | LR | LAM s (batch) | limit s (best batch) | LAM / limit | bare sweep s |")
            print("|---|---|---|---|---|---|")
            for size in args.sizes:
                print(lam_vs_limit(size, args.lam_steps, args.batches, args.repeats, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
