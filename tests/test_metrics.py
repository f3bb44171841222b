"""Cross-model measures: PSNR/SSIM against scikit-image, linear CKA, remove-and-replace masking curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from onnxattr import OnnxAttrError, load_model, read_image
from onnxattr.image import downscale, rgb_to_y
from onnxattr.metrics import cka, cka_matrix, masking_curves, pixel_order, psnr, sr_quality, ssim
from onnxattr.metrics.masking import mask_pixels
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


# ------------------------------------------------------------------ PSNR / SSIM
@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """HR astronaut and its bicubic x2 round trip: a fixed, realistic (SR, HR) pair."""
    hr = read_image(SAMPLES / "images" / "astronaut-hr-128.png")
    lr, hr = downscale(hr, 2)
    sr = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    return sr[0].double().numpy(), hr[0].double().numpy()


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
    )


def test_psnr_ssim_match_scikit_image(pair):
    sr, hr = pair
    b = 2
    crop = (slice(None), slice(b, -b), slice(b, -b))
    assert psnr(sr, hr, border=b) == pytest.approx(peak_signal_noise_ratio(hr[crop], sr[crop], data_range=1.0), abs=1e-10)
    assert ssim(sr, hr, border=b) == pytest.approx(_skimage_ssim(sr[crop], hr[crop]), abs=1e-10)
    y_sr, y_hr = (rgb_to_y(torch.from_numpy(v)[None])[0].numpy() for v in (sr, hr))
    assert psnr(sr, hr, border=b, y=True) == pytest.approx(
        peak_signal_noise_ratio(y_hr[crop], y_sr[crop], data_range=1.0), abs=1e-10
    )
    assert ssim(sr, hr, border=b, y=True) == pytest.approx(_skimage_ssim(y_sr[crop], y_hr[crop]), abs=1e-10)
    q = sr_quality(sr, hr, border=b)
    assert 24 < q["psnr_y"] < 40 and 0.7 < q["ssim_y"] < 1  # bicubic x2 on a 128 px photo
    assert q["psnr"] == pytest.approx(psnr(sr, hr, border=b))


def test_psnr_ssim_identity_batches_and_errors(pair):
    sr, hr = pair
    assert psnr(hr, hr) == np.inf and ssim(hr, hr) == pytest.approx(1.0)
    batch = psnr(np.stack([hr, sr]), hr, border=2)
    assert batch.shape == (2,) and batch[0] == np.inf and batch[1] == pytest.approx(psnr(sr, hr, border=2))
    with pytest.raises(OnnxAttrError, match="differ in shape"):
        psnr(sr[:, :-1], hr)
    with pytest.raises(OnnxAttrError, match="at least 11x11"):
        ssim(sr[:, :12, :12], hr[:, :12, :12], border=1)


# ------------------------------------------------------------------------- CKA
def test_cka_identity_invariances_and_hand_case():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 40))
    y = x[:, :25] @ rng.standard_normal((25, 7)) + 0.3 * rng.standard_normal((12, 7))
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    assert cka(x, x) == pytest.approx(1.0)
    assert cka(x, x, debiased=True) == pytest.approx(1.0)
    base = cka(x, y)
    assert 0.2 < base < 0.99
    assert cka(x @ q, y) == pytest.approx(base, rel=1e-12)  # orthogonal transform
    assert cka(7.5 * x, 0.01 * y) == pytest.approx(base, rel=1e-12)  # isotropic scaling
    assert cka(x @ q, 3 * y, debiased=True) == pytest.approx(cka(x, y, debiased=True), rel=1e-10)
    # by hand: one feature each, centred (-1, 0, 1) and (0, -1, 1): (1)^2 / (2 * 2) = 0.25
    assert cka([[1], [2], [3]], [[1], [0], [2]]) == pytest.approx(0.25)
    # two samples: the centred rows are +-d/2, so linear CKA is 1 whatever the maps
    assert cka(x[:2], y[:2]) == pytest.approx(1.0)


def test_cka_matrix_and_errors():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 10)), rng.standard_normal((6, 4))
    m = cka_matrix([a, b, a])
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
    assert m[0, 2] == pytest.approx(1.0) and m[0, 1] == pytest.approx(cka(a, b))
    with pytest.raises(OnnxAttrError, match="at least 4 samples"):
        cka(a[:3], b[:3], debiased=True)
    with pytest.raises(OnnxAttrError, match="same samples"):
        cka(a, b[:5])


# --------------------------------------------------------------------- masking
def test_pixel_order_and_mask():
    attr = np.zeros((3, 2, 3))
    attr[0, 1, 2], attr[1, 0, 0], attr[2, 0, 0] = -5.0, 2.0, -2.0  # sum_c |a|: 5 at (1,2), 4 at (0,0)
    order = pixel_order(attr)
    assert list(order[:2]) == [5, 0]
    image = np.arange(18, dtype=np.float64).reshape(3, 2, 3)
    masked = mask_pixels(image, order, 2 / 6)
    means = image.reshape(3, -1).mean(axis=1)
    assert np.allclose(masked[:, 1, 2], means) and np.allclose(masked[:, 0, 0], means)
    assert np.array_equal(masked[:, 0, 1:], image[:, 0, 1:]) and np.array_equal(masked[:, 1, :2], image[:, 1, :2])


@pytest.fixture(scope="module")
def curves():
    """Masking curves of the plain gradient of LAM's detector on a sample CNN (window 16 px)."""
    model = load_model(SAMPLES / "waifu2x-upconv7-x2.ts17.onnx")
    hr = read_image(SAMPLES / "images" / "astronaut-hr-128.png")
    lr, hr = downscale(hr, 2)
    window = Window(36, 30, 16)
    x = lr.clone().requires_grad_(True)
    gradient_detector(model(x), window).sum().backward()
    c = -model.offset // 2  # the SR output covers HR pixels c .. c + H_sr
    out_h = model.output_size(*lr.shape[2:])[0]
    hr_aligned = hr[:, :, c : c + out_h, c : c + out_h]
    return masking_curves(
        model, lr, x.grad[0], ratios=(0.0, 0.05, 0.1, 0.2, 0.4), seeds=3, hr=hr_aligned, window=window
    )


def test_masking_ratio_zero_reproduces_the_output(curves):
    assert list(curves.region.values) == ["image", "window"] and list(curves.reference.values) == ["sr", "hr"]
    at0 = curves.sel(ratio=0.0, reference="sr")
    assert np.all(np.isinf(at0.psnr.values)) and np.allclose(at0.ssim.values, 1.0)
    # against HR, ratio 0 is the model's own PSNR, finite and equal for both orders
    hr0 = curves.psnr.sel(ratio=0.0, reference="hr", region="image").values
    assert np.isfinite(hr0).all() and hr0[0] == hr0[1] and 20 < hr0[0] < 45


def test_masking_curves_fall_with_the_ratio(curves):
    # on average: the mean step is a drop; single steps may rise a little once the ranked pixels leave
    # the receptive field of the window (the gradient is zero there)
    # (SSIM of the window is left out: once most of its influence region is flat, the structure term of
    # the near-constant window output may rise again, 0.13 -> 0.43 from 20% to 40% of S)
    for region, metric, uptick in (("image", "psnr", 0.05), ("image", "ssim", 0.005), ("window", "psnr", 0.05)):
        v = curves[metric].sel(region=region, reference="sr").values[:, 1:]  # (order, ratio > 0)
        steps = np.diff(v, axis=1)
        assert steps.mean() < 0 and np.all(steps < uptick), (region, metric, v)
    rnd = curves.psnr.sel(region="image", reference="sr", order="random").values[1:]
    assert np.all(np.diff(rnd) < -0.5)  # random masking costs dB at every step


def test_attribution_order_beats_random(curves):
    win = curves.sel(region="window", reference="sr")
    attr, rnd = win.psnr.sel(order="attribution").values[1:], win.psnr.sel(order="random").values[1:]
    spread = win.psnr_random_std.values[1:]
    assert np.all(attr < rnd - 2 * spread - 1.0), (attr, rnd, spread)
    assert win.ssim.sel(order="attribution", ratio=0.05) < win.ssim.sel(order="random", ratio=0.05) - 0.1


def test_window_ratios_are_of_the_attribution_support(curves):
    """Region 'window' masks shares of the window's influence region S (the attribution's support), region
    'image' shares of the whole image: a 16-px window on UpConv7 reaches 8 + 2 * 7 = 22 LR px per side."""
    n = curves.attrs["support_pixels"]
    assert 400 < n <= 22 * 22
    np.testing.assert_array_equal(curves.masked_pixels.sel(region="window"), [round(r * n) for r in curves.ratio.values])
    np.testing.assert_array_equal(curves.masked_pixels.sel(region="image"), [round(r * 64 * 64) for r in curves.ratio.values])
    # the attribution-ordered window curve still falls after 5% of S (it sat at its floor with image ratios)
    attr = curves.psnr.sel(region="window", reference="sr", order="attribution").values[1:]
    assert attr[0] - attr[-1] > 2.0, attr
