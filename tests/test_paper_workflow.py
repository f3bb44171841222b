"""The paper workflow (issue 22) beyond the figures: DI, Gini and reach for every method from one definition,
model labels, the warnings a researcher needs (each once), and honest numbers in summaries and messages."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import onnxattr
from onnxattr import OnnxAttrError
from onnxattr.cli import cli, main
from onnxattr.cli.common import summary_text
from onnxattr.errors import beside
from onnxattr.methods.registry import layout_problems
from onnxattr.metrics import diffusion_index, gini, reach
from onnxattr.results.schema import STUDY_COORDS, STUDY_VARIABLES, VARIABLES
from onnxattr.windows.geometry import Window, lr_centre

from nets import ShuffleNet, conv_graph, export

IMAGES = Path(__file__).resolve().parent.parent / "samples" / "images"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workflow")


@pytest.fixture(scope="module")
def model_files(folder) -> list[Path]:
    return [export(ShuffleNet(seed=s), folder, f"shuffle-{s}") for s in (0, 1, 2)]


@pytest.fixture(scope="module")
def hr_file(folder) -> Path:
    """A 48x48 HR image: LR 24x24 for the x2 models."""
    path = folder / "chelsea-hr-48.png"
    Image.open(IMAGES / "chelsea-128.png").crop((40, 32, 88, 80)).save(path)
    return path


@pytest.fixture(scope="module")
def model(model_files):
    return onnxattr.load_model(model_files[0])


@pytest.fixture(scope="module")
def image(hr_file) -> torch.Tensor:
    return onnxattr.read_image(hr_file)[:, :, :24, :24]


WINDOWS = [(8, 8, 8), (30, 20, 8)]


def _run(monkeypatch, capsys, args) -> tuple[int, str]:
    monkeypatch.setattr("sys.argv", ["onnxattr", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# ------------------------------------------------------------------ DI, Gini and reach: one definition
@pytest.mark.parametrize("method", ["lam", "l2x", "glam"])
def test_every_method_gets_di_gini_and_reach_from_its_saliency(model, image, method):
    fn = getattr(onnxattr, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LAM's 3 steps are far from complete, and say so
        ds = fn(model, image, WINDOWS, **({"steps": 3} if method == "lam" else {}))
    for k, w in enumerate(WINDOWS):
        sal = ds.saliency.isel(window=k).values
        assert ds.diffusion_index[k].item() == pytest.approx(diffusion_index(sal))
        assert ds.gini[k].item() == pytest.approx(gini(sal))
        centre = lr_centre(Window(w[0], w[1], w[2]), model.scale, model.offset)
        assert ds.reach[k].item() == pytest.approx(reach(sal, centre))
    assert ((ds.diffusion_index > 0) & (ds.diffusion_index < 100)).all()
    np.testing.assert_allclose(ds.diffusion_index, 100 * (1 - ds.gini))  # LAM eq. 6
    assert ds.diffusion_index.attrs["units"] == "%" and "(1 - G) * 100" in ds.diffusion_index.attrs["description"]
    assert layout_problems(ds) == []


def test_di_is_declared_once_in_the_shared_schema():
    from onnxattr.methods.registry import METHODS

    assert {"diffusion_index", "gini", "reach"} <= set(VARIABLES)
    for m in METHODS.values():
        assert not {"diffusion_index", "gini", "reach"} & set(m.variables), m.name


def test_a_method_passing_its_own_di_is_refused(model, image):
    from onnxattr.results.build import build_dataset
    from onnxattr.windows.geometry import resolve_windows

    with torch.no_grad():
        out = model(image)
    wins = resolve_windows((8, 8, 8), model.offset, *out.shape[2:])
    with pytest.raises(ValueError, match="passes its own diffusion_index: build_dataset computes them"):
        build_dataset(model=model, image=image, output=out, method="mine", windows=wins, frame="hr", params={},
                      elapsed_s=0.0, attribution=torch.rand(1, 3, 24, 24), window_checks={"diffusion_index": [1.0]})


# ------------------------------------------------------------------ studies: labels, L2X DI, Gini and reach
@pytest.fixture(scope="module")
def l2x_study(model_files, hr_file) -> object:
    return onnxattr.compare(model_files, [hr_file], WINDOWS[:1], method="l2x", hr=True, ratios=(0.1,), seeds=1,
                            labels=["A", "B", "C"])


def test_a_l2x_study_has_di_gini_reach_and_labels(l2x_study, model_files, hr_file):
    ds = l2x_study
    assert list(ds.label.values) == ["A", "B", "C"] and list(ds.model.values) == [p.name for p in model_files]
    assert ds.label.dims == ("model",)
    for name in ("diffusion_index", "gini", "reach"):
        assert np.isfinite(ds[name]).all() and ds[name].dims == ("model", "image", "window")
    one = onnxattr.l2x(onnxattr.load_model(model_files[1]), onnxattr.image.downscale(onnxattr.read_image(hr_file), 2)[0],
                       WINDOWS[0])
    for name in ("diffusion_index", "gini", "reach"):
        assert ds[name].isel(model=1).item() == pytest.approx(one[name].item(), rel=1e-5)
    assert ds.diffusion_index.attrs["units"] == "%" and ds.window_x.attrs["units"] == "pixel"
    assert layout_problems(ds) == []


def test_labels_in_order_by_model_or_default(model_files, hr_file):
    from onnxattr.study.plan import model_labels

    paths = [str(p) for p in model_files]
    assert model_labels(None, paths) == ["shuffle-0", "shuffle-1", "shuffle-2"]  # the file stem without .onnx
    assert model_labels({"shuffle-1.onnx": "B", paths[2]: "C"}, paths) == ["shuffle-0", "B", "C"]
    for labels, message in [(["A"], "1 label.s. for 3 models"), (["A", "A", "B"], "label 'A' names two models"),
                            ({"other": "X"}, "label 'X' is for 'other', which is none of the models"),
                            (["A", " ", "B"], "the label of shuffle-1.onnx is empty")]:
        with pytest.raises(OnnxAttrError, match=message):
            model_labels(labels, paths)


def test_cli_labels_repeatable_or_pairs(model_files, hr_file, tmp_path):
    base = ["compare", *map(str, model_files[:2]), "--images", str(hr_file), "--window", "8", "8", "8", "--hr",
            "--method", "lam", "--param", "path='gradient'", "--ratios", "0.1", "--seeds", "1"]
    res = CliRunner().invoke(cli, [*base, "--label", "EDSR", "--label", "RCAN", "-o", str(tmp_path / "a.nc")])
    assert res.exit_code == 0, res.output
    assert list(onnxattr.load(tmp_path / "a.nc").label.values) == ["EDSR", "RCAN"]
    assert "  EDSR: mean DI (%)" in res.stderr
    res = CliRunner().invoke(cli, [*base, "--label", f"RCAN={model_files[1]}", "-o", str(tmp_path / "b.nc")])
    assert res.exit_code == 0, res.output
    assert list(onnxattr.load(tmp_path / "b.nc").label.values) == ["shuffle-0", "RCAN"]
    res = CliRunner().invoke(cli, [*base, "--label", "EDSR", "--label", "X=y", "-o", str(tmp_path / "c.nc")])
    assert isinstance(res.exception, OnnxAttrError) and "not both" in str(res.exception)


def test_single_run_label(model_files, hr_file, tmp_path):
    out = tmp_path / "l.nc"
    res = CliRunner().invoke(cli, ["l2x", str(model_files[0]), str(hr_file), "--hr", "--window", "8", "8", "8",
                                   "--label", "My SR", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = onnxattr.load(out)
    assert ds.attrs["model_label"] == "My SR" and ds.attrs["model_file"] == "shuffle-0.onnx"
    assert "l2x: shuffle-0.onnx (My SR), window (8, 8, 8)" in res.stderr and "diffusion index" in res.stderr
    unlabelled = onnxattr.l2x(onnxattr.load_model(model_files[0]), onnxattr.read_image(hr_file), (8, 8, 8))
    assert unlabelled.attrs["model_label"] == "shuffle-0"


# ------------------------------------------------------------------ warnings that matter, once each
def test_completeness_warning_names_the_window_and_the_fix(model, image):
    with pytest.warns(UserWarning, match=r"lam: completeness error up to 0\.\d\d \(window \d\), above 0.1 in \d of 2 "
                                         r"window\(s\); raise --steps \(now 2;") as caught:
        onnxattr.lam(model, image, WINDOWS, steps=2)
    assert len([w for w in caught if "completeness" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onnxattr.lam(model, image, WINDOWS, steps=40)  # complete enough: silent


def _flat_middle(path: Path) -> Path:
    """A 64x64 HR image whose middle 40x40 is black: a window there has zero attribution for LAM (its blurred
    baseline is exactly the image there)."""
    a = np.asarray(Image.open(IMAGES / "chelsea-128.png").convert("RGB").resize((64, 64))).copy()
    a[12:52, 12:52] = 0
    Image.fromarray(a).save(path)
    return path


def test_a_study_says_each_warning_once(model_files, tmp_path, monkeypatch, capsys):
    flat = _flat_middle(tmp_path / "flat.png")
    odd = tmp_path / "odd.png"  # 63x64: its right column is cropped for x2
    Image.open(IMAGES / "chelsea-128.png").crop((0, 0, 63, 64)).save(odd)
    code, err = _run(monkeypatch, capsys, [
        "compare", *map(str, model_files[:2]), "--images", str(flat), str(odd), "--window", "28", "28", "8",
        "--window", "4", "4", "8", "--hr", "--param", "steps=2", "--ratios", "0.1", "--seeds", "1",
        "-o", str(tmp_path / "s.nc")])
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("onnxattr: warning")]
    assert len(lines) == len(set(lines))
    flat_lines = [line for line in lines if "zero attribution" in line]
    assert flat_lines == ["onnxattr: warning: 2 of 8 cells have zero attribution everywhere (flat windows: the baseline "
                          "equals the image where they look), first shuffle-0 on flat window 28,28,8; their DI, Gini "
                          "and reach are NaN and the masking figure leaves them out"]
    assert not [line for line in lines if "is zero everywhere" in line]  # no line per cell
    (complete,) = [line for line in lines if "completeness" in line]
    assert re.search(r"completeness error above 0.1 in \d of 8 cells, at most .*; raise --param steps= \(now 2;", complete)
    (crop,) = [line for line in lines if "cropped" in line]
    assert "odd.png (63x64) is cropped to 62x64" in crop
    ds = onnxattr.load(tmp_path / "s.nc")
    assert np.isnan(ds.diffusion_index.sel(image="flat").isel(window=0)).all()


def test_an_lr_image_given_as_hr(model_files, tmp_path, monkeypatch, capsys):
    lr = tmp_path / "baby_LR.png"
    Image.open(IMAGES / "chelsea-64.png").save(lr)
    code, err = _run(monkeypatch, capsys, ["lam", str(model_files[0]), str(lr), "--hr", "--window", "8", "8", "8",
                                           "--steps", "40", "-o", str(tmp_path / "a.nc")])
    assert code == 0, err
    assert ("onnxattr: warning: --hr: baby_LR.png looks like an LR image ('baby_LR' names one); with --hr it is "
            "downscaled (x2: 32x32) and PSNR/SSIM are measured against it; pass the HR image, or drop --hr") in err
    fixed = conv_graph(tmp_path / "fixed.onnx", size=(64, 64))
    code, err = _run(monkeypatch, capsys, ["lam", str(fixed), str(IMAGES / "chelsea-64.png"), "--hr", "--window", "8",
                                           "8", "8", "-o", str(tmp_path / "b.nc")])
    assert code == 2 and "chelsea-64.png is 64x64, the size of fixed.onnx's LR input: it looks like an LR image" in err
    assert not (tmp_path / "b.nc").exists()
    # an HR photo says nothing
    good = tmp_path / "chelsea-hr.png"
    Image.open(IMAGES / "chelsea-128.png").save(good)
    code, err = _run(monkeypatch, capsys, ["lam", str(model_files[0]), str(good), "--hr", "--window", "8", "8", "8",
                                           "--steps", "40", "-o", str(tmp_path / "c.nc")])
    assert code == 0 and "warning" not in err, err


def test_a_warning_line_is_printed_once(monkeypatch, capsys, tmp_path):
    def twice(*args, **kwargs):
        warnings.warn("the same thing", stacklevel=2)
        warnings.warn("the same thing", stacklevel=3)
        warnings.warn("another thing")
        return []

    monkeypatch.setattr("onnxattr.plot.show", twice)
    path = onnxattr.save(onnxattr.combine([onnxattr.load(p) for p in _tiny_results(tmp_path)]), tmp_path / "c.nc")
    code, err = _run(monkeypatch, capsys, ["show", str(path), "-o", str(tmp_path / "c.png")])
    assert code == 0 and err.count("the same thing") == 1 and err.count("another thing") == 1


def _tiny_results(folder: Path) -> list[Path]:
    model = onnxattr.load_model(conv_graph(folder / "t.onnx"))
    image = onnxattr.read_image(IMAGES / "chelsea-64.png")[:, :, :16, :16]
    return [onnxattr.save(onnxattr.l2x(model, image, (4, 4, 4)), folder / "t.nc")]


# ------------------------------------------------------------------ honest numbers
def test_study_summary_separates_summed_task_time_from_wall_time(l2x_study):
    from onnxattr.cli.compare import study_summary

    summary = study_summary(l2x_study, [], np.datetime64(0, "ns"))
    summary["command_s"] = 1.5
    text = summary_text(summary)
    assert text.splitlines()[0] == "compare: 3 models x 1 images, 1 windows in all (1 per image): 3 cells"
    assert re.search(r"method \d+\.\d\d s summed over 3 model x image tasks \(side by side, so the sum can exceed the "
                     r"wall time\), command 1.50 s wall", text)
    assert summary["task_s"] == pytest.approx(float(l2x_study.elapsed_s.sum()))


def test_inspect_gives_the_whole_commands_time(model_files):
    res = CliRunner().invoke(cli, ["inspect", str(model_files[0])])
    assert res.exit_code == 0, res.output
    loaded = re.search(r"loaded in +([\d.]+) s", res.stdout)
    whole = re.search(r"command +([\d.]+) s in all", res.stdout)
    assert loaded and whole and float(whole.group(1)) >= float(loaded.group(1))
    assert "command_s" in json.loads(CliRunner().invoke(cli, ["inspect", str(model_files[0]), "--json"]).stdout)


def test_numbers_beside_a_limit_read_differently():
    assert beside(0.0104, 0.01) == ("0.0104", "0.01")
    assert beside(1.6e-5, 1e-5) == ("1.6e-05", "1e-05")
    assert beside(0.02, 0.01) == ("0.02", "0.01")


def test_units_and_descriptions():
    assert VARIABLES["diffusion_index"].units == "%" and "LAM eq. 6" in VARIABLES["diffusion_index"].description
    assert STUDY_VARIABLES["diffusion_index"].units == "%"
    assert {STUDY_COORDS[c].units for c in ("window_x", "window_y", "window_size")} == {"pixel"}
    assert STUDY_VARIABLES["psnr_y"].long_name == "PSNR-Y vs HR"
    assert "summed over the tasks" in STUDY_VARIABLES["elapsed_s"].description
