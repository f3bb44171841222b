"""Integration paths of LAM (Gu & Dong, CVPR 2021, eqs. 2-4) and their neighbours, and the path integral.

Paths (``make_path``, from a baseline x_0 to the LR image I in m steps):

* ``"lam"``: progressive blur, x_i = k(sigma (1 - i/m)) (*) I (eq. 3), baseline x_0 = k(sigma) (*) I;
* ``"ig_blur"``: straight line from the blurred baseline, x_i = x_0 + (i/m) (I - x_0);
* ``"ig_black"``: straight line from black, x_0 = 0 (integrated gradients);
* ``"i_gradient"``: the authors' ``saliency_map_I_gradient`` (and their ``GaussianLinearPath`` / ``LinearPath``
  with ``saliency_map_PG``), the mean gradient over m points x' + a (I - x'), a = 0, 1/(m-1), .., 1 (both ends),
  times (I - x'), with x' one of ``baselines.BASELINES`` (OpenCV's Gaussian blur, bilateral or median filter, LAM's
  blur, black); x_0 = x';
* ``"gradient"``: the plain gradient dD(F(I))/dI, one pass.

``path_attribution`` computes the right Riemann sum A_k = sum_{i=1..m} dD_k(F(x_i))/dx_i * (x_i - x_{i-1})
(eq. 4 as the authors' code computes it) in batches of points, one forward per batch and one backward per window;
the points may be the paths of several (noisy) copies of the image, each summed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import OnnxAttrError
from ..options import PATHS
from .baselines import make_baseline
from .blur import blur, blur_path


@dataclass(frozen=True)
class IntegrationPath:
    """The points where gradients are taken and their weights, float64 on the CPU.

    ``points`` (m, C, H, W): x_1..x_m; ``weights`` (m, C, H, W) (may be an expanded view):
    x_i - x_{i-1}; ``baseline`` (1, C, H, W): x_0, or None for the plain gradient.
    """

    points: torch.Tensor
    weights: torch.Tensor
    baseline: torch.Tensor | None


@dataclass(frozen=True)
class PathResult:
    """What ``path_attribution`` returns for K windows and G copies of m points each: A (K, G, C, H, W) float64 (each
    copy's sum), D at every point (K, G m) float64, the attribution mass of every point
    sum_{c,y,x} dD_k/dx_i * w_i (K, G m) float64, and the network output at the last point (1, C', H', W')."""

    attribution: torch.Tensor
    values: torch.Tensor
    masses: torch.Tensor
    last_output: torch.Tensor


def make_path(image: torch.Tensor, path: str, steps: int, sigma: float, kernel_size: int,
              baseline: str = "gaussian") -> IntegrationPath:
    """The path of ``path`` (one of ``PATHS``) from its baseline to ``image`` (1, C, H, W), m = ``steps``;
    ``baseline`` names the baseline of 'i_gradient'."""
    img = image.detach().cpu().to(torch.float64)
    if path == "lam":
        points, deltas = blur_path(img, sigma, steps, kernel_size)
        return IntegrationPath(points[1:], deltas, points[:1])
    if path == "gradient":
        return IntegrationPath(img, torch.ones_like(img), None)
    if path == "i_gradient":
        base = make_baseline(img, baseline, sigma, kernel_size)
        alphas = torch.linspace(0, 1, steps, dtype=torch.float64).reshape(-1, 1, 1, 1)
        points = base + alphas * (img - base)
        points[-1] = img[0]
        return IntegrationPath(points, ((img - base) / steps).expand_as(points), base)
    if path == "ig_blur":
        base = blur(img, sigma, kernel_size)
    elif path == "ig_black":
        base = torch.zeros_like(img)
    else:
        raise OnnxAttrError(f"unknown path {path!r}; pick one of {', '.join(PATHS)}")
    alphas = torch.arange(1, steps + 1, dtype=torch.float64).reshape(-1, 1, 1, 1) / steps
    points = base + alphas * (img - base)
    points[-1] = img[0]
    return IntegrationPath(points, ((img - base) / steps).expand_as(points), base)


def window_gradients(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dD_k/dx for every column k of ``d`` (N, K) computed from ``x`` (N, ...): (K, N, ...).

    Items of a batch are independent, so d(sum_n D_k(n))/dx holds every item's gradient. One backward
    per window through the one graph of the forward (kept with ``retain_graph`` until the last).
    """
    k = d.shape[1]
    grads = [torch.autograd.grad(d[:, i].sum(), x, retain_graph=i < k - 1)[0] for i in range(k)]
    return torch.stack(grads)


def path_attribution(
    f: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    weights: torch.Tensor,
    objective: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    copies: int = 1,
) -> PathResult:
    """A_k = sum_i dD_k(F(x_i))/dx_i * w_i over ``points`` x_i (G m, C, H, W), ``batch_size`` points per pass, summed
    per copy: the points are G = ``copies`` paths of m points one after the other.

    ``f`` maps a float32 batch to outputs, ``objective`` outputs to one value per item and window (N, K);
    each pass is one forward and K backwards. Gradients come back in float32 and are accumulated in
    float64. ``on_batch(n)`` is called after each pass with the number of points it covered.
    """
    n = points.shape[0]
    m = n // copies
    total: torch.Tensor | None = None
    values: torch.Tensor | None = None
    masses: torch.Tensor | None = None
    out = None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        x = points[start:stop].to(torch.float32).requires_grad_(True)
        out = f(x)
        d = objective(out)
        grads = window_gradients(d, x).detach().cpu().to(torch.float64)
        if total is None:
            total = torch.zeros((d.shape[1], copies, *points.shape[1:]), dtype=torch.float64)
            values = torch.empty((d.shape[1], n), dtype=torch.float64)
            masses = torch.empty((d.shape[1], n), dtype=torch.float64)
        weighted = grads * weights[start:stop]
        for g in range(start // m, (stop - 1) // m + 1):  # the copies this batch holds points of
            lo, hi = max(start, g * m) - start, min(stop, (g + 1) * m) - start
            total[:, g] += weighted[:, lo:hi].sum(dim=1)
        masses[:, start:stop] = weighted.sum(dim=(2, 3, 4))
        values[:, start:stop] = d.detach().cpu().to(torch.float64).T
        if on_batch is not None:
            on_batch(stop - start)
    assert out is not None and total is not None and values is not None and masses is not None
    return PathResult(total, values, masses, out[-1:].detach())


def path_bytes(channels: int, height: int, width: int, steps: int, path: str) -> int:
    """The path's float64 tensors on the CPU, 8 C h w bytes times (2m + 1) for 'lam' (points x_0..x_m and the
    m increments), m + 2 for the straight paths (points, baseline, image), 2 for 'gradient'."""
    count = {"lam": 2 * steps + 1, "gradient": 2}.get(path, steps + 2)
    return 8 * count * channels * height * width
