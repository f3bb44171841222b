"""Figures a journal takes: every paper figure, measured from the PDF it writes (page width, font sizes, page
height) for 1, 3 and 6 models and 1 and 4 images, at one and two columns; no text on top of other text in the
overview; labels, flat windows and combined runs drawn."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

import onnxattr
from onnxattr.cli import cli
from onnxattr.plot import draw, show
from onnxattr.study.assemble import flat_cells

from nets import ShuffleNet, export

IMAGES = Path(__file__).resolve().parent.parent / "samples" / "images"
COLUMN = {"single": (3.3, 3.5), "double": (6.9, 7.2)}  # in: one and two journal columns
PAGE = 9.5  # in: the tallest page a figure may take (plot.common: max_height 9 in, and the crop's margins)


# ------------------------------------------------------------------ reading a PDF
def pdf_facts(path: Path) -> tuple[float, float, list[float]]:
    """(width, height) of the PDF's page in inches (its MediaBox) and the size of every font it sets (the ``Tf``
    operators of its content streams, in points)."""
    data = path.read_bytes()
    (box,) = re.findall(rb"/MediaBox \[([^\]]*)\]", data)
    x0, y0, x1, y1 = (float(v) for v in box.split())
    sizes = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            text = zlib.decompress(stream)
        except zlib.error:
            continue
        sizes += [float(v) for v in re.findall(rb"/\w+ ([\d.]+) Tf", text)]
    return (x1 - x0) / 72, (y1 - y0) / 72, sizes


def assert_journal_page(path: Path, width: str) -> None:
    w, h, fonts = pdf_facts(path)
    lo, hi = COLUMN[width]
    assert lo <= w <= hi, f"{path.name}: {w:.2f} in wide, not {lo}-{hi}"
    assert h <= PAGE, f"{path.name}: {h:.2f} in tall"
    assert fonts and min(fonts) >= 7, f"{path.name}: fonts {sorted(set(fonts))}"


def drawn_texts(fig) -> list[Text]:
    """The texts a drawn figure shows: tick labels of ticks inside their axis' view (matplotlib keeps others,
    undrawn, at stale places) and every other visible, non-empty text."""
    ticks, shown = set(), []
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                for label in (tick.label1, tick.label2):
                    ticks.add(id(label))
                    if tick.get_visible() and label.get_visible() and lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                        shown.append(label)
    shown += [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible()]
    return [t for t in shown if t.get_text().strip() and t.get_alpha() != 0]


def text_problems(fig) -> list[str]:
    """Texts whose boxes overlap by more than a pixel, and texts that leave the figure (cut off)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = drawn_texts(fig)
    boxes = [t.get_window_extent(renderer).padded(-1) for t in texts]
    page = fig.bbox.padded(1)
    out = [f"{texts[i].get_text()!r} on {texts[j].get_text()!r}" for i in range(len(texts))
           for j in range(i + 1, len(texts)) if boxes[i].overlaps(boxes[j])]
    return out + [f"{t.get_text()!r} leaves the figure" for t, b in zip(texts, boxes)
                  if not (page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1)]


def test_the_text_check_sees_collisions_and_cut_text():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2), layout="constrained")
    ax = fig.subplots()
    ax.set_title("a title")
    assert text_problems(fig) == []
    ax.text(0.5, 1.02, "on the title", transform=ax.transAxes, ha="center")
    fig.text(0.9, 0.5, "far beyond the right edge")
    assert text_problems(fig) == ["'on the title' on 'a title'", "'far beyond the right edge' leaves the figure"]


# ------------------------------------------------------------------ results to draw
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("paper")


@pytest.fixture(scope="module")
def model_file(folder) -> Path:
    return export(ShuffleNet(), folder, "shuffle-x2")


@pytest.fixture(scope="module")
def hr_image(folder) -> Path:
    path = folder / "astronaut-hr-48.png"
    Image.open(IMAGES / "astronaut-hr-128.png").crop((40, 40, 88, 88)).save(path)
    return path


@pytest.fixture(scope="module")
def base(model_file, hr_image) -> xr.Dataset:
    """A one-model, one-image study (LAM's plain gradient: one pass) to grow into larger ones."""
    return onnxattr.compare([model_file], [hr_image], [(16, 16, 8), (24, 8, 8)], hr=True, path="gradient",
                            ratios=(0.1, 0.3), seeds=1, labels=["tiny conv"])


def grown(base: xr.Dataset, models: int, images: int) -> xr.Dataset:
    """``base`` as a study of ``models`` models x ``images`` images (copies under other names, CKA made up)."""
    ds = base.drop_vars(["cka", "model2"])
    ds = xr.concat([ds.isel(model=[0])] * models, dim="model", data_vars="minimal", coords="minimal", compat="override")
    names = [f"a-rather-long-model-name-{i}.onnx" for i in range(models)]
    ds = ds.assign_coords(model=names, label=("model", [f"Model {i} (x2)" for i in range(models)]))
    ds = xr.concat([ds.isel(image=[0])] * images, dim="image", data_vars="minimal", coords="minimal", compat="override")
    ds = ds.assign_coords(image=[f"image-{j}" for j in range(images)])
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 1, (models, models))
    ds["cka"] = (("model", "model2"), (a + a.T) / 2)
    ds = ds.assign_coords(model2=names)
    ds["diffusion_index"] = ds.diffusion_index + xr.DataArray(rng.uniform(0, 5, models), dims="model")
    ds["psnr_y"] = ds.psnr_y + xr.DataArray(rng.uniform(0, 2, models), dims="model")
    ds.attrs = base.attrs
    return ds


# ------------------------------------------------------------------ every paper figure, measured
@pytest.mark.parametrize("width, models, images", [("single", 1, 1), ("single", 3, 1), ("single", 6, 4),
                                                   ("double", 1, 4), ("double", 3, 4), ("double", 6, 1)])
def test_study_paper_figures_fit_the_journal_column(base, models, images, width, tmp_path):
    """Every model count (1, 3, 6) and image count (1, 4) at both widths; one window an image."""
    ds = grown(base.isel(window=[0]), models, images)
    files = show(ds, tmp_path / "fig.pdf", style="paper", width=width)
    names = [f.name for f in files]
    for panel in ("grid", "masking", "cka", "scatter"):
        assert f"fig-{panel}.pdf" in names or f"fig-{panel}-1.pdf" in names, names
    for f in files:
        assert_journal_page(f, width)
    # every image x window is drawn, in order: each grid page names its images
    grid_pages = sorted(f for f in files if f.name.startswith("fig-grid"))
    assert len(grid_pages) >= 1
    if len(grid_pages) > 1:
        assert [f.name for f in grid_pages] == [f"fig-grid-{n}.pdf" for n in range(1, len(grid_pages) + 1)]


def test_the_grid_is_the_lam_papers_layout(base):
    ds = grown(base, 3, 1)
    fig = draw(ds, style="paper", panels=["grid"])
    titles = [ax.get_title() for ax in fig.axes]
    assert {"SR", "saliency", "area of interest", "HR", "image-0"} <= set(titles)
    assert titles.count("image-0") == 2  # the image once per image x window (2 windows)
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert ylabels[:3] == ["Model 0 (x2)", "Model 1 (x2)", "Model 2 (x2)"]  # the labels, not the file names
    captions = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel().startswith("DI")]
    di, psnr = float(ds.diffusion_index[1, 0, 0]), float(ds.psnr_y[1, 0])
    assert f"DI {di:.1f} % | PSNR-Y {psnr:.2f} dB" in captions
    assert len(captions) == 3 * 2
    assert text_problems(fig) == []


@pytest.mark.parametrize("panel", ["masking", "cka", "scatter"])
def test_study_paper_panels_keep_their_text_inside(base, panel):
    assert text_problems(draw(grown(base, 6, 2), style="paper", panels=[panel])) == []


@pytest.fixture(scope="module")
def runs(model_file, hr_image) -> list[xr.Dataset]:
    model = onnxattr.load_model(model_file)
    image, hr = onnxattr.image.downscale(onnxattr.read_image(hr_image), 2)
    window = (16, 16, 8)
    return [onnxattr.lam(model, image, window, steps=3, hr=hr), onnxattr.l2x(model, image, window, hr=hr), onnxattr.glam(model, image, window, hr=hr)]


@pytest.mark.parametrize("width", ["single", "double"])
@pytest.mark.parametrize("kind", ["lam", "l2x", "glam", "combined", "atlas"])
def test_single_run_paper_figures_fit_the_journal_column(runs, kind, width, tmp_path):
    if kind == "combined":
        ds = onnxattr.combine(runs)
    elif kind == "atlas":
        ds = xr.concat([runs[0], runs[0].assign_coords(window_x=runs[0].window_x + 4, window_x_sr=runs[0].window_x_sr + 4)],
                       dim="window", data_vars="minimal", coords="minimal", compat="override")
    else:
        ds = {"lam": runs[0], "l2x": runs[1], "glam": runs[2]}[kind]
    files = show(ds, tmp_path / "f.pdf", style="paper", width=width)
    for f in files:
        assert_journal_page(f, width)
    (png,) = show(runs[0], tmp_path / "f.png", style="paper", dpi=100, width=width)
    assert 100 * COLUMN[width][0] <= Image.open(png).size[0] <= 100 * COLUMN[width][1]


def test_single_run_paper_figure_names_the_model_and_shows_the_area_of_interest(runs):
    ds = runs[0].copy()
    ds.attrs["model_label"] = "EDSR-tiny"
    fig = draw(ds, style="paper")
    assert fig.get_suptitle().startswith("EDSR-tiny: LAM, DI")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[:3] == ["LR input", "saliency", "area of interest"] and len(titles) == 5
    rows = [round(ax.get_position().y1, 1) for ax in fig.axes if ax.images]
    assert sorted(rows.count(r) for r in set(rows)) == [2, 3]  # 5 panels in rows of 3 and 2, not 4 and 1


def test_many_runs_split_into_pages_named_in_order(runs, tmp_path):
    ds = onnxattr.combine(runs + runs)  # six runs: 3 a column
    files = show(ds, tmp_path / "c.pdf", style="paper")
    assert [f.name for f in files] == ["c-1.pdf", "c-2.pdf"]
    for f in files:
        assert_journal_page(f, "single")


# ------------------------------------------------------------------ overview: no text on text
@pytest.mark.parametrize("models, images", [(1, 1), (3, 4)])
def test_study_overview_has_no_label_collisions(base, models, images):
    assert text_problems(draw(grown(base, models, images))) == []


@pytest.mark.parametrize("kind", ["lam", "l2x", "glam", "combined"])
def test_run_figures_have_no_label_collisions(runs, kind):
    ds = onnxattr.combine(runs) if kind == "combined" else {"lam": runs[0], "l2x": runs[1], "glam": runs[2]}[kind]
    for style in ("overview", "paper"):
        assert text_problems(draw(ds, style=style)) == [], style


# ------------------------------------------------------------------ combined runs, flat windows, the CLI
def test_show_draws_combined_runs_side_by_side(runs, tmp_path):
    path = onnxattr.save(onnxattr.combine(runs), tmp_path / "runs.nc")
    for style in ("overview", "paper"):
        res = CliRunner().invoke(cli, ["show", str(path), "-o", str(tmp_path / f"{style}.pdf"), "--style", style])
        assert res.exit_code == 0, res.output
    fig = draw(onnxattr.load(path), style="overview")
    titles = [ax.get_title() for ax in fig.axes]
    assert ["LAM", "L2X", "GL-AM"] == [t for t in titles if t in ("LAM", "L2X", "GL-AM")]
    captions = [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel().startswith("DI")]
    assert captions[1].startswith(f"DI {float(runs[1].diffusion_index[0]):.1f} %")  # L2X has a DI now
    saliency = [ax for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "seismic_upper"]
    for ax, run in zip(saliency, runs):
        np.testing.assert_array_equal(ax.images[0].get_array(), run.saliency[0].values.astype(np.float64))
    res = CliRunner().invoke(cli, ["show", str(path), "-o", str(tmp_path / "w.pdf"), "--width", "double"])
    assert isinstance(res.exception, onnxattr.OnnxAttrError) and "--style paper" in str(res.exception)
    assert not (tmp_path / "w.pdf").exists()


def test_masking_figure_names_flat_windows_and_leaves_them_out(base):
    ds = grown(base, 2, 2)
    ds["attribution"] = ds.attribution.where(~((ds.model == ds.model[0]) & (ds.image == "image-1")), 0.0)
    flat = flat_cells(ds)
    assert flat.sum() == 2 and flat[0, 1].all()
    fig = draw(ds, style="paper", panels=["masking"])
    (note,) = [t.get_text() for t in drawn_texts(fig) if "zero attribution" in t.get_text()]
    assert "zero attribution" in note and "image-1" in note and "Model 0 (x2)" in note
    # the curve of model 0 is image-0's alone
    line = next(ax for ax in fig.axes if ax.lines).lines[0]
    expected = ds.mask_psnr.isel(model=0).sel(region="window", reference="hr", order="attribution", image="image-0")
    np.testing.assert_allclose(line.get_ydata(), expected.mean("window").values)
    assert text_problems(fig) == []
