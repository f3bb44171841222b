"""Pre/post-processing pipelines around an SR network, as onnxruntime-extensions' ``PrePostProcessor`` writes them
(its super-resolution recipe): a uint8 H x W x 3 BGR input with no batch dim, reversed to RGB by Split + Concat,
transposed, cast, scaled by 1/255 and unsqueezed; the output side mirrors it. Each file loads with no flag, says
what it is in ``inspect``, and explains like its float NCHW twin."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import onnxattr
from onnxattr import OnnxAttrError, load_model
from onnxattr.cli import cli

from nets import export
from test_intake import MeanSR

IMAGE = Path(__file__).resolve().parent.parent / "samples" / "images" / "coffee-64.png"
HAS_EXTENSIONS = importlib.util.find_spec("onnxruntime_extensions") is not None
WINDOW = (8, 8, 8)


def twin_file(folder: Path, opset: int) -> Path:
    """MeanSR exported NCHW float 0..1 at ``opset``, its output dims named apart from the input's (a pipeline around
    it squeezes and transposes both; onnxruntime plans buffers by those names)."""
    path = export(MeanSR(), folder, f"mean{opset}", opset=opset)
    proto = onnx.load(path)
    for d, name in zip(proto.graph.output[0].type.tensor_type.shape.dim, ("n", "c", "out_h", "out_w")):
        if d.dim_param:
            d.dim_param = name
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    return twin_file(tmp_path_factory.mktemp("twin"), 17)


def extensions_pipeline(twin: Path, out: Path) -> Path:
    """The twin inside onnxruntime-extensions' own PrePostProcessor steps (opset 18): ReverseAxis (Split + Concat)
    BGR -> RGB, ChannelsLastToChannelsFirst, ImageBytesToFloat (Cast, Mul 1/255), Unsqueeze; Squeeze,
    FloatToImageBytes (Mul 255, Round, Clip, Cast), Transpose to HWC, ReverseAxis RGB -> BGR."""
    from onnxruntime_extensions.tools.pre_post_processing import (
        ChannelsLastToChannelsFirst, FloatToImageBytes, ImageBytesToFloat, PrePostProcessor, ReverseAxis, Squeeze,
        Transpose, Unsqueeze, create_named_value)

    pipeline = PrePostProcessor([create_named_value("image", TensorProto.UINT8, ["h", "w", 3])], onnx_opset=18)
    pipeline.add_pre_processing([ReverseAxis(axis=2, dim_value=3, name="BGR_to_RGB"), ChannelsLastToChannelsFirst(),
                                 ImageBytesToFloat(), Unsqueeze([0])])
    pipeline.add_post_processing([Squeeze([0]), FloatToImageBytes(), Transpose([1, 2, 0]),
                                  ReverseAxis(axis=2, dim_value=3, name="RGB_to_BGR")])
    onnx.save(pipeline.run(onnx.load(twin)), out)
    return out


def helper_pipeline(twin: Path, out: Path, flip: str = "split", opset: int = 13) -> Path:
    """The same shape built with onnx.helper at ``opset`` (Squeeze / Unsqueeze / Split sizes as attributes before
    13, as inputs from 13), the channel flip as Split + Concat (``flip='split'``) or a Gather on the channel axis
    (``'gather'``) at both ends."""
    proto = onnx.load(twin)
    make = helper.make_node
    consts = {"k": np.array(1 / 255, np.float32), "k255": np.array(255, np.float32), "lo": np.array(0, np.float32),
              "hi": np.array(255, np.float32), "rev": np.array([2, 1, 0], np.int64), "ax0": np.array([0], np.int64),
              "ones": np.array([1, 1, 1], np.int64)}

    def flipped(src: str, dst: str, tag: str) -> list[onnx.NodeProto]:
        if flip == "gather":
            return [make("Gather", [src, "rev"], [dst], axis=2, name=f"{tag}_gather")]
        parts = [f"{tag}_{c}" for c in "abc"]
        split = (make("Split", [src, "ones"], parts, axis=2, name=f"{tag}_split") if opset >= 13 else
                 make("Split", [src], parts, axis=2, split=[1, 1, 1], name=f"{tag}_split"))
        return [split, make("Concat", parts[::-1], [dst], axis=2, name=f"{tag}_concat")]

    def axes(op: str, src: str, dst: str) -> onnx.NodeProto:
        return make(op, [src, "ax0"], [dst], name=op) if opset >= 13 else make(op, [src], [dst], axes=[0], name=op)

    pre = [*flipped("image", "rgb", "pre"), make("Transpose", ["rgb"], ["chw"], perm=[2, 0, 1]),
           make("Cast", ["chw"], ["chw_f"], to=TensorProto.FLOAT), make("Mul", ["chw_f", "k"], ["x01"]),
           axes("Unsqueeze", "x01", "input")]
    post = [axes("Squeeze", "output", "chw_out"), make("Mul", ["chw_out", "k255"], ["y255"]),
            make("Round", ["y255"], ["yr"]), make("Clip", ["yr", "lo", "hi"], ["yc"]),
            make("Cast", ["yc"], ["y8"], to=TensorProto.UINT8), make("Transpose", ["y8"], ["hwc"], perm=[1, 2, 0]),
            *flipped("hwc", "bgr", "post")]
    graph = helper.make_graph(
        pre + list(proto.graph.node) + post, "pipeline",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["h", "w", 3])],
        [helper.make_tensor_value_info("bgr", TensorProto.UINT8, ["out_h", "out_w", 3])],
        list(proto.graph.initializer) + [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=proto.ir_version)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)
    return out


KINDS = ["extensions", "helper-split-13", "helper-gather-13", "helper-split-11"]


@pytest.fixture(scope="module")
def pipelines(twin, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """kind -> (pipeline file, its float NCHW twin)."""
    folder = tmp_path_factory.mktemp("pipelines")
    twin11 = twin_file(folder, 11)
    files = {
        "helper-split-13": (helper_pipeline(twin, folder / "split13.onnx"), twin),
        "helper-gather-13": (helper_pipeline(twin, folder / "gather13.onnx", flip="gather"), twin),
        "helper-split-11": (helper_pipeline(twin11, folder / "split11.onnx", opset=11), twin11),
    }
    if HAS_EXTENSIONS:
        files["extensions"] = (extensions_pipeline(twin, folder / "ppp.onnx"), twin)
    return files


def _pipeline(pipelines: dict[str, tuple[Path, Path]], kind: str) -> tuple[Path, Path]:
    if kind not in pipelines:
        pytest.skip("onnxruntime-extensions is not installed (the helper-built pipelines have the same shape)")
    return pipelines[kind]


def _image(side: int = 20) -> torch.Tensor:
    return onnxattr.read_image(IMAGE)[:, :, :side, :side].contiguous()


def test_the_files_are_what_onnxruntime_runs(pipelines):
    """The pipelines are the twin on a BGR uint8 HWC image, as onnxruntime runs them (outputs rounded to uint8)."""
    x = (np.random.default_rng(0).random((18, 22, 3)) * 255).astype(np.uint8)
    for path, twin in pipelines.values():
        rgb = np.ascontiguousarray(x[None, :, :, ::-1].transpose(0, 3, 1, 2)) / np.float32(255)
        y_twin = ort.InferenceSession(str(twin)).run(None, {"input": rgb})[0]
        expected = np.clip(np.round(y_twin[0] * 255), 0, 255).transpose(1, 2, 0)[:, :, ::-1]
        got = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
        assert got.dtype == np.uint8 and got.shape == (36, 44, 3)
        assert np.abs(got.astype(np.float32) - expected).max() <= 1  # float rounding at .5


@pytest.mark.parametrize("kind", KINDS)
def test_a_pipeline_loads_with_no_flags(pipelines, kind):
    m = load_model(_pipeline(pipelines, kind)[0])
    a = m.adapter
    assert (a.input_layout, a.output_layout, a.input_dtype, a.output_dtype) == ("HWC", "HWC", "uint8", "uint8")
    assert a.channel_order == "bgr" and a.output_order == "bgr" and a.input_shape == ("h", "w", 3)
    assert set(a.removed) == {"Cast", "Round", "Clip"} and a.removed[0] == "Cast"
    flip = "Gather" if "gather" in kind else "Split + Concat"
    assert f"channel order BGR (detected: the graph reverses the channel axis after the input ({flip}) and before " \
           f"the output ({flip}))" in a.reasons
    assert (m.value_range, m.value_range_source, m.output_range, m.output_range_source) == (
        255, "uint8 input", 255, "uint8 output")
    assert (m.scale, m.offset, m.in_channels) == (2, 0, 3) and m.conversion_error < 1e-5
    # onnxruntime runs the file itself on its own input (uint8 H x W x 3 BGR): only the output's rounding differs
    assert 0 < m.precision_gap <= 0.5 / 255 / 0.9
    assert not {"Cast", "Round"} & {n.op_type for n in m.nodes}


@pytest.mark.parametrize("kind", KINDS)
def test_a_pipeline_explains_like_its_float_nchw_twin(pipelines, kind):
    """LAM and L2X maps equal the twin's to 1e-5 (the flips cancel, Mul 1/255 and the value range 255 cancel up to
    float rounding); L2X is complete."""
    path, twin = _pipeline(pipelines, kind)
    m, t = load_model(path), load_model(twin)
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(m(x), t(x), rtol=1e-5, atol=1e-6)
    for method, kw in (("lam", {"steps": 6}), ("l2x", {})):
        a = getattr(onnxattr, method)(m, x, WINDOW, frame="sr", **kw)["attribution"].values
        b = getattr(onnxattr, method)(t, x, WINDOW, frame="sr", **kw)["attribution"].values
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    lx = onnxattr.l2x(m, x, WINDOW, frame="sr")
    assert float(lx["completeness_error"].max()) < 1e-6
    assert (lx.attrs["layout"], lx.attrs["channel_order"], lx.attrs["input_dtype"]) == ("HWC", "bgr", "uint8")


def test_inspect_reports_the_pipeline(pipelines):
    path = pipelines.get("extensions", pipelines["helper-split-13"])[0]
    r = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["layout"] == {"input": "HWC", "output": "HWC"} and info["dtype"] == {"input": "uint8", "output": "uint8"}
    assert info["channel_order"] == "bgr" and info["file_input"] == {"name": "image", "shape": ["h", "w", 3]}
    assert any(r.startswith("input uint8 (0..255) through Split, Concat, Transpose to its Cast") for r in info["adapters"])
    text = CliRunner().invoke(cli, ["inspect", str(path)]).stdout
    assert "detected       HWC uint8 -> HWC uint8, float32 weights, BGR" in text
    assert "file           image [h, w, 3] -> " in text and "why          channel order BGR (detected: " in text


def test_a_given_order_overrides_the_graph(pipelines, twin):
    """--channel-order rgb on a file whose graph flips: as given, said in the reasons (the network then sees BGR)."""
    m = load_model(pipelines["helper-split-13"][0], channel_order="rgb")
    assert m.adapter.channel_order == "rgb"
    assert any(r.startswith("channel order RGB (as given, though the graph reverses") for r in m.adapter.reasons)
    x = _image(16)
    with torch.no_grad():
        torch.testing.assert_close(m(x), load_model(twin)(x.flip(1)).flip(1), rtol=1e-5, atol=1e-6)


def test_integer_ops_after_data_movement_are_refused(twin, tmp_path):
    """uint8 values through Split + Concat into an op that computes with them (Relu): one line naming the path."""
    path = helper_pipeline(twin, tmp_path / "relu.onnx")
    proto = onnx.load(path)
    cast = next(n for n in proto.graph.node if n.op_type == "Cast" and n.input[0] == "chw")
    cast.op_type, cast.name = "Relu", "int_relu"
    del cast.attribute[:]
    onnx.save(proto, path)
    with pytest.raises(OnnxAttrError) as err:
        load_model(path)
    assert str(err.value) == ("relu.onnx feeds its uint8 input through Split, Concat, Transpose to Relu 'int_relu', "
                              "not to a Cast to float; onnxattr cannot attribute through integer ops (re-export with "
                              "a float input)")
