"""L2X (issue #4): DeepLIFT-Rescale equivalence, completeness on samples and the spandrel zoo,
per-rule completeness properties, the paper's masking fidelity check, errors, CLI and figure."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import onnxattr
from onnxattr.methods.blur import blur
from onnxattr.errors import OnnxAttrError
from onnxattr.methods.l2x import NoRuleError, l2x, rule_coverage
from onnxattr.methods.l2x.primitives import Pair, linear, rescale
from onnxattr.methods.l2x.rules import RULES, NodeCall
from onnxattr.metrics.masking import mask_pixels, pixel_order
from onnxattr.metrics.quality import psnr

from nets import export

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
IMAGE = SAMPLES / "images" / "chelsea-64.png"
TOL = 1e-4


def crop(model, size: int = 24, at: tuple[int, int] = (20, 12)) -> torch.Tensor:
    image = onnxattr.read_image(IMAGE, channels=model.in_channels)
    h, w = model.fixed_size or (size, size)
    return image[:, :, at[1] : at[1] + h, at[0] : at[0] + w]


def centre_window(model, image: torch.Tensor) -> tuple[int, int, int]:
    oh, ow = model.output_size(image.shape[2], image.shape[3])
    size = min(oh, ow) // 3
    return ((ow - size) // 2, (oh - size) // 2, size)


# ------------------------------------------------------------------ DeepLIFT-Rescale equivalence
class RectifierNet(nn.Module):
    """conv, ReLU, conv, LeakyReLU, conv + skip (add), pixel shuffle x2: only conv/add/ReLU/LeakyReLU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.ReLU()
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.act2 = nn.LeakyReLU(0.2)
        self.tail = nn.Conv2d(8, 12, 3, padding=1)
        self.skip = nn.Conv2d(3, 12, 1)
        self.ps = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.head(x))
        return self.ps(self.tail(self.act2(self.mid(h))) + self.skip(x))


class WindowSum(nn.Module):
    """The 'sum' target of a window as a module output (N,), for Captum."""

    def __init__(self, net: nn.Module, window: tuple[int, int, int]) -> None:
        super().__init__()
        self.net, self.window = net, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, y0, s = self.window
        return self.net(x)[:, :, y0 : y0 + s, x0 : x0 + s].sum(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def rectifier(tmp_path_factory):
    net = RectifierNet().eval()
    return net, onnxattr.load_model(export(net, tmp_path_factory.mktemp("rect"), "rect"))


def test_equals_captum_deeplift_rescale(rectifier):
    from captum.attr import DeepLift

    net, model = rectifier
    image = crop(model, 20)
    window = (10, 12, 12)
    ds = l2x(model, image, window, target="sum").isel(window=0)
    x = image.double()
    baseline = blur(x, 1.2, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = DeepLift(WindowSum(net.double(), window), eps=1e-12).attribute(x, baselines=baseline)[0].detach().numpy()
    got = ds["attribution"].values
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL * np.abs(expected).max())
    assert np.abs(expected).max() > 1e-3
    assert float(ds["completeness_error"]) < 1e-6


# ------------------------------------------------------------------ completeness: samples and zoo
@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.onnx")), ids=lambda p: Path(p).stem)
def test_completeness_on_sample_models(path):
    model = onnxattr.load_model(path)
    image = crop(model, 32)
    ds = l2x(model, image, centre_window(model, image), frame="sr").isel(window=0)
    assert rule_coverage(model)["missing"] == []
    assert float(ds["completeness_error"]) < TOL
    delta = float(ds["target_value"]) - float(ds["target_reference_value"])
    assert abs(delta) > 1e-3
    np.testing.assert_allclose(ds["attribution"].sum(), delta, rtol=TOL)


def _zoo() -> dict[str, callable]:
    from spandrel.architectures.DAT.__arch.DAT import DAT
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet
    from spandrel.architectures.HAT.__arch.HAT import HAT
    from spandrel.architectures.OmniSR.__arch.OmniSR import OmniSR
    from spandrel.architectures.RCAN.__arch.rcan_arch import RCAN
    from spandrel.architectures.SwinIR.__arch.SwinIR import SwinIR

    return {
        "SwinIR": lambda: SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                                 upscale=2, upsampler="pixelshuffledirect"),
        "HAT": lambda: HAT(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, compress_ratio=3,
                           squeeze_factor=4, mlp_ratio=2.0, upscale=2, num_feat=8),
        "DAT": lambda: DAT(img_size=16, embed_dim=32, split_size=[2, 4], depth=[2], num_heads=[2],
                           expansion_factor=2.0, upscale=2),
        "OmniSR": lambda: OmniSR(num_feat=16, block_num=1, window_size=4, res_num=1, up_scale=2),
        "RCAN": lambda: RCAN(scale=2, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4, rgb_range=1),
        "ESRGAN": lambda: RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2),
    }


@pytest.mark.parametrize("arch", ["SwinIR", "HAT", "DAT", "OmniSR", "RCAN", "ESRGAN"])
def test_completeness_on_spandrel_zoo(arch, tmp_path):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = _zoo()[arch]().eval()
        path = export(net, tmp_path, arch, dynamic=False)
        model = onnxattr.load_model(path)
    image = crop(model)
    ds = l2x(model, image, centre_window(model, image), frame="sr").isel(window=0)
    coverage = rule_coverage(model)
    assert coverage["missing"] == [] and coverage["approximate"] == []
    assert float(ds["completeness_error"]) < TOL, coverage
    with torch.no_grad():
        np.testing.assert_allclose(ds["output"].values, model(image)[0].numpy(), atol=1e-5)


# ------------------------------------------------------------------ per-rule properties
def _node(op: str, fn, **attrs) -> NodeCall:
    return NodeCall(name=op.lower(), op_type=op, fn=fn, attrs=attrs, opset=17)


def _weights(shape: torch.Size, seed: int = 1) -> torch.Tensor:
    """Random upstream multipliers m_out for a rule's output."""
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _check_rule(node: NodeCall, args: list) -> list[torch.Tensor | None]:
    """sum over varying inputs of m * Delta h == sum of w * Delta y for random upstream weights w, to 1e-7 of
    sum |w Delta y| (exact up to the midpoint fallback's O(Delta h^3) where |Delta h| <= 1e-3 |h|)."""
    for a in args:
        if isinstance(a, Pair):
            a.x.requires_grad_(True)
    out = RULES[node.op_type](node, args)
    w = _weights(out.ref.shape)
    pairs = [a for a in args if isinstance(a, Pair)]
    grads = torch.autograd.grad((out.x * w).sum(), [p.x for p in pairs], allow_unused=True)
    total = sum(float((g * p.delta).sum()) for g, p in zip(grads, pairs) if g is not None)
    want = float((w * (out.x.detach() - out.ref)).sum())
    scale = float((w.abs() * (out.x.detach() - out.ref).abs()).sum()) + 1e-12
    assert abs(total - want) <= 1e-7 * scale + 1e-12, (node.op_type, total, want)
    return list(grads)


def _pair(seed: int, shape: tuple[int, ...], spread: float, positive: bool = False) -> Pair:
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(shape, dtype=torch.float64, generator=g)
    x = ref + spread * torch.randn(shape, dtype=torch.float64, generator=g)
    if positive:
        x, ref = x.abs() + 0.1, ref.abs() + 0.1
    return Pair(x, ref)


spreads = st.sampled_from([1.0, 1e-2, 1e-6, 0.0])
seeds = st.integers(0, 10_000)

UNARY = {
    "Relu": torch.relu, "LeakyRelu": nn.LeakyReLU(0.1), "Sigmoid": torch.sigmoid, "Tanh": torch.tanh,
    "Erf": torch.erf, "Exp": torch.exp, "Abs": torch.abs, "Softplus": nn.functional.softplus,
    "Clip": lambda t: t.clamp(-0.5, 0.7), "HardSwish": nn.functional.hardswish, "Elu": nn.functional.elu,
    "ThresholdedRelu": lambda t: torch.where(t > 0.3, t, torch.zeros_like(t)),
}


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(sorted(UNARY)), seed=seeds, spread=spreads)
def test_elementwise_rules_complete(op, seed, spread):
    _check_rule(_node(op, UNARY[op]), [_pair(seed, (2, 3, 4), spread)])


@settings(max_examples=15, deadline=None)
@given(op=st.sampled_from(["Sqrt", "Log", "Reciprocal"]), seed=seeds, spread=spreads)
def test_positive_domain_rules_complete(op, seed, spread):
    fn = {"Sqrt": torch.sqrt, "Log": torch.log, "Reciprocal": torch.reciprocal}[op]
    _check_rule(_node(op, fn), [_pair(seed, (3, 5), spread, positive=True)])


@settings(max_examples=20, deadline=None)
@given(seed=seeds, spread=spreads, which=st.sampled_from(["Mul", "MatMul", "Einsum", "Div", "Pow", "Max", "Min"]))
def test_binary_rules_complete(seed, spread, which):
    a = _pair(seed, (2, 3, 4), spread, positive=which in ("Div", "Pow"))
    b = _pair(seed + 1, (2, 4, 4) if which in ("MatMul", "Einsum") else (1, 3, 4), spread, positive=which == "Div")
    fns = {
        "Mul": (torch.mul, [a, b]), "MatMul": (torch.matmul, [a, b]),
        "Einsum": (lambda p, q: torch.einsum("bij,bjk->bik", p, q), [a, b]),
        "Div": (torch.div, [a, b]), "Pow": (torch.pow, [a, torch.tensor(1.7, dtype=torch.float64)]),
        "Max": (torch.maximum, [a, b]), "Min": (torch.minimum, [a, b]),
    }
    fn, args = fns[which]
    _check_rule(_node(which, fn), args)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, spread=spreads, which=st.sampled_from(
    ["Softmax", "LayerNormalization", "InstanceNormalization", "ReduceMax", "ReduceMin", "MaxPool", "MaxPoolSame",
     "GlobalMaxPool",
     "ReduceL2", "ReduceSumSquare"]))
def test_composite_rules_complete(seed, spread, which):
    h = _pair(seed, (1, 3, 6, 5), spread)
    scale = torch.linspace(0.5, 1.5, 5 if which == "LayerNormalization" else 3, dtype=torch.float64)
    node = {
        "Softmax": _node("Softmax", None, axis=-1),
        "LayerNormalization": _node("LayerNormalization", None, axis=-1, epsilon=1e-5),
        "InstanceNormalization": _node("InstanceNormalization", None, epsilon=1e-5),
        "ReduceMax": _node("ReduceMax", None, axes=[1, 3], keepdims=0),
        "ReduceMin": _node("ReduceMin", None, axes=[2], keepdims=1),
        "MaxPool": _node("MaxPool", None, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        "MaxPoolSame": _node("MaxPool", None, kernel_shape=[2, 3], strides=[2, 1], auto_pad="SAME_UPPER"),
        "GlobalMaxPool": _node("GlobalMaxPool", None),
        "ReduceL2": _node("ReduceL2", None, axes=[-1], keepdims=1),
        "ReduceSumSquare": _node("ReduceSumSquare", None, axes=[1], keepdims=0),
    }[which]
    args = [h, scale, scale - 1] if which.endswith("Normalization") else [h]
    _check_rule(node, args)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, spread=st.sampled_from([3.0, 10.0, 30.0]))
def test_softmax_multipliers_stay_bounded_when_logits_are_far_apart(seed, spread):
    """Logits differing by up to D between the sides: complete, and |m| <= (1 + n (2 + D + log n)) max |w|
    for upstream weights w (exp slopes <= 1, log slope <= 1 + D + log n). A product e * (1/s) split gives ~e^D here."""
    h = _pair(seed, (2, 3, 6), spread)
    (m,) = _check_rule(_node("Softmax", None, axis=-1), [h])
    n, d = h.ref.shape[-1], float(h.delta.abs().max())
    w_max = float(_weights(h.ref.shape).abs().max())  # the m_out _check_rule propagated (Softmax keeps the shape)
    assert float(m.abs().max()) <= (1 + n * (2 + d + np.log(n))) * w_max


@settings(max_examples=20, deadline=None)
@given(seed=seeds, spread=st.sampled_from([10.0, 1.0, 1e-2, 1e-6, 0.0]))
def test_softmax_rule_equals_its_chain_of_primitives(seed, spread):
    """The closed-form Softmax backward = the chain z = h - c, exp, sum, log, exp(z - L) run through the primitives."""
    h = _pair(seed, (2, 3, 7), spread)
    w = _weights(h.ref.shape, seed=2)

    def chain(h: Pair) -> Pair:
        with torch.no_grad():
            shift = torch.maximum(h.x.amax(-1, keepdim=True), h.ref.amax(-1, keepdim=True))
        z = linear(lambda t: t - shift, h)
        log_sum = rescale(torch.log, linear(lambda t: t.sum(-1, keepdim=True), rescale(torch.exp, z)))
        return rescale(torch.exp, linear(torch.sub, z, log_sum))

    def multipliers(rule) -> torch.Tensor:
        x = h.x.detach().clone().requires_grad_(True)
        out = rule(Pair(x, h.ref))
        torch.testing.assert_close(out.x, torch.softmax(x, -1))
        return torch.autograd.grad((out.x * w).sum(), x)[0]

    fused = multipliers(lambda p: RULES["Softmax"](_node("Softmax", None, axis=-1), [p]))
    torch.testing.assert_close(fused, multipliers(chain), rtol=1e-9, atol=1e-12 * float(fused.abs().max()))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, spread=spreads, which=st.sampled_from(
    ["GroupNormalization18", "GroupNormalization21", "MeanVarianceNormalization", "LpNormalization", "LpNormalization1"]))
def test_normalization_rules_complete_and_reproduce_the_op(seed, spread, which):
    """GroupNormalization (scale per group at opset 18, per channel at 21), MeanVarianceNormalization and
    LpNormalization (p = 2 and 1): complete, and their chains compute the op (F.group_norm, ONNX's MVN, F.normalize)."""
    h = _pair(seed, (1, 4, 5, 3), spread)
    per_group = torch.tensor([0.5, 1.5], dtype=torch.float64)
    per_channel = torch.linspace(0.5, 1.5, 4, dtype=torch.float64)
    d = h.x - h.x.mean((0, 2, 3), keepdim=True)
    cases = {
        "GroupNormalization18": ([h, per_group, per_group - 1], nn.functional.group_norm(
            h.x, 2, per_group.repeat_interleave(2), (per_group - 1).repeat_interleave(2), eps=1e-5), {"num_groups": 2}),
        "GroupNormalization21": ([h, per_channel, per_channel - 1], nn.functional.group_norm(
            h.x, 2, per_channel, per_channel - 1, eps=1e-5), {"num_groups": 2}),
        "MeanVarianceNormalization": ([h], d / (d.square().mean((0, 2, 3), keepdim=True).sqrt() + 1e-9), {}),
        "LpNormalization": ([h], nn.functional.normalize(h.x, dim=1, eps=0), {"axis": 1}),
        "LpNormalization1": ([h], nn.functional.normalize(h.x, p=1, dim=-1, eps=0), {"axis": -1, "p": 1}),
    }
    args, want, attrs = cases[which]
    node = _node(which.rstrip("0123456789"), None, **attrs)
    torch.testing.assert_close(RULES[node.op_type](node, args).x, want, msg=which)
    _check_rule(node, args)


def test_composite_rules_reproduce_the_op():
    """The exact chains compute the op itself (values, not only differences)."""
    h = _pair(5, (1, 3, 7, 6), 1.0)
    cases = {
        "Softmax": (_node("Softmax", None, axis=1), [h], torch.softmax(h.x, 1)),
        "LayerNormalization": (_node("LayerNormalization", None, axis=-2, epsilon=1e-5), [h],
                               nn.functional.layer_norm(h.x, (7, 6), eps=1e-5)),
        "MaxPool": (_node("MaxPool", None, kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1]), [h],
                    nn.functional.max_pool2d(nn.functional.pad(h.x, (0, 1, 1, 1), value=-np.inf), (3, 2), (2, 1))),
        "ReduceMax": (_node("ReduceMax", None, axes=[1, 2], keepdims=1), [h], h.x.amax((1, 2), keepdim=True)),
    }
    for op, (node, args, want) in cases.items():
        torch.testing.assert_close(RULES[op](node, args).x, want, msg=op)
    same = _node("MaxPool", None, kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_LOWER")  # pads by hand: 7 -> 4
    want = nn.functional.max_pool2d(nn.functional.pad(h.x, (1, 0, 1, 1), value=-np.inf), (3, 2), (2, 1))  # 6 -> 6
    torch.testing.assert_close(RULES["MaxPool"](same, [h]).x, want, msg="MaxPool SAME_LOWER")


# ------------------------------------------------------------------ fidelity (paper Sec. 4.2)
def test_masking_top_l2x_pixels_hurts_more_than_random():
    model = onnxattr.load_model(SAMPLES / "waifu2x-upresnet10-x2.ts17.onnx")
    image = onnxattr.read_image(IMAGE, channels=3)[:, :, 8:56, 8:56]
    oh, ow = model.output_size(48, 48)
    window = (8, 8, min(oh, ow) - 17)
    ds = l2x(model, image, window, frame="sr").isel(window=0)
    x, y, s = window
    sr = model.run_ort(image.numpy())[0][:, y : y + s, x : x + s]
    lr = image[0].numpy()

    def window_psnr(order: np.ndarray) -> float:
        out = model.run_ort(mask_pixels(lr, order, 0.10)[None])[0][:, y : y + s, x : x + s]
        return psnr(out, sr)

    ranked = window_psnr(pixel_order(ds["attribution"].values))
    randoms = [window_psnr(np.random.default_rng(seed).permutation(lr.shape[1] * lr.shape[2])) for seed in range(5)]
    assert all(ranked < r for r in randoms), (ranked, randoms)


# ------------------------------------------------------------------ errors, options, dataset
class RoundNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv2d(3, 12, 3, padding=1)
        self.ps = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ps(torch.round(self.c(x) * 8) / 8)


def test_op_without_rule_is_a_named_error_unless_gradient_opted_in(tmp_path):
    model = onnxattr.load_model(export(RoundNet(), tmp_path, "round"))
    image = crop(model, 16)
    assert rule_coverage(model)["missing"] == ["Round"]
    with pytest.raises(NoRuleError, match=r"Round.*unknown_ops='gradient'"):
        l2x(model, image, (4, 4, 8))
    with pytest.warns(UserWarning, match="plain gradient for ONNX op Round"):
        ds = l2x(model, image, (4, 4, 8), unknown_ops="gradient").isel(window=0)
    assert ds.attrs["gradient_ops"] == "Round"
    assert float(ds["completeness_error"]) > 0.5  # Round's gradient is 0: the cost shows


def test_dataset_layout_targets_and_positive_negative_split(rectifier):
    _, model = rectifier
    image = crop(model, 16)
    ds = l2x(model, image, target="pixel", pixel=(13, 12, 1), sigma=2.0, kernel_size=7).isel(window=0)
    a, pos, neg = (ds[v].values for v in ("attribution", "attribution_pos", "attribution_neg"))
    np.testing.assert_allclose(pos + neg, a, atol=1e-12)
    dx = ds["input"].values - ds["baseline"].values
    assert np.all(pos[dx < 0] == 0) and np.all(neg[dx > 0] == 0)
    np.testing.assert_allclose(ds["baseline"].values, blur(image, 2.0, 7)[0].numpy(), atol=1e-7)
    assert float(ds["target_value"]) == pytest.approx(float(ds["output"].values[1, 12, 13]), abs=1e-6)
    assert (ds.attrs["method"], ds.attrs["target"], ds.attrs["kernel_size"]) == ("l2x", "pixel", 7)
    assert float(ds["completeness_error"]) < 1e-6
    with pytest.raises(OnnxAttrError, match="pixel"):
        l2x(model, image, target="pixel")
    with pytest.raises(OnnxAttrError, match="explains one output value: drop the window"):
        l2x(model, image, (6, 6, 10), target="pixel", pixel=(13, 12))
    summed = l2x(model, image, target="pixel", pixel=(13, 12)).isel(window=0)  # all channels of one pixel
    assert float(summed["target_value"]) == pytest.approx(float(ds["output"].values[:, 12, 13].sum()), abs=1e-6)
    assert (int(summed.window_x_sr), int(summed.window_y_sr), int(summed.window_size)) == (13, 12, 1)
    f32 = l2x(model, image, (6, 6, 10), target="sum", dtype=torch.float32)
    f64 = l2x(model, image, (6, 6, 10), target="sum")
    np.testing.assert_allclose(f32["attribution"].values, f64["attribution"].values, atol=1e-4)


def test_cli_writes_netcdf_and_figure(tmp_path):
    from click.testing import CliRunner

    from onnxattr.cli import cli

    out, png = tmp_path / "l2x.nc", tmp_path / "l2x.png"
    model = SAMPLES / "waifu2x-upconv7-x2.ts17.onnx"
    result = CliRunner().invoke(cli, ["l2x", str(model), str(IMAGE), "--window", "40", "40", "16", "--frame", "sr", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ds = onnxattr.load(out)
    assert ds.attrs["method"] == "l2x" and ds["completeness_error"].item() < TOL
    assert set(ds.data_vars) >= {"attribution", "attribution_pos", "attribution_neg", "baseline"}
    result = CliRunner().invoke(cli, ["show", str(out), "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 10_000
