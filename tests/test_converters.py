"""Each added converter on a tiny onnx.helper graph: to_torch output == onnxruntime output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxattr.converters import export_onnx, prepare, to_torch
from onnxattr.errors import UnsupportedOpError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((1, 4, 6, 8)).astype(np.float32)
IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23's helper writes 14 by default


def build(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], outputs: list[str], opset: int,
          initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A model whose graph inputs are typed like the sample ``inputs`` arrays, outputs untyped."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def check(model: onnx.ModelProto, inputs: dict[str, np.ndarray], op_type: str) -> list[np.ndarray]:
    """Assert the converted graph kept ``op_type`` and matches onnxruntime to 1e-5; return ORT outputs."""
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)
    module, prepared = to_torch(model)
    assert op_type in {n.op_type for n in prepared.graph.node}, "the op under test was folded away"
    assert not module.training
    with torch.no_grad():
        got = module(*[torch.from_numpy(a) for a in inputs.values()])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert tuple(g.shape) == e.shape
        if e.size:
            assert np.abs(g.numpy() - e).max() < 1e-5
    return expected


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                "ReduceLogSumExp", "ReduceSumSquare"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce18_constant_axes(op: str, keepdims: int) -> None:
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
    model = build([node], {"x": X}, ["y"], 18, {"axes": np.array([1, -1], np.int64)})
    out = check(model, {"x": X}, op)[0]
    assert out.shape == ((1, 1, 6, 1) if keepdims else (1, 6))


def test_reduce18_dynamic_and_empty_axes() -> None:
    dyn = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)
    check(build([dyn], {"x": X, "axes": np.array([2, 3], np.int64)}, ["y"], 18),
          {"x": X, "axes": np.array([2, 3], np.int64)}, "ReduceMean")
    everything = helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0)
    assert check(build([everything], {"x": X}, ["y"], 20), {"x": X}, "ReduceMax")[0].shape == ()
    noop = helper.make_node("ReduceL2", ["x"], ["y"], noop_with_empty_axes=1)
    assert np.allclose(check(build([noop], {"x": X}, ["y"], 18), {"x": X}, "ReduceL2")[0], np.abs(X))


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


@pytest.mark.parametrize(("opset", "attrs", "scales", "sizes"), RESIZE_CASES)
def test_resize(opset: int, attrs: dict, scales: list | None, sizes: list | None) -> None:
    inits = {"roi": np.zeros(0, np.float32)}
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
    else:
        inits["sizes"] = np.array(sizes, np.int64)
    names = ["x", "roi", "scales"] if scales is not None else ["x", "roi", "", "sizes"]
    node = helper.make_node("Resize", names, ["y"], **attrs)
    check(build([node], {"x": X}, ["y"], opset, inits), {"x": X}, "Resize")


def test_resize18_axes_attribute() -> None:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", axes=[2, 3])
    model = build([node], {"x": X}, ["y"], 18, {"scales": np.array([2.0, 3.0], np.float32)})
    assert check(model, {"x": X}, "Resize")[0].shape == (1, 4, 12, 24)


@pytest.mark.parametrize(("opset", "mode", "pads", "axes"), [
    (18, "constant", [0, 0, 1, 2, 0, 0, 3, 0], None),
    (18, "reflect", [2, 1, 1, 2], [2, 3]),
    (19, "edge", [0, 0, 1, 1, 0, 0, 2, 0], None),
    (19, "wrap", [1, 2, 3, 1], [-2, -1]),
    (21, "constant", [0, 0, -1, 2, 0, 1, 1, -2], None),
])
def test_pad(opset: int, mode: str, pads: list[int], axes: list[int] | None) -> None:
    inits = {"pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)}
    names = ["x", "pads", "value" if mode == "constant" else ""]
    if axes is not None:
        inits["axes"] = np.array(axes, np.int64)
        names.append("axes")
    node = helper.make_node("Pad", names, ["y"], mode=mode)
    check(build([node], {"x": X}, ["y"], opset, inits), {"x": X}, "Pad")


def test_pad18_dynamic_pads() -> None:
    pads = np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64)
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")
    assert check(build([node], {"x": X, "pads": pads}, ["y"], 18), {"x": X, "pads": pads}, "Pad")[0].shape \
        == (1, 4, 7, 10)


def test_split18() -> None:
    uneven = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=3, num_outputs=3)
    outs = check(build([uneven], {"x": X}, ["a", "b", "c"], 18), {"x": X}, "Split")
    assert [o.shape[3] for o in outs] == [3, 3, 2]
    sized = helper.make_node("Split", ["x", "split"], ["a", "b"], axis=1)
    model = build([sized], {"x": X}, ["a", "b"], 18, {"split": np.array([1, 3], np.int64)})
    assert [o.shape[1] for o in check(model, {"x": X}, "Split")] == [1, 3]


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd18(reduction: str) -> None:
    indices = np.array([[0, 1], [0, 3], [0, -1]] if reduction == "none" else [[0, 1], [0, 3], [0, 1]], np.int64)
    updates = RNG.standard_normal((3, 6, 8)).astype(np.float32)
    node = helper.make_node("ScatterND", ["x", "indices", "updates"], ["y"], reduction=reduction)
    model = build([node], {"x": X, "updates": updates}, ["y"], 18, {"indices": indices})
    check(model, {"x": X, "updates": updates}, "ScatterND")


@pytest.mark.parametrize(("data", "indices"), [
    (X, np.zeros((0, 2), np.int64)),  # no index rows
    (np.zeros((5, 0, 2), np.float32), np.array([[0], [3], [4]], np.int64)),  # SwinIR's mask: empty slices
])
def test_scatter_nd_empty_updates(data: np.ndarray, indices: np.ndarray) -> None:
    updates = np.zeros(indices.shape[:-1] + data.shape[indices.shape[-1]:], np.float32)
    node = helper.make_node("ScatterND", ["x", "indices", "updates"], ["y"])
    feeds = {"x": data, "updates": updates, "indices": indices}
    out = check(build([node], feeds, ["y"], 18), feeds, "ScatterND")[0]
    assert np.array_equal(out, data)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements18(reduction: str) -> None:
    indices = np.array([[[[0, 2, -1]]]], np.int64).repeat(4, 1).repeat(6, 2)
    updates = RNG.standard_normal(indices.shape).astype(np.float32)
    node = helper.make_node("ScatterElements", ["x", "indices", "updates"], ["y"], axis=3, reduction=reduction)
    model = build([node], {"x": X, "updates": updates}, ["y"], 18, {"indices": indices})
    check(model, {"x": X, "updates": updates}, "ScatterElements")


def test_reshape_allowzero() -> None:
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)
    shape = np.array([3, 0, 4], np.int64)  # allowzero=0 would copy dim 1 (3) and fail
    empty = np.zeros((0, 3, 4), np.float32)
    out = check(build([node], {"x": empty, "shape": shape}, ["y"], 14), {"x": empty, "shape": shape}, "Reshape")
    assert out[0].shape == (3, 0, 4)
    model = build([node], {"x": X}, ["y"], 19, {"shape": np.array([2, 2, 48], np.int64)})
    assert check(model, {"x": X}, "Reshape")[0].shape == (2, 2, 48)
    copy_dims = helper.make_node("Reshape", ["x", "shape"], ["y"])
    model = build([copy_dims], {"x": X}, ["y"], 21, {"shape": np.array([0, 0, -1], np.int64)})
    assert check(model, {"x": X}, "Reshape")[0].shape == (1, 4, 48)


def test_layer_norm_unknown_dims() -> None:
    """Input dims are symbolic, so shape inference cannot give the normalized shape."""
    scale, bias = RNG.standard_normal(8).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "n", "c"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    x = RNG.standard_normal((2, 5, 8)).astype(np.float32)
    check(model, {"x": x}, "LayerNormalization")
    module, _ = to_torch(model)
    assert any(isinstance(m, torch.nn.LayerNorm) and m.normalized_shape == (8,) for m in module.modules())


def test_layer_norm_two_axes_and_runtime_scale() -> None:
    scale = RNG.standard_normal((6, 8)).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=2)
    check(build([node], {"x": X}, ["y"], 17, {"scale": scale}), {"x": X}, "LayerNormalization")
    check(build([node], {"x": X, "scale": scale}, ["y"], 17), {"x": X, "scale": scale}, "LayerNormalization")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu20(approximate: str) -> None:
    node = helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    check(build([node], {"x": X}, ["y"], 20), {"x": X}, "Gelu")


def test_mish18() -> None:
    check(build([helper.make_node("Mish", ["x"], ["y"])], {"x": X}, ["y"], 18), {"x": X}, "Mish")


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode: str) -> None:
    x = RNG.standard_normal((2, 12, 3, 5)).astype(np.float32)
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)
    assert check(build([node], {"x": x}, ["y"], 13), {"x": x}, "DepthToSpace")[0].shape == (2, 3, 6, 10)


def test_space_to_depth() -> None:
    node = helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)
    assert check(build([node], {"x": X}, ["y"], 13), {"x": X}, "SpaceToDepth")[0].shape == (1, 16, 3, 4)


@pytest.mark.parametrize("op_type", ["Conv", "ConvTranspose"])
def test_conv_weights_from_constant_nodes(op_type: str) -> None:
    weight = RNG.standard_normal((4, 4 if op_type == "Conv" else 3, 3, 3)).astype(np.float32)
    bias = RNG.standard_normal(4 if op_type == "Conv" else 3).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(weight)),
        helper.make_node("Constant", [], ["b"], value=numpy_helper.from_array(bias)),
        helper.make_node("Identity", ["w"], ["w2"]),
        helper.make_node(op_type, ["x", "w2", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], name="the_conv"),
    ]
    check(build(nodes, {"x": X}, ["y"], 17), {"x": X}, op_type)


@pytest.mark.parametrize("opset", [11, 22])
@pytest.mark.parametrize("op_type", ["Conv", "ConvTranspose"])
def test_conv_weights_as_graph_input(op_type: str, opset: int) -> None:
    weight = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
    pads = [0, 1, 2, 1] if op_type == "Conv" else [1, 0, 1, 0]
    node = helper.make_node(op_type, ["x", "w"], ["y"], pads=pads, group=2, dilations=[2, 1])
    check(build([node], {"x": X, "w": weight}, ["y"], opset), {"x": X, "w": weight}, op_type)


def test_prepare_folds_identity_weights_and_clip_bounds() -> None:
    """The TorchScript traps: a Conv weight behind Identity and Clip bounds from Constant nodes."""
    weight = RNG.standard_normal((4, 4, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Identity", ["w"], ["w_dedup"], name="dedup"),
        helper.make_node("Conv", ["x", "w_dedup"], ["c"], name="conv_a"),
        helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(-0.5, np.float32))),
        helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
        helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip_a"),
    ]
    model = build(nodes, {"x": X}, ["y"], 17, {"w": weight})
    prepared = prepare(model)
    names = {n.name: n.op_type for n in prepared.graph.node}
    assert names == {"conv_a": "Conv", "clip_a": "Clip"}
    run = [ort.InferenceSession(m.SerializeToString()).run(None, {"x": X})[0] for m in (model, prepared)]
    assert np.abs(run[0] - run[1]).max() <= 1e-6
    check(model, {"x": X}, "Clip")


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


@pytest.mark.parametrize("opset", [22, 24])
def test_type_only_opset_bumps(opset: int) -> None:
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
    model = build(nodes, {"x": X}, ["f"], opset, {"w": weight, "flat_shape": np.array([0, -1], np.int64)})
    check(model, {"x": X}, "AveragePool")


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


@pytest.mark.parametrize("opset", [16, 20, 22])
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample(opset: int, mode: str, padding_mode: str, align_corners: int) -> None:
    """GridSample 16 (modes bilinear / bicubic) and 20 / 22 (linear / cubic) against onnxruntime, the grid an input."""
    if opset == 16 and mode != "nearest":
        mode = {"linear": "bilinear", "cubic": "bicubic"}[mode]
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)
    check(build([node], {"x": X, "grid": GRID}, ["y"], opset), {"x": X, "grid": GRID}, "GridSample")


@pytest.mark.parametrize("case", ["GroupNormalization-18", "GroupNormalization-21", "LpNormalization-1",
                                  "LpNormalization-22", "MeanVarianceNormalization-13", "ThresholdedRelu-10"])
def test_normalizations_and_thresholded_relu(case: str) -> None:
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
    node = helper.make_node(op, ["x", *inits], ["y"], **attrs)
    check(build([node], {"x": X}, ["y"], int(opset), inits), {"x": X}, op)


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


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_flow_warping_model_end_to_end(tmp_path, exporter: str) -> None:
    """Loads verified; LAM is finite; L2X names GridSample (no exact rule: the grid depends on the image) and, with
    the plain gradient for it, is complete only approximately (the gap is the gradient rule's)."""
    import onnxattr

    path = export_onnx(_Warp().eval(), tmp_path / f"warp-{exporter}.onnx", exporter=exporter, input_shape=(1, 3, 16, 16))
    model = onnxattr.load_model(path)
    assert "GridSample" in {n.op_type for n in model.nodes} and model.conversion_error < 1e-5
    image = torch.rand(1, 3, 16, 16)  # the dynamo export of linspace(h) falls back to a static 16x16 graph
    lam = onnxattr.lam(model, image, (8, 8, 8), frame="sr", steps=4)
    assert np.isfinite(lam["attribution"].values).all()
    with pytest.raises(onnxattr.OnnxAttrError, match=r"L2X cannot propagate ONNX op GridSample .* unknown_ops='gradient'"):
        onnxattr.l2x(model, image, (8, 8, 8), frame="sr")
    approx = onnxattr.l2x(model, image, (8, 8, 8), frame="sr", unknown_ops="gradient")
    assert np.isfinite(approx["attribution"].values).all()
