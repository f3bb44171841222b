"""The LAM toolbox options (issue #25) against independent computations written from LAM_Demo's formulas: the
objectives attr_grad / attr_id / attr_gabor with sum and mean, the OpenCV baselines of saliency_map_I_gradient, the
i_gradient path, the per-step path results, count_saliency_pixels, grad_norm, plot_diff_of_attrs_kde, SmoothGrad /
VarGrad, the objectives on L2X and GL-AM, and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, stats

import onnxattr
from onnxattr.cli import main
from onnxattr.methods.baselines import make_baseline
from onnxattr.methods.blur import blur_path
from onnxattr.methods.glam import glam
from onnxattr.methods.l2x import l2x
from onnxattr.methods.lam import lam
from onnxattr.metrics import saliency_pixels
from onnxattr.plot.lam import signed_map
from onnxattr.plot.several import kde_difference
from onnxattr.windows.detector import gabor_kernel, window_objectives
from onnxattr.windows.geometry import Window

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"  # out = 2 in - 28
IMAGE = ROOT / "samples" / "images" / "chelsea-64.png"


@pytest.fixture(scope="module")
def sample():
    model = onnxattr.load_model(SAMPLE)
    return model, onnxattr.read_image(IMAGE)[:, :, 10:40, 14:44]  # 30 x 30 LR -> 32 x 32 SR


# ------------------------------------------------------------------ LAM_Demo's formulas, written independently
def gabor_reference(size=21, sigma=10.0, theta=-math.pi / 4, lambd=8.0, gamma=1.0, psi=0.0) -> np.ndarray:
    """cv2.getGaborKernel: value at (x, y) stored at [ymax - y, xmax - x]."""
    k = np.zeros((size, size))
    half = size // 2
    for y in range(-half, half + 1):
        for x in range(-half, half + 1):
            xr = x * math.cos(theta) + y * math.sin(theta)
            yr = -x * math.sin(theta) + y * math.cos(theta)
            k[half - y, half - x] = (math.exp(-0.5 * xr**2 / sigma**2 - 0.5 * yr**2 / (sigma / gamma) ** 2)
                                     * math.cos(2 * math.pi * xr / lambd + psi))
    return k


def attr_grad(o: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    """LAM_Demo attr_grad per channel, the crop [h:h+n, w:w+n] of (H-1, W-1): (C, n, n)."""
    g = np.sqrt((o[:, :-1, :-1] - o[:, 1:, :-1]) ** 2 + (o[:, :-1, :-1] - o[:, :-1, 1:]) ** 2)
    return g[:, h : h + n, w : w + n]


def attr_gabor(o: np.ndarray, h: int, w: int, n: int) -> np.ndarray:
    """LAM_Demo attr_gabor: the valid correlation of every channel with the kernel, summed, at [h:h+n, w:w+n]."""
    k = gabor_reference().astype(np.float32).astype(np.float64)  # ktype=cv2.CV_32F
    r = sum(ndimage.correlate(c, k, mode="constant")[10:-10, 10:-10] for c in o)
    return r[h : h + n, w : w + n][None]


def close(got: np.ndarray, want: np.ndarray, share: float = 1e-4) -> None:
    """Equal up to float32 gradients taken in other batches: within ``share`` of the largest value."""
    np.testing.assert_allclose(got, want, rtol=0, atol=share * np.abs(want).max())


@pytest.mark.parametrize("objective", ["grad", "intensity", "gabor"])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_objectives_against_lam_demo(objective, reduce):
    out = torch.rand(2, 3, 40, 44, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    wins = [Window(12, 11, 8), Window(20, 15, 5)]
    got = window_objectives(out, wins, objective, reduce).numpy()
    for i, o in enumerate(out.numpy()):
        for k, w in enumerate(wins):
            if objective == "grad":
                crop = attr_grad(o, w.y, w.x, w.size)
            elif objective == "intensity":
                crop = o[:, w.y : w.y + w.size, w.x : w.x + w.size]
            else:  # onnxattr centres the filter on the window: LAM_Demo's window 10 px up and left
                crop = attr_gabor(o, w.y - 10, w.x - 10, w.size)
            want = crop.sum() if reduce == "sum" else crop.mean()
            assert got[i, k] == pytest.approx(want, rel=1e-10)


def test_gabor_kernel_is_opencvs():
    k = gabor_kernel().numpy()
    np.testing.assert_allclose(k, gabor_reference(), atol=1e-7)
    assert k.dtype == np.float32 and k[10, 10] == 1.0 and k.sum() == pytest.approx(1.648, abs=1e-3)


# ------------------------------------------------------------------ baselines
def bilateral_reference(img: np.ndarray) -> np.ndarray:
    """cv2.bilateralFilter(img, 15, 90, 90) on (H, W, C) 0..255: disc of radius 7, L1 colour distance, reflect-101."""
    r, s = 7, 90.0
    pad = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.zeros_like(img)
    h, w, _ = img.shape
    for y in range(h):
        for x in range(w):
            num, den = np.zeros(img.shape[2]), 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if dy * dy + dx * dx > r * r:
                        continue
                    q = pad[y + r + dy, x + r + dx]
                    wq = math.exp(-(dy * dy + dx * dx) / (2 * s * s) - np.abs(q - img[y, x]).sum() ** 2 / (2 * s * s))
                    num += wq * q
                    den += wq
            out[y, x] = num / den
    return out


def test_baselines_equal_opencvs_calls():
    x = torch.rand(1, 3, 12, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hwc = x[0].permute(1, 2, 0).numpy() * 255
    taps = np.array([1, 3.5, 7, 9, 7, 3.5, 1]) / 32  # cv2.getGaussianKernel(7, 0)
    want = {
        "gaussian": ndimage.correlate1d(ndimage.correlate1d(hwc, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror"),
        "median": ndimage.median_filter(hwc, size=(5, 5, 1), mode="nearest"),
        "bilateral": bilateral_reference(hwc),
    }
    for name, expected in want.items():
        got = make_baseline(x, name)[0].permute(1, 2, 0).numpy() * 255
        np.testing.assert_allclose(got, expected, atol=1e-9, err_msg=name)


def test_i_gradient_is_lam_demos_saliency_map_i_gradient(sample):
    """(x - x') * the mean over a = linspace(0, 1, m) of dD(F(x' + a (x - x')))/dx, D the Gabor objective."""
    model, image = sample
    win = Window(12, 12, 6)
    ds = lam(model, image, [win.as_tuple()], frame="sr", path="i_gradient", baseline="bilateral", steps=4, objective="gabor")
    base = make_baseline(image.double(), "bilateral")
    grads = []
    for a in np.linspace(0, 1, 4):
        x = (base + a * (image.double() - base)).float().requires_grad_(True)
        (g,) = torch.autograd.grad(window_objectives(model(x), [win], "gabor").sum(), x)
        grads.append(g.double())
    want = (torch.stack(grads).mean(0) * (image.double() - base))[0]
    close(ds["attribution"].values[0], want.numpy())
    np.testing.assert_allclose(ds["baseline"].values, base[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("baseline", ["blur", "black"])
def test_i_gradient_lines_are_gaussian_linear_path_and_linear_path(baseline):
    """LAM_Demo GaussianLinearPath(1.2, m, 9) (baseline: the 9 x 9 kernel of sigma 1.2 + 1e-5, reflect-101) and
    LinearPath(m) (black): points x' + linspace(0, 1, m) (I - x'), each weighted by (I - x') / m."""
    from onnxattr.methods.paths import make_path

    img = torch.rand(1, 3, 11, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ax = np.arange(-4, 5)
    k = np.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * (1.2 + 1e-5) ** 2))
    base = ndimage.correlate(img[0].numpy(), (k / k.sum())[None], mode="mirror") if baseline == "blur" else 0 * img[0].numpy()
    route = make_path(img, "i_gradient", 5, 1.2, 9, baseline)
    want = base + np.linspace(0, 1, 5)[:, None, None, None] * (img[0].numpy() - base)
    np.testing.assert_allclose(route.points.numpy(), want, atol=1e-12)
    np.testing.assert_allclose(route.weights.numpy(), np.broadcast_to((img[0].numpy() - base) / 5, want.shape), atol=1e-12)


def test_path_results_add_up(sample):
    model, image = sample
    ds = lam(model, image, [(4, 4, 8), (14, 10, 6)], frame="sr", steps=6, batch_size=4)
    total = ds["attribution"].sum(dim=("channel", "y", "x")).values
    np.testing.assert_allclose(ds["path_attribution"].cumsum("step").values[:, -1], total, rtol=1e-6)
    assert (ds["path_attribution"].values[:, 0] == 0).all()
    np.testing.assert_allclose(ds["path_objective"].values[:, -1], ds["objective_input"].values)
    np.testing.assert_allclose(ds["path_objective"].values[:, 0], ds["objective_baseline"].values)
    points, _ = blur_path(image.double(), 1.2, 6, 9)
    steps = (points[1:] - points[:-1]).flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(ds["path_increment"].values, [0, *steps], rtol=1e-9)
    # count_saliency_pixels: -cumsum(sort(-map)) < 0.95 sum, counted
    for k in range(2):
        s = ds["saliency"].values[k].astype(np.float64).reshape(-1)
        cum = -np.cumsum(np.sort(-s))
        assert float(ds["saliency_pixels"][k]) == len(cum[cum < s.sum() * 0.95])
        assert float(ds["saliency_share"][k]) == pytest.approx(len(cum[cum < s.sum() * 0.95]) / s.size)


def test_saliency_pixels_grad_norm_and_kde_difference():
    rng = np.random.default_rng(2)
    m = rng.random((9, 11)) ** 4
    cum = -np.cumsum(np.sort(-m.reshape(-1)))
    assert saliency_pixels(m) == len(cum[cum < m.sum() * 0.95]) and math.isnan(saliency_pixels(np.zeros((3, 3))))
    a = rng.normal(size=(3, 9, 11))
    s = a.sum(axis=0)
    np.testing.assert_allclose(signed_map(a), s / max(s.max(), abs(s.min())))

    def kde(w: np.ndarray) -> np.ndarray:  # vis_saliency_kde's density: weighted Scott KDE on the pixel grid / max
        yy, xx = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
        pts = np.vstack([xx.ravel(), yy.ravel()]).astype(float)
        z = stats.gaussian_kde(pts, weights=w.ravel())(pts).reshape(w.shape)
        return z / z.max()

    b = rng.random((9, 11)) ** 4
    za, zb = kde(m), kde(b)
    np.testing.assert_allclose(kde_difference(m, b), zb - 0.5 * (za - zb) / (za - zb).max(), atol=1e-12)


# ------------------------------------------------------------------ SmoothGrad / VarGrad
def test_smoothgrad_and_vargrad_of_the_plain_gradient(sample):
    model, image = sample
    win = [(8, 8, 8)]
    noise = torch.randn((1, 3, *image.shape[1:]), generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.05
    maps = np.stack([lam(model, (image.double() + e).float(), win, frame="sr", path="gradient")["attribution"].values[0]
                     for e in noise[0]])
    mean = lam(model, image, win, frame="sr", path="gradient", smooth=3, noise=0.05, seed=7)
    var = lam(model, image, win, frame="sr", path="gradient", smooth=3, noise=0.05, seed=7, smooth_type="vargrad")
    close(mean["attribution"].values[0], maps.mean(0))
    close(var["attribution"].values[0], maps.var(0), 1e-3)
    assert mean.attrs["smooth"] == 3 and mean.attrs["noise"] == 0.05 and mean.attrs["smooth_type"] == "smoothgrad"
    np.testing.assert_allclose(mean["output"].values, model(image)[0].detach().numpy(), atol=1e-6)


def test_smoothgrad_lam_path_runs_the_copies_paths(sample):
    model, image = sample
    noise = torch.randn((1, 2, *image.shape[1:]), generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.02
    each = [lam(model, (image.double() + e).float(), [(8, 8, 8)], frame="sr", steps=3) for e in noise[0]]
    smooth = lam(model, image, [(8, 8, 8)], frame="sr", steps=3, smooth=2, noise=0.02, seed=3, batch_size=4)
    close(smooth["attribution"].values, np.mean([d["attribution"].values for d in each], 0))
    np.testing.assert_allclose(smooth["path_objective"].values, np.mean([d["path_objective"].values for d in each], 0),
                               rtol=1e-5)


# ------------------------------------------------------------------ L2X and GL-AM
@pytest.mark.parametrize("objective, reduce", [("intensity", "mean"), ("gabor", "sum"), ("grad", "mean")])
def test_l2x_objectives_keep_completeness(sample, objective, reduce):
    model, image = sample
    ds = l2x(model, image, [(12, 12, 6)], frame="sr", objective=objective, reduce=reduce)
    d = window_objectives(model(image).double(), [Window(12, 12, 6)], objective, reduce)
    assert float(ds["target_value"][0]) == pytest.approx(float(d[0, 0]), rel=1e-5)
    assert float(ds["completeness_error"][0]) < 1e-6


def test_glam_local_view_explains_the_objective(sample):
    model, image = sample
    win = [(12, 12, 6)]
    base = glam(model, image, win, frame="sr", layers=["Conv"])
    gabor = glam(model, image, win, frame="sr", layers=["Conv"], objective="gabor")
    np.testing.assert_array_equal(base["global"].values, gabor["global"].values)  # T_Global is the paper's
    assert not np.allclose(base["local"].values, gabor["local"].values)
    smooth = glam(model, image, win, frame="sr", layers=["Conv"], smooth=2, noise=0.05, seed=1)
    noise = torch.randn((1, 2, *image.shape[1:]), generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.05
    each = [glam(model, (image.double() + e).float(), win, frame="sr", layers=["Conv"]) for e in noise[0]]
    np.testing.assert_allclose(smooth["local_layers"].values, np.mean([d["local_layers"].values for d in each], 0),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ CLI
def test_cli_options_figures_and_errors(tmp_path, capsys):
    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        return code, capsys.readouterr().err

    small = tmp_path / "small.png"  # 32 x 32 LR -> 36 x 36 SR, windows at HR 14 + SR position
    Image.fromarray(np.asarray(Image.open(IMAGE))[16:48, 16:48]).save(small)
    fast = ["--no-verify", "--steps"]
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    code, err = run("lam", SAMPLE, small, "--window", "30", "30", "8", *fast, "3", "--objective", "gabor",
                    "--reduce", "mean", "--smooth", "2", "--noise", "0.05", "--receptive-field", "-o", a)
    assert code == 0, err
    ds = onnxattr.load(a)
    assert ds.attrs["objective"] == "gabor" and ds.attrs["receptive_field"] == 14 and "theoretical RF" in err
    code, err = run("lam", SAMPLE, small, "--window", "30", "30", "8", "--path", "i_gradient", "--baseline", "median",
                    *fast, "3", "-o", b)
    assert code == 0, err
    for args in (["--panels", "input,signed,path"], ["--panels", "path", "--style", "paper"], [b]):
        fig = tmp_path / "f.png"
        code, err = run("show", a, *args, "-o", fig)
        assert code == 0 and fig.stat().st_size > 0, err
    code, err = run("lam", SAMPLE, small, "--window", "34", "30", "8", *fast, "2", "-o", tmp_path / "c.nc")
    assert code == 0
    for args, text in ((["show", a, tmp_path / "c.nc"], "windows differ"),
                       (["lam", SAMPLE, small, "--window", "30", "30", "8", "--baseline", "median"], "--path i_gradient"),
                       (["lam", SAMPLE, small, "--window", "16", "16", "8", "--objective", "gabor"], "Gabor"),
                       (["lam", SAMPLE, small, "--window", "30", "30", "8", "--smooth", "4"], "--noise"),
                       (["l2x", SAMPLE, small, "--window", "30", "30", "8", "--target", "sum", "--objective", "gabor"],
                        "--target detector")):
        out = tmp_path / "bad.png" if args[0] == "show" else tmp_path / "bad.nc"
        code, err = run(*args, "-o", out)
        assert code == 2 and text in err and len(err.strip().splitlines()) == 1 and not out.exists(), err
