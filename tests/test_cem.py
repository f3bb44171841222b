"""CEM (Hu et al., TPAMI 2025): equal to a plain one-intervention-at-a-time loop of the authors' (tests/cem_reference.py)
fed the same seeded patches, on the float32, float16 and uint8 / BGR / NHWC files as shipped; the receptive-field
rule and crops exact; a known causal structure; the patch pool; the CLI, its refusals, show and compare."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

import onnxattr
from onnxattr import OnnxAttrError, UnsupportedOpError
from onnxattr.cli import main
from onnxattr.image import downscale, read_image
from onnxattr.methods.cem import lr_blocks, patch_pool
from onnxattr.methods.cem.field import measure_field
from onnxattr.methods.registry import layout_problems
from onnxattr.patches import bundled_pool, read_patches

from cem_reference import cem_reference
from nets import export
from test_intake import TinySR, fp16_file, uint8_bgr_file

ROOT = Path(__file__).resolve().parent.parent
HR_IMAGE = ROOT / "samples" / "images" / "astronaut-hr-128.png"
BLOCK, COARSE, FINE, TOL, SEED = 4, 3, 5, 0.01, 7


class MeanMix(TinySR):
    """TinySR plus a term of the image's mean (a global op, as channel attention): an unbounded field."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 0.2 * x.mean(dim=(2, 3), keepdim=True)


class Ramp(TinySR):
    """TinySR times a ramp across the output's columns: local, but not shift-equivariant (a crop sees another ramp)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y * (0.9 + 0.2 * torch.arange(y.shape[-1], dtype=y.dtype) / y.shape[-1])


def with_output_op(src: Path, out: Path, op: str, **attrs) -> Path:
    """``src`` with ``op`` applied to its output (e.g. Shrink with lambd=0: the identity, but no converter has it)."""
    proto = onnx.load(src)
    last = proto.graph.output[0].name
    proto.graph.node.append(helper.make_node(op, [last], ["wrapped"], name="wrapped_op", **attrs))
    proto.graph.output[0].name = "wrapped"
    onnx.save(proto, out)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cem")
    tiny = export(TinySR(), d, "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"tiny": tiny, "fp16": fp16_file(tiny, d / "fp16.onnx", keep_io_types=False),
                "u8": uint8_bgr_file(tiny, d / "u8bgr.onnx"), "mean": export(MeanMix(), d, "mean"), "ramp": export(Ramp(), d, "ramp"),
                "shrink": with_output_op(tiny, d / "shrink.onnx", "Shrink", lambd=0.0, bias=0.0)}


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """LR 24x24 and HR 48x48 (the bicubic downscale), from the astronaut's face."""
    hr = read_image(HR_IMAGE)[:, :, 40:88, 24:72]
    return downscale(hr, 2)


def forward_of(path: Path, to_file, from_file):
    """A plain one-image onnxruntime run of a file, fed as it takes it: (1, C, h, w) [0, 1] -> [0, 1] units."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(from_file(session.run(None, {name: to_file(t.numpy())})[0]))

    return run


FLOAT32 = (lambda x: x, lambda y: y)
FLOAT16 = (lambda x: x.astype(np.float16), lambda y: y.astype(np.float32))
UINT8_BGR_NHWC = (lambda x: np.clip(np.round((x * 255).astype(np.float32)[:, ::-1].transpose(0, 2, 3, 1)), 0, 255).astype(np.uint8),
                  lambda y: np.ascontiguousarray(y[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255))


def reference(run, lr, hr, roi, seed=SEED, fine=FINE):
    """The plain loop on one window, fed our seeded draws and patches (``cem.lr_blocks`` of ``cem.patch_pool``)."""
    blocks = lr_blocks(patch_pool(None, BLOCK, 3, seed)[0], 2)
    rows, cols = -(-lr.shape[2] // 2), -(-lr.shape[3] // 2)
    draws = {"coarse": np.random.default_rng([seed, 0]).integers(len(blocks), size=(rows, cols, COARSE)),
             "fine": np.random.default_rng([seed, 1]).integers(len(blocks), size=(rows, cols, fine))}
    return cem_reference(run, lr[0].permute(1, 2, 0).numpy(), hr[0].permute(1, 2, 0).numpy(), roi, BLOCK, 2,
                         [b.permute(1, 2, 0).numpy() for b in blocks], COARSE, fine, TOL,
                         lambda stage, r, c, k: int(draws[stage][r, c, k]), quantize_inputs=False)


def assert_same(ds, k: int, ref: dict) -> None:
    """Window k of ``ds`` equals the plain loop's result: the map to 1e-6 dB, the counts, the range and its ends."""
    np.testing.assert_allclose(ds.effect_blocks.values[k], ref["effect_blocks"], rtol=0, atol=1e-6, equal_nan=True)
    assert float(ds.psnr_window[k]) == pytest.approx(ref["psnr_origin"], abs=1e-9)
    counts = {s: int(ds[f"{s}_blocks"][k]) for s in ("positive", "negative", "zero")}
    assert counts == ref["counts"]
    assert abs(float(ds.effect_range[k]) - ref["range"]["range"]) < 1e-6
    assert abs(float(ds.effect_max[k]) - ref["range"]["max"]) < 1e-6 and abs(float(ds.effect_min[k]) - ref["range"]["min"]) < 1e-6
    if ref["range"]["max"] > 0:  # the end's block, as block-centre coordinates
        r, c = ref["range"]["argmax"]
        assert (float(ds.effect_max_y[k]), float(ds.effect_max_x[k])) == (float(ds.block_y[r]), float(ds.block_x[c]))
    window = np.isnan(ds.effect_blocks.values[k])
    np.testing.assert_array_equal(ds.fine_stage.values[k][~window], ref["fine_selected"][~window])


WINDOWS = [(16, 16, 16), (8, 32, 8)]  # HR px, on the 4 px block grid


def test_equals_the_plain_loop_with_shared_crops_and_windows(files, pair):
    lr, hr = pair
    model = onnxattr.load_model(files["tiny"], forward_only=True)
    ds = onnxattr.cem(model, lr, WINDOWS, hr=hr, block=BLOCK, coarse=COARSE, fine=FINE, tol=TOL, seed=SEED)
    full = onnxattr.cem(model, lr, WINDOWS, hr=hr, block=BLOCK, coarse=COARSE, fine=FINE, tol=TOL, seed=SEED, field="full")
    run = forward_of(files["tiny"], *FLOAT32)
    for k, roi in enumerate(WINDOWS):
        ref = reference(run, lr, hr, roi)
        assert ref["counts"]["positive"] > 3 and ref["fine_selected"].sum() > 3  # a map worth comparing
        assert_same(ds, k, ref)
        assert_same(full, k, ref)
    assert ds.attrs["receptive_field"] == 2  # two 3x3 convs and a bilinear x2 upsampling
    assert ds.attrs["forwards"] < full.attrs["forwards"] and ds.attrs["cost_share"] < 0.25 < full.attrs["cost_share"]
    assert "onnxruntime" in ds.attrs["runner"] and layout_problems(ds) == []
    # one call with K windows holds what K single calls give
    one = onnxattr.cem(model, lr, WINDOWS[1], hr=hr, block=BLOCK, coarse=COARSE, fine=FINE, tol=TOL, seed=SEED)
    np.testing.assert_array_equal(one.effect_blocks.values[0], ds.effect_blocks.values[1])


@pytest.mark.parametrize("key, io, order", [("fp16", FLOAT16, "rgb"), ("u8", UINT8_BGR_NHWC, "bgr")])
def test_files_run_as_shipped(files, pair, key, io, order):
    """A float16 file and a uint8 BGR channels-last file run in onnxruntime as they are: equal to the plain loop
    fed through the file's own input and output."""
    lr, hr = pair
    model = onnxattr.load_model(files[key], forward_only=True, channel_order=order)
    roi = WINDOWS[0]
    ds = onnxattr.cem(model, lr, roi, hr=hr, block=BLOCK, coarse=COARSE, fine=2, tol=TOL, seed=SEED)
    assert_same(ds, 0, reference(forward_of(files[key], *io), lr, hr, roi, fine=2))
    assert ds.attrs["file_precision"] == ("float16" if key == "fp16" else "float32")


def test_known_causal_structure(files, pair):
    """The window's output depends on the LR pixels within 2 px of it (two 3x3 convs, a bilinear upscale): with
    every block computed, the blocks farther away have exactly zero effect and some nearer ones do not; a model
    with a global mean has an unbounded field."""
    lr, hr = pair
    model = onnxattr.load_model(files["tiny"], forward_only=True)
    ds = onnxattr.cem(model, lr, (16, 16, 8), hr=hr, block=BLOCK, coarse=COARSE, fine=0, tol=0.0, field="full")
    e = ds.effect_blocks.values[0]
    rows, cols = np.indices(e.shape)
    lr_rows, lr_cols = rows * 2, cols * 2  # each block: LR px 2r, 2r + 1
    gap = np.maximum(np.maximum(8 - (lr_rows + 1), lr_rows - 11), np.maximum(8 - (lr_cols + 1), lr_cols - 11))
    assert (e[gap > 2] == 0).all() and int(ds.field_blocks[0]) == e.size - 4
    assert np.count_nonzero(np.nan_to_num(e[gap <= 2])) >= 8
    run = lambda t: torch.from_numpy(model.run_ort(t.numpy()))  # noqa: E731
    assert measure_field(run, lr, 2, 0) == 2
    mean = onnxattr.load_model(files["mean"], forward_only=True)
    assert measure_field(lambda t: torch.from_numpy(mean.run_ort(t.numpy())), lr, 2, 0) is None
    unbounded = onnxattr.cem(mean, lr, (16, 16, 8), hr=hr, block=BLOCK, coarse=1, fine=0)
    assert np.isnan(unbounded.attrs["receptive_field"]) and int(unbounded.field_blocks[0]) == e.size - 4


def test_a_model_that_is_not_shift_equivariant_runs_on_the_whole_image(files, pair):
    lr, hr = pair
    model = onnxattr.load_model(files["ramp"], forward_only=True)
    kw = dict(hr=hr, block=BLOCK, coarse=1, fine=0, seed=SEED)
    with pytest.warns(UserWarning, match="not shift-equivariant there.*whole image"):
        ds = onnxattr.cem(model, lr, (16, 16, 8), **kw)
    assert np.isnan(ds.attrs["receptive_field"])
    np.testing.assert_array_equal(ds.effect_blocks.values, onnxattr.cem(model, lr, (16, 16, 8), field="full", **kw).effect_blocks.values)


def test_a_file_no_converter_takes_gets_cem(files, pair):
    lr, hr = pair
    with pytest.raises(UnsupportedOpError, match="Shrink"):
        onnxattr.load_model(files["shrink"])
    with pytest.warns(UserWarning, match=r"no torch graph \(unsupported ONNX op Shrink.*LAM, L2X and GL-AM cannot run"):
        model = onnxattr.load_model(files["shrink"], forward_only=True)
    ds = onnxattr.cem(model, lr, WINDOWS[0], hr=hr, block=BLOCK, coarse=COARSE, fine=2, seed=SEED)
    twin = onnxattr.cem(onnxattr.load_model(files["tiny"], forward_only=True), lr, WINDOWS[0], hr=hr, block=BLOCK,
                        coarse=COARSE, fine=2, seed=SEED)
    np.testing.assert_array_equal(ds.effect_blocks.values, twin.effect_blocks.values)  # Shrink(0) is the identity
    assert "Shrink" in ds.attrs["graph_error"]
    with pytest.raises(OnnxAttrError, match="has no torch graph .* LAM, L2X, GL-AM and CEM's torch backend need one"):
        onnxattr.lam(model, lr, (16, 16, 8), steps=2)


def test_torch_backend_agrees(files, pair):
    """The torch graph (CUDA's runner without onnxruntime's CUDA provider) gives the map of onnxruntime, up to
    a rare flip of a uint8 rounding."""
    lr, hr = pair
    model = onnxattr.load_model(files["tiny"])
    kw = dict(hr=hr, block=BLOCK, coarse=COARSE, fine=2, seed=SEED)
    a = onnxattr.cem(model, lr, WINDOWS[0], backend="onnxruntime", **kw)
    b = onnxattr.cem(model, lr, WINDOWS[0], backend="torch", **kw)
    assert b.attrs["runner"].startswith("torch graph")
    np.testing.assert_allclose(a.effect_blocks.values, b.effect_blocks.values, atol=2e-3, equal_nan=True)


@pytest.mark.cuda
def test_cuda_agrees_with_the_cpu(files, pair):
    lr, hr = pair
    kw = dict(hr=hr, block=BLOCK, coarse=COARSE, fine=2, seed=SEED)
    cpu = onnxattr.cem(onnxattr.load_model(files["tiny"], device="cpu"), lr, WINDOWS[0], **kw)
    gpu = onnxattr.cem(onnxattr.load_model(files["tiny"], device="cuda", forward_only=True), lr, WINDOWS[0], **kw)
    np.testing.assert_allclose(cpu.effect_blocks.values, gpu.effect_blocks.values, atol=2e-3, equal_nan=True)


# ------------------------------------------------------------------ the patch pool
def test_bundled_pool_is_seeded():
    a, b, c = bundled_pool(8, 3, 0, 50), bundled_pool(8, 3, 0, 50), bundled_pool(8, 3, 1, 50)
    assert a.shape == (50, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0.05 < float(a.std()) and bundled_pool(8, 1, 0, 5).shape == (5, 1, 8, 8)


def test_patch_folder_keeps_the_channel_order(tmp_path):
    from PIL import Image

    red = np.zeros((12, 10, 3), np.uint8)
    red[..., 0] = 255
    red[0] = 0  # the central 8x8 is all red, the first row black
    Image.fromarray(red).save(tmp_path / "red.png")
    (tmp_path / "notes.txt").write_text("not a patch")
    p = read_patches(tmp_path, 8, 3)
    assert p.shape == (1, 3, 8, 8) and bool((p[0, 0] == 1).all()) and float(p[0, 1:].abs().max()) == 0


# ------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def hr_file(tmp_path_factory, pair) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("hr") / "face-48.png"
    Image.fromarray((pair[1][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def run_cli(capsys, args: list[str]) -> tuple[int, str]:
    """``onnxattr ARGS`` through ``main`` (as the script runs it): (exit status, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def test_cli_writes_the_map_and_its_figure(files, hr_file, tmp_path, capsys):
    out = tmp_path / "cem.nc"
    code, err = run_cli(capsys, ["cem", str(files["tiny"]), str(hr_file), "--hr", "--window", "16", "16", "16", "--block", "4",
                         "--fine", "3", "--seed", "1", "-o", str(out), "--json"])
    assert code == 0, err
    ds = onnxattr.load(out)
    assert layout_problems(ds) == [] and ds.attrs["seed"] == 1 and int(ds.positive_blocks[0]) > 0
    code, err = run_cli(capsys, ["show", str(out), "-o", str(tmp_path / "cem.png")])
    assert code == 0 and (tmp_path / "cem.png").stat().st_size > 10_000, err


def _bad_patches(folder: Path, kind: str) -> Path:
    from PIL import Image

    folder.mkdir()
    if kind == "small":
        Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(folder / "tiny.png")
    elif kind == "broken":
        (folder / "broken.png").write_bytes(b"not a png")
    return folder


@pytest.mark.parametrize("extra, message", [
    ([], "cem measures against the HR image: pass IMAGE as the HR image with --hr"),
    (["--hr", "--block", "3"], "block 3 px is not a multiple of tiny.onnx's scale 2"),
    (["--hr", "--window", "18", "16", "16"], "not aligned to the 4 px block grid .* nearest aligned window is --window 16 16 16"),
    (["--hr", "--patches", "PATCHES:empty"], "holds no image files"),
    (["--hr", "--patches", "PATCHES:broken"], "is not a readable image"),
    (["--hr", "--patches", "PATCHES:small"], "patch tiny.png is 3x3, smaller than the 4 px block"),
])
def test_cli_refuses_in_one_line(files, hr_file, tmp_path, capsys, extra, message):
    args = [a if not a.startswith("PATCHES:") else str(_bad_patches(tmp_path / "p", a.split(":")[1])) for a in extra]
    if "--window" not in args:
        args += ["--window", "16", "16", "16"]
    if "--block" not in args:
        args += ["--block", "4"]
    out = tmp_path / "never.nc"
    code, err = run_cli(capsys, ["cem", str(files["tiny"]), str(hr_file), *args, "-o", str(out)])
    lines = [line for line in err.splitlines() if line.startswith("onnxattr: error")]
    assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), err
    assert not out.exists()


def test_compare_resumes_cem_cells(files, hr_file, tmp_path):
    store = tmp_path / "study.zarr"
    kw = dict(method="cem", hr=True, block=BLOCK, coarse=1, fine=0, store=store, seeds=1, ratios=(0.1,))
    first = onnxattr.compare([files["tiny"]], [hr_file], [(16, 16, 16), (8, 32, 8)], **kw)
    lines: list[str] = []
    again = onnxattr.compare([files["tiny"]], [hr_file], [(16, 16, 16), (8, 32, 8)], report=lines.append, **kw)
    assert "kept 2 of 2 cells" in lines[0]
    np.testing.assert_array_equal(first.attribution.values, again.attribution.values)
    assert first.attrs["attribution_method"] == "cem" and np.isfinite(first.diffusion_index.values).all()
    with pytest.raises(OnnxAttrError, match="cem measures against the HR image: pass HR images with --hr"):
        onnxattr.compare([files["tiny"]], [hr_file], (16, 16, 16), method="cem")
