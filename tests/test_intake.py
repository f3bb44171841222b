"""Model intake: a zoo of SR files as third parties write them (float16, channels-last, uint8/BGR with
pre/post-processing, size constraints, 0..255), each loaded, checked against a float32 NCHW twin and
run through LAM, L2X and GL-AM; and every refusal message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import onnxattr
from onnxattr import OnnxAttrError, load_model
from onnxattr.intake import load as load_module, session, sizes, verify
from onnxattr.intake import units as units_module
from onnxattr.cli import cli

from nets import export

MEAN = (0.45, 0.43, 0.40)


class TinySR(nn.Module):
    """Bilinear x2 plus a small learned-like residual (biases, ReLU): close to a bicubic upscale on a photo,
    as a trained SR model is, so the value range is detectable."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1)
        with torch.no_grad():
            self.c1.bias.uniform_(0.05, 0.3)
            self.c2.weight.mul_(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return up + 0.1 * nn.functional.pixel_shuffle(self.c2(torch.relu(self.c1(x))), 2)


class MeanSR(TinySR):
    """TinySR inside EDSR-style Sub mean / Add mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.tensor(MEAN).view(1, 3, 1, 1)
        return super().forward(x - m) + m


class Range255(TinySR):
    """TinySR fed and returning 0..255."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / 255.0) * 255.0


class UNetish(nn.Module):
    """A U-Net-like x2 net that needs even sides of at least 40 and crops inside: two 9x9 valid convs,
    a 2x2 average pool, 9x9 and 4x4 valid convs at half size, nearest x2, the skip cropped 11 px per
    side, concat, pixel shuffle: out = 2 * in - 76."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b = nn.Conv2d(3, 6, 9), nn.Conv2d(6, 6, 9)
        self.c, self.d = nn.Conv2d(6, 6, 9), nn.Conv2d(6, 6, 4)
        self.tail = nn.Conv2d(12, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(self.b(torch.relu(self.a(x))))
        low = self.d(torch.relu(self.c(nn.functional.avg_pool2d(skip, 2))))
        up = nn.functional.interpolate(low, scale_factor=2.0, mode="nearest")
        return nn.functional.pixel_shuffle(self.tail(torch.cat([skip[:, :, 11:-11, 11:-11], up], 1)), 2)


# ----------------------------------------------------------------- wrappers
def _wrap(twin: Path, out: Path, *, pre: list, post: list, inp: onnx.ValueInfoProto, outp: onnx.ValueInfoProto,
          inits: list | None = None) -> Path:
    """The twin's graph between ``pre`` nodes (ending in value 'input') and ``post`` nodes (from 'output')."""
    proto = onnx.load(twin)
    g = proto.graph
    nodes = pre + list(g.node) + post
    graph = helper.make_graph(nodes, "wrapped", [inp], [outp], initializer=list(g.initializer) + (inits or []))
    model = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name="wrapper")
    model.ir_version = proto.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, out)
    return out


def nhwc_file(twin: Path, out: Path) -> Path:
    """tf2onnx-like: (N, H, W, 3) in and out, Transposes to the NCHW body."""
    return _wrap(
        twin, out,
        pre=[helper.make_node("Transpose", ["x_nhwc"], ["input"], perm=[0, 3, 1, 2], name="to_nchw")],
        post=[helper.make_node("Transpose", ["output"], ["y_nhwc"], perm=[0, 2, 3, 1], name="to_nhwc")],
        inp=helper.make_tensor_value_info("x_nhwc", TensorProto.FLOAT, ["n", "h", "w", 3]),
        outp=helper.make_tensor_value_info("y_nhwc", TensorProto.FLOAT, ["n", "H", "W", 3]),
    )


def uint8_bgr_file(twin: Path, out: Path) -> Path:
    """uint8 BGR (N, H, W, 3) in and out, as an OpenCV pipeline: Cast, Div 255, Transpose, BGR -> RGB,
    the twin, RGB -> BGR, Transpose, Mul 255, Clip(0, 255), Round, Cast to uint8."""
    consts = [
        numpy_helper.from_array(np.array(255.0, np.float32), "k255"),
        numpy_helper.from_array(np.array([2, 1, 0], np.int64), "flip"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(255.0, np.float32), "hi"),
    ]
    pre = [
        helper.make_node("Cast", ["x_u8"], ["xf"], to=TensorProto.FLOAT, name="cast_in"),
        helper.make_node("Div", ["xf", "k255"], ["x01"], name="div255"),
        helper.make_node("Transpose", ["x01"], ["x_bgr"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Gather", ["x_bgr", "flip"], ["input"], axis=1, name="bgr_to_rgb"),
    ]
    post = [
        helper.make_node("Gather", ["output", "flip"], ["y_bgr"], axis=1, name="rgb_to_bgr"),
        helper.make_node("Transpose", ["y_bgr"], ["y_nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Mul", ["y_nhwc", "k255"], ["y255"], name="mul255"),
        helper.make_node("Clip", ["y255", "lo", "hi"], ["yc"], name="clip"),
        helper.make_node("Round", ["yc"], ["yr"], name="round"),
        helper.make_node("Cast", ["yr"], ["y_u8"], to=TensorProto.UINT8, name="cast_out"),
    ]
    return _wrap(
        twin, out, pre=pre, post=post, inits=consts,
        inp=helper.make_tensor_value_info("x_u8", TensorProto.UINT8, ["n", "h", "w", 3]),
        outp=helper.make_tensor_value_info("y_u8", TensorProto.UINT8, ["n", "H", "W", 3]),
    )


def uint8_in_file(twin: Path, out: Path) -> Path:
    """uint8 (N, H, W, 3) in, float (N, 3, H, W) 0..1 out: the pre-processing alone baked in (Cast, Div 255,
    Transpose), as exports that take camera frames do."""
    pre = [
        helper.make_node("Cast", ["x_u8"], ["xf"], to=TensorProto.FLOAT, name="cast_in"),
        helper.make_node("Div", ["xf", "k255"], ["x01"], name="div255"),
        helper.make_node("Transpose", ["x01"], ["input"], perm=[0, 3, 1, 2], name="to_nchw"),
    ]
    return _wrap(
        twin, out, pre=pre, post=[], inits=[numpy_helper.from_array(np.array(255.0, np.float32), "k255")],
        inp=helper.make_tensor_value_info("x_u8", TensorProto.UINT8, ["n", "h", "w", 3]),
        outp=helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "H", "W"]),
    )


def uint8_out_file(twin: Path, out: Path) -> Path:
    """float (N, 3, H, W) 0..1 in, uint8 (N, 3, H, W) out: the post-processing alone baked in (Mul 255, Clip,
    Round, Cast), as exports that write image files do."""
    consts = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("k255", 255.0), ("lo", 0.0), ("hi", 255.0))]
    post = [
        helper.make_node("Mul", ["output", "k255"], ["y255"], name="mul255"),
        helper.make_node("Clip", ["y255", "lo", "hi"], ["yc"], name="clip"),
        helper.make_node("Round", ["yc"], ["yr"], name="round"),
        helper.make_node("Cast", ["yr"], ["y_u8"], to=TensorProto.UINT8, name="cast_out"),
    ]
    return _wrap(
        twin, out, pre=[], post=post, inits=consts,
        inp=helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"]),
        outp=helper.make_tensor_value_info("y_u8", TensorProto.UINT8, ["n", 3, "H", "W"]),
    )


def fp16_file(twin: Path, out: Path, keep_io_types: bool) -> Path:
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(twin), keep_io_types=keep_io_types), out)
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("intake")
    tiny = export(TinySR(), d, "tiny")
    mean = export(MeanSR(), d, "mean")
    return {
        "tiny": tiny,
        "mean": mean,
        "fp16-weights": fp16_file(tiny, d / "fp16w.onnx", keep_io_types=True),
        "fp16-io": fp16_file(tiny, d / "fp16io.onnx", keep_io_types=False),
        "nhwc": nhwc_file(tiny, d / "nhwc.onnx"),
        "uint8-bgr": uint8_bgr_file(mean, d / "u8bgr.onnx"),
        "uint8-in": uint8_in_file(mean, d / "u8in.onnx"),
        "uint8-out": uint8_out_file(mean, d / "u8out.onnx"),
        "unet": export(UNetish(), d, "unet", input_shape=(1, 3, 48, 48)),
        "range255": export(Range255(), d, "r255"),
    }


@pytest.fixture(scope="module")
def loaded(zoo) -> dict[str, onnxattr.SRModel]:
    cache: dict[str, onnxattr.SRModel] = {}

    def get(key: str) -> onnxattr.SRModel:
        if key not in cache:
            cache[key] = load_model(zoo[key], channel_order="bgr" if key == "uint8-bgr" else "rgb")
        return cache[key]

    return get


def _image(model: onnxattr.SRModel, side: int = 48) -> torch.Tensor:
    x = onnxattr.read_image(Path(__file__).parent.parent / "samples" / "images" / "coffee-64.png")
    return x[:, :, :side, :side].contiguous()


# ------------------------------------------------------------- precision
def test_float16_files_attribute_through_a_float32_graph(zoo, loaded):
    twin = loaded("tiny")
    for key in ("fp16-weights", "fp16-io"):
        m = loaded(key)
        assert m.adapter.precision == "float16"
        assert m.adapter.input_dtype == ("float32" if key == "fp16-weights" else "float16")
        assert m.conversion_error < 1e-5  # the float32 graph vs onnxruntime on the upcast file
        # the float16 file itself in onnxruntime, against the float32 graph: float16 rounding, not zero
        assert 0 <= m.precision_gap < 1e-2
        assert all(n.op_type != "Cast" for n in m.nodes)  # the Cast pairs are gone
        # the upcast weights are the twin's rounded to float16: the graphs agree to float16 rounding
        x = _image(m)
        with torch.no_grad():
            torch.testing.assert_close(m(x), twin(x), rtol=0, atol=5e-3)
    # honest precision gap: ORT on the float16-I/O file vs ORT on the float32 twin, by hand
    sess16 = ort.InferenceSession(str(zoo["fp16-io"]), providers=["CPUExecutionProvider"])
    x = session.smooth_image(3, *loaded("fp16-io").probe_size)
    y16 = sess16.run(None, {"input": x.astype(np.float16)})[0].astype(np.float32)
    y32 = loaded("fp16-io").session.run(None, {loaded("fp16-io").spec.input_name: x})[0]
    gap = np.abs(y16 - y32).max() / np.abs(y32).max()
    assert loaded("fp16-io").precision_gap == pytest.approx(gap, rel=1e-6)


SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "waifu2x-upconv7-x2.ts17.onnx"


@pytest.mark.skipif(not SAMPLE.is_file(), reason="sample not built")
def test_float16_conversion_of_a_real_sample(tmp_path):
    m = load_model(fp16_file(SAMPLE, tmp_path / "upconv7-fp16.onnx", keep_io_types=False))
    assert (m.adapter.precision, m.adapter.input_dtype, m.value_range_source) == ("float16", "float16", "detected")
    assert m.conversion_error < 1e-5 and 1e-5 < m.precision_gap < 1e-2  # float16 rounding of the I/O and weights
    assert (m.scale, m.offset, m.size_rule.min_side) == (2, -28, 15)
    x = _image(m, 20)
    ds = onnxattr.l2x(m, x, (0, 0, 8), frame="sr")
    assert float(ds["completeness_error"].max()) < 1e-6 and ds.attrs["file_precision"] == "float16"
    with pytest.raises(OnnxAttrError, match=r"needs sides of at least 15; the image is 12x12: use an image with"):
        m.check_input(torch.rand(1, 3, 12, 12))


def test_upcast_graph_equals_onnxruntime_on_the_upcast_file(loaded, tmp_path):
    m = loaded("fp16-io")
    from onnxattr.intake import adapters

    core, _ = adapters.adapt(onnx.load(m.path), m.path.name)
    onnx.save(core, tmp_path / "core.onnx")
    sess = ort.InferenceSession(str(tmp_path / "core.onnx"), providers=["CPUExecutionProvider"])
    x = _image(m, 40)
    ref = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), ref, rtol=0, atol=1e-5)


# --------------------------------------------------------------- adapters
def test_channels_last_file_attributes_like_its_nchw_twin(loaded):
    m, twin = loaded("nhwc"), loaded("tiny")
    assert (m.adapter.input_layout, m.adapter.output_layout) == ("NHWC", "NHWC")
    assert "last dim 3" in m.adapter.reasons[0]
    assert m.in_channels == 3 and m.scale == 2 and m.precision_gap < 1e-6
    x = _image(m, 24)
    a = onnxattr.lam(m, x, (10, 12, 8), frame="sr", steps=8)
    b = onnxattr.lam(twin, x, (10, 12, 8), frame="sr", steps=8)
    np.testing.assert_allclose(a["attribution"].values, b["attribution"].values, rtol=1e-5, atol=1e-7)
    assert a.attrs["layout"] == "NHWC" and b.attrs["layout"] == "NCHW"


def test_uint8_bgr_file_with_pre_and_post_processing(loaded):
    m, twin = loaded("uint8-bgr"), loaded("mean")
    a = m.adapter
    assert (a.input_dtype, a.output_dtype, a.input_layout, a.channel_order) == ("uint8", "uint8", "NHWC", "bgr")
    assert a.removed == ("Cast", "Round", "Clip")
    assert m.value_range == 255 and m.value_range_source == "uint8 input"
    assert not {"Round", "Cast"} & {n.op_type for n in m.nodes}
    # the core is the float twin exactly (the wrapper's flips cancel ours; Div/Mul 255 cancel the value range)
    x = _image(m, 20)
    with torch.no_grad():
        torch.testing.assert_close(m(x), twin(x), rtol=1e-5, atol=1e-6)
    # the original file, fed uint8, differs only by its output rounding: at most half a step of 255
    assert m.precision_gap <= 0.5 / 255 / 0.9
    lx = onnxattr.l2x(m, x, (8, 8, 8), frame="sr")
    lt = onnxattr.l2x(twin, x, (8, 8, 8), frame="sr")
    assert float(lx["completeness_error"].max()) < 1e-6
    np.testing.assert_allclose(lx["attribution"].values, lt["attribution"].values, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("key, units, sources", [
    ("uint8-in", (255.0, 1.0), ("uint8 input", "detected")),
    ("uint8-out", (1.0, 255.0), ("detected", "uint8 output")),
])
def test_one_uint8_end_and_a_float_end(loaded, zoo, key, units, sources):
    """A file with pre- or post-processing alone: the uint8 end is 0..255, the float end's range is detected
    (the output's for a uint8 input, the input's for a uint8 output), and the core is the float twin."""
    m, twin = loaded(key), loaded("mean")
    assert (m.value_range, m.output_range) == units
    assert (m.value_range_source, m.output_range_source) == sources
    assert min(m.value_range_scores.values()) * units_module.CLEARLY < max(m.value_range_scores.values())
    x = _image(m, 20)
    with torch.no_grad():
        torch.testing.assert_close(m(x), twin(x), rtol=1e-5, atol=1e-6)
    assert m.precision_gap <= 0.5 / 255 / 0.9  # uint8 rounding at one end, nothing more
    lx = onnxattr.l2x(m, x, (8, 8, 8), frame="sr")
    assert float(lx["completeness_error"].max()) < 1e-6
    assert (lx.attrs["value_range"], lx.attrs["output_range"]) == units
    info = json.loads(CliRunner().invoke(cli, ["inspect", str(zoo[key]), "--json"]).output)
    assert (info["value_range"], info["output_range"], info["output_range_source"]) == (*units, sources[1])


def test_bgr_order_reverses_channels(zoo, loaded):
    rgb = load_model(zoo["mean"], channel_order="bgr")
    twin = loaded("mean")
    x = _image(twin, 16)
    with torch.no_grad():
        torch.testing.assert_close(rgb(x), twin(x.flip(1)).flip(1), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ value range
def test_value_range_is_detected(loaded, zoo):
    m = loaded("range255")
    assert (m.value_range, m.value_range_source) == (255.0, "detected")
    assert m.value_range_scores[1.0] > 10 * m.value_range_scores[255.0]
    t = loaded("tiny")
    # TinySR fed 0..255 is nearly TinySR again (ReLU nets are close to homogeneous): no clear answer, 1 kept
    assert (t.value_range, t.value_range_source) == (1.0, "default (undecided)")
    low, high = t.value_range_scores[1.0], t.value_range_scores[255.0]
    assert max(low, high) < units_module.CLEARLY * min(low, high)
    x = _image(m, 16)
    with torch.no_grad():
        torch.testing.assert_close(m(x), t(x), rtol=1e-5, atol=1e-5)  # Range255 is TinySR in 0..255 units
    with pytest.warns(UserWarning, match=r"value range 1 given, but on a photo the output with 255 is \d+x closer"):
        given = load_model(zoo["range255"], value_range=1)
    assert given.value_range_source == "given"


# ---------------------------------------------------------------- shapes
def test_size_constraints_are_learned_and_checked(loaded):
    m = loaded("unet")
    assert (m.scale, m.offset) == (2, -76)
    assert (m.size_rule.min_side, m.size_rule.multiple) == (40, 2)
    assert m.size_rule.describe() == "even sides of at least 40"
    with pytest.raises(OnnxAttrError) as err:
        m.check_input(torch.rand(1, 3, 50, 37))
    assert str(err.value) == "unet.onnx needs even sides of at least 40; the image is 37x50: use an image with sides of at least 40"
    with pytest.raises(OnnxAttrError) as err:
        m.check_input(torch.rand(1, 3, 45, 50))
    assert str(err.value) == "unet.onnx needs even sides of at least 40; the image is 50x45: crop with --crop X Y (to 50x44)"
    x = _image(m, 44)
    m.check_input(x)
    g = onnxattr.glam(m, x, (2, 2, 8), frame="sr")
    assert np.isfinite(g["local"].values).all()
    lx = onnxattr.l2x(m, x, (2, 2, 8), frame="sr")
    assert float(lx["completeness_error"].max()) < 1e-6


def test_probe_size_override(zoo):
    m = load_model(zoo["unet"], probe_size=(60, 64), verify=False)
    assert m.probe_size == (60, 64) and (m.size_rule.min_side, m.size_rule.multiple) == (40, 2)
    with pytest.raises(OnnxAttrError, match=r"^onnxruntime fails on unet.onnx at the probe size 37x41 \(.*\); pass a size the model takes with --probe-size H W$"):
        load_model(zoo["unet"], probe_size=(41, 37))


def test_find_sizes_logic():
    def rule(h: int, w: int) -> tuple[int, ...]:
        if min(h, w) < 24 or h % 8 or w % 8:
            raise sizes.ProbeError("no")
        return (1, 3, 4 * h, 4 * w)

    found, runs = sizes.find_sizes(rule, None, "m.onnx")
    assert found == sizes.SizeRule(min_side=24, multiple=8)
    assert runs == [((32, 48), (1, 3, 128, 192)), ((40, 64), (1, 3, 160, 256))]
    assert found.describe() == "multiple-of-8 sides of at least 24" and found.fit(50, 70) == (48, 64)



def test_find_sizes_doubles_the_step_when_odd_sides_are_padded_inside():
    def padded(h: int, w: int) -> tuple[int, ...]:  # RealCUGAN-like: odd sides padded to even, out = 2 * ceil_even
        return (1, 3, 2 * (h + h % 2), 2 * (w + w % 2))

    found, runs = sizes.find_sizes(padded, None, "cugan.onnx")
    assert found.multiple == 2
    assert runs == [((32, 48), (1, 3, 64, 96)), ((34, 52), (1, 3, 68, 104))]

# ------------------------------------------------------------ the zoo run
@pytest.mark.parametrize("key", ["fp16-weights", "fp16-io", "nhwc", "uint8-bgr", "uint8-in", "uint8-out", "unet", "range255"])
def test_every_zoo_file_gives_finite_maps(key, loaded):
    m = loaded(key)
    x = _image(m, 44)
    win = (2, 2, 8)  # inside the U-Net's 12x12 output too
    la = onnxattr.lam(m, x, win, frame="sr", steps=6)
    lx = onnxattr.l2x(m, x, win, frame="sr")
    g = onnxattr.glam(m, x, win, frame="sr")
    for ds in (la, lx):
        assert np.isfinite(ds["attribution"].values).all() and np.abs(ds["attribution"].values).max() > 0
    assert np.isfinite(g["local"].values).all()
    assert float(lx["completeness_error"].max()) < 1e-6
    for attr in ("file_precision", "precision_gap", "value_range_source", "layout", "size_rule"):
        assert attr in la.attrs


# --------------------------------------------------------------- the CLI
def test_inspect_prints_what_it_detected(zoo):
    r = CliRunner().invoke(cli, ["inspect", str(zoo["range255"])])
    assert r.exit_code == 0, r.output
    assert "value range    255 (detected)" in r.output
    r = CliRunner().invoke(cli, ["inspect", str(zoo["uint8-bgr"]), "--channel-order", "bgr", "--json"])
    info = json.loads(r.stdout)
    assert info["layout"] == {"input": "NHWC", "output": "NHWC"} and info["dtype"]["input"] == "uint8"
    assert info["channel_order"] == "bgr" and info["value_range_source"] == "uint8 input"
    assert info["removed_at_output"] == ["Cast", "Round", "Clip"]
    r = CliRunner().invoke(cli, ["inspect", str(zoo["fp16-io"])])
    assert "precision gap" in r.output and "float16 file in ORT vs its float32 graph" in r.output
    r = CliRunner().invoke(cli, ["inspect", str(zoo["unet"])])
    assert "takes even sides of at least 40" in r.output


def test_crop_fits_a_size_rule(zoo, tmp_path):
    image = Path(__file__).parent.parent / "samples" / "images" / "coffee-64.png"  # 64x64
    out = tmp_path / "lam.nc"
    r = CliRunner().invoke(cli, ["lam", str(zoo["unet"]), str(image), "--window", "0", "0", "8", "--frame", "sr", "--crop", "3", "0",
                                 "--steps", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    ds = onnxattr.load(out)
    assert (ds.sizes["x"], ds.sizes["y"]) == (60, 64)  # 61 columns left of x=3, cut to even
    assert ds.attrs["size_rule"] == "even sides of at least 40"


def test_slow_stages_are_announced(zoo, monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(load_module, "STAGE_NOTICE_S", 0.0)
    load_model(zoo["tiny"], progress=lines.append)
    assert [line.split()[0] for line in lines] == ["reading", "probing", "converting", "verifying"]
    assert lines[2] == "converting tiny.onnx ..."
    quiet: list[str] = []
    load_model(zoo["tiny"], progress=None)  # API users get nothing unless asked
    assert quiet == []


# --------------------------------------------------------------- refusals
def test_mismatch_within_the_files_precision_is_named(zoo, monkeypatch):
    monkeypatch.setattr(verify, "VERIFY_TOLERANCE", 1e-12)  # a float32 check no graph passes
    with pytest.raises(OnnxAttrError) as err:
        load_model(zoo["fp16-io"])
    assert re.fullmatch(
        r"converted fp16io.onnx differs from onnxruntime by \d\.\d\de-\d\d, within the float16 file's own precision "
        r"\(0.01\) but above the float32 check \(1e-12\): part of the graph still computes in low precision; "
        r"pass --no-verify to accept it", str(err.value))
    with pytest.raises(OnnxAttrError, match=r"first diverging node .*; a converter in converters/ is wrong$"):
        load_model(zoo["tiny"])


def _graph(path: Path, nodes, inp, out, inits=()) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", [inp], [out], initializer=list(inits)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _d2s(path: Path, dims: list, extra: list | None = None) -> Path:
    w = numpy_helper.from_array(np.full((12, 3, 3, 3), 0.01, np.float32), "w")
    nodes = (extra or []) + [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]),
                             helper.make_node("DepthToSpace", ["h"], ["y"], blocksize=2)]
    return _graph(path, nodes, helper.make_tensor_value_info("x0" if extra else "x", TensorProto.FLOAT, dims),
                  helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "H", "W"]), [w])


def test_refusals(tmp_path):
    huge = _d2s(tmp_path / "huge.onnx", [1, 3, 5000, 5000])  # under the pixel budget (test_errors), over the probe limit
    with pytest.raises(OnnxAttrError) as err:
        load_model(huge)
    assert str(err.value) == ("huge.onnx declares a fixed 5000x5000 input (2.5e+07 pixels); onnxattr probes at most "
                              "4096x4096: re-export the model with dynamic or smaller H, W")
    nan = _d2s(tmp_path / "nan.onnx", ["n", 3, "h", "w"], [
        helper.make_node("Sub", ["x0", "two"], ["neg"]), helper.make_node("Sqrt", ["neg"], ["x"])])
    proto = onnx.load(nan)
    proto.graph.initializer.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    onnx.save(proto, nan)
    with pytest.raises(OnnxAttrError) as err:
        load_model(nan, value_range=1)
    assert str(err.value) == ("onnxruntime itself returns NaN/Inf on nan.onnx for a 48x32 probe image (value range 1): "
                              "the file computes non-finite values before any conversion; check the export")
    int16 = _graph(tmp_path / "i16.onnx", [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                   helper.make_tensor_value_info("x", TensorProto.INT16, ["n", 3, "h", "w"]),
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"]))
    with pytest.raises(OnnxAttrError) as err:
        load_model(int16)
    assert str(err.value) == "i16.onnx takes a INT16 input; onnxattr handles float32, float16, bfloat16 and uint8 images"
    u8 = _graph(tmp_path / "u8.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                helper.make_tensor_value_info("x", TensorProto.UINT8, ["n", 3, "h", "w"]),
                helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"]))
    with pytest.raises(OnnxAttrError) as err:
        load_model(u8)
    assert str(err.value) == ("u8.onnx feeds its uint8 input to Relu '', not to a Cast to float; onnxattr cannot "
                              "attribute through integer ops (re-export with a float input)")
    with pytest.raises(OnnxAttrError) as err:
        load_model(huge, channel_order="grb")
    assert str(err.value) == "channel order 'grb': pass 'auto', 'rgb' or 'bgr'"
    with pytest.raises(OnnxAttrError) as err:
        load_model(huge, value_range="big")
    assert str(err.value) == "value range 'big': pass 'auto', 1 or 255"
