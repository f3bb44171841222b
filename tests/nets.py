"""Tiny SR networks with known properties, and their ONNX exports, for the tests."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from onnxattr.converters import export_onnx


class ShuffleNet(nn.Module):
    """conv 3->8, ReLU, conv 8->12, pixel shuffle x2: out = 2 * in."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 12, 3, padding=1)
        self.ps = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ps(self.c2(torch.relu(self.c1(x))))


class CropNet(ShuffleNet):
    """As ShuffleNet with an unpadded first conv: out = 2 * in - 4."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=0)


class BatchMixNet(ShuffleNet):
    """Adds 0.1 * the mean over the whole batch: a batch of 2 differs from two single runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.1 * x.mean()


class CancelNet(ShuffleNet):
    """A real conv net whose float32 rounding shows: a 3x3 conv with large weights M + W and M (about ``big``
    times W), a 1x1 conv taking their difference (W * x, exact in reals), then the ShuffleNet tail. Rounding of
    the large sums is ~``big`` times larger relative to the output, so convolution algorithms that differ with
    the batch size (or between torch and onnxruntime) give outputs that differ by ~1e-5, not ~1e-7."""

    def __init__(self, big: float = 5.0) -> None:
        super().__init__()
        c = self.c1.out_channels
        self.big = nn.Conv2d(3, 2 * c, 3, padding=1, bias=False)
        self.diff = nn.Conv2d(2 * c, c, 1)
        with torch.no_grad():
            m = big * torch.rand(self.c1.weight.shape, generator=torch.Generator().manual_seed(1))
            self.big.weight.copy_(torch.cat([m + self.c1.weight, m]))
            eye = torch.eye(c)[:, :, None, None]
            self.diff.weight.copy_(torch.cat([eye, -eye], 1))
            self.diff.bias.copy_(self.c1.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ps(self.c2(torch.relu(self.diff(self.big(x)))))


class Range255Net(ShuffleNet):
    """A model fed 0..255 images that returns 0..255 images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / 255.0) * 255.0


def export(module: nn.Module, folder: Path, name: str, **kw) -> Path:
    """TorchScript (opset 17) export with dynamic batch/H/W unless told otherwise."""
    kw.setdefault("exporter", "torchscript")
    kw.setdefault("input_shape", (1, 3, 16, 16))
    return export_onnx(module.eval(), folder / f"{name}.onnx", **kw)


def conv_graph(
    path: Path, *, extra_op: str | list[str] | None = None, channels: int = 3, scale: int = 2, inputs: int = 1,
    size: tuple[int, int] | None = None,
) -> Path:
    """A hand-built graph: Conv(channels -> channels*scale^2) [-> extra_op(s)] -> DepthToSpace(scale).

    ``size`` = (H, W) fixes the input size (batch 1); ``extra_op=["Neg", "Sqrt"]`` outputs NaN on any image."""
    c_out = channels * scale * scale
    w = helper.make_tensor("w", TensorProto.FLOAT, [c_out, channels, 3, 3], [0.01] * (c_out * channels * 9))
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1], name="conv")]
    last = "h"
    for i, op in enumerate([extra_op] if isinstance(extra_op, str) else extra_op or []):
        name = "extra" if i == 0 else f"extra{i}"
        nodes.append(helper.make_node(op, [last], [name], name=name))
        last = name
    nodes.append(helper.make_node("DepthToSpace", [last], ["y"], blocksize=scale, mode="CRD", name="d2s"))
    dims = [1, channels, *size] if size else ["n", channels, "h", "w"]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)]
    ins += [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1]) for i in range(1, inputs)]
    odims = [1, channels, size[0] * scale, size[1] * scale] if size else ["n", channels, "H", "W"]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, odims)
    graph = helper.make_graph(nodes, "g", ins, [out], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


class SiLUResNet(nn.Module):
    """EDSR-like with SiLU residual blocks, fed 0..255: x / 255, conv 3->c, ``blocks`` blocks
    x + conv(SiLU(conv(x))), conv c->3 s^2, pixel shuffle x s, * 255 and clamped to [0, 255]. A TorchScript export
    at opset 13 writes each SiLU as Sigmoid and Mul, the ends as Div, Mul and Clip."""

    def __init__(self, channels: int = 32, blocks: int = 4, scale: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(),
                                                nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.tail = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x / 255)
        for block in self.body:
            h = h + block(h)
        return torch.clamp(self.tail(h) * 255, 0, 255)
