"""The untapped fast path (onnxattr/fastgraph.py): same values and gradients as the full converted graph,
shape sub-graphs folded, wrappers and patterns replaced by native ops, a wrong rewrite caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from nets import export
from torch import nn

import onnxattr
from onnxattr.intake import fastgraph

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
    for f in (model.fast, model.fast, model.graph):  # the first fast call builds the copy (and runs the full graph)
        xi = x.clone().requires_grad_()
        y = f(xi)
        (g,) = torch.autograd.grad((y ** 2).sum(), xi)
        outs.append((y.detach(), g))
    (_, _), (y_fast, g_fast), (y_full, g_full) = outs
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
    with pytest.warns(UserWarning, match="differs from the full graph"):
        y = fast(x)
    with torch.no_grad():
        assert _close(y, mixer.graph(x)) < 1e-6
    assert fast.cache[(tuple(x.shape), x.dtype, x.device)] is mixer.graph


def test_copies_are_kept_per_shape_least_recently_used_out(mixer):
    fast = fastgraph.FastGraphs(mixer.graph, mixer.fast.op_types, size=2)
    shapes = [(1, 3, 8, 8), (1, 3, 8, 10), (1, 3, 8, 8), (1, 3, 10, 8)]
    with torch.no_grad():
        for s in shapes:
            assert _close(fast(torch.ones(s)), mixer.graph(torch.ones(s))) < 1e-5
    assert [k[0] for k in fast.cache] == [(1, 3, 8, 8), (1, 3, 10, 8)]


def test_taps_still_see_every_node(mixer):
    seen: list[str] = []
    x = torch.rand(1, 3, 8, 8)
    mixer.run(x, [n.name for n in mixer.nodes], lambda name, v: seen.append(name) or v)
    assert len(seen) == len(mixer.nodes) and "Erf" in {mixer.op_type(n) for n in seen}
