"""LAM (issue #3): against an independent numpy/scipy loop, exactness on a linear model, the kernel,
the path, Gini/DI, window errors, the CLI result file and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import ndimage
from torch import nn

import onnxattr
from onnxattr.methods.blur import blur, gaussian_kernel
from onnxattr.cli import cli
from onnxattr.errors import OnnxAttrError
from onnxattr.methods.paths import PATHS, make_path, path_attribution
from onnxattr.methods.memory import largest_batch
from onnxattr.metrics import diffusion_index, gini
from onnxattr.windows.detector import gradient_detector
from nets import export as nets_export

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"  # a real trained CNN, out = 2 * in - 28
IMAGE = ROOT / "samples" / "images" / "chelsea-64.png"


@pytest.fixture(scope="module")
def sample():
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE.name} not built (samples/make_samples.py)")
    model = onnxattr.load_model(SAMPLE)
    image = onnxattr.read_image(IMAGE)[:, :, 16:40, 20:44]  # 24x24 LR -> 20x20 SR: the eye's edge
    return model, image


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """conv 3 -> 12 (3x3, no bias) + pixel shuffle x2: a linear F."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, bias=False), nn.PixelShuffle(2)).eval()
    path = tmp_path_factory.mktemp("linear") / "linear.onnx"
    axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "H", 3: "W"}}
    torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"], dynamic_axes=axes)
    return onnxattr.load_model(path), torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ independent reference
def reference_kernel(sigma: float, size: int) -> np.ndarray:
    ax = np.arange(-size // 2 + 1, size // 2 + 1)
    xx, yy = np.meshgrid(ax, ax)
    k = np.exp(-(xx**2 + yy**2) / (2.0 * (sigma + 1e-5) ** 2))
    return k / k.sum()


def reference_blur(image: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """(C, H, W) float64, per channel, reflect-101 borders (scipy 'mirror'), odd kernel."""
    k = reference_kernel(sigma, size)
    return np.stack([ndimage.correlate(c, k, mode="mirror") for c in image])


def reference_detector(out: torch.Tensor, x: int, y: int, size: int) -> torch.Tensor:
    dh = (out[:, :, :-1, :] - out[:, :, 1:, :]) ** 2
    dw = (out[:, :, :, :-1] - out[:, :, :, 1:]) ** 2
    g = torch.sqrt(dh[:, :, :, :-1] + dw[:, :, :-1, :])
    return g[:, :, y : y + size, x : x + size].sum()


def reference_lam(model, image: np.ndarray, window, steps: int, sigma: float, size: int) -> np.ndarray:
    """The authors' loop: blur each step anew, one step at a time, NaN gradients set to 0."""
    sigmas = np.linspace(sigma, 0, steps + 1)
    points = [reference_blur(image, s, size) for s in sigmas]
    total = np.zeros_like(image)
    for i in range(1, steps + 1):
        x = torch.from_numpy(points[i].astype(np.float32))[None].requires_grad_(True)
        reference_detector(model(x), *window).backward()
        grad = np.nan_to_num(x.grad[0].numpy().astype(np.float64), nan=0.0)
        total += grad * (points[i] - points[i - 1])
    return total


# ------------------------------------------------------------------------------- tests
def test_batched_lam_matches_independent_loop_on_sample(sample):
    model, image = sample
    window = (2, 3, 12)
    ds = onnxattr.lam(model, image, window, frame="sr", steps=10, batch_size=4).isel(window=0)  # batches 4, 4, 2
    ref = reference_lam(model, image[0].double().numpy(), window, 10, 1.2, 9)
    got = ds["attribution"].values.astype(np.float64)
    assert np.abs(ref).max() > 0
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-5
    assert ds.attrs["batch_size"] == 4 and ds.attrs["steps"] == 10 and ds.attrs["path"] == "lam"
    sal = np.abs(ref.sum(0)) / np.abs(ref.sum(0)).max()
    assert float(ds["diffusion_index"]) == pytest.approx(diffusion_index(sal), abs=1e-3)
    assert ds["path_objective"].shape == (11,)
    assert ds["path_objective"].values[-1] == pytest.approx(float(ds["objective_input"]))
    assert 0 <= float(ds["completeness_error"]) < 0.5


def test_default_batch_equals_one_step_at_a_time(sample):
    model, image = sample
    a = onnxattr.lam(model, image, (4, 4, 8), frame="sr", steps=6, batch_size=1)["attribution"].values
    b = onnxattr.lam(model, image, (4, 4, 8), frame="sr", steps=6)["attribution"].values
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_linear_objective_on_linear_model_is_exact(linear):
    """For affine F and a linear objective the gradient is constant: the sum telescopes on any path."""
    model, image = linear
    w = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def objective(out: torch.Tensor) -> torch.Tensor:
        return (out.double() * w).sum(dim=(1, 2, 3))[:, None]

    for name in ("lam", "ig_blur", "ig_black"):
        route = make_path(image, name, 7, 1.2, 9)
        res = path_attribution(model, route.points, route.weights, objective, 3)
        with torch.no_grad():
            gap = objective(model(image)) - objective(model(route.baseline.float()))
        assert float(res.attribution.sum()) == pytest.approx(float(gap), rel=1e-5)


def test_completeness_exact_on_linear_model_from_black(linear):
    """F linear (no bias) and D positively 1-homogeneous: along x = a I the gradient is constant, so the
    m-step sum of the straight path from black is exact for any m (Euler: grad D(F(I)) . I = D(F(I)))."""
    model, image = linear
    for m in (1, 3):
        ds = onnxattr.lam(model, image, (6, 6, 16), steps=m, path="ig_black")
        assert ds["completeness_error"].item() < 1e-6
        assert ds["objective_baseline"].item() == 0.0


def test_completeness_of_lam_path_converges_first_order(linear):
    """On the blur path the right Riemann sum is first order: the error falls like 1/m."""
    model, image = linear
    e10, e100 = (onnxattr.lam(model, image, (6, 6, 16), steps=m)["completeness_error"].item() for m in (10, 100))
    assert 0.05 < e10 < 0.3 and e100 < 0.02
    assert 8 < e10 / e100 < 12


def test_gaussian_kernel_values():
    k = gaussian_kernel(1.2, 9).numpy()
    np.testing.assert_allclose(k, reference_kernel(1.2, 9), rtol=1e-12)
    centre = 1.0 / sum(np.exp(-(a**2) / (2 * 1.20001**2)) for a in range(-4, 5)) ** 2  # separable kernel
    assert k.sum() == pytest.approx(1.0) and k[4, 4] == k.max() and k[4, 4] == pytest.approx(centre, rel=1e-12)
    assert k[4, 4] == pytest.approx(0.110548, abs=1e-6)
    delta = gaussian_kernel(0.0, 9).numpy()
    assert delta[4, 4] == 1.0 and delta.sum() == 1.0


@pytest.mark.parametrize("name", ["lam", "ig_blur", "ig_black"])
def test_path_endpoints_and_increments(name):
    image = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(3))
    route = make_path(image, name, 5, 1.2, 9)
    img = image[0].double()
    base = {"lam": reference_blur(img.numpy(), 1.2, 9), "ig_blur": reference_blur(img.numpy(), 1.2, 9),
            "ig_black": np.zeros_like(img.numpy())}[name]
    np.testing.assert_allclose(route.baseline[0].numpy(), base, atol=1e-12)
    assert torch.equal(route.points[-1], img)
    assert route.points.shape == route.weights.shape == (5, 3, 12, 10)
    np.testing.assert_allclose(route.weights.sum(0).numpy(), img.numpy() - base, atol=1e-12)
    if name == "lam":
        np.testing.assert_allclose(route.points[1].numpy(), reference_blur(img.numpy(), 1.2 * 3 / 5, 9), atol=1e-12)


@pytest.mark.parametrize("size", [5, 17, 31, 61])
def test_blur_baseline_matches_scipy_mirror(size):
    """Kernels up to several times the image (9x13; 61 reflects the image again and again), as scipy's 'mirror'
    and OpenCV's BORDER_REFLECT_101 do."""
    image = torch.rand(1, 1, 9, 13, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    np.testing.assert_allclose(blur(image, 2.0, size)[0].numpy(), reference_blur(image[0].numpy(), 2.0, size), atol=1e-12)


def test_gini_and_diffusion_index_known_values():
    assert diffusion_index(np.ones((8, 8))) == pytest.approx(100.0)
    assert gini(np.ones((8, 8))) == pytest.approx(0.0, abs=1e-12)
    for n in (16, 64, 1024):
        one_hot = np.zeros(n)
        one_hot[n // 3] = 1.0
        # 100/n, plus ~100 n 1e-7 from the 1e-7 the LAM code adds to every value
        assert diffusion_index(one_hot) == pytest.approx(100.0 / n + 100 * n * 1e-7, rel=1e-3)
    # two levels: half the pixels at 1, half at 0 -> G = 1/2, DI = 50
    assert diffusion_index(np.repeat([0.0, 1.0], 50)) == pytest.approx(50.0, rel=1e-4)


def test_window_validation(sample):
    model, image = sample  # SR output 20x20: windows up to its edges
    with pytest.raises(OnnxAttrError, match="outside"):
        onnxattr.lam(model, image, (10, 0, 11), frame="sr", steps=2)
    with pytest.raises(OnnxAttrError, match="too large"):
        onnxattr.lam(model, image, (0, 0, 21), frame="sr", steps=2)
    with pytest.raises(OnnxAttrError, match="outside"):
        onnxattr.lam(model, image, (-1, 0, 4), frame="sr", steps=2)


def test_parameter_validation(linear):
    model, image = linear
    for kw, msg in [({"path": "sideways"}, "unknown path"), ({"steps": 0}, "at least 1 step"),
                    ({"sigma": 0.0}, "sigma"), ({"batch_size": 0}, "batch size"), ({"memory_fraction": 1.5}, "fraction")]:
        with pytest.raises(OnnxAttrError, match=msg):
            onnxattr.lam(model, image, (0, 0, 8), **kw)


def test_largest_batch():
    assert largest_batch(lambda n: 100 * n, budget=10_000, most=50) == 50
    assert largest_batch(lambda n: 1000 * n, budget=5_000, most=50) == 5
    assert largest_batch(lambda n: 10**9 * n, budget=10_000, most=50) == 0


def test_neighbour_paths(linear):
    model, image = linear
    results = {p: onnxattr.lam(model, image, (6, 6, 8), steps=8, path=p).isel(window=0) for p in PATHS}
    grad = results["gradient"]
    assert "baseline" not in grad and np.isnan(float(grad["completeness_error"])) and grad.attrs["batch_size"] == 1
    # the plain gradient: d D / d I by autograd directly
    x = image.clone().requires_grad_(True)
    gradient_detector(model(x), onnxattr.Window(6, 6, 8)).sum().backward()
    np.testing.assert_allclose(grad["attribution"].values, x.grad[0].numpy(), rtol=1e-5, atol=1e-7)
    assert float(results["ig_black"]["baseline"].max()) == 0.0
    for p in ("lam", "ig_blur", "ig_black"):
        assert float(results[p]["completeness_error"]) < 0.2
        assert 0 < float(results[p]["diffusion_index"]) < 100


def test_cli_writes_result_that_reopens_and_draws(tmp_path, linear):
    model, image = linear
    from PIL import Image

    png = tmp_path / "in.png"
    Image.fromarray((image[0].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(png)
    out, fig = tmp_path / "r.nc", tmp_path / "r.png"
    runner = CliRunner()
    res = runner.invoke(cli, ["lam", str(model.path), str(png), "--window", "4", "6", "16", "--steps", "5",
                              "--batch-size", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = onnxattr.load(out)
    for var in ("input", "output", "attribution", "saliency", "baseline", "path_objective", "diffusion_index", "gini",
                "completeness_error"):
        assert var in ds
    assert ds["attribution"].dims == ("window", "channel", "y", "x") and ds["output"].shape == (3, 40, 40)
    assert ds["path_objective"].dims == ("window", "step") and ds.sizes["step"] == 6
    for attr in ("elapsed_s", "steps", "sigma", "kernel_size", "path", "batch_size", "memory_fraction", "window_frame"):
        assert attr in ds.attrs
    assert ds.attrs["method"] == "lam" and ds.attrs["steps"] == 5 and ds.attrs["batch_size"] == 2
    assert (ds.window_x.values.tolist(), ds.window_y.values.tolist(), ds.window_size.values.tolist()) == ([4], [6], [16])
    assert (ds.window_x_sr.values.tolist(), ds.window_y_sr.values.tolist()) == ([4], [6])  # offset 0: one frame
    np.testing.assert_allclose(ds["diffusion_index"], 100 * (1 - ds["gini"]))
    res = runner.invoke(cli, ["show", str(out), "-o", str(fig)])
    assert res.exit_code == 0, res.output
    assert fig.stat().st_size > 10_000


def test_default_cpu_batch_keeps_the_activations_in_the_budget(sample, monkeypatch):
    """On a CPU the default batch is at most CPU_MAX_BATCH points and CPU_BATCH_BYTES of forward + backward
    activations (n P(h, w) with P the model's counted law), so large images run a point or a few at a time."""
    import importlib

    from onnxattr.methods import memory

    L = importlib.import_module("onnxattr.methods.lam")
    model, image = sample
    h, w = image.shape[2:]
    per_point = memory.pass_peak(model, h, w)
    for budget, batch in ((3.5, 3), (0.5, 1), (100.0, L.CPU_MAX_BATCH)):
        monkeypatch.setattr(L, "CPU_BATCH_BYTES", int(budget * per_point))
        got = L.choose_batch(model, h, w, steps=20, path="lam", windows=1, batch_size=None, memory_fraction=0.5)
        assert got == batch, (budget, got)


# ------------------------------------------------------------------ the window's field as the passes' crop
class CornersNet(nn.Module):
    """conv 3 -> 3, bilinear x2 with align_corners: a finite field, but sampling positions that follow the input's
    size, so a crop computes other values than the whole image."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.c(x), scale_factor=2, mode="bilinear", align_corners=True)


@pytest.mark.parametrize("window", [(60, 40, 12), (87, 87, 12)])  # inside; the detector reads the last row, column
def test_field_crop_equals_the_authors_loop_on_the_whole_image(sample, window):
    """UpConv7's field is finite (14 px): the passes run on the crop the window's detector depends on, and the map
    equals the authors' loop on the whole 64x64 image, which is exactly 0 outside that crop."""
    model, _ = sample
    image = onnxattr.read_image(IMAGE)
    ds = onnxattr.lam(model, image, window, frame="sr", steps=10).isel(window=0)
    x0, y0, x1, y1 = ds.attrs["field_box"]
    assert (x1 - x0) * (y1 - y0) <= 0.75 * 64 * 64
    ref = reference_lam(model, image[0].double().numpy(), window, 10, 1.2, 9)
    got = ds["attribution"].values.astype(np.float64)
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-5
    outside = np.ones((64, 64), bool)
    outside[y0:y1, x0:x1] = False
    assert np.abs(ref[:, outside]).max() == 0 and np.abs(got[:, outside]).max() == 0
    whole = onnxattr.lam(model, image, window, frame="sr", steps=10, field_crop=False).isel(window=0)
    assert "field_box" not in whole.attrs and whole.attrs["field_crop"] == 0
    assert np.abs(whole["attribution"].values - got).max() / np.abs(got).max() < 1e-5
    for name in ("completeness_error", "objective_baseline", "objective_input"):
        assert float(ds[name]) == pytest.approx(float(whole[name]), rel=1e-5)
    np.testing.assert_allclose(ds["path_objective"], whole["path_objective"], rtol=1e-5)
    np.testing.assert_allclose(ds["output"], whole["output"], atol=1e-5)  # batch 1 against the last batch


def test_field_crop_declines_a_graph_that_computes_otherwise_on_a_crop(tmp_path):
    """align_corners resizes sample the crop elsewhere: the check on the image declines the crop, and the map is the
    whole image's."""
    model = onnxattr.load_model(nets_export(CornersNet(), tmp_path, "corners"))
    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    assert onnxattr.receptive_field(model).kind == "finite"
    got = onnxattr.lam(model, image, (36, 36, 8), frame="sr", steps=4)
    whole = onnxattr.lam(model, image, (36, 36, 8), frame="sr", steps=4, field_crop=False)
    assert "field_box" not in got.attrs
    np.testing.assert_array_equal(got["attribution"], whole["attribution"])


def test_field_crop_is_not_walked_beyond_the_memory_budget(sample, monkeypatch):
    """The box walk at the image's size needs a few passes' memory: where that is over the budget the passes run on
    the whole image (the same map)."""
    from onnxattr.methods.receptive_field import region

    model, _ = sample
    image = onnxattr.read_image(IMAGE.with_name("chelsea-128.png"))[:, :, :80, :80]  # over the probes' 4 x 32^2 px
    cropped = onnxattr.lam(model, image, (80, 60, 12), frame="sr", steps=4)
    monkeypatch.setattr(region, "WALK_PASSES", 1e9)
    whole = onnxattr.lam(model, image, (80, 60, 12), frame="sr", steps=4)
    assert "field_box" in cropped.attrs and "field_box" not in whole.attrs
    assert np.abs(whole["attribution"].values - cropped["attribution"].values).max() <= 1e-5 * np.abs(
        whole["attribution"].values).max()
