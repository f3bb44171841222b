"""Windows (issue #11): the HR/SR frames, many windows per call, grids, windows files, --hr on cropping models."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import onnxattr
from onnxattr.cli import cli, main
from onnxattr.errors import OnnxAttrError
from onnxattr.windows.geometry import Grid, Window, align_hr, grid_windows, resolve_windows, window_coords
from onnxattr.windows.csvfile import read_windows, rows_for_images

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "waifu2x-upconv7-x2.ts17.onnx"  # out = 2 * in - 28: HR -> SR shift -14
HR_IMAGE = ROOT / "samples" / "images" / "chelsea-128.png"


@pytest.fixture(scope="module")
def sample():
    model = onnxattr.load_model(SAMPLE)
    image = onnxattr.read_image(ROOT / "samples" / "images" / "chelsea-64.png")[:, :, 16:40, 20:44]  # -> 20x20 SR
    return model, image


@pytest.fixture(scope="module")
def hr_png(tmp_path_factory):
    """A 48x48 crop of the HR photo (LR 24x24, UpConv7 output 20x20)."""
    path = tmp_path_factory.mktemp("hr") / "eye.png"
    Image.open(HR_IMAGE).crop((40, 32, 88, 80)).save(path)
    return path


# ------------------------------------------------------------------ pure window logic
def test_frames_grid_and_coordinates():
    # HR frame: x + c/2 in the output of a model with offset c
    assert resolve_windows((20, 30, 8), -28, 100, 100) == [Window(6, 16, 8)]
    assert resolve_windows([(6, 16, 8), (0, 0, 4)], -28, 100, 100, frame="sr") == [Window(6, 16, 8), Window(0, 0, 4)]
    with pytest.raises(OnnxAttrError, match=r"window x=10 y=30 size=8 \(HR frame\) lies outside .* at x=-4 y=16"):
        resolve_windows((10, 30, 8), -28, 100, 100)
    with pytest.raises(OnnxAttrError, match="window 3 .* repeats window 1"):
        resolve_windows([(20, 30, 8), (21, 30, 8), (20, 30, 8)], -28, 100, 100)
    with pytest.raises(OnnxAttrError, match="odd offset"):
        resolve_windows((20, 30, 8), -3, 100, 100)
    assert resolve_windows((20, 30, 8), -3, 100, 100, frame="sr") == [Window(20, 30, 8)]
    # a grid tiles the output row by row, up to its edges
    assert grid_windows(Grid(4), 10, 13) == [Window(x, y, 4) for y in (0, 4) for x in (0, 4, 8)]
    assert len(grid_windows(Grid(4, stride=2), 10, 13)) == 4 * 5
    assert grid_windows(Grid(5), 10, 10) == [Window(x, y, 5) for y in (0, 5) for x in (0, 5)]
    with pytest.raises(OnnxAttrError, match="grid of 12 px windows is empty"):
        grid_windows(Grid(12), 10, 13)
    coords = window_coords([Window(6, 16, 8), Window(0, 0, 4)], -28)
    assert coords["window_x"][1].tolist() == [20, 14] and coords["window_y_sr"][1].tolist() == [16, 0]
    assert window_coords([Window(5, 5, 2)], -3)["window_x"][1].tolist() == [6.5]  # odd c: half-pixel HR position
    hr = torch.arange(2 * 64.0).reshape(1, 2, 8, 8)
    assert torch.equal(align_hr(hr, -4, (4, 4)), hr[:, :, 2:6, 2:6])


def test_windows_file(tmp_path):
    f = tmp_path / "w.csv"
    f.write_text("# windows\nx,y,size,image\n40,40,16,a.png\n\n10,12,8,b\n")
    rows = read_windows(f)
    assert [(r.window, r.image, r.line) for r in rows] == [((40, 40, 16), "a.png", 3), ((10, 12, 8), "b", 5)]
    groups = rows_for_images(rows, ["x/a.png", "x/b.png"], f)
    assert [r.line for r in groups["x/a.png"]] == [3] and [r.line for r in groups["x/b.png"]] == [5]
    f.write_text("size,x,y\n16,1,2\n")  # a header names the columns in any order
    assert read_windows(f)[0].window == (1, 2, 16)
    for text, message in [("1,2\n", "line 1: '1,2' needs x,y,size,image"), ("1,2,x\n", "line 1: .* whole numbers"),
                          ("x,y,size\n", "no window rows"), ("1,2,0\n", "at least 1 pixel")]:
        f.write_text(text)
        with pytest.raises(OnnxAttrError, match=message):
            read_windows(f)
    f.write_text("1,2,8,a.png\n1,2,8,a.png\n")
    with pytest.raises(OnnxAttrError, match="line 2: window 1,2,8 on a.png repeats line 1"):
        rows_for_images(read_windows(f), ["a.png"], f)
    f.write_text("1,2,8,c.png\n")
    with pytest.raises(OnnxAttrError, match=r"line 1: image 'c.png' is not in --images \(a.png\)"):
        rows_for_images(read_windows(f), ["a.png"], f)


def test_a_window_may_reach_the_right_and_bottom_edges_and_the_message_says_so():
    # 20x20 output of offset -28: SR x = HR x - 14; a window inside it reaches x + size = 20
    assert resolve_windows((28, 28, 6), -28, 20, 20) == [Window(14, 14, 6)]
    assert resolve_windows((14, 14, 20), -28, 20, 20) == [Window(0, 0, 20)]  # the whole output
    with pytest.raises(OnnxAttrError, match=r"give 14 <= x <= 28 and 14 <= y <= 28 in the same frame") as err:
        resolve_windows((29, 28, 6), -28, 20, 20)
    low, high = (int(v) for v in re.search(r"give (-?\d+) <= x <= (-?\d+)", str(err.value)).groups())
    assert resolve_windows([(low, low, 6), (high, high, 6)], -28, 20, 20) == [Window(0, 0, 6), Window(14, 14, 6)]
    for x, y in ((low - 1, low), (high + 1, high), (high, high + 1)):
        with pytest.raises(OnnxAttrError, match="lies outside"):
            resolve_windows((x, y, 6), -28, 20, 20)
    with pytest.raises(OnnxAttrError, match="size 21 is too large for the 20x20 SR output .at most 20."):
        resolve_windows((14, 14, 21), -28, 20, 20)


def test_the_detector_repeats_the_last_row_and_column_at_the_edge():
    from onnxattr.windows.detector import gradient_detector, gradient_map, window_detectors

    out = torch.rand(2, 3, 12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def by_hand(o, w):  # sum sqrt(dh + dw) with no difference beyond the last row / column
        total = torch.zeros(o.shape[0], dtype=o.dtype)
        for i in range(w.y, w.y + w.size):
            for j in range(w.x, w.x + w.size):
                dh = (o[:, :, i, j] - o[:, :, i + 1, j]) ** 2 if i + 1 < o.shape[2] else torch.zeros_like(o[:, :, i, j])
                dw = (o[:, :, i, j] - o[:, :, i, j + 1]) ** 2 if j + 1 < o.shape[3] else torch.zeros_like(o[:, :, i, j])
                total += torch.sqrt(dh + dw).sum(dim=1)
        return total

    windows = [Window(6, 8, 4), Window(0, 0, 10), Window(3, 2, 5)]  # bottom-right corner, whole width, inside
    for w in windows:
        torch.testing.assert_close(gradient_detector(out, w), by_hand(out, w))
    torch.testing.assert_close(window_detectors(out, windows), torch.stack([by_hand(out, w) for w in windows], 1))
    # a window away from the edges gets the LAM code's map (H - 1) x (W - 1), as before
    torch.testing.assert_close(gradient_detector(out, windows[2]), gradient_map(out)[:, :, 2:7, 3:8].sum(dim=(1, 2, 3)))


def test_lam_and_l2x_explain_a_window_at_the_corner(sample):
    from onnxattr.windows.detector import gradient_detector

    model, image = sample  # 20x20 output
    corner = (14, 14, 6)
    l2x = onnxattr.l2x(model, image, corner, frame="sr")
    with torch.no_grad():
        d = gradient_detector(model(image), Window(*corner)).item()
    assert l2x["target_value"].item() == pytest.approx(d, rel=1e-6)
    assert l2x["completeness_error"].item() < 1e-5  # exact, as for any window
    lam = onnxattr.lam(model, image, corner, frame="sr", steps=20)
    assert lam["objective_input"].item() == pytest.approx(d, rel=1e-5) and lam["completeness_error"].item() < 0.1


# ------------------------------------------------------------------ methods on the cropping sample
def test_hr_frame_is_the_sr_frame_shifted_by_half_the_offset(sample):
    model, image = sample
    assert model.offset == -28
    hr = onnxattr.lam(model, image, (16, 18, 4), steps=3)
    sr = onnxattr.lam(model, image, (2, 4, 4), frame="sr", steps=3)
    np.testing.assert_allclose(hr["attribution"].values, sr["attribution"].values, rtol=0, atol=1e-6)
    for ds in (hr, sr):
        assert [ds[c].item() for c in ("window_x", "window_y", "window_x_sr", "window_y_sr")] == [16, 18, 2, 4]
    assert (hr.attrs["window_frame"], sr.attrs["window_frame"]) == ("hr", "sr")


WINDOWS = [(2, 3, 6), (10, 4, 6), (5, 11, 4), (12, 12, 5)]  # SR pixels of the 20x20 output


@pytest.mark.parametrize("method, kw", [("lam", {"steps": 4}), ("l2x", {"dtype": torch.float32}), ("glam", {"layers": ["Conv"]})])
def test_four_windows_in_one_call_equal_four_single_runs(sample, method, kw):
    model, image = sample
    fn = getattr(onnxattr, method)
    many = fn(model, image, WINDOWS, frame="sr", **kw)
    assert many.sizes["window"] == 4 and many["attribution"].dims[0] == "window"
    assert many.window_x_sr.values.tolist() == [w[0] for w in WINDOWS]
    assert many.window_x.values.tolist() == [w[0] + 14 for w in WINDOWS]
    per_window = [v for v in many.data_vars if "window" in many[v].dims]
    for k, w in enumerate(WINDOWS):
        one = fn(model, image, w, frame="sr", **kw)
        for v in per_window:
            a, b = many[v].isel(window=k).values, one[v].isel(window=0).values
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(np.abs(b).max(), 1e-12), err_msg=f"{method} {v} {k}")


@pytest.mark.parametrize("method, extra", [("lam", ["--steps", "2"]), ("l2x", ["--float32"]), ("glam", ["--layers", "Conv"])])
def test_hr_on_the_cropping_sample_keeps_the_aligned_hr(hr_png, tmp_path, method, extra):
    out = tmp_path / f"{method}.nc"
    res = CliRunner().invoke(cli, [method, str(SAMPLE), str(hr_png), "--hr", "--window", "20", "22", "6",
                                            *extra, "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = onnxattr.load(out)
    assert ds["hr"].shape == ds["output"].shape == (3, 20, 20)
    hr = onnxattr.read_image(hr_png)[0].numpy()
    np.testing.assert_allclose(ds["hr"].values, hr[:, 14:34, 14:34], atol=1e-7)  # HR rows/cols -c/2 .. -c/2 + H
    assert (ds.window_x_sr.item(), ds.window_y_sr.item()) == (6, 8)


# ------------------------------------------------------------------ bad input on the command line
def _run_main(monkeypatch, capsys, args):
    monkeypatch.setattr("sys.argv", ["onnxattr", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, file_text, message",
    [
        (["--window", "0", "0", "6"], None, r"window x=0 y=0 size=6 \(HR frame\) lies outside"),
        (["--window", "20", "22", "6", "--window", "20", "22", "6"], None, "window 2 .* repeats window 1"),
        (["--grid", "30"], None, "grid of 30 px windows is empty"),
        (["--stride", "4"], None, "--stride needs --grid"),
        (["--windows", "{f}"], "20,22,6\n20,22,x\n", "line 2: '20,22,x': x, y and size must be whole numbers"),
        (["--windows", "{f}"], "20,22,6,eye.png\n20,22,6,other.png\n", "line 2: image 'other.png' is not in IMAGE"),
        ([], None, "no window given"),
    ],
    ids=["outside", "duplicate", "empty-grid", "stride-alone", "bad-row", "other-image", "none"],
)
def test_bad_windows_are_one_line_exit_2_and_write_nothing(hr_png, tmp_path, monkeypatch, capsys, args, file_text, message):
    f = tmp_path / "w.csv"
    if file_text is not None:
        f.write_text(file_text)
    out = tmp_path / "o.nc"
    args = [a.format(f=f) for a in args]
    code, err = _run_main(monkeypatch, capsys, ["glam", str(SAMPLE), str(hr_png), "--hr", *args, "-o", str(out)])
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("onnxattr: error")]
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert not out.exists()


def test_compare_windows_file_naming_another_image_is_one_line(tmp_path, monkeypatch, capsys):
    f, out = tmp_path / "w.csv", tmp_path / "s.nc"
    f.write_text("x,y,size,image\n56,56,16,chelsea-128.png\n40,40,16,coffee.png\n")
    code, err = _run_main(monkeypatch, capsys, ["compare", str(SAMPLE), "--images", str(HR_IMAGE), "--windows", str(f),
                                                "--hr", "-o", str(out)])
    assert code == 2 and err.strip().splitlines() == [
        "onnxattr: error: windows file w.csv line 3: image 'coffee.png' is not in --images (chelsea-128.png); "
        "fix the row or add the image"]
    assert not out.exists()


# ------------------------------------------------------------------ the attribution atlas
def test_reach_and_lr_centre():
    from onnxattr.metrics import reach
    from onnxattr.windows.geometry import lr_centre

    s = np.zeros((9, 9))
    s[2, 7] = 1.0  # 3 columns right, 4 rows up of (4, 6): distance 5
    assert reach(s, (4.0, 6.0)) == pytest.approx(5.0)
    s[6, 4] = 1.0  # and one at the centre: mean 2.5
    assert reach(s, (4.0, 6.0)) == pytest.approx(2.5) and np.isnan(reach(np.zeros((3, 3)), (1, 1)))
    # SR window x 4..7 at scale 2, offset 0: HR centre 6 = LR pixel-centre 2.5; offset -28 adds 14 HR px
    assert lr_centre(Window(4, 6, 4), 2, 0) == (2.5, 3.5) and lr_centre(Window(4, 6, 4), 2, -28) == (9.5, 10.5)


def test_grid_atlas_and_its_figure(hr_png, tmp_path):
    out, fig, one = tmp_path / "atlas.nc", tmp_path / "atlas.png", tmp_path / "one.png"
    res = CliRunner().invoke(cli, ["glam", str(SAMPLE), str(hr_png), "--hr", "--grid", "6", "--layers", "Conv", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = onnxattr.load(out)
    assert ds.sizes["window"] == 9 and ds.window_x_sr.values.tolist() == [0, 6, 12] * 3  # 20x20 output
    assert ds.window_x.values.tolist() == [14, 20, 26] * 3  # HR frame
    for v in ("diffusion_index", "reach", "attributed_share"):
        assert ds[v].dims == ("window",) and np.isfinite(ds[v]).all()
    assert (ds.reach > 0).all() and (ds.reach < 24).all()
    assert CliRunner().invoke(cli, ["show", str(out), "-o", str(fig)]).exit_code == 0
    assert Image.open(fig).size[0] > 1500  # image + DI, reach, attributed share maps
    assert CliRunner().invoke(cli, ["show", str(out), "--window", "4", "-o", str(one)]).exit_code == 0
    res = CliRunner().invoke(cli, ["show", str(out), "--window", "9", "-o", str(one)])
    assert res.exit_code != 0 and "--window 9 does not exist" in str(res.exception)


def test_a_grid_of_very_many_windows_is_announced():
    from onnxattr.windows.geometry import MANY_WINDOWS, Grid, resolve_windows

    with pytest.warns(UserWarning, match=r"the grid of 1 px windows has 10000 windows, one backward pass"):
        assert len(resolve_windows(Grid(1), 0, 100, 100)) == 10000 > MANY_WINDOWS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(resolve_windows(Grid(8), 0, 100, 100)) == 144
