"""Every result matches its layout (onnxattr.results.schema and the method registry's entries, docs/results.md):
CF attrs on every variable and coordinate, one HR frame for LR and SR coordinates, upright plots, no 'none' strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image

import onnxattr
from onnxattr.methods.registry import METHODS
from onnxattr.methods.registry import layout_problems as problems
from onnxattr.results.schema import SCHEMA_VERSION, STUDY_COORDS, STUDY_VARIABLES

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"  # x2, offset -28
WINDOW = (20, 20, 8)  # HR frame


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, xr.Dataset]:
    path = tmp_path_factory.mktemp("schema") / "chelsea-32.png"
    Image.open(ROOT / "samples" / "images" / "chelsea-64.png").crop((16, 16, 48, 48)).save(path)
    model = onnxattr.load_model(MODEL)
    image = onnxattr.read_image(path, channels=model.in_channels)
    return {"lam": onnxattr.lam(model, image, WINDOW, steps=4), "l2x": onnxattr.l2x(model, image, WINDOW),
            "glam": onnxattr.glam(model, image, WINDOW)}


@pytest.mark.parametrize("method", ["lam", "l2x", "glam"])
def test_result_matches_the_schema(runs, method, tmp_path):
    ds = runs[method]
    assert problems(ds) == []
    assert ds.attrs["schema_version"] == SCHEMA_VERSION
    for name in ds.variables:
        assert ds[name].attrs.get("long_name"), name
    assert not any(isinstance(v, str) and v == "none" for v in ds.attrs.values())
    back = onnxattr.load(onnxattr.save(ds, tmp_path / "r.nc"))
    assert problems(back) == []


def test_problems_names_departures(runs):
    ds = runs["lam"].rename(saliency="sal")
    ds["input"].attrs.pop("long_name")
    found = problems(ds)
    assert "saliency: missing" in found and "sal: not in the schema" in found and any("input: attr long_name" in p for p in found)


def test_lr_and_sr_coordinates_share_the_hr_frame(runs):
    ds = runs["lam"]
    s, c = ds.attrs["scale"], ds.attrs["offset"]
    np.testing.assert_array_equal(ds.x.values, (np.arange(ds.sizes["x"]) + 0.5) * s)
    np.testing.assert_array_equal(ds.X.values, np.arange(ds.sizes["X"]) + 0.5 - c / 2)
    # the SR output resembles the LR input where the labels say it lies, and not one LR pixel off
    lr_y = ds.input.mean("channel")
    sr_y = ds.output.mean("channel")
    def corr(shift: float) -> float:
        lr = lr_y.interp(y=sr_y.Y + shift, x=sr_y.X + shift, method="linear")
        return float(np.corrcoef(lr.values.ravel(), sr_y.values.ravel())[0, 1])
    assert corr(0.0) > 0.95 and corr(0.0) > corr(2.0) + 0.02 and corr(0.0) > corr(-2.0) + 0.02
    # an LR map and an SR map of one run align by label: the window in both frames
    y0, size = float(ds.window_y[0]), int(ds.window_size[0])
    win = slice(-y0, -(y0 + size))  # the window's rows in the frame: HR-frame window coordinates need no offset
    rows = ds.output.sel(Y=win).Y.values
    np.testing.assert_array_equal(rows, -(ds.window_y_sr.values[0] + np.arange(size) + 0.5 - c / 2))
    assert ds.saliency.sel(y=win).sizes["y"] == size // s


def test_xarray_plots_images_upright(runs):
    ds = runs["lam"]
    ax = Figure().subplots()
    ds.saliency.plot(ax=ax)
    top = max(ax.get_ylim())
    assert abs(top - float(ds.y[0])) < abs(top - float(ds.y[-1]))  # row 0 at the top


def test_baseline_has_one_name(runs):
    assert "baseline" in runs["lam"] and "baseline" in runs["l2x"] and "reference" not in runs["l2x"]
    both = onnxattr.combine([runs["lam"], runs["l2x"]])
    assert both.baseline.dims == ("run", "channel", "y", "x") and both.attribution.dims[:2] == ("run", "window")


def test_tables_cover_their_dims():
    # every dim is a coordinate of the table, but ``window``, which has no index (runs concatenate along it)
    tables = [(STUDY_VARIABLES, {**STUDY_COORDS, "window": None})]
    for m in METHODS.values():  # each method's layout: the shared entries and its own
        table = m.table()
        tables.append((table, {**{k: e for k, e in table.items() if e.dims == (k,) or k == "op_type"}, "window": None}))
    for table, coords in tables:
        for name, entry in table.items():
            assert set(entry.dims) <= set(coords), (name, entry.dims)
