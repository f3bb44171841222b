"""onnxattr.compare (onnxattr.study) and `onnxattr compare`: layout, HR-frame windows, scale mixing, CKA, study files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import onnxattr
from onnxattr import OnnxAttrError, compare, load_model, read_image
from onnxattr.cli import cli
from onnxattr.results.studystore import load_study, save_study
from onnxattr.image import downscale
from onnxattr.metrics import cka_matrix, psnr
from onnxattr.results.files import load
from onnxattr.methods.registry import layout_problems as problems

from nets import conv_graph

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
IMAGES = SAMPLES / "images"
CNNS = [SAMPLES / "waifu2x-upconv7-x2.ts17.onnx", SAMPLES / "waifu2x-upresnet10-x2.ts17.onnx"]
HR_IMAGES = [IMAGES / "astronaut-hr-128.png", IMAGES / "chelsea-128.png"]


@pytest.fixture(scope="module")
def cli_result(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compare") / "study.nc"
    windows = out.with_name("windows.csv")  # per-image windows: one on the astronaut, two on the cat
    windows.write_text("x,y,size,image\n56,56,16,astronaut-hr-128.png\n56,56,16,chelsea-128.png\n70,44,12,chelsea-128\n")
    args = ["compare", *map(str, CNNS), "--images", *map(str, HR_IMAGES), "--windows", str(windows), "--hr",
            "--param", "steps=4", "--seeds", "2", "--ratios", "0,0.1,0.3", "-o", str(out), "--figures", str(out.with_suffix(".png"))]
    res = CliRunner().invoke(cli, args)  # 3 maps (images x windows): enough for CKA
    assert res.exit_code == 0, res.output
    return out, res.output


def test_cli_writes_the_documented_dataset(cli_result):
    out, log = cli_result
    ds = load(out)
    assert ds.attrs["method"] == "compare" and ds.attrs["attribution_method"] == "lam"
    assert ds.attrs["window_frame"] == "hr" and ds.attrs["method_steps"] == 4
    assert dict(ds.sizes) == {"model": 2, "model2": 2, "image": 2, "window": 2, "channel": 3, "y": 64, "x": 64,
                              "wy": 16, "wx": 16, "region": 2, "reference": 2, "order": 2, "ratio": 3}
    assert list(ds.model.values) == [p.name for p in CNNS] and list(ds.image.values) == ["astronaut-hr-128", "chelsea-128"]
    assert ds.attribution.dims == ("model", "image", "window", "channel", "y", "x")
    assert ds.mask_psnr.dims == ("model", "image", "window", "region", "reference", "order", "ratio")
    # each image with its own windows, in the HR frame; the astronaut's second window is padding
    np.testing.assert_array_equal(ds.window_x.values, [[56, np.nan], [56, 70]])
    np.testing.assert_array_equal(ds.window_size.values, [[16, np.nan], [16, 12]])
    # the HR window (56, 56) sits at 56 + c/2 in each SR output: c = -28 and -52
    np.testing.assert_array_equal(ds.window_x_sr.values[:, 1], [[42, 56], [30, 44]])
    assert list(ds.offset.values) == [-28, -52]
    hr = read_image(HR_IMAGES[1])[0].numpy()
    chelsea = ds.hr_crop.sel(image="chelsea-128")
    np.testing.assert_allclose(chelsea.isel(window=0).values, hr[:, 56:72, 56:72], atol=1e-7)
    np.testing.assert_allclose(chelsea.isel(window=1).values[:, :12, :12], hr[:, 44:56, 70:82], atol=1e-7)
    assert np.isnan(chelsea.isel(window=1).values[:, 12:]).all()  # 12-px window in 16-px crops
    valid = np.isfinite(ds.window_size).broadcast_like(ds.diffusion_index)
    assert np.isnan(ds.diffusion_index.where(~valid)).all() and np.isnan(ds.saliency.isel(image=0, window=1)).all()
    assert np.allclose(ds.saliency.max(dim=("y", "x")).where(valid, 1.0), 1.0)
    assert ((ds.diffusion_index > 0) & (ds.diffusion_index < 100)).sum() == 6
    # PSNR of the window crop vs HR is below the whole-image PSNR on these photos, all finite and plausible
    assert ((ds.psnr_y > 28) & (ds.psnr_y < 45)).all() and (ds.ssim_y < 1).all()
    crop_psnr = psnr(ds.sr_crop.sel(model=CNNS[0].name, image="chelsea-128").isel(window=0).values, hr[:, 56:72, 56:72])
    assert np.isfinite(crop_psnr) and crop_psnr > 20
    sr0 = ds.mask_psnr.sel(reference="sr", ratio=0.0).isel(window=0)
    assert np.isinf(sr0).all()
    # ratio 0 against HR on the whole image is the model's PSNR (same Y, same border)
    np.testing.assert_allclose(ds.mask_psnr.sel(reference="hr", ratio=0.0, region="image", order="attribution").isel(window=0),
                               ds.psnr_y, rtol=1e-5)
    assert np.isfinite(ds.cka).all() and np.allclose(np.diag(ds.cka), 1.0)  # over the 3 image x window maps
    assert "wrote" in log
    assert problems(ds) == []
    for panel in ("grid", "masking", "cka", "scatter"):
        assert out.with_name(f"study-{panel}.png").stat().st_size > 10_000


def test_show_draws_the_composite_figure(cli_result, tmp_path):
    out, _ = cli_result
    res = CliRunner().invoke(cli, ["show", str(out), "-o", str(tmp_path / "all.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "all.png").stat().st_size > 50_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return {f"x{s}": conv_graph(folder / f"conv-x{s}.onnx", scale=s) for s in (2, 3)}


def test_mixing_scales_needs_hr_and_aligns_the_frame(tiny, tmp_path):
    models = [tiny["x2"], tiny["x3"]]
    with pytest.raises(OnnxAttrError, match="mix scales .* pass HR images"):
        compare(models, HR_IMAGES[:1], (30, 30, 12), method="lam", path="gradient")
    with pytest.raises(OnnxAttrError, match="mix scales"):
        compare(models, HR_IMAGES[:1], (30, 30, 12), hr=True, frame="sr", path="gradient")
    ds = compare(models, HR_IMAGES[:1], (30, 30, 12), hr=True, path="gradient", ratios=(0.1,), seeds=1)
    assert list(ds.scale.values) == [2, 3] and ds.window_x_sr.values.ravel().tolist() == [30, 30]
    # LR 64x64 for x2, 42x42 for x3 (128 // 3), NaN-padded to 64
    sal = ds.saliency.sel(model="conv-x3.onnx").values[0, 0]
    assert np.isfinite(sal[:42, :42]).all() and np.isnan(sal[42:]).all() and np.isnan(sal[:, 42:]).all()
    # every model's PSNR is against the same HR (cropped to its multiple of the scale)
    hr = read_image(HR_IMAGES[0])
    lr3, hr3 = downscale(hr, 3)
    assert hr3.shape[-1] == 126 and lr3.shape[-1] == 42
    sr3 = np.clip(load_model(tiny["x3"]).run_ort(lr3.numpy())[0], 0, 1)
    expected = psnr(sr3, hr3[0].numpy(), border=3)  # 0.01-weight convs darken the image: about 7 dB
    assert ds.psnr.sel(model="conv-x3.onnx").values[0] == pytest.approx(expected, rel=1e-5)


def test_window_errors_name_the_model(tiny):
    with pytest.raises(OnnxAttrError, match=r"conv-x2.onnx on astronaut-hr-128.png: window x=120 y=5 size=16 \(HR frame\) lies outside"):
        compare([tiny["x2"]], HR_IMAGES[:1], (120, 5, 16), hr=True, path="gradient")
    with pytest.raises(OnnxAttrError, match="chelsea-128.png has no window"):
        compare([tiny["x2"]], HR_IMAGES, {"astronaut-hr-128": (5, 5, 16)}, hr=True, path="gradient")
    with pytest.raises(OnnxAttrError, match="windows for 'coffee': no such image"):
        compare([tiny["x2"]], HR_IMAGES, {"coffee": (5, 5, 16)}, hr=True, path="gradient")
    with pytest.raises(OnnxAttrError, match="astronaut-hr-128.png: window x=5 y=5 size=16 is given twice"):
        compare([tiny["x2"]], HR_IMAGES[:1], [(5, 5, 16), (5, 5, 16)], hr=True, path="gradient")
    with pytest.raises(OnnxAttrError, match="method 'gradcam'"):
        compare([tiny["x2"]], HR_IMAGES[:1], (5, 5, 16), method="gradcam")


def test_cka_over_images_and_study_roundtrip(tiny, tmp_path):
    images = [IMAGES / n for n in ("astronaut-64.png", "chelsea-64.png", "coffee-64.png", "camera-gray-64.png")]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="CKA over")  # enough images: no CKA warning
        ds = compare([tiny["x2"], CNNS[0]], images, (60, 60, 16), path="gradient", ratios=(0.1,), seeds=1)
    assert "psnr" not in ds and list(ds.reference.values) == ["sr"]
    feats = [ds.saliency.sel(model=m).values.reshape(len(images), -1) for m in ds.model.values]
    np.testing.assert_allclose(ds.cka.values, cka_matrix(feats), rtol=1e-10)
    assert np.allclose(np.diag(ds.cka), 1.0) and 0 < float(ds.cka[0, 1]) < 1
    path = save_study(ds, tmp_path / "study.zarr")
    save_study(ds, path)  # replaces an existing store
    back = load_study(path)
    assert dict(back.sizes) == dict(ds.sizes) and back.attrs["method"] == "compare"
    np.testing.assert_array_equal(back.mask_psnr.values, ds.mask_psnr.values)
    with pytest.raises(OnnxAttrError, match="should end in .zarr"):
        save_study(ds, tmp_path / "study.nc")
    # the documented entry points read and draw the store as well
    xr.testing.assert_identical(onnxattr.load(path), back)
    assert problems(back) == [] and problems(ds) == []
    res = CliRunner().invoke(cli, ["show", str(path), "-o", str(tmp_path / "s.pdf"), "--style", "paper", "--panels", "cka,masking"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("s-*.pdf")) == ["s-cka.pdf", "s-masking.pdf"]


def test_missing_study_extra_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dask" else real(name, *a))
    with pytest.raises(OnnxAttrError, match=r"pip install 'onnxattr\[study\]'"):
        compare([CNNS[0]], [HR_IMAGES[0]], (56, 56, 16))


def test_cli_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(
        cli, ["compare", str(CNNS[0]), "--images", str(HR_IMAGES[0]), "--window", "1", "1", "8", "--param", "9=x",
              "-o", str(tmp_path / "o.nc")]
    )
    assert res.exit_code != 0 and "KEY=VALUE" in str(res.exception)


def test_task_threads_share_the_cores_among_tasks_side_by_side(monkeypatch):
    import importlib

    C = importlib.import_module("onnxattr.study.scheduler")
    monkeypatch.setattr(C.os, "cpu_count", lambda: 8)
    assert [C.task_threads(None, None, n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    assert C.task_threads(None, "local", 2) == 4 and C.task_threads(3, None, 20) == 3
    assert C.task_threads(None, "tcp://host:8786", 2) is None  # a remote cluster's workers keep their setting


def test_thread_count_is_set_for_the_task_and_restored():
    """Two tasks in pool threads: B starts while A holds 1 thread (a new thread starts with the last count set
    anywhere, so B's own count before is 1), A ends first, B last. Handing back the caller's count (``after``)
    leaves the process as it was; B's own count before would leave every later thread at 1."""
    import threading

    import torch

    from onnxattr.device import thread_count

    main = torch.get_num_threads()

    def run(after):
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def a() -> None:
            with thread_count(1, after) as n:
                seen["a"] = n
                a_in.set()
                b_in.wait()
            a_out.set()

        def b() -> None:
            a_in.wait()
            with thread_count(1, after) as n:
                seen["b"] = (torch.get_num_threads(), n)
                b_in.set()
                a_out.wait()

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        late = []  # a thread started afterwards
        t = threading.Thread(target=lambda: late.append(torch.get_num_threads()))
        t.start()
        t.join()
        torch.set_num_threads(main)
        return seen, late[0]

    seen, late = run(main)
    assert seen == {"a": 1, "b": (1, 1)} and late == main and torch.get_num_threads() == main
    if main > 1:
        assert run(None)[1] == 1  # without ``after``: what the hand-back prevents
    with pytest.raises(OnnxAttrError, match="threads 0: pass a whole number >= 1"):
        with thread_count(0):
            pass
