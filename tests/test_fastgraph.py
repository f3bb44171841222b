"""The untapped fast path (onnxattr/intake/fastgraph.py): same values and gradients as the full converted graph,
shape sub-graphs folded, wrappers and patterns replaced by native ops, a wrong rewrite caught, a failing rule
declined; and the fast copy against the full graph on every model the converter tests build (the builders of
tests/test_converters.py and tests/test_legacy_ops.py, the zoo of tests/zoo.py), at two input sizes, to 1e-6."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from nets import SiLUResNet, export
from test_converters import BUILDERS as BUILDERS_CONVERTERS
from test_legacy_ops import BUILDERS as BUILDERS_LEGACY
from torch import nn
from zoo import ARCHS, EXPORTERS, SHAPE

import onnxattr
from onnxattr.converters import export_onnx, to_torch
from onnxattr.intake import fastgraph
from onnxattr.intake.convert import op_table

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SHAPE_OPS = {"Shape", "Gather", "Reshape", "Transpose", "Unsqueeze", "Concat", "Slice", "Expand", "Cast"}


class MixerNet(nn.Module):
    """conv, then per-pixel Linear + exact GELU + Mish over channels (MatMul+Add, the Erf and Softplus/Tanh
    patterns in a TorchScript opset-17 export), a view through (N, H*W, C), pixel shuffle x2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 8), nn.Conv2d(8, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        n, c, hh, ww = h.shape
        t = h.flatten(2).transpose(1, 2)  # (N, H*W, C)
        t = F.mish(F.gelu(self.fc(t)))
        h = t.transpose(1, 2).reshape(n, c, hh, ww)
        return F.pixel_shuffle(self.out(h), 2)


def _ops(gm: torch.fx.GraphModule, op_types: dict[str, str]) -> list[str]:
    """The ONNX op of each module call and the name of each function call in a graph."""
    return [op_types.get(n.name, n.target) if n.op == "call_module" else getattr(n.target, "__name__", str(n.target))
            for n in gm.graph.nodes if n.op in ("call_module", "call_function")]


def _fast_and_full(model: onnxattr.SRModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                        torch.Tensor]:
    """(fast output, full output, fast input gradient, full input gradient) of sum(output^2)."""
    outs = []
    for f in (model.fast, model.fast, model.fast, model.graph):  # the first fast call runs the full graph, the second
        xi = x.clone().requires_grad_()                             # builds the copy (and runs the full graph node by node)
        y = f(xi)
        (g,) = torch.autograd.grad((y ** 2).sum(), xi)
        outs.append((y.detach(), g))
    (_, _), (_, _), (y_fast, g_fast), (y_full, g_full) = outs
    return y_fast, y_full, g_fast, g_full


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def mixer(tmp_path_factory) -> onnxattr.SRModel:
    return onnxattr.load_model(export(MixerNet(), tmp_path_factory.mktemp("mixer"), "mixer"))


@pytest.mark.parametrize("batch", [1, 3])
def test_mixer_fast_equals_full_in_values_and_gradients(mixer, batch):
    x = torch.rand(batch, 3, 12, 20) * mixer.value_range
    y_fast, y_full, g_fast, g_full = _fast_and_full(mixer, x)
    assert y_fast.shape == (batch, 3, 24, 40)
    assert _close(y_fast, y_full) < 1e-5 and _close(g_fast, g_full) < 1e-5
    with torch.no_grad():
        assert _close(y_full, MixerNet().eval()(x)) < 1e-5  # and both are the original module


def test_mixer_copy_is_fused_and_has_no_shape_arithmetic(mixer):
    x = torch.rand(1, 3, 12, 20)
    mixer.fast(x)
    mixer.fast(x)  # the second call at a shape builds its copy
    op_types = mixer.fast.op_types
    fast = _ops(mixer.fast.cache[(tuple(x.shape), x.dtype, x.device)], op_types)
    full = _ops(mixer.graph, op_types)
    assert {"Erf", "Softplus", "MatMul", "Shape", "Gather"} <= set(full)
    assert {"linear", "gelu", "mish"} <= set(fast)
    assert not set(fast) & (SHAPE_OPS | {"Erf", "Softplus", "Tanh", "MatMul"})
    assert len(fast) < len(full) / 2


@pytest.mark.parametrize("name", ["dat-light-x2.dynamo.onnx", "waifu2x-upresnet10-x2.ts17.onnx",
                                  "waifu2x-upconv7-x2.dynamo.onnx"])
def test_samples_fast_equals_full(name):
    model = onnxattr.load_model(SAMPLES / name)
    h, w = model.probe_size
    x = torch.rand(2, model.in_channels, h, w) * model.value_range
    y_fast, y_full, g_fast, g_full = _fast_and_full(model, x)
    assert _close(y_fast, y_full) < 1e-5 and _close(g_fast, g_full) < 1e-5
    fast = model.fast.cache[(tuple(x.shape), x.dtype, x.device)]
    assert not set(_ops(fast, model.fast.op_types)) & {"Shape", "Gather", "Reshape", "Expand"}


def test_a_wrong_rewrite_is_caught_and_the_full_graph_runs(mixer, monkeypatch):
    def relu_for_gelu(n, op_types, facts):
        hit = fastgraph._gelu(n, op_types, facts)
        return (hit[0], F.relu, hit[2]) if hit else None

    monkeypatch.setattr(fastgraph, "FUSIONS", dict(fastgraph.FUSIONS, Erf=relu_for_gelu))
    fast = fastgraph.FastGraphs(mixer.graph, mixer.fast.op_types)
    x = torch.rand(1, 3, 10, 10)
    fast(x)  # a shape's first call runs the full graph; its second builds the copy, checks it and declines it
    with pytest.warns(UserWarning, match="differs from the full graph"):
        y = fast(x)
    with torch.no_grad():
        assert _close(y, mixer.graph(x)) < 1e-6
    assert fast.cache[(tuple(x.shape), x.dtype, x.device)] is mixer.graph


def test_a_shape_used_once_runs_the_full_graph_and_is_not_specialised(mixer, monkeypatch):
    """A shape's first call runs the full graph and builds nothing (a LAM call's last partial batch is used once)."""
    fast = fastgraph.FastGraphs(mixer.graph, mixer.fast.op_types)
    built = []
    monkeypatch.setattr(fastgraph, "specialise", lambda *a: built.append(a[2].shape) or (None, mixer.graph(a[2])))
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert _close(fast(x), mixer.graph(x)) < 1e-6
        assert not built and not fast.cache
        fast(x)
    assert built == [x.shape] and list(fast.cache) == [(tuple(x.shape), x.dtype, x.device)]


def test_copies_are_kept_per_shape_least_recently_used_out(mixer):
    fast = fastgraph.FastGraphs(mixer.graph, mixer.fast.op_types, size=2)
    shapes = [(1, 3, 8, 8)] * 2 + [(1, 3, 8, 10)] * 2 + [(1, 3, 8, 8)] + [(1, 3, 10, 8)] * 2  # copies from the second call
    with torch.no_grad():
        for s in shapes:
            assert _close(fast(torch.ones(s)), mixer.graph(torch.ones(s))) < 1e-5
    assert [k[0] for k in fast.cache] == [(1, 3, 8, 8), (1, 3, 10, 8)]


def test_taps_still_see_every_node(mixer):
    seen: list[str] = []
    x = torch.rand(1, 3, 8, 8)
    mixer.run(x, [n.name for n in mixer.nodes], lambda name, v: seen.append(name) or v)
    assert len(seen) == len(mixer.nodes) and "Erf" in {mixer.op_type(n) for n in seen}


# ----------------------------------------------- every model the converter tests build: fast == full
ZOO_SECOND_SIZE = (24, 40)  # the zoo's dynamic files at a second size (the first is the export's 32x32)
OP_CASES = BUILDERS_CONVERTERS.cases() + BUILDERS_LEGACY.cases()


def _fast_equals_full(proto: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]]) -> tuple[float, set[str]]:
    """Convert ``proto``, specialise its graph to each feed's shapes and run the copy against the full graph:
    the worst relative max difference and the op types still run as converted modules in any copy. A copy that
    is not built (the check's fallback, with a warning) fails the test: warnings are errors here."""
    gm, prepared = to_torch(proto)
    op_types = {name: op for name, (op, _) in op_table(prepared, gm).items()}
    worst, kept = 0.0, set()
    for feed in feeds:
        inputs = [torch.from_numpy(np.ascontiguousarray(a)) for a in feed.values()]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("error", message="the specialised graph")
            fast, full = fastgraph.specialise(gm, op_types, *inputs)  # full: the full graph's output
            assert fast is not None
            worst = max(worst, fastgraph.relative_gap(fast(*inputs), full))
        kept |= {op_types[n.name] for n in fast.graph.nodes if n.op == "call_module" and n.name in op_types}
    return worst, kept


@pytest.mark.parametrize("build", [b for _, b in OP_CASES], ids=[name for name, _ in OP_CASES])
def test_fast_graph_equals_the_full_graph_on_every_converter_model(build):
    """Every model of tests/test_converters.py and tests/test_legacy_ops.py (all op forms, legacy opsets), at each
    of its input sizes (two where the graph takes any): the fast copy equals the full graph to 1e-6, and Slice and
    Gather with constant bounds (Slice-1 attributes, Slice-10+ inputs with optional ones left out, negative axes,
    steps of either sign) run natively."""
    case = build()
    worst, kept = _fast_equals_full(case.model, case.feeds)
    assert worst <= 1e-6
    if case.op_type in ("Slice", "Gather"):
        assert case.op_type not in kept


@pytest.mark.parametrize(("arch", "exporter"), [(a, e) for a in ARCHS for e in EXPORTERS])
def test_fast_graph_equals_the_full_graph_on_the_zoo(arch, exporter, zoo_cache):
    """The conversion zoo's files (both exporters): the fast copy equals the full graph to 1e-6 at 32x32 and, for
    dynamic files, at 24x40."""
    sizes = [SHAPE[2:]] + ([ZOO_SECOND_SIZE] if ARCHS[arch].dynamic else [])
    rng = np.random.default_rng(0)
    feeds = [{"input": rng.random((1, 3, *hw), dtype=np.float32)} for hw in sizes]
    worst, _ = _fast_equals_full(onnx.load(zoo_cache(arch, exporter).path), feeds)
    assert worst <= 1e-6


def test_slice1_u_net_at_opset_9_loads_and_runs(tmp_path):
    """The Real-CUGAN failure: an opset-9 TorchScript export crops its skip with attribute-form Slice-1 (the
    bounds live in the converted module, no inputs); the fast path used to read them as inputs and raised at the
    first forward. Now Slice-1 runs natively and the model equals its full graph."""
    from test_intake import UNetish

    path = export_onnx(UNetish(), tmp_path / "unet9.onnx", exporter="torchscript", opset=9, input_shape=(1, 3, 48, 48))
    assert any(n.op_type == "Slice" and not n.input[1:] for n in onnx.load(path).graph.node)  # the attribute form
    model = onnxattr.load_model(path)
    x = torch.rand(1, 3, 44, 44)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("error", message="the specialised graph")
        for _ in range(3):  # the full graph, then builds the copy, then runs it
            y = model(x)
    fast = model.fast.cache[(tuple(x.shape), x.dtype, x.device)]
    assert fast is not model.graph and "Slice" not in {model.op_type(n.name) for n in fast.graph.nodes}
    with torch.no_grad():
        assert fastgraph.relative_gap(y, model.graph(x)) <= 1e-6


def test_a_failing_rule_declines(mixer, monkeypatch):
    """A rule that raises on a node it meets declines: the node runs as converted, the copy is still built and
    equals the full graph."""
    def broken(n, module, facts):
        raise TypeError("a form this rule never met")

    monkeypatch.setitem(fastgraph.NATIVE, "Transpose", broken)
    fast = fastgraph.FastGraphs(mixer.graph, mixer.fast.op_types)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("error", message="the specialised graph")
        fast(x)
        y = fast(x)
    copy = fast.cache[(tuple(x.shape), x.dtype, x.device)]
    assert copy is not mixer.graph and "Transpose" in _ops(copy, mixer.fast.op_types)
    with torch.no_grad():
        assert _close(y, mixer.graph(x)) < 1e-6


@pytest.fixture(scope="module")
def silu_net(tmp_path_factory) -> onnxattr.SRModel:
    path = export_onnx(SiLUResNet(channels=8, blocks=2), tmp_path_factory.mktemp("silu") / "silu.onnx",
                       exporter="torchscript", opset=13)
    return onnxattr.load_model(path, value_range=255)


@pytest.mark.parametrize("batch", [1, 3])
def test_silu_is_fused_and_equals_the_unfused_graph_in_values_and_gradients(silu_net, batch):
    """x * sigmoid(x) (SiLU at opset 13) runs as F.silu in the fast copy: the same values and input gradients as the
    unfused graph to float32 rounding, and as the original module fed 0..255."""
    x = torch.rand(batch, 3, 12, 20) * 255
    y_fast, y_full, g_fast, g_full = _fast_and_full(silu_net, x)
    assert _close(y_fast, y_full) < 1e-5 and _close(g_fast, g_full) < 1e-5
    with torch.no_grad():
        assert _close(y_full, SiLUResNet(channels=8, blocks=2).eval()(x)) < 1e-5
    fast = _ops(silu_net.fast.cache[(tuple(x.shape), x.dtype, x.device)], silu_net.fast.op_types)
    assert "Sigmoid" in _ops(silu_net.graph, silu_net.fast.op_types)
    assert fast.count("silu") == 2 and "Sigmoid" not in fast and fast.count("mul") == 1  # the output's * 255


def test_a_sigmoid_gate_is_not_taken_for_silu(tmp_path):
    """sigmoid(a) * b with b another tensor (a gate, as in attention blocks) stays a Sigmoid and a Mul."""

    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Conv2d(3, 12, 3, padding=1), nn.Conv2d(3, 12, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.pixel_shuffle(torch.sigmoid(self.a(x)) * self.b(x), 2)

    model = onnxattr.load_model(export(Gate(), tmp_path, "gate", exporter="torchscript", opset=13))
    x = torch.rand(1, 3, 8, 8)
    y_fast, y_full, g_fast, g_full = _fast_and_full(model, x)
    assert _close(y_fast, y_full) < 1e-5 and _close(g_fast, g_full) < 1e-5
    fast = _ops(model.fast.cache[(tuple(x.shape), x.dtype, x.device)], model.fast.op_types)
    assert "Sigmoid" in fast and "silu" not in fast
