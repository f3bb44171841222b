"""load_model: validation, scale law, verified conversion, batching, value range and taps."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnxattr
from onnxattr import OnnxAttrError, UnsupportedOpError, load_model
from onnxattr.windows.geometry import Window
from onnxattr.windows.detector import gradient_detector

from nets import BatchMixNet, CancelNet, CropNet, Range255Net, ShuffleNet, conv_graph, export
from onnxattr.intake.model import FLOAT32_ROUNDING, batch_tolerance

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture(scope="module")
def shuffle(tmp_path_factory):
    net = ShuffleNet()
    path = export(net, tmp_path_factory.mktemp("shuffle"), "shuffle")
    return net, load_model(path)


def test_scale_size_and_conversion(shuffle):
    net, model = shuffle
    assert (model.scale, model.offset, model.in_channels, model.fixed_size) == (2, 0, 3, None)
    assert model.opset == 17
    assert model.conversion_error is not None and model.conversion_error < 1e-6
    assert model.batch_mode == "native"
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=1e-5, atol=1e-6)
    assert model.output_size(20, 28) == (40, 56)


def test_internal_crop_gives_offset(tmp_path):
    net = CropNet()
    model = load_model(export(net, tmp_path, "crop"))
    assert (model.scale, model.offset) == (2, -4)
    x = torch.rand(1, 3, 12, 18)
    assert tuple(model(x).shape[2:]) == model.output_size(12, 18) == (20, 32)


def test_fixed_size_and_fixed_batch_run_batches_with_vmap(tmp_path):
    net = ShuffleNet(seed=1)
    model = load_model(export(net, tmp_path, "fixed", dynamic=False, input_shape=(1, 3, 12, 12)))
    assert model.fixed_size == (12, 12)
    assert model.spec.batch == 1 and model.batch_mode == "vmap"
    x = torch.rand(3, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(OnnxAttrError, match="only takes 12x12 inputs"):
        model.check_input(torch.rand(1, 3, 16, 12))


def test_export_wrong_at_batch_two_is_not_batched_natively(tmp_path):
    """The batch mode is decided when a batch first runs (loading does not pay for it), with the warning then."""
    net = BatchMixNet()
    model = load_model(export(net, tmp_path, "mix"))
    assert model._batch_mode is None
    with pytest.warns(UserWarning, match="native batching differs"):
        assert model.batch_mode == "vmap"
    x = torch.rand(2, 3, 10, 10)
    with torch.no_grad():
        singles = torch.cat([net(xi[None]) for xi in x])
        torch.testing.assert_close(model(x), singles, rtol=1e-5, atol=1e-6)


def test_the_first_batch_decides_the_batch_mode_at_its_own_shapes(tmp_path):
    """The first batch that runs (3 images here) is checked as images a, b, a at its own shape against single runs at
    its image shape: a wrong native batch is caught there, and no shape but the call's is specialised for the check."""
    net = BatchMixNet()
    model = load_model(export(net, tmp_path, "mix"))
    x = torch.rand(3, 3, 10, 14)
    with torch.no_grad(), pytest.warns(UserWarning, match="native batching differs"):
        got = model(x)
    assert model.batch_mode == "vmap"
    torch.testing.assert_close(got, torch.cat([net(xi[None]) for xi in x]), rtol=1e-5, atol=1e-6)
    assert {key[0] for key in model.fast.cache} <= {(3, 3, 10, 14), (1, 3, 10, 14)}
    fine = load_model(export(ShuffleNet(seed=1), tmp_path, "fine"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        fine(x)
    assert fine.batch_mode == "native" and {key[0] for key in fine.fast.cache} == {(3, 3, 10, 14), (1, 3, 10, 14)}


def test_batch_tolerance_from_the_models_precision_and_the_output_size():
    # float32 rounding over n values: eps * sqrt(n); the model's own: 4x its conversion error; never above 1e-4
    assert batch_tolerance(36864, None) == pytest.approx(FLOAT32_ROUNDING * 192)  # 2.3e-5: two 3x96x64 outputs
    assert batch_tolerance(36864, 1e-7) == pytest.approx(FLOAT32_ROUNDING * 192)
    assert batch_tolerance(100, 2e-5) == pytest.approx(8e-5)
    assert batch_tolerance(100, 5e-3) == 1e-4  # a float16 file's loose conversion: a traced batch (~1e-3) is still caught
    assert batch_tolerance(10**12, None) == 1e-4


def test_batched_convolutions_that_differ_by_float32_rounding_run_natively(tmp_path):
    """A dynamic-batch export whose batch of 2 differs from two single runs by float32 rounding (its large
    convolution sums round differently per batch size) keeps native batching; a wrong batch (BatchMixNet, above)
    does not."""
    net = CancelNet()
    model = load_model(export(net, tmp_path, "cancel"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "batching differs" warning
        assert model.batch_mode == "native"
    x = torch.from_numpy(model.probe)
    pair = torch.cat([x, 0.25 + 0.5 * x.flip(-1)])  # what the batch check runs
    with torch.no_grad():
        singles = torch.cat([model(p[None]) for p in pair])
        batched = model(pair)
    gap = ((batched - singles).abs().max() / singles.abs().max()).item()
    if gap <= 1e-5:
        pytest.skip(f"this machine's convolutions round alike at batch 1 and 2 (gap {gap:.1e})")
    # the old fixed limit (1e-5) called this a batch-1 trace; it is within the model's own float32 agreement
    assert model.conversion_error > 1e-6 and gap <= batch_tolerance(singles.numel(), model.conversion_error)
    with torch.no_grad():
        torch.testing.assert_close(batched, torch.cat([net(p[None]) for p in pair]), rtol=1e-3, atol=1e-4)


def test_value_range_255(tmp_path):
    net = Range255Net()
    model = load_model(export(net, tmp_path, "r255"), value_range=255)
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x * 255) / 255, rtol=1e-5, atol=1e-6)


def _ort_intermediates(model: onnxattr.SRModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every node output of the converted ONNX graph, computed by onnxruntime (no torch involved)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    have = {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        for value in node.output:
            if value and value not in have:
                proto.graph.output.append(onnx.ValueInfoProto(name=value))
                have.add(value)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {model.spec.input_name: x * model.value_range})))


def _onnx_output_of(model: onnxattr.SRModel, onnx_name: str) -> str:
    base, _, index = onnx_name.partition("[")
    node = next(n for n in model.proto.graph.node if n.name == base)
    return node.output[int(index[:-1]) if index else 0]


@pytest.mark.parametrize(
    "which", ["shuffle", "waifu2x-upconv7-x2.ts17.onnx", "waifu2x-upresnet10-x2.dynamo.onnx"]
)
def test_every_node_tap_equals_onnxruntime(which, shuffle, tmp_path):
    if which == "shuffle":
        model = shuffle[1]
    else:
        if not (SAMPLES / which).is_file():
            pytest.skip(f"sample {which} not built")
        model = load_model(SAMPLES / which)
    h = w = 48 if model.fixed_size is None else model.fixed_size[0]
    x = torch.rand(1, model.in_channels, h, w)
    taps = model.tap(x, model.nodes)
    assert len(taps.activations) == len(model.nodes)
    ref = _ort_intermediates(model, x.numpy())
    compared = 0
    for node in model.nodes:
        got = taps.activations[node.name]
        want = ref[_onnx_output_of(model, node.onnx_name)]
        if not isinstance(got, torch.Tensor) or got.dtype not in (torch.float32, torch.float64):
            continue
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))
        compared += 1
    assert compared >= len([n for n in model.nodes if n.op_type in ("Conv", "Add", "Mul", "DepthToSpace")])


def test_tap_gradients_match_the_original_module(shuffle):
    net, model = shuffle
    window = Window(3, 4, 8)
    x = torch.rand(1, 3, 12, 12)
    conv = model.select(op_types=["Conv"])
    taps = model.tap(x, conv, objective=lambda o: gradient_detector(o, window), input_gradient=True)
    # independent: autograd through the original torch module, the conv output kept via retain_grad
    xr = x.clone().requires_grad_()
    h1 = net.c1(xr)
    h1.retain_grad()
    gradient_detector(net.ps(net.c2(torch.relu(h1))), window).sum().backward()
    first = conv[0].name
    assert torch.isfinite(taps.gradients[first]).all()
    torch.testing.assert_close(taps.gradients[first], h1.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(taps.input_gradient, xr.grad, rtol=1e-4, atol=1e-7)


def test_select_by_type_and_pattern(shuffle):
    model = shuffle[1]
    assert [n.op_type for n in model.select(op_types=["Conv"])] == ["Conv", "Conv"]
    assert [n.op_type for n in model.select(pattern="c2")] == ["Conv"]
    with pytest.raises(OnnxAttrError, match="no node"):
        model.select(op_types=["Softmax"])


# ------------------------------------------------------------------ bad input
def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(OnnxAttrError, match="not found"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 this is not protobuf")
    with pytest.raises(OnnxAttrError, match="not an ONNX model"):
        load_model(bad)


def test_not_an_sr_model(tmp_path):
    with pytest.raises(OnnxAttrError, match="does not upscale"):
        load_model(conv_graph(tmp_path / "s1.onnx", scale=1))
    with pytest.raises(OnnxAttrError, match="exactly one image tensor"):
        load_model(conv_graph(tmp_path / "two.onnx", inputs=2))
    with pytest.raises(OnnxAttrError, match="input channels"):
        load_model(conv_graph(tmp_path / "c4.onnx", channels=4))


def test_unsupported_op_names_the_node(tmp_path):
    path = conv_graph(tmp_path / "hardmax.onnx", extra_op="Hardmax")
    with pytest.raises(UnsupportedOpError, match="Hardmax.*'extra'"):
        load_model(path)


def test_old_ir_version_loads_with_a_warning(tmp_path):
    path = conv_graph(tmp_path / "old.onnx")
    proto = onnx.load(path)
    proto.ir_version = 2  # below what the checker accepts; onnxruntime still runs IR >= 3 models
    onnx.save(proto, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(path)
    assert model.scale == 2 and model.conversion_error < 1e-6
    assert any("onnx.checker" in str(w.message) for w in caught)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    path = conv_graph(inner / "ext.onnx")
    proto = onnx.load(path)
    weight = proto.graph.initializer[0]
    (tmp_path / "weights.bin").write_bytes(onnx.numpy_helper.to_array(weight).tobytes())
    weight.ClearField("float_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../weights.bin")
    onnx.save_model(proto, path)
    with pytest.raises(OnnxAttrError, match="outside the model's folder"):
        load_model(path)


def _external(tmp_path: Path, location: str) -> Path:
    """conv_graph in ``tmp_path/model`` with its weight in external data at ``location``; the bytes are written
    to ``tmp_path/outside.bin`` and ``tmp_path/model/inside.bin``."""
    (tmp_path / "model").mkdir(exist_ok=True)
    path = conv_graph(tmp_path / "model" / "ext.onnx")
    proto = onnx.load(path)
    weight = proto.graph.initializer[0]
    for f in (tmp_path / "outside.bin", tmp_path / "model" / "inside.bin"):
        f.write_bytes(onnx.numpy_helper.to_array(weight).tobytes())
    weight.ClearField("float_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    onnx.save_model(proto, path)
    return path


def test_every_external_data_refusal_says_what_it_found(tmp_path):
    """A link inside the folder to a file outside, an absolute path (even one inside the folder), a missing file, a
    file shorter than the tensor: one line naming the tensor and the path, before onnxruntime opens anything."""
    folder = str((tmp_path / "model").resolve())
    (tmp_path / "model").mkdir()
    os.symlink(tmp_path / "outside.bin", tmp_path / "model" / "link.bin")
    cases = {
        "link.bin": f"tensor 'w' keeps its data at 'link.bin' (a link to {str((tmp_path / 'outside.bin').resolve())!r}), "
                    f"outside the model's folder {folder!r}; move the data file next to the .onnx file",
        str(tmp_path / "model" / "inside.bin"): f"tensor 'w' keeps its data at the absolute path "
                    f"{str(tmp_path / 'model' / 'inside.bin')!r}; external data is read only by a path relative to the "
                    "model's folder: save the model with a relative location",
        "gone.bin": f"external data file 'gone.bin' of tensor 'w' is missing from the model's folder {folder!r}; put it "
                    "next to the .onnx file",
    }
    for location, message in cases.items():
        with pytest.raises(OnnxAttrError) as err:
            load_model(_external(tmp_path, location))
        assert str(err.value) == message
    short = _external(tmp_path, "inside.bin")
    (tmp_path / "model" / "inside.bin").write_bytes(b"\0" * 8)
    with pytest.raises(OnnxAttrError) as err:
        load_model(short)
    assert str(err.value) == ("ext.onnx's external data cannot be read: tensor 'w' needs 1296 bytes, 'inside.bin' gives "
                              "8; save the model with its data again")


def _refused(tmp_path: Path, nodes: list, opset: int = 17, domains: tuple[str, ...] = ()) -> str:
    """load_model's error on a (1, 3, h, w) -> y graph of ``nodes`` that onnxruntime refuses to load."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                              + [helper.make_opsetid(d, 1) for d in domains], producer_name="tester")
    model.ir_version = 8
    path = tmp_path / f"refused-{len(list(tmp_path.iterdir()))}.onnx"
    onnx.save(model, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx.checker's complaints
        with pytest.raises(OnnxAttrError) as err:
            load_model(path)
    return str(err.value)


def test_onnxruntime_load_failures_say_what_the_tool_found_first(tmp_path):
    """The tool's words (the op, its domain or version, the node), then onnxruntime's text cut at a word boundary,
    then the fix."""
    from onnx import helper

    custom = _refused(tmp_path, [helper.make_node("DecodeImage", ["x"], ["y"], domain="ai.onnx.contrib", name="decode")],
                      domains=("ai.onnx.contrib",))
    assert re.fullmatch(r"onnxruntime cannot load refused-0\.onnx: it holds op ai\.onnx\.contrib:DecodeImage \(an "
                        r"onnxruntime-extensions custom op\) at node 'decode', which plain onnxruntime does not have "
                        r"\(onnxruntime: .*DecodeImage.*\); export the model without it \(uint8 image tensors in and "
                        r"out load as they are\)", custom), custom
    kernel = _refused(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="r")], opset=1)
    assert kernel.startswith("onnxruntime cannot load refused-1.onnx: onnxruntime has no kernel for op Relu-1 at node "
                             "'r' with its tensor types (the file's opset is 1) (onnxruntime: Could not find an ")
    long = _refused(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], opset=40)
    found, rest = long.split(" (onnxruntime: ", 1)
    assert found.startswith("onnxruntime cannot load refused-2.onnx: it declares opset 40, newer than onnx")
    text, fix = rest.rsplit("); ", 1)
    assert fix == "re-export the model at an older opset, or upgrade onnx and onnxruntime"
    assert text.endswith("...") and len(text) <= 160 and text[-4].isalnum() and not text.startswith("[ONNXRuntimeError]")


def test_clip_words_cuts_at_a_word_boundary():
    from onnxattr.errors import clip_words

    text = "Type parameter (T) of Optype (Add) bound to different types in node (add_1)"
    assert clip_words(text, 200) == text
    assert clip_words(text, 40) == "Type parameter (T) of Optype (Add)..."
    assert clip_words("x" * 50, 20) == "x" * 17 + "..."  # one long word: cut inside it, marked


def test_external_data_inside_the_folder_loads(tmp_path):
    path = conv_graph(tmp_path / "ext.onnx")
    proto = onnx.load(path)
    onnx.save_model(proto, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert load_model(path).scale == 2
