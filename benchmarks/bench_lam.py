#!/usr/bin/env python3
"""LAM speed: ``onnxattr.lam`` vs (a) the reference-style loop and (b) bare forward+backward passes.

``lam`` runs the whole image (``field_crop=False``), as (a) and (b) do; ``lam field`` is LAM at its default, where
a graph with a finite field runs its passes on the crop the window depends on (docs/lam.md).

(a) follows the authors' ``Path_gradient`` + ``GaussianBlurPath``: every step blurs the image and the
kernel difference anew (scipy's ``correlate``, mode 'mirror' = OpenCV's default border, in place of
cv2.filter2D), turns it into a tensor, runs the model at batch 1, backpropagates the detector, brings
the gradient back to numpy and multiplies. ``--ref-weight-grads`` additionally lets autograd compute
the weight gradients, as the authors' unfrozen nn.Module does.
(b) m forward+backward passes of the same graph, gradient w.r.t. the input only, no blur and no
accumulation, at the best batch size of a sweep.

Medians over ``--repeats`` runs, the three timed in turn so that load on the machine hits all alike.

    .venv/bin/python benchmarks/bench_lam.py samples/*.onnx --size 64 --steps 50
    .venv/bin/python benchmarks/bench_lam.py samples/dat-light-x2.dynamo.onnx --memory-check 128
"""

from __future__ import annotations

import argparse
import resource
import statistics
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from common import SR, check, timed

import onnxattr
from onnxattr.methods.blur import blur_path_sigmas, gaussian_kernel
from onnxattr.methods.memory import free_memory, largest_batch
from onnxattr.methods.lam import estimate
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector

IMAGE = Path(__file__).resolve().parents[1] / "samples" / "images" / "chelsea-128.png"


def reference_loop(model, image: np.ndarray, window: Window, steps: int, sigma: float, size: int) -> np.ndarray:
    """(a): the authors' loop, one step at a time at batch 1 (image (C, H, W) float64)."""
    kernels = gaussian_kernel(blur_path_sigmas(sigma, steps), size).numpy()

    def filter2d(img: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.stack([ndimage.correlate(c, k, mode="mirror") for c in img])

    total = np.zeros_like(image)
    for i in range(steps):
        point = filter2d(image, kernels[i + 1]).astype(np.float32)
        derivative = filter2d(image, (kernels[i + 1] - kernels[i]) * steps).astype(np.float32)
        x = torch.from_numpy(point)[None].to(model.device).requires_grad_(True)
        gradient_detector(model(x), window).sum().backward()
        grad = x.grad.cpu().numpy()[0]
        grad[np.isnan(grad)] = 0.0
        total += grad * derivative
    return total / steps


def bare_passes(model, image: torch.Tensor, window: Window, steps: int, batch: int) -> None:
    """(b): ``steps`` forward+backward passes in batches of ``batch``, nothing else."""
    image = image.to(model.device)
    for start in range(0, steps, batch):
        x = image.expand(min(batch, steps - start), -1, -1, -1).clone().requires_grad_(True)
        torch.autograd.grad(gradient_detector(model(x), window).sum(), x)


def bench(model, size: int, steps: int, repeats: int, batches: list[int], ref_weight_grads: bool = False) -> dict:
    """lam, (a) and (b) on ``model``'s device; the sweep of (b) keeps the batches that fit in 80% of the
    free memory by lam's per-point estimate (so that DAT at 128x128 LR does not run out of memory)."""
    dev = model.device
    img = onnxattr.read_image(IMAGE, model.in_channels)[:, :, :size, :size]
    oh, ow = model.output_size(size, size)
    window = Window(ow // 2 - 8, oh // 2 - 8, 16)
    np_img = img[0].double().numpy()
    ds = onnxattr.lam(model, img, window, steps=steps, **SR, field_crop=False)  # warm-up, and the per-point memory
    field = onnxattr.lam(model, img, window, steps=steps, **SR)  # warm-up of the crop's shapes
    fit = max(1, largest_batch(lambda n: estimate(model, size, size, steps=steps, path="lam", windows=1, batch=n),
                               int(0.8 * free_memory(dev)), steps))
    if ref_weight_grads:
        model.graph.requires_grad_(True)
    ref = lambda: reference_loop(model, np_img, window, steps, 1.2, 9)  # noqa: E731
    timed(ref, dev)  # warm-up
    model.graph.requires_grad_(False)
    sweep = {b: timed(lambda b=b: bare_passes(model, img, window, steps, b), dev) for b in batches if b <= fit} or {
        1: timed(lambda: bare_passes(model, img, window, steps, 1), dev)
    }
    best = min(sweep, key=sweep.get)
    runs: dict[str, list[float]] = {"lam": [], "lam_field": [], "reference": [], "bare": []}
    for _ in range(repeats):
        runs["lam"].append(timed(lambda: onnxattr.lam(model, img, window, steps=steps, **SR, field_crop=False), dev))
        runs["lam_field"].append(timed(lambda: onnxattr.lam(model, img, window, steps=steps, **SR), dev))
        model.graph.requires_grad_(ref_weight_grads)
        runs["reference"].append(timed(ref, dev))
        model.graph.requires_grad_(False)
        runs["bare"].append(timed(lambda: bare_passes(model, img, window, steps, best), dev))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "model": model.path.name, "batch_mode": model.batch_mode, "lam_batch": ds.attrs["batch_size"],
        "best_bare_batch": best, "sweep": sweep, **med,
        "ref_over_lam": med["reference"] / med["lam"], "lam_over_bare": med["lam"] / med["bare"],
        "di": check(ds, "diffusion_index"), "completeness": check(ds, "completeness_error"), "window": window.as_tuple(),
        "memory_estimate_bytes": ds.attrs["memory_estimate_bytes"],
        "field_box": field.attrs.get("field_box"),
    }


def memory_check(path: Path, size: int, device: str | None = None) -> None:
    """LAM at the defaults on a size x size LR input; peak RSS of this process."""
    model = onnxattr.load_model(path, device=device)
    if model.fixed_size:
        size = min(size, *model.fixed_size)
    img = onnxattr.read_image(IMAGE, model.in_channels)[:, :, :size, :size]
    oh, ow = model.output_size(size, size)
    ds = onnxattr.lam(model, img, (ow // 2 - 8, oh // 2 - 8, 16), **SR)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{path.name} {size}x{size}: batch {ds.attrs['batch_size']}, estimated "
          f"{ds.attrs['memory_estimate_bytes'] / 2**20:.0f} MiB, peak RSS {peak:.2f} GiB, "
          f"{ds.attrs['elapsed_s']:.1f} s, DI {check(ds, 'diffusion_index'):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 5, 10, 25, 50])
    ap.add_argument("--ref-weight-grads", action="store_true")
    ap.add_argument("--memory-check", type=int, default=None, metavar="SIZE")
    ap.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for path in args.models:
        if args.memory_check:
            memory_check(path, args.memory_check, args.device)
            continue
        model = onnxattr.load_model(path, device=args.device)
        r = bench(model, args.size, args.steps, args.repeats, args.batches, args.ref_weight_grads)
        sweep = " ".join(f"b{b}={t:.2f}" for b, t in r["sweep"].items())
        print(f"{r['model']} ({r['batch_mode']}): lam {r['lam']:.2f} s (batch {r['lam_batch']}), "
              f"reference {r['reference']:.2f} s, bare {r['bare']:.2f} s (batch {r['best_bare_batch']}; {sweep}); "
              f"reference/lam {r['ref_over_lam']:.2f}x, lam/bare {r['lam_over_bare']:.2f}x; lam field "
              f"{r['lam_field']:.2f} s (crop {r['field_box']}); "
              f"DI {r['di']:.2f} at window {r['window']}, completeness error {r['completeness']:.3f}", flush=True)


if __name__ == "__main__":
    main()
