"""The conversion zoo's architectures: tiny random SR networks (spandrel + hand-written), x2, and their ONNX exports
with both exporters. ``tests/test_zoo.py`` checks them against onnxruntime, ``tests/test_fastgraph.py`` runs their
fast graphs; the session fixture ``zoo_cache`` (conftest.py) exports each once per test session."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from onnxattr.converters import export_onnx

SHAPE = (1, 3, 32, 32)
EXPORTERS = ("torchscript", "dynamo")


def spandrel_arch(module: str, name: str, **config) -> Callable[[], nn.Module]:
    """Builder of ``spandrel.architectures.<module>.<name>(**config)``."""
    return lambda: getattr(importlib.import_module(f"spandrel.architectures.{module}"), name)(**config)


class EDSR(nn.Module):
    """EDSR in miniature. sub_mean and add_mean share their weight, which the TorchScript exporter
    deduplicates behind an Identity node (the KeyError trap of onnx2torch)."""

    def __init__(self, feats: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.sub_mean, self.add_mean = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            for conv, sign in ((self.sub_mean, -1.0), (self.add_mean, 1.0)):
                conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
                conv.bias.fill_(0.45 * sign)
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(feats, feats, 3, padding=1), nn.ReLU(), nn.Conv2d(feats, feats, 3, padding=1))
            for _ in range(blocks))
        self.tail = nn.Sequential(nn.Conv2d(feats, 4 * feats, 3, padding=1), nn.PixelShuffle(2),
                                  nn.Conv2d(feats, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x))
        res = x
        for block in self.body:
            res = res + 0.1 * block(res)
        return self.add_mean(self.tail(res + x))


class FSRCNN(nn.Module):
    """FSRCNN in miniature: the x2 upsampling is a strided ConvTranspose."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.PReLU(16), nn.Conv2d(16, 8, 1), nn.PReLU(8),
                                  nn.Conv2d(8, 16, 1), nn.PReLU(16))
        self.up = nn.ConvTranspose2d(16, 3, 9, stride=2, padding=4, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.body(x))


class InputOnly(nn.Module):
    """Calls ``inner(x.clone())``: RCAN scales its input in place, RealCUGAN has an extra ``alpha`` arg."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.clone())


def fused_span() -> nn.Module:
    """SPAN re-fuses its Conv3XC weights on every eval forward (the dynamo export segfaults): fuse once."""
    model = spandrel_arch("SPAN.__arch.span", "SPAN", num_in_ch=3, num_out_ch=3, feature_channels=16,
                          upscale=2)().eval()
    for sub in model.modules():
        if hasattr(sub, "update_params"):
            sub.update_params()
            sub.update_params = lambda: None
    return model


class Arch(NamedTuple):
    build: Callable[[], nn.Module]
    dynamic: bool = True  # dynamic batch/H/W export; False for fixed-size files


# Window-attention models (SwinIR, HAT, DAT, OmniSR) are exported at a fixed 32x32, unlike their
# img_size 64 (trap: a dynamic export with img_size == export size fails in onnxruntime itself).
ARCHS: dict[str, Arch] = {
    "EDSR": Arch(EDSR),
    "FSRCNN": Arch(FSRCNN),
    "RCAN": Arch(lambda: InputOnly(spandrel_arch("RCAN.__arch.rcan_arch", "RCAN", scale=2, n_resgroups=1,
                                                 n_resblocks=1, n_feats=16, reduction=4)())),
    "ESRGAN": Arch(spandrel_arch("ESRGAN.__arch.RRDB", "RRDBNet", num_filters=16, num_blocks=1, scale=2)),
    "SwinIR": Arch(spandrel_arch("SwinIR.__arch.SwinIR", "SwinIR", img_size=64, embed_dim=12, depths=[1],
                                 num_heads=[2], window_size=8, mlp_ratio=2, upscale=2, upsampler="pixelshuffle"),
                   dynamic=False),
    "HAT": Arch(spandrel_arch("HAT.__arch.HAT", "HAT", img_size=64, embed_dim=12, depths=[1], num_heads=[2],
                              window_size=8, squeeze_factor=2, mlp_ratio=2, upscale=2, num_feat=16),
                dynamic=False),
    # embed_dim 32: DAT's DynamicPosBias gets embed_dim // 32 channels (0 below 32).
    "DAT": Arch(spandrel_arch("DAT.__arch.DAT", "DAT", img_size=64, embed_dim=32, split_size=[2, 4], depth=[1],
                              num_heads=[2], expansion_factor=2, upscale=2), dynamic=False),
    "OmniSR": Arch(spandrel_arch("OmniSR.__arch.OmniSR", "OmniSR", num_feat=16, block_num=1, window_size=8,
                                 res_num=1, up_scale=2), dynamic=False),
    "SPAN": Arch(fused_span),
    # SAFMN: adaptive max pooling to a size computed from H, W; the TorchScript exporter refuses
    # that with dynamic axes ("output_size is not constant"), so the file is fixed-size.
    "SAFMN": Arch(spandrel_arch("SAFMN.__arch.safmn", "SAFMN", dim=16, n_blocks=1, upscaling_factor=2),
                  dynamic=False),
    "PLKSR": Arch(spandrel_arch("PLKSR.__arch.PLKSR", "PLKSR", dim=16, n_blocks=1, upscaling_factor=2,
                                kernel_size=7)),
    "RealPLKSR": Arch(spandrel_arch("PLKSR.__arch.RealPLKSR", "RealPLKSR", dim=16, n_blocks=1,
                                    upscaling_factor=2, kernel_size=7)),
    "RealCUGAN": Arch(lambda: InputOnly(spandrel_arch("RealCUGAN.__arch.upcunet_v3", "UpCunet2x")())),
    "Compact": Arch(spandrel_arch("Compact.__arch.SRVGG", "SRVGGNetCompact", num_feat=16, num_conv=2, upscale=2)),
}


class Exported(NamedTuple):
    path: Path
    module: nn.Module


def export_arch(arch: str, exporter: str, folder: Path) -> Exported:
    """``ARCHS[arch]`` built with seed 0 and exported by ``exporter`` into ``folder``."""
    torch.manual_seed(0)
    module = ARCHS[arch].build().eval()
    path = export_onnx(module, folder / f"{arch}_{exporter}.onnx", input_shape=SHAPE, exporter=exporter,
                       dynamic=ARCHS[arch].dynamic)
    return Exported(path, module)
