"""Effective and theoretical receptive fields (issue #25): the ERF of a stack of 3x3 convolutions (zero outside its
known 9 x 9 field, the map and radii against independent computations), the theoretical field of converted graphs
with strides, dilation, transposed convolution, pixel shuffle, resizes and pooling against each output pixel's
gradient support and against the chain recurrence, a global op as unbounded, the CLI, the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import onnxattr
from onnxattr.cli import cli, main
from onnxattr.methods.erf import erf
from onnxattr.methods.receptive_field import output_boxes, receptive_field
from onnxattr.methods.registry import layout_problems

from nets import export

ROOT = Path(__file__).resolve().parents[1]
IMAGES = [ROOT / "samples" / "images" / n for n in ("chelsea-64.png", "coffee-64.png", "astronaut-64.png")]


class ConvStack(nn.Module):
    """Four 3x3 convolutions (1 -> 4 channels, padding 1, LeakyReLU) and a pixel shuffle x2: each output pixel sees
    a 9 x 9 LR field."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1) for i in range(4)])
        self.ps = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = nn.functional.leaky_relu(c(x), 0.1)
        return self.ps(x)


class Strided(nn.Module):
    """conv 3x3 stride 2, conv 3x3 dilation 2, ConvTranspose 4x4 stride 2, conv 3x3, pixel shuffle x2: scale 2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 4, 3, dilation=2, padding=2)
        self.t = nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.ps = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ps(self.c(torch.tanh(self.t(torch.tanh(self.b(torch.tanh(self.a(x))))))))


class Resized(nn.Module):
    """conv 3x3, max pool 2, conv 3x3, bilinear x2, conv 3x3, nearest x2: scale 2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.tanh(self.a(x)), 2)
        h = nn.functional.interpolate(torch.tanh(self.b(h)), scale_factor=2, mode="bilinear", align_corners=False)
        return nn.functional.interpolate(self.c(h), scale_factor=2, mode="nearest")


class Squeeze(ConvStack):
    """ConvStack with a squeeze-and-excitation gate (global average pool): every output pixel sees the whole input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.convs[0](x), 0.1)
        h = h * torch.sigmoid(h.mean(dim=(2, 3), keepdim=True))
        return self.ps(self.convs[1](h))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("erf")


def load(folder: Path, net: nn.Module, name: str) -> onnxattr.SRModel:
    return onnxattr.load_model(export(net, folder, name, input_shape=(1, 1, 16, 16)))


def gray(n: int = 3, size: int = 24) -> torch.Tensor:
    return torch.cat([onnxattr.read_image(p, channels=1)[:, :, 20 : 20 + size, 20 : 20 + size] for p in IMAGES[:n]])


def support_sides(model, h: int, w: int) -> tuple[int, np.ndarray]:
    """The largest side of any output pixel's gradient support (the brute-force field) and each pixel's support box
    (H', W', 4: y0, y1, x0, x1), from the full Jacobian of a random input."""
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(3))
    jac = torch.autograd.functional.jacobian(lambda t: model(t)[0, 0], x, vectorize=True)[:, :, 0, 0]  # (H', W', h, w)
    nz = jac.abs() > 0
    rows, cols = nz.any(dim=3), nz.any(dim=2)
    boxes = np.zeros((*nz.shape[:2], 4))
    for name, axis in (("rows", rows), ("cols", cols)):
        idx = torch.arange(axis.shape[2])
        lo = torch.where(axis, idx, axis.shape[2]).amin(dim=2)
        hi = torch.where(axis, idx, -1).amax(dim=2)
        boxes[..., 0 if name == "rows" else 2] = lo.numpy()
        boxes[..., 1 if name == "rows" else 3] = hi.numpy()
    side = max((boxes[..., 1] - boxes[..., 0]).max(), (boxes[..., 3] - boxes[..., 2]).max()) + 1
    return int(side), boxes


def chain_rf(layers) -> int:
    """The receptive field of a chain of layers listed input -> output, from the output back: a conv (k, s, d) gives
    r <- s (r - 1) + d (k - 1) + 1, a transposed conv or upsampler (k, s, d, 'T') r <- floor((r - 1 + d (k - 1)) / s)
    + 1 (worst alignment); LAM_Demo's calculate_RF recurrence with dilation and upsampling added."""
    r = 1
    for k, s, d, *t in reversed(layers):
        r = (r - 1 + d * (k - 1)) // s + 1 if t else s * (r - 1) + d * (k - 1) + 1
    return r


# ------------------------------------------------------------------ theoretical field
@pytest.mark.parametrize("net, chain", [
    (ConvStack(), [(3, 1, 1)] * 4 + [(2, 2, 1, "T")]),
    (Strided(), [(3, 2, 1), (3, 1, 2), (4, 2, 1, "T"), (3, 1, 1), (2, 2, 1, "T")]),
    (Resized(), None),
])
def test_theoretical_field_is_each_pixels_gradient_support(folder, net, chain):
    model = load(folder, net, type(net).__name__)
    field = receptive_field(model)
    side, support = support_sides(model, 20, 20)
    boxes, _ = output_boxes(model, 20, 20)
    assert field.kind == "finite" and field.side == side
    np.testing.assert_array_equal(boxes.permute(1, 2, 0).numpy(), support)  # every pixel's box, borders included
    if chain is not None:
        assert field.side == chain_rf(chain)


def test_global_average_pool_is_unbounded_and_named(folder):
    field = receptive_field(load(folder, Squeeze(), "squeeze"))
    assert field.side == np.inf and field.kind == "unbounded"
    assert "ReduceMean" in field.note or "GlobalAveragePool" in field.note


def test_sample_field():
    upconv7 = onnxattr.load_model(ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx")
    # 6 valid 3x3 convolutions (13 px) and a 4x4 stride-2 transposed one (+1 at the worst alignment)
    assert receptive_field(upconv7).side == 14 == chain_rf([(3, 1, 1)] * 6 + [(4, 2, 1, "T")])


# ------------------------------------------------------------------ ERF
@pytest.fixture(scope="module")
def stack(folder):
    return load(folder, ConvStack(), "stack")


def test_erf_of_a_conv_stack(stack):
    images = gray()
    ds = erf(stack, images)
    assert layout_problems(ds) == []
    # independent: the torch module, one image at a time, |d out[centre] / d x| summed over channels, averaged
    net = ConvStack().eval()
    h, w = images.shape[2:]
    y0, x0 = h, w  # the centre of the 2h x 2w output: (H' // 2, W' // 2)
    maps = []
    for x in images:
        x = x[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x)[0, :, y0, x0].sum(), x)
        maps.append(g.abs().sum(dim=(0, 1)).numpy())
    expected = np.mean(maps, axis=0)
    np.testing.assert_allclose(ds["erf"].values[0], expected, rtol=1e-5, atol=1e-7)
    # the output pixel (2 i + a) sees LR rows i - 4 .. i + 4: zero outside, the box and nothing outside it
    i = y0 // 2
    box = ds["receptive_box"].values[0]
    np.testing.assert_array_equal(box, [i - 4, i - 4, i + 4, i + 4])
    outside = np.ones_like(expected, dtype=bool)
    outside[i - 4 : i + 5, i - 4 : i + 5] = False
    assert ds["erf"].values[0][outside].max() == 0 and ds["erf"].values[0][~outside].min() > 0
    assert float(ds["outside_share"][0]) == 0 and ds.attrs["receptive_field"] == 9
    # radii: the smallest distance from the centre (i - 0.25 ... the window centre in LR pixel centres) holding t
    cy = cx = (y0 + 0.5) / 2 - 0.5
    rows, cols = np.mgrid[0:h, 0:w]
    dist = np.hypot(cols - cx, rows - cy)
    for t, name in ((0.2, "erf_r20"), (0.5, "erf_r50"), (0.95, "erf_r95")):
        r = min(d for d in np.unique(dist) if expected[dist <= d].sum() >= t * expected.sum())
        assert float(ds[name][0]) == pytest.approx(r)


def test_erf_point_window_grid_and_smoothing(stack):
    images = gray(2, 16)
    point = erf(stack, images, point=(9, 7), frame="sr")
    window = erf(stack, images, [(9, 7, 1)], frame="sr")
    np.testing.assert_array_equal(point["erf"].values, window["erf"].values)
    two = erf(stack, images, [(9, 7, 1), (20, 20, 3)], frame="sr", batch_size=1)
    np.testing.assert_allclose(two["erf"].values[0], point["erf"].values[0], rtol=1e-6)
    # a 3x3 window reaches one LR pixel further on each side than one of its pixels
    assert np.ptp(two["receptive_box"].values[1][[0, 2]]) >= 0
    grid = erf(stack, images, onnxattr.Grid(8), frame="sr")
    assert grid.sizes["window"] == 16 and np.isfinite(grid["erf_r95"].values).all()  # 4 x 4 tiles of 8 px reach the edge
    # SmoothGrad: each image's map is the mean over its noisy copies (the seed's noise), then the mean over images
    smooth = erf(stack, images, point=(9, 7), frame="sr", smooth=3, noise=0.1, seed=4)
    noise = torch.randn((2, 3, 1, 16, 16), generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.1
    copies = (images.double()[:, None] + noise).reshape(6, 1, 16, 16)
    each = erf(stack, copies.float(), point=(9, 7), frame="sr")
    plain = np.stack([erf(stack, c[None], point=(9, 7), frame="sr")["erf"][0].values for c in copies.float()])
    np.testing.assert_allclose(smooth["erf"].values[0], plain.mean(0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(each["erf"].values[0], plain.mean(0), rtol=1e-5, atol=1e-8)
    var = erf(stack, images, point=(9, 7), frame="sr", smooth=3, noise=0.1, seed=4, smooth_type="vargrad")
    per = plain.reshape(2, 3, 16, 16)
    # VarGrad of the per-channel maps (one channel here): the variance over each image's copies, then the mean
    np.testing.assert_allclose(var["erf"].values[0], per.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-9)


def test_erf_cli_and_figures(tmp_path, folder, stack, capsys):
    path = export(ConvStack(), folder, "cli", input_shape=(1, 1, 16, 16))
    imgs = [str(p) for p in IMAGES]
    run = CliRunner().invoke
    out = tmp_path / "e.nc"
    r = run(cli, ["erf", str(path), "--images", *imgs, "--size", "24", "24", "--point", "20", "22", "--frame", "sr",
                  "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    ds = onnxattr.load(out)
    assert int(ds.window_x_sr[0]) == 20 and ds.attrs["image_count"] == 3
    for args in (["--panels", "input,erf,papers,linear"], []):
        fig = tmp_path / f"e{len(args)}.png"
        assert run(cli, ["show", str(out), "-o", str(fig), *args]).exit_code == 0 and fig.stat().st_size > 0
    grid = tmp_path / "g.nc"
    assert run(cli, ["erf", str(path), "--images", *imgs, "--size", "24", "24", "--grid", "16", "-o", str(grid)]).exit_code == 0
    both = tmp_path / "both.png"
    assert run(cli, ["show", str(grid), "-o", str(tmp_path / "atlas.png")]).exit_code == 0
    assert run(cli, ["show", str(out), str(out), "-o", str(both)]).exit_code == 0 and both.stat().st_size > 0
    # one-line errors, exit 2, no file
    bad = tmp_path / "bad.nc"
    for args, text in (
        (["--images", *imgs, "--point", "3", "3", "--window", "3", "3", "2"], "not both"),
        (["--images", imgs[0], str(ROOT / "samples" / "images" / "chelsea-128.png")], "--size H W"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["erf", str(path), *args, "-o", str(bad)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and text in err and len(err.strip().splitlines()) == 1 and not bad.exists(), err
