"""The SiLU fusion on the slow graph of issue 27: an EDSR-like network with SiLU residual blocks fed 0..255
(``tests/nets.SiLUResNet``, 64 channels, 8 blocks, TorchScript opset 13: SiLU as Sigmoid * Mul, Div / Mul by 255 and
Clip at the ends). Forward + backward of the output's sum at batch 1, 1 thread: the original module (called on
x * 255, output / 255, as ``model(x)`` scales) against the fast graph without and with the x * sigmoid(x) ->
F.silu fusion; medians of interleaved rounds (the order reversed every other round).

Run: .venv/bin/python benchmarks/bench_silu.py [ROUNDS]   (default 15)
"""
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests")]
import onnxattr  # noqa: E402
from nets import SiLUResNet  # noqa: E402
from onnxattr.converters import export_onnx  # noqa: E402
from onnxattr.intake import fastgraph  # noqa: E402

torch.set_num_threads(1)
m = SiLUResNet(channels=64, blocks=8).eval().requires_grad_(False)
p = export_onnx(m, Path(tempfile.mkdtemp()) / "silu.onnx", exporter="torchscript", opset=13)
fused = onnxattr.load_model(p, value_range=255, use_cache=False)
plain = onnxattr.load_model(p, value_range=255, use_cache=False)
print("| LR | original s | fast unfused s | fast fused s | unfused / original | fused / original |\n"
      "|---|---|---|---|---|---|")
for size in (64, 128):
    x = torch.rand(1,3,size,size)
    def fb(f):
        xi = x.clone().requires_grad_(); t=time.perf_counter(); f(xi).sum().backward(); return time.perf_counter()-t
    orig = lambda xi: m(xi*255)/255
    fb(orig); fb(fused); fb(fused)
    saved = fastgraph.FUSIONS
    fastgraph.FUSIONS = {k: v for k, v in saved.items() if k != "Sigmoid"}
    fb(plain); fb(plain)
    fastgraph.FUSIONS = saved
    T={"orig":[], "fused":[], "unfused":[]}
    fs={"orig":orig,"fused":fused,"unfused":plain}
    for r in range(int(sys.argv[1]) if len(sys.argv) > 1 else 15):
        for k in (list(fs) if r % 2 else list(fs)[::-1]):
            T[k].append(fb(fs[k]))
    o = statistics.median(T["orig"])
    print(f"| {size} | {o:.4f} | {statistics.median(T['unfused']):.4f} | {statistics.median(T['fused']):.4f} | "
          f"{statistics.median(T['unfused'])/o:.2f} | {statistics.median(T['fused'])/o:.2f} |", flush=True)
