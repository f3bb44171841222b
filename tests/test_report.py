"""What a run leaves for people and scripts: the summary, --json, --quiet, combined results, figures
in both styles, and a package that leaves matplotlib's backend and the warning filters alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from PIL import Image

import onnxattr
from onnxattr.cli import cli
from onnxattr.plot import draw, show

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"
WINDOW = (20, 20, 8)  # HR frame: (6, 6) of the 32x32 crop's 36x36 output (offset -28)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "chelsea-32.png"
    Image.open(ROOT / "samples" / "images" / "chelsea-64.png").crop((16, 16, 48, 48)).save(path)
    return path


@pytest.fixture(scope="module")
def runs(image_file) -> list[xr.Dataset]:
    model = onnxattr.load_model(MODEL)
    image = onnxattr.read_image(image_file, channels=model.in_channels)
    return [onnxattr.lam(model, image, WINDOW, steps=5), onnxattr.l2x(model, image, WINDOW), onnxattr.glam(model, image, WINDOW)]


def test_three_methods_combine_along_run(runs, tmp_path):
    ds = onnxattr.combine(runs)
    assert list(ds.run.values) == ["lam", "l2x", "glam"] and list(ds.method.values) == ["lam", "l2x", "glam"]
    for run, one in zip(ds.run.values, runs):
        np.testing.assert_array_equal(ds.attribution.sel(run=run).values, one.attribution.values)
        assert float(ds.elapsed_s.sel(run=run)) == one.attrs["elapsed_s"]
    assert ds.field_box.values.tolist() == [" ".join(map(str, runs[0].attrs["field_box"])), "", ""]  # LAM's crop only
    assert ds.output.dims == ("channel", "Y", "X")  # kept once: the runs' outputs differ by ~1e-6
    assert float(abs(runs[0].output - runs[1].output).max()) < 1e-4
    for run, one in zip(ds.run.values, runs):  # every method has its DI, from its saliency map
        assert ds.diffusion_index.sel(run=run).item() == one["diffusion_index"].item()
        assert 0 < one["diffusion_index"].item() < 100
    assert ds.attribution.dims == ("run", "window", "channel", "y", "x")
    assert ds.attrs["model_sha256"] == runs[0].attrs["model_sha256"] and "method" not in ds.attrs
    assert all(ds[name].attrs.get("long_name") for name in ds.variables)
    back = onnxattr.load(onnxattr.save(ds, tmp_path / "runs.nc"))
    xr.testing.assert_identical(back.saliency, ds.saliency)


def test_combine_numbers_repeated_methods_and_refuses_other_images(runs):
    assert list(onnxattr.combine([runs[0], runs[0]]).run.values) == ["lam", "lam-2"]
    assert list(onnxattr.combine({"a": runs[0], "b": runs[1]}).run.values) == ["a", "b"]
    other = runs[1].copy()
    other["input"] = other.input + 0.1
    with pytest.raises(onnxattr.OnnxAttrError, match="differ in 'input'"):
        onnxattr.combine([runs[0], other])


@pytest.mark.parametrize("index", [0, 1, 2], ids=["lam", "l2x", "glam"])
def test_paper_figure_is_one_column_with_colorbars(runs, index, tmp_path):
    ds = runs[index]
    fig = draw(ds, style="paper")
    width, _ = fig.get_size_inches()
    assert 3.3 <= width <= 3.5
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(lambda o: hasattr(o, "get_fontsize") and o.get_text())]
    assert sizes and min(sizes) >= 7
    images = [ax for ax in fig.axes if ax.images]
    colorbars = [ax for ax in fig.axes if not ax.images and ax.collections]  # colorbar axes
    assert colorbars, "every map needs a colorbar"
    assert all(ax.patches or any(s.get_edgecolor()[:3] == (1, 0, 0) for s in ax.spines.values()) for ax in images
               if ax.get_title()), "the window on every panel"
    (pdf,) = show(ds, tmp_path / "f.pdf", style="paper")
    assert pdf.read_bytes()[:4] == b"%PDF"
    (png,) = show(ds, tmp_path / "f.png", style="paper", dpi=100)
    assert 330 <= Image.open(png).size[0] <= 350  # bbox 'tight' keeps the column width


def test_panels_and_cmap_choose_what_is_drawn(runs):
    fig = draw(runs[0], panels=["saliency"], cmap="magma")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 1 and maps[0].images[0].get_cmap().name == "magma"
    with pytest.raises(onnxattr.OnnxAttrError, match="choose from"):
        draw(runs[0], panels=["nope"])


def test_cli_summary_json_and_quiet(image_file, tmp_path):
    args = ["lam", str(MODEL), str(image_file), "--window", *map(str, WINDOW), "--steps", "3"]
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    text = res.stderr
    assert "diffusion index" in text and "batch size" in text and f"wrote {tmp_path / 'a.nc'}" in text
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "b.nc"), "--json"])
    summary = json.loads(res.stdout)
    assert summary["method"] == "lam" and summary["files"] == [str(tmp_path / "b.nc")]
    ds = onnxattr.load(tmp_path / "b.nc")
    assert summary["checks"]["diffusion index"] == pytest.approx(ds["diffusion_index"].item())
    assert summary["windows"] == [list(WINDOW)]
    assert summary["batch_size"] == ds.attrs["batch_size"] and summary["elapsed_s"] > 0
    assert summary["field_box"] == ds.attrs["field_box"].tolist()  # UpConv7's field: the passes' crop
    x0, y0, x1, y1 = summary["field_box"]
    assert f"passes on the window's field, LR x {x0}-{x1} y {y0}-{y1} ({x1 - x0}x{y1 - y0})" in text
    res = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "c.nc"), "--quiet"])
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""
    res = CliRunner().invoke(cli, ["show", str(tmp_path / "c.nc"), "-o", str(tmp_path / "c.pdf"), "--style", "paper", "--json"])
    assert json.loads(res.stdout)["files"] == [str(tmp_path / "c.pdf")]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_import_leaves_backend_and_warning_filters_alone():
    res = _python(
        # third-party libraries add filters of their own at import: take the list after them
        "import warnings, matplotlib, torch, xarray, scipy, onnx, onnxruntime, tqdm; before = list(warnings.filters); "
        "import onnxattr, onnxattr.plot, onnxattr.cli; "
        "print(matplotlib.get_backend()); print(warnings.filters == before)",
        MPLBACKEND="svg",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["svg", "True"]


def test_main_restores_the_warning_filters(monkeypatch):
    from onnxattr.cli import main

    before = list(warnings.filters)
    monkeypatch.setattr(sys, "argv", ["onnxattr", "--version"])
    try:
        main()
    except SystemExit:
        pass
    assert warnings.filters == before
