"""onnxattr.check (onnxattr.checks) and `onnxattr check`: the randomisation test in both directions, the
deletion/insertion curves on a network whose window depends on a known region, the loaded model left untouched,
the report's layout, figure and errors, and `compare --checks`."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from scipy.stats import spearmanr

import onnxattr
from onnxattr import OnnxAttrError, load_model, read_image
from onnxattr.checks.faithfulness import influence_region
from onnxattr.checks.weights import SUFFIX, layer_groups, redraw, redrawn, weight_nodes
from onnxattr.cli import cli
from onnxattr.cli.check import parse_method_params
from onnxattr.intake.reweight import reweighted
from onnxattr.methods.blur import blur
from onnxattr.methods.registry import BASELINE, METHODS, Method, layout_problems, usable
from onnxattr.metrics.similarity import map_similarity, spearman, top_overlap
from onnxattr.results.build import build_dataset
from onnxattr.results.files import load
from onnxattr.windows.geometry import Window, resolve_windows

from nets import ShuffleNet, export

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CNN = SAMPLES / "waifu2x-upconv7-x2.ts17.onnx"
CAT = SAMPLES / "images" / "chelsea-64.png"
FAST = {"lam": {"steps": 4}}  # every check runs each method once per step: a short LAM path keeps tests small


# ---------------------------------------------------------------- a method that ignores the model
def difference(model, image, window, *, frame: str = "hr", hr=None):
    """A 'method' that never looks at the model: every window's map is the image minus its blur."""
    base = blur(image, 1.2, 9)
    wins = resolve_windows(window, model.offset, *model.output_size(*image.shape[2:]), frame=frame)
    with torch.no_grad():
        output = model(image)
    return build_dataset(model=model, image=image, output=output, method="difference", windows=wins, frame=frame,
                         params={}, elapsed_s=0.0, attribution=(image - base).expand(len(wins), -1, -1, -1),
                         data_vars={"baseline": (("channel", "y", "x"), base[0])})


def check_params(**params):
    return params


def estimate(*args, **kwargs) -> int:
    return 0


@pytest.fixture
def with_difference(monkeypatch):
    """The method registry with ``difference`` (this module) added, as a method landing in parallel would be."""
    monkeypatch.setitem(METHODS, "difference", Method("difference", "image minus its blur", __name__,
                                                      "onnxattr.plot.lam", variables={"baseline": BASELINE}))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def shuffle(tmp_path_factory) -> Path:
    """conv 3x3, ReLU, conv 3x3, pixel shuffle x2: SR pixel (X, Y) depends on LR pixels X // 2 +- 2, Y // 2 +- 2."""
    return export(ShuffleNet(), tmp_path_factory.mktemp("checks"), "shuffle")


@pytest.fixture(scope="module")
def cat16() -> torch.Tensor:
    return read_image(CAT)[:, :, 20:36, 24:40]


@pytest.fixture(scope="module")
def cnn() -> onnxattr.SRModel:
    return load_model(CNN)


# ---------------------------------------------------------------- measures
def test_similarity_measures_match_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 12, 12))
    assert spearman(a.ravel(), b.ravel()) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert np.isnan(spearman(np.zeros(5), np.arange(5.0)))
    same = map_similarity(a, a)
    assert same == pytest.approx({"spearman_abs": 1, "spearman": 1, "ssim": 1, "top_overlap": 1})
    flipped = map_similarity(a, -a)  # the same saliency, the opposite sign
    assert flipped["spearman_abs"] == pytest.approx(1) and flipped["spearman"] == pytest.approx(-1)
    assert top_overlap(np.arange(10.0), np.r_[np.arange(9.0), -1], top=0.2) == 0.5  # top 2: {9, 8} and {8, 7}
    region = np.arange(12 * 12)[::3]  # only the region's pixels count: other pixels may differ freely
    c = a.copy()
    c.reshape(3, -1)[:, np.setdiff1d(np.arange(144), region)] = 7.0
    assert map_similarity(a, c, region)["spearman"] == pytest.approx(1)


# ---------------------------------------------------------------- weights
def test_weight_nodes_groups_and_redrawing(cnn):
    nodes = weight_nodes(cnn.proto)
    assert [n.op_type for n in nodes] == ["Conv"] * 6 + ["ConvTranspose"]  # upconv7: 6 convs, one transposed conv
    assert all(n.inputs[0][0] == 1 for n in nodes) and sum(n.values for n in nodes) == sum(
        p.numel() for p in cnn.graph.parameters())
    groups = layer_groups(nodes, None)
    assert [g[0].name for g in groups] == [n.name for n in reversed(nodes)]  # from the output
    assert [len(g) for g in layer_groups(nodes, 3)] == [2, 3, 2] and layer_groups(nodes, 99) == groups
    copy = redrawn(cnn.proto, groups[0], seed=1)
    before = {i.name: numpy_helper.to_array(i) for i in cnn.proto.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in copy.graph.initializer}
    changed = [name for name in before if not np.array_equal(before[name], after[name])]
    assert changed == [groups[0][0].inputs[0][1]]  # only the last layer's kernel (it has no bias)
    w, v = before[changed[0]], after[changed[0]]
    assert v.shape == w.shape and v.dtype == w.dtype
    assert v.mean() == pytest.approx(w.mean(), abs=3 * w.std() / np.sqrt(w.size))
    assert v.std() == pytest.approx(w.std(), rel=0.05)
    np.testing.assert_array_equal(v, redraw(w, 1, changed[0]))  # seeded by (seed, name): the same in every copy


def test_a_shared_tensor_is_copied_for_the_redrawn_node():
    """The prepared graph merges identical initializers; re-drawing one reader leaves the other trained."""
    b = numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1), "b")
    nodes = [helper.make_node("Add", ["x", "b"], ["h"], name="first"), helper.make_node("Add", ["h", "b"], ["y"], name="last")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])], initializer=[b])
    proto = helper.make_model(graph)
    last = layer_groups(weight_nodes(proto), None)[0]
    copy = redrawn(proto, last, seed=0)
    assert [n.input[1] for n in copy.graph.node] == ["b", "b" + SUFFIX]
    inits = {i.name: numpy_helper.to_array(i) for i in copy.graph.initializer}
    np.testing.assert_array_equal(inits["b"], numpy_helper.to_array(b))
    assert not np.array_equal(inits["b" + SUFFIX], inits["b"])
    onnx.checker.check_model(copy)


def test_a_reweighted_copy_runs_other_weights_and_leaves_the_model(cnn):
    x = read_image(CAT)[:, :, :24, :24]
    with torch.no_grad():
        before = cnn(x)
    copy = reweighted(cnn, redrawn(cnn.proto, weight_nodes(cnn.proto), seed=0))
    with torch.no_grad():
        assert not torch.allclose(copy(x), before)
        torch.testing.assert_close(cnn(x), before, rtol=0, atol=0)
    out = copy.session.run(None, {copy.spec.input_name: x.numpy()})[0]  # onnxruntime runs the same weights
    torch.testing.assert_close(torch.from_numpy(out), copy(x), rtol=1e-4, atol=1e-4)
    assert copy.conversion_error < 1e-4 and copy.proto is not cnn.proto


# ---------------------------------------------------------------- faithfulness on a known region
def test_deletion_and_insertion_beat_random_order_for_every_method(shuffle, cat16):
    model = load_model(shuffle)
    win = Window(12, 12, 8)  # SR frame
    # the detector reads the window's SR pixels and, through its forward differences, the row below and the column
    # right of it (not their corner); SR pixel (Y, X) comes from LR pixel (Y // 2, X // 2) through two 3x3 convs
    needed = [(y, x) for y in range(12, 21) for x in range(12, 21) if (y, x) != (20, 20)]
    known = np.zeros((16, 16), dtype=bool)
    for y, x in needed:
        known[y // 2 - 2 : y // 2 + 3, x // 2 - 2 : x // 2 + 3] = True
    (region,) = influence_region(model, cat16, [win])
    np.testing.assert_array_equal(region, np.flatnonzero(known))
    ds = onnxattr.check(model, cat16, win.as_tuple(), frame="sr", params=FAST, layers=1, independent=False,
                        curve_steps=8, curve_seeds=2)
    assert list(ds.method.values) == usable(False) and int(ds.region_pixels[0]) == known.sum() == 80
    np.testing.assert_array_equal(ds.influence_region.values[0], known)
    auc = ds.auc.isel(window=0)
    for name in ds.method.values:
        a = auc.sel({"method": name})
        assert a.sel(curve="deletion", order="map") < a.sel(curve="deletion", order="random_order"), name
        assert a.sel(curve="insertion", order="map") > a.sel(curve="insertion", order="random_order"), name
    # normalised: 1 at the image and 0 with the region replaced, on both curves
    d = ds.detector.sel(order="map")
    np.testing.assert_allclose(d.sel(curve="deletion").isel(fraction=[0, -1]), [[[1, 0]]] * len(usable(False)), atol=1e-6)
    np.testing.assert_allclose(d.sel(curve="insertion").isel(fraction=[0, -1]), [[[0, 1]]] * len(usable(False)), atol=1e-6)
    assert layout_problems(ds) == []


# ---------------------------------------------------------------- randomisation, both directions
def test_randomisation_fails_a_model_blind_method_and_passes_lam_l2x(cnn, with_difference):
    image = read_image(CAT)[:, :, 20:44, 20:44]
    with torch.no_grad():
        state = {k: v.clone() for k, v in cnn.graph.state_dict().items()}
    proto = cnn.proto.SerializeToString()
    first = onnxattr.lam(cnn, image, (20, 20, 12), steps=4)
    ds = onnxattr.check(cnn, image, (20, 20, 12), methods=["lam", "l2x", "difference"], params=FAST, layers=2,
                        independent=False, curve_steps=4, curve_seeds=1)
    sim = ds.similarity.sel(variant="cascading").isel(window=0)
    blind = sim.sel({"method": "difference"})
    np.testing.assert_allclose(blind.sel(measure=["spearman_abs", "spearman", "top_overlap"]), 1.0)
    assert float(ds.passes.sel({"method": "difference", "check": "randomisation"})) == 0
    assert "independent of the weights" in str(ds.verdict.sel({"method": "difference", "check": "randomisation"}).values)
    for name in ("lam", "l2x"):
        s = sim.sel({"method": name})
        assert float(s.sel(measure="spearman").isel(step=-1)) < 0.5, name  # the signs follow the weights
        assert float(s.sel(measure="spearman_abs").isel(step=-1)) < 0.95, name  # the magnitudes move too
        assert float(ds.passes.sel({"method": name, "check": "randomisation"})) == 1, name
    # the loaded model is untouched: weights, graph file and a later map
    with torch.no_grad():
        for k, v in cnn.graph.state_dict().items():
            torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert cnn.proto.SerializeToString() == proto
    later = onnxattr.lam(cnn, image, (20, 20, 12), steps=4)
    np.testing.assert_array_equal(later.attribution.values, first.attribution.values)
    np.testing.assert_array_equal(ds.saliency.sel({"method": "lam"}).values, first.saliency.values)


def test_a_method_that_needs_hr_is_refused_without_it(shuffle, cat16):
    assert "cem" in METHODS and "cem" not in usable(False) and usable(True) == list(METHODS)
    with pytest.raises(OnnxAttrError, match="cem measures against the HR image: pass IMAGE as the HR image with --hr"):
        onnxattr.check(load_model(shuffle), cat16, (12, 12, 8), methods=["cem"], frame="sr")


def test_cem_takes_part_with_hr_on_the_torch_graph(shuffle):
    """CEM's trained map in the report is the torch graph's CEM (the weights the randomisation re-draws), and its
    map changes as they are re-drawn."""
    from onnxattr.image import downscale

    model = load_model(shuffle)
    lr, hr = downscale(read_image(CAT)[:, :, 16:48, 16:48], model.scale)
    kw = {"coarse": 2, "fine": 2}
    ds = onnxattr.check(model, lr, (8, 8, 8), methods=["cem"], params={"cem": kw}, frame="sr", hr=hr, layers=1,
                        independent=False, curve_steps=4, curve_seeds=1)
    direct = onnxattr.cem(model, lr, (8, 8, 8), frame="sr", hr=hr, backend="torch", **kw)
    np.testing.assert_allclose(ds.saliency.sel({"method": "cem"}).values, direct.saliency.values, atol=1e-6)
    assert direct.saliency.values.max() == 1 and ds.attrs["cem_fine"] == 2 and ds.attrs["cem_backend"] == "torch"
    with pytest.raises(OnnxAttrError, match="cem.backend='onnxruntime': the checks run cem with backend='torch'"):
        onnxattr.check(model, lr, (8, 8, 8), methods=["cem"], params={"cem": {"backend": "onnxruntime"}}, hr=hr)
    assert ds.similarity.sel({"method": "cem", "measure": "spearman"}).values.item() < 0.9
    assert np.isfinite(ds.passes.sel({"method": "cem"}).values).all()


def test_a_method_that_cannot_run_takes_part_in_no_check(shuffle, cat16, monkeypatch):
    module = METHODS["l2x"].implementation()

    @functools.wraps(module.l2x)  # the same parameters, as the registry reads them
    def refuse(*args, **kwargs):
        raise OnnxAttrError("L2X cannot propagate ONNX op Foo at node 'n'")

    monkeypatch.setattr(module, "l2x", refuse)
    ds = onnxattr.check(load_model(shuffle), cat16, (12, 12, 8), frame="sr", methods=["l2x", "glam"], layers=1,
                        independent=False, curve_steps=4, curve_seeds=1)
    lines = ds.verdict.sel({"method": "l2x"}).values
    assert all(line == "l2x cannot take part: L2X cannot propagate ONNX op Foo at node 'n'" for line in lines)
    assert np.isnan(ds.passes.sel({"method": "l2x"})).all() and np.isnan(ds.auc.sel({"method": "l2x"})).all()
    assert np.isfinite(ds.auc.sel({"method": "glam"})).all()


# ---------------------------------------------------------------- the command
def test_cli_writes_the_report_and_its_figure(shuffle, tmp_path):
    image = tmp_path / "cat.png"
    from PIL import Image

    Image.open(CAT).crop((24, 20, 40, 36)).save(image)
    out, fig = tmp_path / "check.nc", tmp_path / "check.png"
    res = CliRunner().invoke(cli, ["check", str(shuffle), str(image), "--window", "12", "12", "8", "--frame", "sr",
                                   "--layers", "all", "--curve-steps", "4", "--curve-seeds", "1", "--param",
                                   "lam.steps=4", "--label", "Shuffle x2", "-o", str(out), "--figure", str(fig)])
    assert res.exit_code == 0, res.output
    assert "check: 4 method(s) x (1 trained + 2 layers x 2 variant(s)) = 20 maps" in res.output  # lam, l2x, glam, erf
    assert res.output.count("randomisation: map") == 4 and "deletion: AUC" in res.output
    ds = load(out)
    assert layout_problems(ds) == [] and ds.attrs["layers"] == "all" and ds.attrs["lam_steps"] == 4
    assert ds.attrs["model_label"] == "Shuffle x2"
    assert dict(ds.sizes) == {"channel": 3, "y": 16, "x": 16, "method": 4, "window": 1, "variant": 2, "step": 2,
                              "measure": 4, "curve": 2, "order": 3, "fraction": 5, "check": 3}
    assert list(ds.step_op_types.values) == ["Conv", "Conv"] and fig.stat().st_size > 10_000
    shown = CliRunner().invoke(cli, ["show", str(out), "-o", str(tmp_path / "again.png")])
    assert shown.exit_code == 0, shown.output


@pytest.mark.parametrize("args, fragment", [
    (["--methods", "lam,foo"], "--methods 'lam,foo': name registered methods"),
    (["--param", "lam.stpes=3"], "lam has no parameter 'stpes'"),
    (["--layers", "0"], "give a whole number of steps >= 1, or 'all'"),
])
def test_cli_refuses_bad_options_before_work(shuffle, tmp_path, args, fragment):
    out = tmp_path / "check.nc"
    res = subprocess.run([sys.executable, "-m", "onnxattr", "check", str(shuffle), str(CAT), "--window", "8", "8", "8",
                          *args, "-o", str(out)], capture_output=True, text=True, timeout=300)
    errors = [line for line in res.stderr.splitlines() if line.startswith("onnxattr: error:")]
    assert res.returncode == 2 and len(errors) == 1 and fragment in errors[0], res.stderr
    assert not out.exists()


def test_method_params_name_a_checked_method():
    assert parse_method_params(("lam.steps=3", "lam.path=ig_blur"), ["lam"]) == {"lam": {"steps": 3, "path": "ig_blur"}}
    with pytest.raises(OnnxAttrError, match="write METHOD.KEY=VALUE for one of the checked methods"):
        parse_method_params(("l2x.sigma=2",), ["lam"])


def test_compare_checks_adds_the_aucs(shuffle, tmp_path):
    ds = onnxattr.compare([shuffle], [CAT], (40, 40, 8), method="glam", checks=True, seeds=1, ratios=(0.0, 0.5))
    assert ds.check_auc.dims == ("model", "image", "window", "check_curve", "check_order")
    assert list(ds.check_order.values) == ["map", "random_order", "random_map"]
    auc = ds.check_auc.isel(model=0, image=0, window=0)
    assert auc.sel(check_curve="deletion", check_order="map") < auc.sel(check_curve="deletion", check_order="random_order")
    assert layout_problems(ds) == [] and "check_auc" not in onnxattr.compare([shuffle], [CAT], (40, 40, 8),
                                                                          method="glam", seeds=1, ratios=(0.0,))
