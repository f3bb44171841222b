"""GL-AM: per-layer keys against a hand computation on a two-conv net, one backward per map,
map ranges, layer selection and layouts, the Dataset and the CLI."""

from __future__ import annotations

import importlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

import onnxattr
from nets import ShuffleNet, export
from onnxattr.cli import cli
from onnxattr.intake import NodeInfo
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector, gradient_map

G = importlib.import_module("onnxattr.methods.glam")  # the module; onnxattr.glam is the function
WINDOW = Window(10, 8, 6)


class ResNet(nn.Module):
    """conv a -> ReLU -> conv b, + a (skip) -> conv c -> pixel shuffle x2: conv a reaches conv c directly."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a, self.b, self.c = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        return F.pixel_shuffle(self.c(self.b(torch.relu(a)) + a), 2)


@pytest.fixture(scope="module")
def net_and_model(tmp_path_factory):
    net = ShuffleNet().eval()
    return net, onnxattr.load_model(export(net, tmp_path_factory.mktemp("glam"), "shuffle"))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def _hand_key(grad: torch.Tensor) -> np.ndarray:
    """sum_c mean(g_c) g_c in numpy float64."""
    g = grad[0].detach().double().numpy()
    return (g.mean(axis=(1, 2))[:, None, None] * g).sum(axis=0)


def _conv1_grad(net: ShuffleNet, h1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """d/d h1 through ReLU and conv 2 by hand: conv_transpose(g2, w2) * [h1 > 0]."""
    return F.conv_transpose2d(g2, net.c2.weight, padding=1) * (h1 > 0)


def test_local_keys_equal_hand_computation(net_and_model, image):
    net, model = net_and_model
    layers, skipped = G.choose_layers(model, ["Conv"], None)
    assert [l.node.op_type for l in layers] == ["Conv", "Conv"] and skipped == []
    out, (keys,) = G.local_keys(model, image, layers, [WINDOW])

    with torch.no_grad():
        h1 = net.c1(image)
        h2 = net.c2(torch.relu(h1))
    sr = F.pixel_shuffle(h2, 2).requires_grad_(True)
    (g_out,) = torch.autograd.grad(gradient_detector(sr, WINDOW).sum(), sr)
    g2 = F.pixel_unshuffle(g_out, 2)  # the shuffle only moves values
    g1 = _conv1_grad(net, h1, g2)
    for key, grad in zip(keys, (g1, g2)):
        want = _hand_key(grad)
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(key.numpy(), want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    torch.testing.assert_close(out, sr.detach(), rtol=1e-5, atol=1e-6)


def test_global_products_equal_hand_computation(net_and_model, image):
    net, model = net_and_model
    layers, _ = G.choose_layers(model, ["Conv"], None)
    (product,) = G.global_products(model, image, layers, (32, 32))

    with torch.no_grad():
        h1 = net.c1(image)
    h2 = net.c2(torch.relu(h1)).detach().requires_grad_(True)
    (g2,) = torch.autograd.grad(gradient_map(h2).sum(), h2)  # T_Global on the whole layer-2 map
    g1 = _conv1_grad(net, h1, g2)
    key = torch.from_numpy(_hand_key(g1))  # 8 channels vs 12: eq. 4 on channel sums
    up = lambda m: F.interpolate(m[None, None].double(), size=(32, 32), mode="bicubic", align_corners=False)[0, 0]
    want = up(h2.detach()[0].sum(0)) * up(key)
    torch.testing.assert_close(product, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))


def test_feature_product_elementwise_when_shapes_match():
    fea = torch.arange(8.0).reshape(1, 2, 2, 2)
    grad = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]], [[-1.0, -1.0], [-1.0, -1.0]]]])  # channel means 2, -1
    got = G.feature_product(fea, grad, (2, 2))
    want = fea[0, 0] * 2 * grad[0, 0] + fea[0, 1] * -1 * grad[0, 1]
    torch.testing.assert_close(got, want.double())


def _count_backwards(monkeypatch) -> list[int]:
    calls = [0]
    grad, backward = torch.autograd.grad, torch.Tensor.backward

    def counted_grad(*a, **k):
        calls[0] += 1
        return grad(*a, **k)

    def counted_backward(*a, **k):
        calls[0] += 1
        return backward(*a, **k)

    monkeypatch.setattr(torch.autograd, "grad", counted_grad)
    monkeypatch.setattr(torch.Tensor, "backward", counted_backward)
    return calls


def test_each_map_needs_one_backward(net_and_model, image, monkeypatch):
    _, model = net_and_model
    layers, _ = G.choose_layers(model, None, None)
    G.estimate(model, 16, 16, layers, windows=1)  # the memory law's own passes, once per model, before counting
    calls = _count_backwards(monkeypatch)
    G.local_keys(model, image, layers, [WINDOW])
    assert calls[0] == 1
    G.global_products(model, image, layers, (32, 32))
    assert calls[0] == 2
    onnxattr.glam(model, image, WINDOW.as_tuple())
    assert calls[0] == 4
    three = [WINDOW, Window(0, 0, 8), Window(20, 4, 6)]
    G.local_keys(model, image, layers, three)  # one forward, one backward per window
    assert calls[0] == 7


def test_consensus_and_variation_values():
    maps = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]], [[0.0, 0.5]]])
    torch.testing.assert_close(G.consensus(maps), torch.tensor([[1.0, 2.5]]))
    torch.testing.assert_close(G.variation(maps, "abs"), torch.tensor([[2.0, 0.5]]))
    torch.testing.assert_close(G.variation(maps, "signed"), torch.tensor([[0.0, -0.5]]))
    total, cons, var = G.glocal(maps, "abs")
    torch.testing.assert_close(cons, torch.tensor([[0.4, 1.0]]))
    torch.testing.assert_close(var, torch.tensor([[1.0, 0.25]]))
    torch.testing.assert_close(total, torch.tensor([[1.0, 1.25 / 1.4]]))
    total, _, var = G.glocal(maps, "signed")
    torch.testing.assert_close(var, torch.tensor([[0.0, -1.0]]))
    torch.testing.assert_close(total, torch.tensor([[1.0, 0.0]]))  # (0.4 + 0, 1 - 1) rescaled: min(., 0) = 0
    assert G.attributed_share(torch.tensor([[0.0, 0.0, 0.0, 1.0]])) == 0.25


def test_dataset_maps_in_unit_range_and_documented(net_and_model, image):
    _, model = net_and_model
    ds = onnxattr.glam(model, image, WINDOW.as_tuple()).isel(window=0)
    for name in ("local", "local_consensus", "local_variation", "local_layers", "global", "global_consensus",
                 "global_layers"):
        v = ds[name].values
        assert np.isfinite(v).all() and v.min() >= 0 and v.max() == pytest.approx(1.0, abs=1e-6), name
    assert (ds["global_variation"].values == 0).all()  # two layers: one pair, no change to accumulate
    assert ds["local_layers"].dims == ("layer", "Y", "X") and ds["global_layers"].dims == ("global_layer", "Y", "X")
    names = [n.name for n in model.select(op_types=["Conv"])]
    assert list(ds["layer"].values) == names and list(ds["op_type"].values) == ["Conv", "Conv"]
    assert list(ds["global_layer"].values) == names[1:] and list(ds["global_source"].values) == names[:-1]
    lr = G.to_lr(torch.from_numpy(ds["local"].values.astype(np.float64)), (16, 16))
    np.testing.assert_allclose(ds["attribution"].sum("channel").values, lr.numpy(), rtol=1e-5, atol=1e-7)
    assert ds["diffusion_index"] == pytest.approx(onnxattr.metrics.diffusion_index(lr), rel=1e-4)
    assert 0 < ds["attributed_share"] < 1 and ds.attrs["elapsed_s"] > 0
    # the local map lives around the window: nothing beyond two conv reaches (2 LR px = 4 SR px) of it
    far = ds["local"].values.copy()
    far[WINDOW.y - 6 : WINDOW.y + WINDOW.size + 6, WINDOW.x - 6 : WINDOW.x + WINDOW.size + 6] = 0
    assert far.max() < 0.05 * ds["local"].values.max()


def test_layer_selection_and_mixed_pairs(net_and_model, tmp_path):
    _, model = net_and_model
    second = model.select(op_types=["Conv"])[1].name
    with pytest.raises(onnxattr.OnnxAttrError, match="at least 2"):
        G.choose_layers(model, ["Conv"], pattern=f"^{second}$")
    with pytest.raises(onnxattr.OnnxAttrError):
        G.choose_layers(model, ["Gemm"], None)
    res = onnxattr.load_model(export(ResNet(), tmp_path, "res"))
    layers, _ = G.choose_layers(res, None, None)
    names = [l.name for l in layers]
    assert len(names) == 3 and G.mixed_pairs(res.graph, names) == [names[0]]


@pytest.mark.parametrize(
    "shape, want",
    [
        ((1, 16, 46, 62), ("nchw", 1, -2)),  # unpadded conv
        ((1, 3, 68, 100), ("nchw", 2, -28)),  # SR output with an offset
        ((1, 24, 32, 30), ("nhwc", 0.5, 0)),  # channel-last half resolution
        ((1, 48 * 64, 30), ("nlc", 1, 0)),  # tokens
        ((1, 16), None),  # Gemm on pooled channels
        ((48, 6, 64, 64), None),  # windowed attention matrices
        ((1, 6, 30, 3072), None),  # channel attention x values
    ],
)
def test_layouts_from_probe_shapes(shape, want):
    layer = G.layout_of(NodeInfo("n", "MatMul", "n", shape), (48, 64))
    assert (layer and (layer.layout, layer.ratio, layer.offset)) == want or (layer is None and want is None)


def test_token_layout_reshapes_row_major():
    layer = G.Layer(NodeInfo("n", "MatMul", "n", (1, 12, 5)), "nlc", 1, 0)
    grid = torch.arange(60.0).reshape(1, 5, 3, 4)
    tokens = grid.flatten(2).transpose(1, 2)
    torch.testing.assert_close(layer.spatial(tokens, (3, 4)), grid)


def test_cli_writes_netcdf_and_figure(net_and_model, tmp_path):
    net, _ = net_and_model
    model_file = export(net, tmp_path, "shuffle")
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "lr.png")
    out = tmp_path / "g.nc"
    res = CliRunner().invoke(
        cli, ["glam", str(model_file), str(tmp_path / "lr.png"), "--window", "10", "8", "6", "--layers", "Conv",
              "--variation", "signed", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    ds = onnxattr.load(out)
    assert {"local", "local_consensus", "local_variation", "local_layers", "global", "global_consensus",
            "global_variation", "global_layers", "attribution", "saliency", "input", "output"} <= set(ds.data_vars)
    assert ds.attrs["method"] == "glam" and ds.attrs["variation"] == "signed" and ds.attrs["layers"] == "Conv"
    assert ds.sizes["layer"] == 2 and ds["local_variation"].values.min() >= -1
    res = CliRunner().invoke(cli, ["show", str(out), "-o", str(tmp_path / "g.png")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "g.png").size[0] > 800


# ------------------------------------------------------------------ the sample models (CNN and transformer)
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _sample_run(name: str, crop: int, size: int = 12):
    model = onnxattr.load_model(SAMPLES / f"{name}.onnx")
    image = onnxattr.read_image(SAMPLES / "images" / "chelsea-64.png", channels=model.in_channels)[:, :, :crop, :crop]
    oh, ow = model.output_size(crop, crop)
    window = ((ow - size) // 2, (oh - size) // 2, size)
    return model, window, onnxattr.glam(model, image, window, frame="sr").isel(window=0)


@pytest.mark.parametrize(
    "name, crop, margin",
    [("waifu2x-upconv7-x2.ts17", 64, 1), ("dat-light-x2.dynamo", 32, 4)],
    ids=["cnn", "transformer"],
)
def test_last_layer_local_map_sits_on_the_window(name, crop, margin):
    """d T_ROI / d fea is zero wherever the last layer does not feed the window: waifu2x's last layer is the SR grid
    itself (the detector's forward differences reach 1 px beyond the window); DAT's last conv is on the LR grid and
    feeds the window through the pixel shuffle, so bicubic resizing (2 LR px each side) spreads it by 2 * scale."""
    with pytest.warns(UserWarning, match="skips") if name.startswith("dat") else nullcontext():
        model, (x, y, s), ds = _sample_run(name, crop)
    last = ds["local_layers"].isel(layer=-1).values
    inside = last[y - margin : y + s + margin, x - margin : x + s + margin].sum() / last.sum()
    assert inside > 0.99, inside
    assert all(float(ds[v].min()) >= 0 and float(ds[v].max()) == pytest.approx(1) for v in ("local", "global"))
    if name.startswith("dat"):  # token-layout MatMuls are explained, window-partitioned ones skipped
        assert "MatMul" in set(ds["op_type"].values) and ds.attrs["skipped_layers"] not in ("", "none")


def test_both_exporters_give_the_same_maps():
    """The TorchScript (opset 17) and dynamo (opset 20) graphs of one network: same layers, same maps."""
    runs = [_sample_run(f"waifu2x-upresnet10-x2.{kind}", 64)[2] for kind in ("ts17", "dynamo")]
    assert list(runs[0]["op_type"].values) == list(runs[1]["op_type"].values)
    for var in ("local", "global", "local_layers", "global_layers"):
        np.testing.assert_allclose(runs[0][var].values, runs[1][var].values, atol=1e-5, err_msg=var)


@pytest.mark.parametrize("size, windows", [(48, 1), (80, 3)])
def test_memory_estimate_matches_the_counted_peak(size, windows):
    """glam.estimate (the law of both passes fitted at 32x32, 32x64, 32x48, plus the maps of each further window)
    against the bytes of live tensors counted on the run itself, at sizes and window counts it was not fitted at."""
    from onnxattr.methods import memory

    model = onnxattr.load_model(SAMPLES / "waifu2x-upconv7-x2.ts17.onnx")
    layers, _ = G.choose_layers(model, None, None)
    x = torch.rand(1, 3, size, size)
    out = model.output_size(size, size)
    wins = [Window(8 * i, 8 * i, 16) for i in range(windows)]
    counted = memory.measure_peak(lambda: G.maps(model, x, layers, wins, out, "abs"))
    assert 0.95 < G.estimate(model, size, size, layers, windows=windows) / counted < 1.1
