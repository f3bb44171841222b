"""Baselines of the plain gradient x (input - baseline) map (LAM_Demo ``saliency_map_I_gradient`` and its
``IG_baseline``), equal to the OpenCV calls it makes, on the image scaled to 0..255 as it does:

* ``gaussian`` ('gaus', its default): ``cv2.GaussianBlur(img, (7, 7), 0)``: with sigma 0 and a 7-tap kernel OpenCV
  uses the fixed taps [1, 3.5, 7, 9, 7, 3.5, 1] / 32 (not a sampled Gaussian), separable, reflect-101 borders;
* ``bilateral`` ('bif'): ``cv2.bilateralFilter(img, 15, 90, 90)``: the disc of radius 7, spatial weight
  exp(-r^2 / (2 90^2)), colour weight exp(-d^2 / (2 90^2)) with d the L1 distance over the channels (0..255 units),
  reflect-101 borders (OpenCV interpolates the colour weight from a table; this takes the exponential itself);
* ``median`` ('mean', which is a median filter): ``cv2.medianBlur(img, 5)``: the 5 x 5 median per channel,
  replicated borders;
* ``blur`` and ``black``: the baselines of its ``GaussianLinearPath`` (LAM's Gaussian blur) and ``LinearPath``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import OnnxAttrError
from ..options import BASELINES
from .blur import blur, correlate, reflect_101

GAUSSIAN_TAPS = (1.0, 3.5, 7.0, 9.0, 7.0, 3.5, 1.0)  # / 32: cv2.getGaussianKernel(7, 0)
BILATERAL = {"diameter": 15, "sigma_color": 90.0, "sigma_space": 90.0}  # cv2.bilateralFilter(img, 15, 90, 90)
MEDIAN_SIZE = 5  # cv2.medianBlur(img, 5)


def gaussian(image: torch.Tensor) -> torch.Tensor:
    """cv2.GaussianBlur(img, (7, 7), 0) of (1, C, H, W): the fixed taps g = GAUSSIAN_TAPS / 32, g g^T, reflect-101."""
    g = torch.tensor(GAUSSIAN_TAPS, dtype=torch.float64)[None] / 32
    return correlate(image, g, g).reshape(image.shape)


def median(image: torch.Tensor, size: int = MEDIAN_SIZE) -> torch.Tensor:
    """cv2.medianBlur(img, size) of (1, C, H, W): the median of each size x size neighbourhood per channel
    (replicated borders); size odd, so the median is one of the values."""
    half = size // 2
    x = F.pad(image.to(torch.float64), (half,) * 4, mode="replicate")
    patches = x.unfold(2, size, 1).unfold(3, size, 1)  # (1, C, H, W, size, size)
    return patches.reshape(*patches.shape[:4], -1).median(dim=-1).values


def bilateral(image: torch.Tensor, diameter: int = 15, sigma_color: float = 90.0, sigma_space: float = 90.0) -> torch.Tensor:
    """cv2.bilateralFilter(255 img, diameter, sigma_color, sigma_space) / 255 of (1, C, H, W) in [0, 1]:

        out(p) = sum_q w(p, q) I(q) / sum_q w(p, q),  w = exp(-|p - q|^2 / (2 s_s^2) - (sum_c |I_c(p) - I_c(q)|)^2 / (2 s_c^2))

    over the q with |p - q| <= diameter // 2 (a disc), I in 0..255, reflect-101 borders."""
    r = diameter // 2
    _, _, h, w = image.shape
    x = image.to(torch.float64) * 255.0
    padded = x.index_select(2, reflect_101(h, r, r)).index_select(3, reflect_101(w, r, r))
    total = torch.zeros_like(x)
    weights = torch.zeros_like(x[:, :1])
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:
                continue
            q = padded[:, :, r + dy : r + dy + h, r + dx : r + dx + w]
            colour = (q - x).abs().sum(dim=1, keepdim=True)
            wq = torch.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2) - colour**2 / (2 * sigma_color**2))
            total += wq * q
            weights += wq
    return total / weights / 255.0


OPENCV = {"gaussian": gaussian, "median": median, "bilateral": lambda image: bilateral(image, **BILATERAL)}


def check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise OnnxAttrError(f"baseline {baseline!r}: use one of {', '.join(BASELINES)} (LAM_Demo IG_baseline 'gaus', "
                            "'bif', 'mean', GaussianLinearPath's blur, LinearPath's black)")


def make_baseline(image: torch.Tensor, baseline: str, sigma: float = 1.2, kernel_size: int = 9) -> torch.Tensor:
    """The ``baseline`` image (one of ``BASELINES``) of ``image`` (1, C, H, W) in [0, 1], float64: an OpenCV filter
    above, LAM's blur k(sigma) (*) I (``blur.blur``, GaussianLinearPath's baseline) or black (LinearPath's)."""
    check_baseline(baseline)
    img = image.to(torch.float64)
    if baseline == "blur":
        return blur(img, sigma, kernel_size)
    if baseline == "black":
        return torch.zeros_like(img)
    return OPENCV[baseline](img)
