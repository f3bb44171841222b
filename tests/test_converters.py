"""Each added converter on a tiny onnx.helper graph: to_torch output == onnxruntime output, at two input sizes
where the graph takes any (the models are registered builders, ``opcases``: tests/test_fastgraph.py runs them too)."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxattr.converters import export_onnx, prepare, to_torch
from onnxattr.errors import UnsupportedOpError

from opcases import Builders, OpCase

RNG = np.random.default_rng(0)
X = RNG.standard_normal((1, 4, 6, 8)).astype(np.float32)
X2 = RNG.standard_normal((1, 4, 10, 6)).astype(np.float32)  # the second input size (even sides: SpaceToDepth)
IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23's helper writes 14 by default
BUILDERS = Builders("converters")


def build(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: list[str], opset: int,
          initializers: dict[str, np.ndarray] | None = None, dynamic: tuple[str, ...] = ()) -> onnx.ModelProto:
    """A model whose graph inputs are typed like the sample ``inputs`` arrays (the last two dims of those named in
    ``dynamic`` symbolic), outputs untyped."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                       [*a.shape[:-2], f"{n}_h", f"{n}_w"] if n in dynamic else a.shape)
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def on_x(nodes: list[onnx.NodeProto], outputs: list[str], opset: int, op_type: str,
         initializers: dict[str, np.ndarray] | None = None) -> OpCase:
    """A graph of the image ``x`` alone, dynamic in H, W, fed ``X`` and ``X2``."""
    model = build(nodes, {"x": X}, outputs, opset, initializers, dynamic=("x",))
    return OpCase(model, ({"x": X}, {"x": X2}), op_type)


def fixed(model: onnx.ModelProto, feeds: dict[str, np.ndarray], op_type: str) -> OpCase:
    """A graph that takes one input size (its constants fix the shapes)."""
    return OpCase(model, (feeds,), op_type)


def check(case: OpCase) -> list[np.ndarray]:
    """Assert the converted graph kept the op under test and matches onnxruntime to 1e-5 on every input size;
    return ORT's outputs on the first."""
    session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
    module, prepared = to_torch(case.model)
    assert case.op_type in {n.op_type for n in prepared.graph.node}, "the op under test was folded away"
    assert not module.training
    first = None
    for inputs in case.feeds:
        expected = session.run(None, inputs)
        with torch.no_grad():
            got = module(*[torch.from_numpy(a) for a in inputs.values()])
        got = list(got) if isinstance(got, (tuple, list)) else [got]
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert tuple(g.shape) == e.shape
            if e.size:
                assert np.abs(g.numpy() - e).max() < 1e-5
        first = expected if first is None else first
    return first


REDUCE_OPS = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
              "ReduceSumSquare"]


@BUILDERS("op, keepdims", [(op, k) for op in REDUCE_OPS for k in (0, 1)])
def reduce18_constant_axes(op: str, keepdims: int) -> OpCase:
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
    return on_x([node], ["y"], 18, op, {"axes": np.array([1, -1], np.int64)})


@pytest.mark.parametrize(*reduce18_constant_axes.grid)
def test_reduce18_constant_axes(op: str, keepdims: int) -> None:
    out = check(reduce18_constant_axes(op, keepdims))[0]
    assert out.shape == ((1, 1, 6, 1) if keepdims else (1, 6))


@BUILDERS("form", ["dynamic", "all", "noop"])
def reduce18_axes_forms(form: str) -> OpCase:
    """Axes as a graph input, no axes (every axis), no axes with noop_with_empty_axes."""
    if form == "dynamic":
        axes = np.array([2, 3], np.int64)
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)
        model = build([node], {"x": X, "axes": axes}, ["y"], 18, dynamic=("x",))
        return OpCase(model, ({"x": X, "axes": axes}, {"x": X2, "axes": axes}), "ReduceMean")
    if form == "all":
        return on_x([helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0)], ["y"], 20, "ReduceMax")
    return on_x([helper.make_node("ReduceL2", ["x"], ["y"], noop_with_empty_axes=1)], ["y"], 18, "ReduceL2")


def test_reduce18_dynamic_and_empty_axes() -> None:
    check(reduce18_axes_forms("dynamic"))
    assert check(reduce18_axes_forms("all"))[0].shape == ()
    assert np.allclose(check(reduce18_axes_forms("noop"))[0], np.abs(X))


RESIZE_CASES = [
    # (opset, attributes, scales or None, sizes or None)
    (18, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     [1, 1, 2, 2], None),
    (18, {"mode": "nearest"}, [1, 1, 0.6, 1.7], None),
    (13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
     [1, 1, 3, 3], None),  # torch's nearest kernel (its indices are ONNX's)
    (13, {"mode": "nearest"}, None, [1, 4, 12, 32]),  # half_pixel round_prefer_floor x2, x4: torch's kernel too
    (18, {"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "round_prefer_ceil"},
     None, [1, 4, 9, 5]),
    (19, {"mode": "nearest", "coordinate_transformation_mode": "half_pixel_symmetric", "nearest_mode": "ceil"},
     [1, 1, 1.5, 0.7], None),
    (13, {"mode": "nearest", "coordinate_transformation_mode": "pytorch_half_pixel", "nearest_mode": "floor"},
     [1, 1, 3, 3], None),
    (18, {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 2, 2], None),
    (18, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 1.5, 0.5], None),
    (19, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, None, [1, 4, 11, 3]),
    (18, {"mode": "cubic", "coordinate_transformation_mode": "half_pixel"}, [1, 1, 2, 2], None),
    (13, {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}, None, [1, 4, 12, 16]),
]


@BUILDERS("opset, attrs, scales, sizes", RESIZE_CASES)
def resize(opset: int, attrs: dict, scales: list | None, sizes: list | None) -> OpCase:
    inits = {"roi": np.zeros(0, np.float32)}
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
    else:
        inits["sizes"] = np.array(sizes, np.int64)
    names = ["x", "roi", "scales"] if scales is not None else ["x", "roi", "", "sizes"]
    return on_x([helper.make_node("Resize", names, ["y"], **attrs)], ["y"], opset, "Resize", inits)


@pytest.mark.parametrize(*resize.grid)
def test_resize(opset: int, attrs: dict, scales: list | None, sizes: list | None) -> None:
    check(resize(opset, attrs, scales, sizes))


@BUILDERS()
def resize18_axes_attribute() -> OpCase:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", axes=[2, 3])
    return on_x([node], ["y"], 18, "Resize", {"scales": np.array([2.0, 3.0], np.float32)})


def test_resize18_axes_attribute() -> None:
    assert check(resize18_axes_attribute())[0].shape == (1, 4, 12, 24)


@BUILDERS("opset, mode, pads, axes", [
    (18, "constant", [0, 0, 1, 2, 0, 0, 3, 0], None),
    (18, "reflect", [2, 1, 1, 2], [2, 3]),
    (19, "edge", [0, 0, 1, 1, 0, 0, 2, 0], None),
    (19, "wrap", [1, 2, 3, 1], [-2, -1]),
    (21, "constant", [0, 0, -1, 2, 0, 1, 1, -2], None),
])
def pad(opset: int, mode: str, pads: list[int], axes: list[int] | None) -> OpCase:
    inits = {"pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)}
    names = ["x", "pads", "value" if mode == "constant" else ""]
    if axes is not None:
        inits["axes"] = np.array(axes, np.int64)
        names.append("axes")
    return on_x([helper.make_node("Pad", names, ["y"], mode=mode)], ["y"], opset, "Pad", inits)


@pytest.mark.parametrize(*pad.grid)
def test_pad(opset: int, mode: str, pads: list[int], axes: list[int] | None) -> None:
    check(pad(opset, mode, pads, axes))


@BUILDERS()
def pad18_dynamic_pads() -> OpCase:
    pads = np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64)
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")
    model = build([node], {"x": X, "pads": pads}, ["y"], 18, dynamic=("x",))
    return OpCase(model, ({"x": X, "pads": pads}, {"x": X2, "pads": pads}), "Pad")


def test_pad18_dynamic_pads() -> None:
    assert check(pad18_dynamic_pads())[0].shape == (1, 4, 7, 10)


@BUILDERS("form", ["uneven", "sized"])
def split18(form: str) -> OpCase:
    if form == "uneven":
        return on_x([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=3, num_outputs=3)], ["a", "b", "c"], 18,
                    "Split")
    sized = helper.make_node("Split", ["x", "split"], ["a", "b"], axis=1)
    return on_x([sized], ["a", "b"], 18, "Split", {"split": np.array([1, 3], np.int64)})


def test_split18() -> None:
    assert [o.shape[3] for o in check(split18("uneven"))] == [3, 3, 2]
    assert [o.shape[1] for o in check(split18("sized"))] == [1, 3]


SLICE_FORMS = {  # name -> (inputs after data: starts, ends, axes, steps; "" = left out), checked on X and X2
    "starts-ends": ([1, 0, 0, 2], [1000, 3, 100, -1]),  # no axes, no steps: the leading axes, step 1
    "negative-axes": ([1, -3], [-1, 100], [-2, -1]),
    "steps": ([0, 5, 1], [100, -100, 4], [3, 2, 1], [2, -2, 1]),  # a negative step reverses (from 5 down)
    "reverse": ([-1], [-(2**63)], [1], [-1]),  # the whole channel axis flipped: BGR <-> RGB
    "gap": ([1], [-1], "", [2]),  # axes left out, steps given (onnx2torch passes steps as a keyword)
}


@BUILDERS("form", list(SLICE_FORMS))
def slice13(form: str) -> OpCase:
    """Slice-10+ with its bounds as inputs: optional axes and steps left out, negative axes, steps > 1, negative
    steps (attribute-form Slice-1: tests/test_legacy_ops.py)."""
    inits, names = {}, ["x"]
    for name, value in zip(("starts", "ends", "axes", "steps"), SLICE_FORMS[form]):
        if value != "":
            inits[name] = np.array(value, np.int64)
        names.append(name if value != "" else "")
    return on_x([helper.make_node("Slice", names, ["y"])], ["y"], 13, "Slice", inits)


@pytest.mark.parametrize(*slice13.grid)
def test_slice13(form: str) -> None:
    check(slice13(form))


@BUILDERS("opset, indices, axis", [(13, np.array(2), 1), (13, np.array([2, 1, 0]), 1), (13, np.array([-1, 0]), -1),
                                   (11, np.array([[0, 1], [3, 2]]), 1), (9, np.array([0, 0, 2]), 2)])
def gather(opset: int, indices: np.ndarray, axis: int) -> OpCase:
    """Gather with constant indices: a scalar (drops the axis), a channel flip, negative indices on a negative axis,
    2-D indices, Gather-1 (opset 9)."""
    return on_x([helper.make_node("Gather", ["x", "idx"], ["y"], axis=axis)], ["y"], opset, "Gather",
                {"idx": indices.astype(np.int64)})


@pytest.mark.parametrize(*gather.grid)
def test_gather(opset: int, indices: np.ndarray, axis: int) -> None:
    check(gather(opset, indices, axis))


@BUILDERS("form", ["perm", "no-perm", "transpose-1", "concat-negative-axis", "concat-4", "squeeze-unsqueeze-1"])
def data_movement(form: str) -> OpCase:
    """Transpose with and without perm (reverses the axes), Transpose-1 (opset 9); Concat on a negative axis, Concat-4 (opset 9);
    Squeeze-1 / Unsqueeze-1 with attribute axes. (Opset < 7 broadcasting, Add-6 with ``broadcast``, is left out:
    onnxruntime runs no such file; the fast graph keeps its converted module.)"""
    make = helper.make_node
    if form in ("perm", "no-perm", "transpose-1"):
        attrs = {"perm": [0, 2, 3, 1]} if form != "no-perm" else {}
        nodes = [make("Transpose", ["x"], ["t"], **attrs), make("Relu", ["t"], ["y"])]
        return on_x(nodes, ["y"], 9 if form == "transpose-1" else 13, "Transpose")
    if form.startswith("concat"):
        nodes = [make("Neg", ["x"], ["n"]), make("Concat", ["x", "n", "x"], ["y"], axis=-1 if form.endswith("axis") else 1)]
        return on_x(nodes, ["y"], 9 if form == "concat-4" else 13, "Concat")
    nodes = [make("Unsqueeze", ["x"], ["u"], axes=[0, -1]), make("Relu", ["u"], ["r"]),
             make("Squeeze", ["r"], ["y"], axes=[0, 5])]
    return on_x(nodes, ["y"], 9, "Squeeze")


@pytest.mark.parametrize(*data_movement.grid)
def test_data_movement(form: str) -> None:
    check(data_movement(form))


def _updates(shape: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """Random updates whose last two dims are ``x``'s H, W."""
    return RNG.standard_normal((*shape, *x.shape[2:])).astype(np.float32)


@BUILDERS("reduction", ["none", "add", "mul", "max", "min"])
def scatter_nd18(reduction: str) -> OpCase:
    indices = np.array([[0, 1], [0, 3], [0, -1]] if reduction == "none" else [[0, 1], [0, 3], [0, 1]], np.int64)
    node = helper.make_node("ScatterND", ["x", "indices", "updates"], ["y"], reduction=reduction)
    model = build([node], {"x": X, "updates": _updates((3,), X)}, ["y"], 18, {"indices": indices},
                  dynamic=("x", "updates"))
    return OpCase(model, tuple({"x": x, "updates": _updates((3,), x)} for x in (X, X2)), "ScatterND")


@pytest.mark.parametrize(*scatter_nd18.grid)
def test_scatter_nd18(reduction: str) -> None:
    check(scatter_nd18(reduction))


@BUILDERS("data, indices", [
    (X, np.zeros((0, 2), np.int64)),  # no index rows
    (np.zeros((5, 0, 2), np.float32), np.array([[0], [3], [4]], np.int64)),  # SwinIR's mask: empty slices
])
def scatter_nd_empty_updates(data: np.ndarray, indices: np.ndarray) -> OpCase:
    updates = np.zeros(indices.shape[:-1] + data.shape[indices.shape[-1]:], np.float32)
    node = helper.make_node("ScatterND", ["x", "indices", "updates"], ["y"])
    feeds = {"x": data, "updates": updates, "indices": indices}
    return fixed(build([node], feeds, ["y"], 18), feeds, "ScatterND")


@pytest.mark.parametrize(*scatter_nd_empty_updates.grid)
def test_scatter_nd_empty_updates(data: np.ndarray, indices: np.ndarray) -> None:
    assert np.array_equal(check(scatter_nd_empty_updates(data, indices))[0], data)


@BUILDERS("reduction", ["none", "add", "mul", "max", "min"])
def scatter_elements18(reduction: str) -> OpCase:
    def feeds(x: np.ndarray) -> dict[str, np.ndarray]:
        indices = np.array([[[[0, 2, -1]]]], np.int64).repeat(4, 1).repeat(x.shape[2], 2)
        return {"x": x, "indices": indices, "updates": RNG.standard_normal(indices.shape).astype(np.float32)}

    node = helper.make_node("ScatterElements", ["x", "indices", "updates"], ["y"], axis=3, reduction=reduction)
    first = feeds(X)
    model = build([node], first, ["y"], 18, dynamic=("x", "indices", "updates"))
    return OpCase(model, (first, feeds(X2)), "ScatterElements")


@pytest.mark.parametrize(*scatter_elements18.grid)
def test_scatter_elements18(reduction: str) -> None:
    check(scatter_elements18(reduction))


@BUILDERS("form", ["allowzero-empty", "allowzero", "copy-dims"])
def reshape(form: str) -> OpCase:
    """allowzero=1 with an empty input and a dim 0 kept, allowzero=1 to a fixed shape, 0 copying dims."""
    if form == "allowzero-empty":
        node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)
        shape = np.array([3, 0, 4], np.int64)  # allowzero=0 would copy dim 1 (3) and fail
        feeds = {"x": np.zeros((0, 3, 4), np.float32), "shape": shape}
        return fixed(build([node], feeds, ["y"], 14), feeds, "Reshape")
    if form == "allowzero":
        node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)
        return fixed(build([node], {"x": X}, ["y"], 19, {"shape": np.array([2, 2, 48], np.int64)}), {"x": X}, "Reshape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    return on_x([node], ["y"], 21, "Reshape", {"shape": np.array([0, 0, -1], np.int64)})


def test_reshape_allowzero() -> None:
    assert check(reshape("allowzero-empty"))[0].shape == (3, 0, 4)
    assert check(reshape("allowzero"))[0].shape == (2, 2, 48)
    assert check(reshape("copy-dims"))[0].shape == (1, 4, 48)


@BUILDERS()
def layer_norm_unknown_dims() -> OpCase:
    """Input dims are symbolic, so shape inference cannot give the normalized shape."""
    scale, bias = RNG.standard_normal(8).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "n", "c"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    feeds = tuple({"x": RNG.standard_normal(shape).astype(np.float32)} for shape in ((2, 5, 8), (1, 9, 8)))
    return OpCase(model, feeds, "LayerNormalization")


def test_layer_norm_unknown_dims() -> None:
    case = layer_norm_unknown_dims()
    check(case)
    module, _ = to_torch(case.model)
    assert any(isinstance(m, torch.nn.LayerNorm) and m.normalized_shape == (8,) for m in module.modules())


@BUILDERS("scale", ["initializer", "input"])
def layer_norm_two_axes(scale: str) -> OpCase:
    """Normalized over H, W (the scale fixes them), the scale an initializer or a graph input."""
    weight = RNG.standard_normal((6, 8)).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=2)
    if scale == "initializer":
        return fixed(build([node], {"x": X}, ["y"], 17, {"scale": weight}), {"x": X}, "LayerNormalization")
    feeds = {"x": X, "scale": weight}
    return fixed(build([node], feeds, ["y"], 17), feeds, "LayerNormalization")


def test_layer_norm_two_axes_and_runtime_scale() -> None:
    check(layer_norm_two_axes("initializer"))
    check(layer_norm_two_axes("input"))


@BUILDERS("approximate", ["none", "tanh"])
def gelu20(approximate: str) -> OpCase:
    return on_x([helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)], ["y"], 20, "Gelu")


@pytest.mark.parametrize(*gelu20.grid)
def test_gelu20(approximate: str) -> None:
    check(gelu20(approximate))


@BUILDERS()
def mish18() -> OpCase:
    return on_x([helper.make_node("Mish", ["x"], ["y"])], ["y"], 18, "Mish")


def test_mish18() -> None:
    check(mish18())


@BUILDERS("mode", ["DCR", "CRD"])
def depth_to_space(mode: str) -> OpCase:
    x, x2 = (RNG.standard_normal(shape).astype(np.float32) for shape in ((2, 12, 3, 5), (2, 12, 4, 2)))
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)
    return OpCase(build([node], {"x": x}, ["y"], 13, dynamic=("x",)), ({"x": x}, {"x": x2}), "DepthToSpace")


@pytest.mark.parametrize(*depth_to_space.grid)
def test_depth_to_space(mode: str) -> None:
    assert check(depth_to_space(mode))[0].shape == (2, 3, 6, 10)


@BUILDERS()
def space_to_depth() -> OpCase:
    return on_x([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)], ["y"], 13, "SpaceToDepth")


def test_space_to_depth() -> None:
    assert check(space_to_depth())[0].shape == (1, 16, 3, 4)


@BUILDERS("op_type", ["Conv", "ConvTranspose"])
def conv_weights_from_constant_nodes(op_type: str) -> OpCase:
    weight = RNG.standard_normal((4, 4 if op_type == "Conv" else 3, 3, 3)).astype(np.float32)
    bias = RNG.standard_normal(4 if op_type == "Conv" else 3).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(weight)),
        helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(bias)),
        helper.make_node("Identity", ["w"], ["w2"]),
        helper.make_node(op_type, ["x", "w2", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], name="the_conv"),
    ]
    return on_x(nodes, ["y"], 17, op_type)


@pytest.mark.parametrize(*conv_weights_from_constant_nodes.grid)
def test_conv_weights_from_constant_nodes(op_type: str) -> None:
    check(conv_weights_from_constant_nodes(op_type))


@BUILDERS("op_type, opset", [(op, opset) for op in ("Conv", "ConvTranspose") for opset in (11, 22)])
def conv_weights_as_graph_input(op_type: str, opset: int) -> OpCase:
    weight = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
    pads = [0, 1, 2, 1] if op_type == "Conv" else [1, 0, 1, 0]
    node = helper.make_node(op_type, ["x", "w"], ["y"], pads=pads, group=2, dilations=[2, 1])
    model = build([node], {"x": X, "w": weight}, ["y"], opset, dynamic=("x",))
    return OpCase(model, ({"x": X, "w": weight}, {"x": X2, "w": weight}), op_type)


@pytest.mark.parametrize(*conv_weights_as_graph_input.grid)
def test_conv_weights_as_graph_input(op_type: str, opset: int) -> None:
    check(conv_weights_as_graph_input(op_type, opset))


@BUILDERS()
def identity_weights_and_clip_bounds() -> OpCase:
    """The TorchScript traps: a Conv weight behind Identity and Clip bounds from Constant nodes."""
    weight = RNG.standard_normal((4, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Identity", ["w"], ["w_dedup"], name="dedup"),
        helper.make_node("Conv", ["x", "w_dedup"], ["c"], name="conv_a"),
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(-0.5, np.float32))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
        helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip_a"),
    ]
    return on_x(nodes, ["y"], 17, "Clip", {"w": weight})


def test_prepare_folds_identity_weights_and_clip_bounds() -> None:
    case = identity_weights_and_clip_bounds()
    prepared = prepare(case.model)
    names = {n.name: n.op_type for n in prepared.graph.node}
    assert names == {"conv_a": "Conv", "clip_a": "Clip"}
    run = [ort.InferenceSession(m.SerializeToString()).run(None, {"x": X})[0] for m in (case.model, prepared)]
    assert np.abs(run[0] - run[1]).max() <= 1e-6
    check(case)


def test_unknown_op_names_the_node() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="fine"),
             helper.make_node("Hardmax", ["r"], ["y"], name="odd_one", axis=1)]
    with pytest.raises(UnsupportedOpError, match="Hardmax") as info:
        to_torch(build(nodes, {"x": X}, ["y"], 18))
    assert (info.value.op_type, info.value.version, info.value.node) == ("Hardmax", 13, "odd_one")


def test_refused_attribute_names_the_node() -> None:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", antialias=1, name="aa_resize")
    model = build([node], {"x": X}, ["y"], 18, {"scales": np.array([1, 1, 0.5, 0.5], np.float32)})
    with pytest.raises(UnsupportedOpError, match="antialias") as info:
        to_torch(model)
    assert (info.value.op_type, info.value.version, info.value.node) == ("Resize", 18, "aa_resize")


@BUILDERS("opset", [22, 24])
def type_only_opset_bumps(opset: int) -> OpCase:
    """Conv, HardSwish, Softplus, MaxPool, AveragePool, Cast, Transpose, Reshape, Flatten at a recent opset."""
    weight = RNG.standard_normal((4, 4, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c"], ["h"]),
        helper.make_node("Softplus", ["h"], ["s"]),
        helper.make_node("MaxPool", ["s"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[1, 2], strides=[1, 1]),
        helper.make_node("Cast", ["a"], ["a64"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["a64"], ["a32"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["a32"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["t", "flat_shape"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
    ]
    return on_x(nodes, ["f"], opset, "AveragePool", {"w": weight, "flat_shape": np.array([0, -1], np.int64)})


@pytest.mark.parametrize(*type_only_opset_bumps.grid)
def test_type_only_opset_bumps(opset: int) -> None:
    check(type_only_opset_bumps(opset))


def test_export_onnx_falls_back_to_static(tmp_path) -> None:
    """A model that specializes on its input size cannot be exported with dynamic H, W."""

    class SizeDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.shape[-1] == 16 else x

    with pytest.warns(UserWarning, match="dynamic dynamo export failed"):
        path = export_onnx(SizeDependent(), tmp_path / "m.onnx", input_shape=(1, 3, 16, 16))
    dims = [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 16]
    x = RNG.random((1, 3, 16, 16), dtype=np.float32)
    assert np.allclose(ort.InferenceSession(str(path)).run(None, {"input": x})[0], 2 * x)


def test_loading_skips_torchvision():
    """onnx2torch's detection-op converters (NonMaxSuppression, RoiAlign) are skipped, so loading a model
    imports neither torchvision nor torch._dynamo (seconds of every start); the model still verifies."""
    code = (
        "import sys, onnxattr\n"
        "m = onnxattr.load_model('samples/waifu2x-upconv7-x2.ts17.onnx')\n"
        "assert m.conversion_error < 1e-4\n"
        "loaded = {'torchvision', 'torch._dynamo'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]


def testtorch_nearest_index_indices_are_what_interpolate_takes():
    """converters.resize uses F.interpolate(mode='nearest') only where its source indices equal ONNX's: this
    pins torch_nearest_index to torch's kernel for every size up to 64 and output sizes 1x..7x and 1.5x."""
    import torch.nn.functional as F

    from onnxattr.converters.resize import torch_nearest_index

    for n in range(1, 65):
        for out in {n, 2 * n, 3 * n, 4 * n, 5 * n, 7 * n, (3 * n) // 2 or 1}:
            x = torch.arange(n, dtype=torch.float64).view(1, 1, n)
            got = F.interpolate(x, size=out, mode="nearest").view(-1).long()
            assert torch.equal(got, torch_nearest_index(n, out)), (n, out)


GRID = (RNG.random((1, 5, 7, 2)) * 2.4 - 1.2).astype(np.float32)  # some points outside [-1, 1]: padding modes matter


@BUILDERS("opset, mode, padding_mode, align_corners", [
    (opset, mode, padding, corners) for opset in (16, 20, 22) for mode in ("linear", "nearest", "cubic")
    for padding in ("zeros", "border", "reflection") for corners in (0, 1)])
def grid_sample(opset: int, mode: str, padding_mode: str, align_corners: int) -> OpCase:
    """GridSample 16 (modes bilinear / bicubic) and 20 / 22 (linear / cubic), the grid an input."""
    if opset == 16 and mode != "nearest":
        mode = {"linear": "bilinear", "cubic": "bicubic"}[mode]
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)
    model = build([node], {"x": X, "grid": GRID}, ["y"], opset, dynamic=("x",))
    return OpCase(model, ({"x": X, "grid": GRID}, {"x": X2, "grid": GRID}), "GridSample")


@pytest.mark.parametrize(*grid_sample.grid)
def test_grid_sample(opset: int, mode: str, padding_mode: str, align_corners: int) -> None:
    """Against onnxruntime on both input sizes."""
    check(grid_sample(opset, mode, padding_mode, align_corners))


@BUILDERS("case", ["GroupNormalization-18", "GroupNormalization-21", "LpNormalization-1", "LpNormalization-22",
                   "MeanVarianceNormalization-13", "ThresholdedRelu-10"])
def normalizations_and_thresholded_relu(case: str) -> OpCase:
    op, opset = case.split("-")
    inits: dict[str, np.ndarray] = {}
    attrs: dict = {}
    if op == "GroupNormalization":
        n = 2 if opset == "18" else 4  # scale and bias per group (18), per channel (21)
        inits = {"s": RNG.random(n).astype(np.float32) + 0.5, "b": RNG.standard_normal(n).astype(np.float32)}
        attrs = {"num_groups": 2, "epsilon": 1e-4}
    elif op == "LpNormalization":
        attrs = {"axis": 1, "p": 2} if opset == "1" else {"axis": -1, "p": 1}
    elif op == "MeanVarianceNormalization":
        attrs = {"axes": [2, 3]}
    else:
        attrs = {"alpha": 0.3}
    return on_x([helper.make_node(op, ["x", *inits], ["y"], **attrs)], ["y"], int(opset), op, inits)


@pytest.mark.parametrize(*normalizations_and_thresholded_relu.grid)
def test_normalizations_and_thresholded_relu(case: str) -> None:
    check(normalizations_and_thresholded_relu(case))


class _Warp(torch.nn.Module):
    """A flow-guided x2 net: conv, GroupNorm (both exporters write InstanceNormalization), SiLU, a flow from the
    features warping them by F.grid_sample (GridSample 16 / 20), pixel shuffle."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c, self.g, self.o = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.Conv2d(8, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional.silu(self.g(self.c(x)))
        h, w = x.shape[2:]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        grid = torch.stack([xs, ys], -1)[None] + 0.05 * torch.tanh(f[:, :2]).permute(0, 2, 3, 1)
        return torch.nn.functional.pixel_shuffle(self.o(torch.nn.functional.grid_sample(f, grid, align_corners=False)), 2)


@functools.cache
def _warp_export(exporter: str) -> bytes:
    """The exported _Warp file's bytes (exported once per process)."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export_onnx(_Warp().eval(), Path(tmp) / f"warp-{exporter}.onnx", exporter=exporter,
                           input_shape=(1, 3, 16, 16))
        if exporter == "dynamo":  # linspace(h) keeps the dynamo export static
            assert any("dynamic dynamo export failed" in str(w.message) for w in caught)
        return path.read_bytes()


@BUILDERS("exporter", ["torchscript", "dynamo"])
def flow_warping_model(exporter: str) -> OpCase:
    """_Warp exported; the TorchScript file takes any size, the dynamo one 16x16 only."""
    model = onnx.load_from_string(_warp_export(exporter))
    sizes = [(16, 16)] + ([(12, 20)] if exporter == "torchscript" else [])
    return OpCase(model, tuple({"input": RNG.random((1, 3, h, w), dtype=np.float32)} for h, w in sizes), "GridSample")


@pytest.mark.parametrize(*flow_warping_model.grid)
def test_flow_warping_model_end_to_end(tmp_path, exporter: str) -> None:
    """Loads verified; LAM is finite; L2X names GridSample (no exact rule: the grid depends on the image) and, with
    the plain gradient for it, is complete only approximately (the gap is the gradient rule's)."""
    import onnxattr

    path = tmp_path / f"warp-{exporter}.onnx"
    onnx.save(flow_warping_model(exporter).model, path)
    model = onnxattr.load_model(path)
    assert "GridSample" in {n.op_type for n in model.nodes} and model.conversion_error < 1e-5
    image = torch.rand(1, 3, 16, 16)  # the dynamo export of linspace(h) falls back to a static 16x16 graph
    lam = onnxattr.lam(model, image, (8, 8, 8), frame="sr", steps=4)
    assert np.isfinite(lam["attribution"].values).all()
    with pytest.raises(onnxattr.OnnxAttrError, match=r"L2X cannot propagate ONNX op GridSample .* unknown_ops='gradient'"):
        onnxattr.l2x(model, image, (8, 8, 8), frame="sr")
    approx = onnxattr.l2x(model, image, (8, 8, 8), frame="sr", unknown_ops="gradient")
    assert np.isfinite(approx["attribution"].values).all()
