"""Images in, results out: pixel values, colour conversion, downscaling, the Dataset layout, atomic saves."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image

from onnxattr import OnnxAttrError, read_image, save
from onnxattr.image import crop, downscale, rgb_to_y
from onnxattr.metrics import gini
from onnxattr.plot import save_figure
from onnxattr.results.build import build_dataset
from onnxattr.results.files import load
from onnxattr.windows.geometry import Window


def test_8bit_rgb_values(tmp_path):
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.shape == (1, 3, 4, 5) and t.dtype == torch.float32
    np.testing.assert_allclose(t[0].numpy().transpose(1, 2, 0), arr / 255.0, atol=1e-7)


def test_16bit_gray_png(tmp_path):
    arr = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    t = read_image(tmp_path / "g16.png", channels=1)
    np.testing.assert_allclose(t[0, 0].numpy(), arr / 65535.0, atol=1e-7)
    assert read_image(tmp_path / "g16.png").shape == (1, 3, 2, 2)  # gray repeated for RGB models


def test_rgba_drops_alpha_with_a_note(tmp_path):
    arr = np.zeros((3, 3, 4), dtype=np.uint8)
    arr[..., 0], arr[..., 3] = 200, 10
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        t = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(t[0, 0].numpy(), 200 / 255, atol=1e-7)


def test_jpeg_reads_close_to_the_source(tmp_path):
    arr = np.full((8, 8, 3), 128, dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    assert abs(read_image(tmp_path / "a.jpg").mean().item() - 128 / 255) < 2 / 255


def test_y_channel_bt601():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_y(rgb).item() == pytest.approx((65.481 + 16) / 255)
    white = torch.ones(1, 3, 1, 1)
    assert rgb_to_y(white).item() == pytest.approx(235 / 255, abs=1e-6)


def test_bad_image_files(tmp_path):
    with pytest.raises(OnnxAttrError, match="not found"):
        read_image(tmp_path / "none.png")
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(OnnxAttrError, match="not a readable image"):
        read_image(tmp_path / "x.png")


def test_downscale_and_crop():
    hr = torch.rand(1, 3, 34, 41)
    lr, hr_c = downscale(hr, 4)
    assert lr.shape == (1, 3, 8, 10) and hr_c.shape == (1, 3, 32, 40)
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(downscale(flat, 2)[0], torch.full((1, 3, 8, 8), 0.3))
    assert crop(hr, 1, 2, 3, 4).shape == (1, 3, 3, 4)
    with pytest.raises(OnnxAttrError, match="leaves the"):
        crop(hr, 40, 0, 3, 4)


class _FakeModel:
    """Just what results.build reads of a model: its geometry and ``facts()``."""

    scale, offset = 2, 0

    def facts(self):
        from onnxattr.intake import ModelFacts

        return ModelFacts(
            path="m.onnx", sha256="0" * 64, scale=2, offset=0, in_channels=3, fixed_size=None, input_name="x",
            input_shape=("N", 3, "H", "W"), output_name="y", opset=17, producer="", value_range=1.0,
            value_range_source="given", output_range=1.0, output_range_source="as the input", value_range_scores={},
            conversion_error=3e-7, precision_gap=0.0, file_precision="float32", input_layout="NCHW",
            output_layout="NCHW", input_dtype="float32", output_dtype="float32", channel_order="rgb",
            removed_at_output=(), adapter_reasons=(), size_rule="any size", min_side=1, multiple=1, probe_size=(32, 48),
            device="cpu", from_cache=False, load_seconds={})


def _dataset():
    image, output = torch.rand(1, 3, 6, 7), torch.rand(1, 3, 12, 14)
    attribution = torch.randn(2, 3, 6, 7)
    return build_dataset(
        model=_FakeModel(), image=image, output=output, method="lam", windows=[Window(1, 2, 4), Window(5, 2, 4)],
        frame="sr", params={"steps": 5, "path": "lam", "flag": True, "none": None}, elapsed_s=0.5,
        attribution=attribution, window_checks={"completeness_error": [0.05, 0.025]}, checks={"note": "x"},
        data_vars={"extra": (("y", "x"), torch.ones(6, 7))},
    ), attribution


def test_dataset_layout_and_roundtrip(tmp_path):
    ds, attribution = _dataset()
    assert dict(ds.sizes) == {"window": 2, "channel": 3, "y": 6, "x": 7, "Y": 12, "X": 14}
    assert list(ds.channel.values) == ["R", "G", "B"]
    for k in range(2):
        sal = np.abs(attribution[k].numpy().astype(np.float64).sum(0))
        np.testing.assert_allclose(ds.saliency.values[k], sal / sal.max(), rtol=1e-6)
    assert ds.completeness_error.dims == ("window",) and ds.completeness_error.values.tolist() == [0.05, 0.025]
    assert ds.gini.dims == ("window",) and ds.gini.values.tolist() == pytest.approx([gini(ds.saliency[k]) for k in range(2)])
    assert ds.window_x_sr.values.tolist() == [1, 5] and ds.window_size.values.tolist() == [4, 4]
    for key in ("method", "window_frame", "model_sha256", "scale", "conversion_error",
                "torch_version", "elapsed_s", "steps", "note"):
        assert key in ds.attrs
    path = save(ds, tmp_path / "r.nc")
    back = xr.open_dataset(path, engine="h5netcdf")
    xr.testing.assert_identical(back.load(), ds)
    back.close()
    xr.testing.assert_identical(load(path), ds)


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    ds, _ = _dataset()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(RuntimeError):
        save(ds, tmp_path / "r.nc")
    assert list(tmp_path.iterdir()) == []


def test_saved_files_get_the_users_permissions(tmp_path):
    """Atomic writes must not leave mkstemp's owner-only 0600 on a result or figure."""
    ds, _ = _dataset()
    umask = os.umask(0o022)
    try:
        for path in (save(ds, tmp_path / "r.nc"), save_figure(Figure(), tmp_path / "r.png")):
            assert path.stat().st_mode & 0o777 == 0o644, path
    finally:
        os.umask(umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.nc", "r.png"]


def test_save_checks_the_path(tmp_path):
    ds, _ = _dataset()
    with pytest.raises(OnnxAttrError, match="should end in .nc"):
        save(ds, tmp_path / "r.txt")
    with pytest.raises(OnnxAttrError, match="does not exist"):
        save(ds, tmp_path / "no" / "r.nc")
    with pytest.raises(OnnxAttrError, match="for the figure does not exist"):
        save_figure(Figure(), tmp_path / "no" / "f.png")
    assert list(tmp_path.iterdir()) == []
