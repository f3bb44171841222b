"""The whole call a user runs: ``onnxattr lam`` from the shell against the same LAM written as the authors write it.

Each round starts, for every (model, LR size), one fresh process of each:

* **cli**: ``python -m onnxattr lam MODEL IMAGE --frame sr --window X Y 16 --steps 50 -o out.nc --json`` (import,
  load with the user cache warm, verify, LAM, result checks, the .nc written);
* **authors**: the LAM_Demo way (``/work/notes/lam_toolbox_reference.py``: ``GaussianBlurPath`` + ``Path_gradient``
  + ``saliency_map_PG``): the original torch module (``samples/make_samples.py``) with the file's weights (read from
  its initializers, which carry the module's parameter names) as their scripts leave it (parameters requiring grad: ``target.backward()`` computes the
  weight gradients too, which they never zero), the image read with PIL, the path blurred with scipy's ``correlate``
  (cv2.filter2D's border), a loop over the 50 points at batch 1: a tensor per point, forward, backward, the gradient
  and the output back to numpy, NaN -> 0; the map and its Gini / DI; the map saved with numpy.

The wall time of each process and the method time inside it (cli: the result's ``elapsed_s``; authors: the path
loop and the map) are medians of interleaved rounds (the order of the two alternates every round). ``--before
TREE`` adds the CLI of an older checkout (own cache folder) to the same rounds.

Run: .venv/bin/python benchmarks/bench_call.py [--repeats 3] [--sizes 32 128] [--models upconv7 upresnet10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"upconv7": ("waifu2x-upconv7-x2.ts17.onnx", "UpConv7"),
          "upresnet10": ("waifu2x-upresnet10-x2.ts17.onnx", "UpResNet10")}

AUTHORS = r'''
import sys, time, json
t0 = time.perf_counter()
import numpy as np, torch
from PIL import Image
from scipy import ndimage
sys.path.insert(0, sys.argv[1])
import make_samples
arch, image, x0, y0, win, steps, out, weights = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]), *sys.argv[8:10]

def isotropic_gaussian_kernel(l, sigma, eps=1e-5):
    ax = np.arange((-l) // 2 + 1.0, l // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    k = np.exp(-(xx ** 2 + yy ** 2) / (2.0 * (sigma + eps) ** 2))
    return k / k.sum()

def filter2d(img_hwc, kernel):
    return ndimage.correlate(img_hwc.astype(np.float64), kernel[..., None], mode="mirror").astype(img_hwc.dtype)

def gaussian_blur_path(img_hwc, sigma=1.2, fold=50, l=9):
    sig = np.linspace(sigma, 0.0, fold + 1)
    ks = [isotropic_gaussian_kernel(l, s) for s in sig]
    xs = np.stack([filter2d(img_hwc, ks[i + 1]) for i in range(fold)])
    dxs = np.stack([filter2d(img_hwc, (ks[i + 1] - ks[i]) * fold) for i in range(fold)])
    return np.moveaxis(xs, 3, 1).astype(np.float32), np.moveaxis(dxs, 3, 1).astype(np.float32)

def attr_grad(out, h, w, window):
    dv = out[:, :, :-1, :-1] - out[:, :, 1:, :-1]
    dh = out[:, :, :-1, :-1] - out[:, :, :-1, 1:]
    return torch.sqrt(dv * dv + dh * dh)[:, :, h:h + window, w:w + window].sum()

model = getattr(make_samples, arch)().eval()
from onnx import load, numpy_helper  # the weights, as they load their checkpoint (the export keeps the names)
model.load_state_dict({i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in load(weights).graph.initializer})
img = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 255.0  # HWC
t1 = time.perf_counter()
xs, dxs = gaussian_blur_path(img, 1.2, steps, 9)
contrib = np.zeros_like(xs)
results = []
for i in range(steps):  # Path_gradient: the module as loaded (parameters require grad), target.backward()
    img_tensor = torch.from_numpy(xs[i])
    img_tensor.requires_grad_(True)
    result = model(img_tensor[None])
    target = attr_grad(result, y0, x0, win)
    target.backward()
    grad = img_tensor.grad.cpu().numpy()
    if np.any(np.isnan(grad)):
        grad[np.isnan(grad)] = 0.0
    contrib[i] = grad * dxs[i]
    results.append(result.detach().cpu().numpy())
lam = contrib.mean(axis=0)
grad_abs = np.abs(lam).sum(axis=0)
normed = grad_abs / grad_abs.max()
v = np.sort(normed.flatten())
n = v.size
gini = float(np.sum((2 * np.arange(1, n + 1) - n - 1) * v) / (n * np.sum(v)))
di = (1 - gini) * 100
method = time.perf_counter() - t1
np.savez(out, lam=lam, di=di)
print(json.dumps({"method": method, "in_process": time.perf_counter() - t0}))
'''


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    """Wall seconds of a fresh process and the JSON object it prints (the whole of stdout)."""
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--before", type=Path, default=None, help="an older checkout whose CLI runs in the same rounds")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="onnxattr-call-"))
    source = Image.open(ROOT / "samples" / "images" / "chelsea-128.png").convert("RGB")
    images = {}
    for s in args.sizes:
        images[s] = tmp / f"chelsea-{s}.png"
        source.crop((0, 0, s, s)).save(images[s])
    trees = {"cli": (ROOT, tmp / "cache-after")}
    if args.before:
        trees["cli before"] = (args.before.resolve(), tmp / "cache-before")

    def env_of(tree: Path, cache: Path) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(tree), "ONNXATTR_CACHE": "1", "ONNXATTR_CACHE_DIR": str(cache),
                "XDG_CONFIG_HOME": str(tmp / "config")}

    def cli(label: str, model: str, size: int) -> tuple[float, float]:
        tree, cache = trees[label]
        file = ROOT / "samples" / MODELS[model][0]
        out = tmp / f"{label.replace(' ', '-')}-{model}-{size}.nc"
        out.unlink(missing_ok=True)
        x, y, k = window[model, size]
        wall, summary = run([sys.executable, "-m", "onnxattr", "lam", str(file), str(images[size]), "--frame", "sr",
                             "--window", str(x), str(y), str(k), "--steps", str(args.steps), "-o", str(out), "--json",
                             "-q"], env_of(tree, cache), tree)
        return wall, float(summary["elapsed_s"])

    def authors(model: str, size: int) -> tuple[float, float]:
        x, y, k = window[model, size]
        wall, got = run([sys.executable, "-c", AUTHORS, str(ROOT / "samples"), MODELS[model][1], str(images[size]),
                         str(x), str(y), str(k), str(args.steps), str(tmp / "authors.npz"), str(ROOT / "samples" / MODELS[model][0])],
                        dict(os.environ), ROOT)
        return wall, got["method"]

    window = {}
    for m in args.models:
        for s in args.sizes:
            scale, offset = 2, {"upconv7": -28, "upresnet10": -52}[m]
            side = scale * s + offset
            k = min(16, side)
            window[m, s] = (side // 2 - k // 2, side // 2 - k // 2, k)
            for label in trees:  # fills each tree's cache (the user's second call on)
                cli(label, m, s)
    kinds = [*trees, "authors"]
    got: dict[tuple, list[tuple[float, float]]] = {(m, s, k): [] for m in args.models for s in args.sizes for k in kinds}
    for r in range(args.repeats):
        for m in args.models:
            for s in args.sizes:
                for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                    got[m, s, kind].append(authors(m, s) if kind == "authors" else cli(kind, m, s))
                    wall, method = got[m, s, kind][-1]
                    print(f"round {r + 1} {m} {s} {kind}: wall {wall:.2f} s, method {method:.2f} s", file=sys.stderr,
                          flush=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{args.steps} steps, medians of {args.repeats} interleaved rounds; load average at the end {load}\n")
    print("| model | LR | run | wall s | method s | authors wall / wall | authors method / method |\n"
          "|---|---|---|---|---|---|---|")
    for m in args.models:
        for s in args.sizes:
            ref_wall = statistics.median(w for w, _ in got[m, s, "authors"])
            ref_method = statistics.median(t for _, t in got[m, s, "authors"])
            for kind in kinds:
                wall = statistics.median(w for w, _ in got[m, s, kind])
                method = statistics.median(t for _, t in got[m, s, kind])
                print(f"| {m} | {s}x{s} | {kind} | {wall:.2f} | {method:.2f} | {ref_wall / wall:.2f} | "
                      f"{ref_method / method:.2f} |")


if __name__ == "__main__":
    main()
