"""Ops as legacy and tf2onnx SR exports write them (auto_pad SAME_*, Upsample, attribute forms of old opsets):
each converted graph against onnxruntime to 1e-5 on random inputs; dynamic H, W at two sizes through one graph.
The models are registered builders (``opcases``): tests/test_fastgraph.py runs them too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxattr.converters import to_torch
from onnxattr.errors import UnsupportedOpError

from opcases import Builders, OpCase

RNG = np.random.default_rng(0)
SIZES = ((7, 10), (12, 9))  # odd and even sides: the SAME_* split differs
BUILDERS = Builders("legacy")


def ir_version(opset: int) -> int:
    """The IR version an exporter of that opset wrote (onnx.helper.VERSION_TABLE)."""
    return next(ir for _, ir, op, *_ in onnx.helper.VERSION_TABLE if op >= opset)


def build(nodes: list[onnx.NodeProto], opset: int, initializers: dict[str, np.ndarray] | None = None,
          channels: int = 4, extra_inputs: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """Input ``x`` (1, channels, h, w) with dynamic h, w; output ``y``; at ``opset`` with its IR version."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "h", "w"])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in (extra_inputs or {}).items()]
    if ir_version(opset) < 4:  # IR 3 lists every initializer among the graph inputs
        inputs += [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                   for n, a in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)],
                              [numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version(opset))
    onnx.checker.check_model(model)
    return model


def sized(model: onnx.ModelProto, op_type: str, sizes=SIZES, channels: int = 4) -> OpCase:
    """The model with a random ``x`` (1, channels, h, w) at each of ``sizes``."""
    return OpCase(model, tuple({"x": RNG.standard_normal((1, channels, h, w)).astype(np.float32)} for h, w in sizes),
                  op_type)


def check(case: OpCase) -> float:
    """Convert once, then per input size: torch == onnxruntime to 1e-5 (shape too). Returns the max error."""
    session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    module, prepared = to_torch(case.model)
    assert case.op_type in {n.op_type for n in prepared.graph.node}, "the op under test was folded away"
    worst = 0.0
    for feeds in case.feeds:
        expected = session.run(None, feeds)[0]
        with torch.no_grad():
            got = module(*[torch.from_numpy(a) for a in feeds.values()]).numpy()
        assert got.shape == expected.shape, feeds["x"].shape
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst < 1e-5
    return worst


# --------------------------------------------------------------------------------------- auto_pad
CONV_CASES = [  # kernel, strides, dilations
    ([3, 3], [1, 1], [1, 1]),
    ([3, 2], [2, 2], [1, 1]),
    ([4, 4], [2, 3], [1, 1]),
    ([3, 3], [1, 1], [2, 2]),
    ([1, 1], [3, 2], [1, 1]),
]


# onnxruntime refuses dilated SAME_* (test_conv_same_dilated); the Constant-weight path is the same module for
# every auto_pad (SAME_UPPER alone)
@BUILDERS("auto_pad, kernel, strides, dilations, weights", [
    (auto_pad, *conv, weights) for auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID") for conv in CONV_CASES
    for weights in ("initializer", "constant")
    if (auto_pad == "VALID" or conv[2] == [1, 1]) and (weights == "initializer" or auto_pad == "SAME_UPPER")])
def conv_auto_pad(auto_pad: str, kernel: list[int], strides: list[int], dilations: list[int], weights: str) -> OpCase:
    """Conv 1 (opset 9) / 11 (opset 13) auto_pad with dynamic H, W."""
    w = RNG.standard_normal((5, 4, *kernel)).astype(np.float32)
    b = RNG.standard_normal(5).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad=auto_pad, strides=strides, dilations=dilations)]
    if weights == "constant":
        nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
                 helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(b, "b"))] + nodes
        return sized(build(nodes, 13), "Conv")
    return sized(build(nodes, 9, {"w": w, "b": b}), "Conv")


@pytest.mark.parametrize(*conv_auto_pad.grid)
def test_conv_auto_pad(auto_pad: str, kernel: list[int], strides: list[int], dilations: list[int], weights: str) -> None:
    check(conv_auto_pad(auto_pad, kernel, strides, dilations, weights))


CONV_W = RNG.standard_normal((5, 4, 2, 2)).astype(np.float32)


@BUILDERS("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def conv_same_dilated(auto_pad: str) -> OpCase:
    """Dilated SAME_* (onnxruntime refuses it: test_conv_same_dilated checks it against explicit pads)."""
    return sized(build([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, dilations=[3, 1])], 11,
                       {"w": CONV_W}), "Conv")


@pytest.mark.parametrize(("auto_pad", "pads"), [("SAME_UPPER", [1, 0, 2, 1]), ("SAME_LOWER", [2, 1, 1, 0])])
def test_conv_same_dilated(auto_pad: str, pads: list[int]) -> None:
    """The spec's pads, worked out by hand for a 7x10 input, kernel 2, dilations (3, 1) (extents 4, 2), stride 1:
    totals 3 and 1, the odd pixel at the end (UPPER) or start (LOWER)."""
    explicit = helper.make_node("Conv", ["x", "w"], ["y"], pads=pads, dilations=[3, 1])
    module, _ = to_torch(conv_same_dilated(auto_pad).model)
    session = ort.InferenceSession(build([explicit], 11, {"w": CONV_W}).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = RNG.standard_normal((1, 4, 7, 10)).astype(np.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    expected = session.run(None, {"x": x})[0]
    assert got.shape == expected.shape == (1, 5, 7, 10)
    assert np.abs(got - expected).max() < 1e-5


@BUILDERS("auto_pad, kernel, strides, dilations", [
    (auto_pad, *conv) for auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID")
    for conv in (([3, 3], [2, 2], [1, 1]), ([4, 3], [2, 3], [1, 1]), ([3, 3], [1, 1], [2, 1]))])
def conv_transpose_auto_pad(auto_pad: str, kernel: list[int], strides: list[int], dilations: list[int]) -> OpCase:
    """ConvTranspose 1 (opset 9) auto_pad: out = in * stride for SAME_*."""
    w = RNG.standard_normal((4, 3, *kernel)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], auto_pad=auto_pad, strides=strides,
                            dilations=dilations)
    return sized(build([node], 9, {"w": w, "b": b}), "ConvTranspose")


@pytest.mark.parametrize(*conv_transpose_auto_pad.grid)
def test_conv_transpose_auto_pad(auto_pad: str, kernel: list[int], strides: list[int], dilations: list[int]) -> None:
    check(conv_transpose_auto_pad(auto_pad, kernel, strides, dilations))


@BUILDERS("attrs", [
    {"output_shape": [15, 19]},
    {"output_shape": [14, 19], "auto_pad": "SAME_UPPER"},
    {"output_shape": [14, 19], "auto_pad": "SAME_LOWER"},
    {"output_padding": [1, 0], "pads": [1, 0, 0, 2]},
    {"output_padding": [1, 1], "auto_pad": "SAME_UPPER"},
])
def conv_transpose_output_shape_and_padding(attrs: dict) -> OpCase:
    """ConvTranspose 11 output_shape (total padding split by auto_pad; the shape fixes the input size) and
    output_padding."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], **attrs)
    return sized(build([node], 11, {"w": w}), "ConvTranspose", sizes=SIZES[:1] if "output_shape" in attrs else SIZES)


@pytest.mark.parametrize(*conv_transpose_output_shape_and_padding.grid)
def test_conv_transpose_output_shape_and_padding(attrs: dict) -> None:
    check(conv_transpose_output_shape_and_padding(attrs))


@BUILDERS("auto_pad, op_type, opset, attrs, kernel, strides", [
    (auto_pad, *pool, *window) for auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID")
    for pool in (("MaxPool", 7, {}), ("MaxPool", 10, {"ceil_mode": 1}), ("AveragePool", 7, {"count_include_pad": 0}),
                 ("AveragePool", 10, {"count_include_pad": 1}))
    for window in (([3, 3], [1, 1]), ([2, 3], [2, 2]))])
def pool_auto_pad(auto_pad: str, op_type: str, opset: int, attrs: dict, kernel: list[int], strides: list[int]) -> OpCase:
    """MaxPool 1 (opset 7) / 10 and AveragePool 7/10 auto_pad with dynamic H, W (MaxPool pads -inf, AveragePool
    counts the real pixels unless count_include_pad). Dilated SAME pooling is left out: onnxruntime computes
    its pads from the undilated kernel, ONNX from the dilated one (we follow ONNX)."""
    node = helper.make_node(op_type, ["x"], ["y"], auto_pad=auto_pad, kernel_shape=kernel, strides=strides, **attrs)
    return sized(build([node], opset), op_type)


@pytest.mark.parametrize(*pool_auto_pad.grid)
def test_pool_auto_pad(auto_pad: str, op_type: str, opset: int, attrs: dict, kernel: list[int], strides: list[int]) -> None:
    check(pool_auto_pad(auto_pad, op_type, opset, attrs, kernel, strides))


@BUILDERS("count_include_pad", [0, 1])
def average_pool_asymmetric_pads(count_include_pad: int) -> OpCase:
    """AveragePool 11 with pads begin != end (onnx2torch refuses them)."""
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 1],
                            count_include_pad=count_include_pad)
    return sized(build([node], 11), "AveragePool")


@pytest.mark.parametrize(*average_pool_asymmetric_pads.grid)
def test_average_pool_asymmetric_pads(count_include_pad: int) -> None:
    check(average_pool_asymmetric_pads(count_include_pad))


# ---------------------------------------------------------------------------------- the refusal
def test_unsupported_message_names_the_files_opset() -> None:
    """Hardmax in an opset-10 file: the definition in force is Hardmax-1; no converter at any opset, so no
    advice to re-export."""
    node = helper.make_node("Hardmax", ["x"], ["y"], name="odd", axis=1)
    with pytest.raises(UnsupportedOpError) as info:
        to_torch(build([node], 10))
    message = str(info.value)
    assert "Hardmax (opset 10, Hardmax-1) at node 'odd'" in message and "(opset 1)" not in message
    assert "re-export the model" not in message and "add a converter" in message
    assert (info.value.version, info.value.opset) == (1, 10)


def test_unsupported_message_suggests_the_opset_that_converts() -> None:
    """Dropout-6 (opset 6) has no converter, Dropout-7 has: re-exporting at another opset does help."""
    node = helper.make_node("Dropout", ["x"], ["y"], name="drop")
    with pytest.raises(UnsupportedOpError, match=r"Dropout \(opset 6\) at node 'drop'.*converted \(Dropout-7, Dropout-10"):
        to_torch(build([node], 6))


# ------------------------------------------------------------------------------- Upsample / Resize
@BUILDERS("opset, mode, scales", [(opset, mode, scales) for opset in (7, 9) for mode in ("nearest", "linear")
                                  for scales in ([1, 1, 2, 2], [1, 1, 3, 1.5])])
def upsample(opset: int, mode: str, scales: list[float]) -> OpCase:
    """Upsample-7 (scales attribute) and Upsample-9 (scales input): asymmetric coordinates, nearest = floor."""
    if opset == 7:
        nodes, inits = [helper.make_node("Upsample", ["x"], ["y"], mode=mode, scales=[float(s) for s in scales])], {}
    else:
        nodes, inits = [helper.make_node("Upsample", ["x", "scales"], ["y"], mode=mode)], {
            "scales": np.array(scales, np.float32)}
    return sized(build(nodes, opset, inits), "Upsample")


@pytest.mark.parametrize(*upsample.grid)
def test_upsample(opset: int, mode: str, scales: list[float]) -> None:
    check(upsample(opset, mode, scales))


@BUILDERS("mode", ["nearest", "linear"])
def resize10(mode: str) -> OpCase:
    """Resize-10: (X, scales), asymmetric coordinates (onnx2torch's linear used half-pixel ones)."""
    node = helper.make_node("Resize", ["x", "scales"], ["y"], mode=mode)
    return sized(build([node], 10, {"scales": np.array([1, 1, 2.5, 0.6], np.float32)}), "Resize")


@pytest.mark.parametrize(*resize10.grid)
def test_resize10(mode: str) -> None:
    check(resize10(mode))


@BUILDERS("coordinate_mode", ["asymmetric", "tf_half_pixel_for_nn", "half_pixel", "align_corners"])
def resize11_linear(coordinate_mode: str) -> OpCase:
    """Resize-11 linear on every coordinate mode (tf2onnx writes asymmetric for TF1 bilinear resizes)."""
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode=coordinate_mode)
    inits = {"roi": np.array([], np.float32), "scales": np.array([1, 1, 2, 1.5], np.float32)}
    return sized(build([node], 11, inits), "Resize")


@pytest.mark.parametrize(*resize11_linear.grid)
def test_resize11_linear_coordinate_modes(coordinate_mode: str) -> None:
    check(resize11_linear(coordinate_mode))


# ------------------------------------------------------------------------- attribute forms of old opsets
@BUILDERS("starts, ends, axes", [([1, 0], [-1, 100], [2, 3]), ([0, 2], [3, -2], None), ([1], [1000], [-1])])
def slice1(starts: list[int], ends: list[int], axes: list[int] | None) -> OpCase:
    """Slice-1 (opset < 10): starts, ends, axes as attributes; ends past the end, negative indices."""
    kwargs = {"axes": axes} if axes is not None else {}
    if axes is None:
        starts, ends = [0, 0] + starts, [1, 4] + ends
    return sized(build([helper.make_node("Slice", ["x"], ["y"], starts=starts, ends=ends, **kwargs)], 9), "Slice")


@pytest.mark.parametrize(*slice1.grid)
def test_slice1(starts: list[int], ends: list[int], axes: list[int] | None) -> None:
    check(slice1(starts, ends, axes))


@BUILDERS("bounds", [{"min": -0.5, "max": 0.7}, {"max": 0.2}, {}])
def clip6(bounds: dict) -> OpCase:
    """Clip-6 (opset 6-10): min, max as attributes (defaults: the float range)."""
    return sized(build([helper.make_node("Clip", ["x"], ["y"], **bounds)], 9), "Clip")


@pytest.mark.parametrize(*clip6.grid)
def test_clip6(bounds: dict) -> None:
    check(clip6(bounds))


@BUILDERS("opset", [7, 9, 14])
def batch_normalization(opset: int) -> OpCase:
    """BatchNormalization-7 (spatial attribute), -9 and -14 in inference."""
    params = {name: RNG.standard_normal(4).astype(np.float32) for name in ("scale", "bias", "mean")}
    params["var"] = RNG.random(4).astype(np.float32) + 0.5
    attrs = {"spatial": 1} if opset == 7 else {}
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-3, **attrs)
    return sized(build([node], opset, params), "BatchNormalization")


@pytest.mark.parametrize(*batch_normalization.grid)
def test_batch_normalization(opset: int) -> None:
    check(batch_normalization(opset))


@BUILDERS("opset", [6, 9])
def instance_normalization(opset: int) -> OpCase:
    """InstanceNormalization-6 (the attribute-free form since opset 6)."""
    params = {"s": RNG.standard_normal(4).astype(np.float32), "b": RNG.standard_normal(4).astype(np.float32)}
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)
    return sized(build([node], opset, params), "InstanceNormalization")


@pytest.mark.parametrize(*instance_normalization.grid)
def test_instance_normalization(opset: int) -> None:
    check(instance_normalization(opset))


@BUILDERS("slope_shape, opset", [(shape, opset) for shape in ((1,), (4, 1, 1), (1, 4, 1, 1)) for opset in (7, 9, 16)])
def prelu_slope_shapes(slope_shape: tuple[int, ...], opset: int) -> OpCase:
    """PRelu-7/9/16 with a scalar, (C, 1, 1) and (1, C, 1, 1) slope. A (C,) slope broadcasts against W, not C,
    by ONNX's rules (onnxruntime refuses it unless W == C)."""
    slope = RNG.random(slope_shape).astype(np.float32)
    return sized(build([helper.make_node("PRelu", ["x", "slope"], ["y"])], opset, {"slope": slope}), "PRelu")


@pytest.mark.parametrize(*prelu_slope_shapes.grid)
def test_prelu_slope_shapes(slope_shape: tuple[int, ...], opset: int) -> None:
    check(prelu_slope_shapes(slope_shape, opset))


@BUILDERS("mode", ["constant", "reflect", "edge"])
def pad2(mode: str) -> OpCase:
    """Pad-2 (opset 2-10): pads and value as attributes."""
    attrs = {"value": 0.5} if mode == "constant" else {}
    node = helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=[0, 0, 1, 2, 0, 0, 3, 1], **attrs)
    return sized(build([node], 10), "Pad")


@pytest.mark.parametrize(*pad2.grid)
def test_pad2(mode: str) -> None:
    check(pad2(mode))


@BUILDERS("opset, trans_a, trans_b, alpha, beta", [
    (opset, *form) for opset in (7, 9, 11, 13) for form in ((0, 0, 1.0, 1.0), (1, 1, 0.5, 2.0), (0, 1, 2.0, 0.0))])
def gemm(opset: int, trans_a: int, trans_b: int, alpha: float, beta: float) -> OpCase:
    """Gemm-7/9/11/13 after a Flatten (the classifier-head form): every transA, transB, alpha, beta."""
    b = RNG.standard_normal((5, 6) if trans_b else (6, 5)).astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"], axis=1)]
    nodes.append(helper.make_node("Transpose", ["f"], ["ft"], perm=[1, 0]) if trans_a else helper.make_node("Identity", ["f"], ["ft"]))
    nodes.append(helper.make_node("Gemm", ["ft", "b", "c"], ["g"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta))
    nodes.append(helper.make_node("Reshape", ["g", "shape"], ["y"]))
    inits = {"b": b, "c": RNG.standard_normal(5).astype(np.float32), "shape": np.array([1, 5, 1, 1], np.int64)}
    return sized(build(nodes, opset, inits, channels=6), "Gemm", channels=6)


@pytest.mark.parametrize(*gemm.grid)
def test_gemm(opset: int, trans_a: int, trans_b: int, alpha: float, beta: float) -> None:
    check(gemm(opset, trans_a, trans_b, alpha, beta))


@BUILDERS()
def old_definitions_of_common_ops() -> OpCase:
    """Opset 7: Cast-6, Max/Min/Mean/Sum-6, Dropout-7, DepthToSpace-1 (no mode: DCR), GlobalMaxPool-1."""
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Neg", ["c"], ["n"]),
        helper.make_node("Max", ["c", "n"], ["mx"]),
        helper.make_node("Min", ["c", "n"], ["mn"]),
        helper.make_node("Mean", ["mx", "mn", "c"], ["me"]),
        helper.make_node("Sum", ["me", "mx"], ["s"]),
        helper.make_node("Dropout", ["s"], ["d"], ratio=0.3),
        helper.make_node("DepthToSpace", ["d"], ["ds"], blocksize=2),
        helper.make_node("GlobalMaxPool", ["ds"], ["g"]),
        helper.make_node("Add", ["ds", "g"], ["y"]),
    ]
    return sized(build(nodes, 7), "DepthToSpace")


def test_old_definitions_of_common_ops() -> None:
    check(old_definitions_of_common_ops())


# ----------------------------------------------------------------------- a legacy SR model end to end
@BUILDERS()
def legacy_espcn() -> OpCase:
    """An ESPCN-like x2 net as a 2018-era exporter wrote it (opset 9, IR 4): convs with auto_pad SAME_UPPER and
    PRelu (per-channel and scalar slopes), sub-pixel DepthToSpace-1, plus an Upsample-9 (linear) skip of the input."""
    rng = np.random.default_rng(1)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    inits = {"w1": weight(16, 3, 5, 5), "b1": np.zeros(16, np.float32), "a1": np.full((16, 1, 1), 0.2, np.float32),
             "w2": weight(8, 16, 3, 3), "b2": weight(8), "a2": np.array([0.1], np.float32),
             "w3": weight(12, 8, 3, 3), "b3": weight(12), "scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], auto_pad="SAME_UPPER", name="conv1"),
        helper.make_node("PRelu", ["c1", "a1"], ["p1"], name="prelu1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], auto_pad="SAME_UPPER", strides=[1, 1], name="conv2"),
        helper.make_node("PRelu", ["c2", "a2"], ["p2"], name="prelu2"),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], auto_pad="SAME_UPPER", name="conv3"),
        helper.make_node("DepthToSpace", ["c3"], ["sub"], blocksize=2, name="shuffle"),
        helper.make_node("Upsample", ["x", "scales"], ["up"], mode="linear", name="skip"),
        helper.make_node("Add", ["sub", "up"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes, "espcn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=ir_version(9),
                              producer_name="pytorch", producer_version="0.4.1")
    onnx.checker.check_model(model)
    return sized(model, "DepthToSpace", channels=3)


def legacy_espcn_file(path: Path) -> Path:
    """``legacy_espcn``'s model saved at ``path``."""
    onnx.save(legacy_espcn().model, path)
    return path


def test_legacy_sr_model_end_to_end(tmp_path) -> None:
    """load_model verifies it against onnxruntime; LAM runs; L2X is complete (float64) with exact rules only."""
    import onnxattr
    from onnxattr.methods.l2x import rule_coverage

    path = tmp_path / "espcn-opset9.onnx"
    legacy_espcn_file(path)
    model = onnxattr.load_model(path)
    assert model.scale == 2 and model.offset == 0 and model.opset == 9
    assert model.conversion_error < 1e-5
    image = onnxattr.read_image(Path(__file__).resolve().parents[1] / "samples" / "images" / "chelsea-64.png",
                                channels=3)[:, :, 10:30, 14:38]
    window = (18, 14, 12)
    lam = onnxattr.lam(model, image, window, steps=4)
    assert np.isfinite(lam["attribution"].values).all() and float(np.abs(lam["attribution"]).max()) > 0
    coverage = rule_coverage(model)
    assert coverage["missing"] == [] and coverage["approximate"] == []
    ds = onnxattr.l2x(model, image, window)
    assert float(ds["completeness_error"].max()) < 1e-7  # measured 2.0e-8
