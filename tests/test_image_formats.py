"""Every image kind read exactly: 16-bit colour PNGs, EXIF orientation, float and 16-bit TIFFs, palette, CMYK,
gray + alpha; images over the pixel budget refused before decoding. All files are made here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from onnxattr import OnnxAttrError, read_image
from onnxattr.limits import MAX_PIXELS

from imagefiles import png_header_only, write_png16

RNG = np.random.default_rng(0)


def _hwc(t) -> np.ndarray:
    return t[0].double().numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_samples_are_exact(tmp_path, channels):
    """Gray, gray + alpha, RGB and RGBA at 16 bits, rows cycling all five PNG filters."""
    a = RNG.integers(0, 65536, (37, 53, channels), dtype=np.uint16)
    write_png16(tmp_path / "a.png", a)
    colour = channels >= 3
    if channels in (2, 4):
        with pytest.warns(UserWarning, match="alpha channel dropped"):
            t = read_image(tmp_path / "a.png", channels=3 if colour else 1)
    else:
        t = read_image(tmp_path / "a.png", channels=3 if colour else 1)
    ref = a[..., : 3 if colour else 1] / 65535.0
    np.testing.assert_allclose(_hwc(t), ref, atol=6e-8)  # float32 rounding only; 8 bits would be 2e-3 off
    assert len(np.unique(np.round(_hwc(t) * 65535) % 257)) > 200  # not 8-bit values stretched by 257


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    arr = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # stored 40 wide, 24 high
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "a.jpg", exif=exif, quality=100)
    t = read_image(tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as stored:
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB")) / 255.0
    assert t.shape[2:] == ((40, 24) if orientation >= 5 else (24, 40))  # a 24x40 photo is explained as 24x40
    np.testing.assert_allclose(_hwc(t), upright, atol=1e-7)


def test_float_tiff_keeps_its_range_and_16bit_tiff_is_exact(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    f = RNG.random((20, 30, 3), dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f, photometric="rgb")
    np.testing.assert_allclose(_hwc(read_image(tmp_path / "f.tif")), f, atol=0)
    gray = RNG.random((20, 30), dtype=np.float32) * 0.5
    tifffile.imwrite(tmp_path / "g.tiff", gray)
    np.testing.assert_allclose(read_image(tmp_path / "g.tiff", channels=1)[0, 0].numpy(), gray, atol=0)
    u16 = RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "u.tif", u16, photometric="rgb")
    np.testing.assert_allclose(_hwc(read_image(tmp_path / "u.tif")), u16 / 65535.0, atol=6e-8)
    tifffile.imwrite(tmp_path / "planar.tif", u16.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(_hwc(read_image(tmp_path / "planar.tif")), u16 / 65535.0, atol=6e-8)
    tifffile.imwrite(tmp_path / "big.tif", f * 255, photometric="rgb")
    with pytest.raises(OnnxAttrError, match=r"big.tif is a float image with values in \[.*\]; .* rescale it to \[0, 1\]"):
        read_image(tmp_path / "big.tif")
    nan = f.copy()
    nan[0, 0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan, photometric="rgb")
    with pytest.raises(OnnxAttrError, match="NaN or infinite samples"):
        read_image(tmp_path / "nan.tif")


def test_palette_cmyk_and_gray_alpha(tmp_path):
    rgb = Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_allclose(_hwc(read_image(tmp_path / "p.png")), np.asarray(pal.convert("RGB")) / 255.0, atol=1e-7)
    cmyk = rgb.convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    with Image.open(tmp_path / "c.jpg") as stored:
        assert stored.mode == "CMYK"
        ref = np.asarray(stored.convert("RGB")) / 255.0
    np.testing.assert_allclose(_hwc(read_image(tmp_path / "c.jpg")), ref, atol=1e-7)
    la = np.stack([RNG.integers(0, 256, (8, 9)), np.full((8, 9), 128)], -1).astype(np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        t = read_image(tmp_path / "la.png", channels=1)
    np.testing.assert_allclose(t[0, 0].numpy(), la[..., 0] / 255.0, atol=1e-7)


def test_images_over_the_pixel_budget_are_refused_before_decoding(tmp_path, monkeypatch):
    png_header_only(tmp_path / "huge.png", 8000, 8000)  # 64 Mpx: decoding would allocate it (and the blur 124 GB)
    with pytest.raises(OnnxAttrError, match=r"image huge.png is 8000x8000 \(64.0 Mpx\), over onnxattr's budget of 33.6 Mpx"):
        read_image(tmp_path / "huge.png")
    png_header_only(tmp_path / "bomb.png", 20000, 20000)  # over Pillow's decompression-bomb limit too
    with pytest.raises(OnnxAttrError, match=r"image bomb.png declares 400.0 Mpx, over onnxattr's budget of 33.6 Mpx"):
        read_image(tmp_path / "bomb.png")
    assert MAX_PIXELS == 2**25
    monkeypatch.setenv("ONNXATTR_MAX_PIXELS", "100")
    Image.fromarray(np.zeros((11, 10, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(OnnxAttrError, match=r"10x11 \(110 px\), over onnxattr.s budget of 100 px \(ONNXATTR_MAX_PIXELS=100\); "):
        read_image(tmp_path / "small.png")
