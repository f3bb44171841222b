"""Study stores that resume (onnxattr.results.studystore, study.cells, results.locking): kept cells and their computed_at, a real
SIGKILL then rerun, refusal of other parameters, failing cells, concurrent writers, stale temps."""

from __future__ import annotations

from dataclasses import replace

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from PIL import Image

import onnxattr.results.locking
from onnxattr import OnnxAttrError, compare
from onnxattr.cli import cli
from onnxattr.results.studystore import load_study, save_study
from onnxattr.errors import CellsFailed
from onnxattr.results.files import load
from onnxattr.methods.registry import layout_problems as problems
from onnxattr.results.studystore import Study

from nets import conv_graph

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "samples" / "images"
HR = [IMAGES / "astronaut-hr-128.png", IMAGES / "chelsea-128.png"]
FAST = {"path": "gradient", "ratios": (0.1,), "seeds": 1}
TIMES = ["computed_at", "elapsed_s"]  # what differs between two runs of the same study
pytestmark = pytest.mark.filterwarnings("ignore:CKA over")  # one image: CKA is NaN, as expected


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("models")
    return [conv_graph(folder / "conv-x2.onnx", scale=2), conv_graph(folder / "conv-x3.onnx", scale=3)]


WINDOWS = [(30, 30, 12), (40, 40, 8)]


def _run(models, store, windows=WINDOWS, **kw):
    lines: list[str] = []
    ds = compare(models, HR, windows, hr=True, store=store, report=lines.append, **{**FAST, **kw})
    return ds, lines


def _line(kept: int, total: int) -> list[str]:
    return [f"study.zarr: kept {kept} of {total} cells (same model and image SHA-256, window and parameters), "
            f"computing {total - kept}"]


def test_resume_keeps_cells_and_their_computed_at(models, tmp_path):
    store = tmp_path / "study.zarr"
    first, lines = _run(models[:1], store)
    assert lines == _line(0, 4)  # 1 model x 2 images x 2 windows
    assert first.computed_at.dims == ("model", "image", "window")
    both, lines = _run(models, store)  # one more model: its 4 cells are new
    assert lines == _line(4, 8)
    np.testing.assert_array_equal(both.computed_at.sel(model="conv-x2.onnx").values, first.computed_at.values[0])
    assert (both.computed_at.sel(model="conv-x3.onnx") > first.computed_at.max()).all()
    assert (both.cell_error == "").all() and both.computed_at.dtype == np.dtype("datetime64[ns]")
    # the resumed study is the study of one uninterrupted run, value for value
    plain = compare(models, HR, WINDOWS, hr=True, **FAST)
    xr.testing.assert_identical(both.drop_vars(TIMES), plain.drop_vars(TIMES))
    again, lines = _run(models, store)
    assert lines == _line(8, 8)
    xr.testing.assert_identical(again, both)
    xr.testing.assert_identical(load_study(store), both)
    assert problems(again) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".study.zarr.lock", "study.zarr"]  # no temps left


def test_a_new_window_computes_only_its_cells(models, tmp_path, monkeypatch):
    """Cells are model x image x window: a rerun with one more window computes that window alone (one task
    per model x image, with the missing windows only) and keeps the others' values and computed_at."""
    import importlib

    C = importlib.import_module("onnxattr.study.tasks")
    store = tmp_path / "study.zarr"
    first, _ = _run(models, store, windows=WINDOWS[:1])
    asked: list[list] = []
    real = C.explain_pair
    monkeypatch.setattr(C, "explain_pair", lambda **kw: asked.append(kw["windows"]) or real(**kw))
    more, lines = _run(models, store)
    assert lines == _line(4, 8)
    assert [[w.as_tuple() for w in ws] for ws in asked] == [[(40, 40, 8)]] * 4  # 2 models x 2 images, the new window only
    np.testing.assert_array_equal(more.computed_at.isel(window=0).values, first.computed_at.isel(window=0).values)
    assert (more.computed_at.isel(window=1) > first.computed_at.max()).all()
    plain = compare(models, HR, WINDOWS, hr=True, **FAST)
    xr.testing.assert_identical(more.drop_vars(TIMES), plain.drop_vars(TIMES))
    # elapsed_s of a model x image: the sum of the two tasks that computed its windows
    assert (more.elapsed_s > first.elapsed_s).all()


def test_gather_sums_the_time_of_each_task_once():
    from onnxattr.study.cells import CellResult, gather

    t1, t2 = np.datetime64(1, "ns"), np.datetime64(2, "ns")
    cell = CellResult(input=np.zeros((3, 4, 4)), attribution=0, saliency=0, sr_crop=0, hr_crop=None,
                      diffusion_index=1.0, gini=0.0, reach=1.0, completeness_error=0.0, window_sr=(0, 0), elapsed_s=0.0,
                      quality={}, curve=None,
                      computed_at=t1)
    windows = [replace(cell, computed_at=t1, elapsed_s=3.0),
               replace(cell, computed_at=t1, elapsed_s=3.0),   # the same task as the first
               replace(cell, computed_at=t2, elapsed_s=5.0),
               replace(cell, computed_at=np.datetime64("NaT", "ns"), elapsed_s=float("nan"), error="failed")]
    got = gather(windows)
    assert got.elapsed_s == 8.0 and got.per_window("error") == ["", "", "", "failed"]
    assert np.isnan(gather(windows[3:]).elapsed_s)


def _cells_computed_at(store: Path) -> set:
    out = set()
    for f in (store / "cells").glob("*.nc"):
        with xr.open_dataset(f, engine="h5netcdf") as ds:
            out.add(ds.computed_at.values.astype("datetime64[ns]"))
    return out


def test_sigkill_then_rerun_equals_an_uninterrupted_run(models, tmp_path):
    images = [tmp_path / f"img{i}.png" for i in range(3)]  # three images: 6 cells of ~1 s
    for i, p in enumerate(images):
        Image.open(HR[i % 2]).rotate(90 * i).save(p)
    args = ["compare", *map(str, models), "--images", *map(str, images), "--hr", "--window", "30", "30", "12",
            "--param", "steps=48", "--seeds", "1", "--ratios", "0.1", "-q"]
    store = tmp_path / "study.zarr"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "onnxattr", *args, "-o", str(store)], env=env)
    deadline = time.monotonic() + 300
    while not list((store / "cells").glob("*.nc")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _cells_computed_at(store)
    assert 1 <= len(before) < 6, f"{len(before)} cells before the kill"
    assert not (store / ".zmetadata").exists()
    with pytest.raises(OnnxAttrError, match=r"is not finished \(\d cells computed so far\); rerun its compare command"):
        load_study(store)
    killed = time.time_ns()
    res = CliRunner().invoke(cli, [*args[:-1], "-o", str(store)])
    assert res.exit_code == 0, res.output
    assert f"study.zarr: kept {len(before)} of 6 cells" in res.output
    ds = load_study(store)
    kept = ds.computed_at.values[ds.computed_at.values < np.datetime64(killed, "ns")]
    assert set(kept) == before  # the cells finished before the kill keep their computed_at
    full = tmp_path / "full.zarr"
    assert CliRunner().invoke(cli, [*args, "-o", str(full)]).exit_code == 0
    xr.testing.assert_identical(ds.drop_vars(TIMES), load_study(full).drop_vars(TIMES))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))]


def test_other_parameters_are_refused_unless_overwrite(models, tmp_path):
    out = tmp_path / "s.zarr"
    base = ["compare", str(models[0]), "--images", str(HR[0]), "--hr", "--window", "30", "30", "12", "--seeds", "1",
            "--ratios", "0.1", "--param", "path=gradient", "-o", str(out)]
    assert CliRunner().invoke(cli, base).exit_code == 0
    made = load_study(out).computed_at.values
    res = CliRunner().invoke(cli, [*base, "--param", "steps=8", "--seeds", "2"])
    assert res.exit_code != 0
    assert str(res.exception) == (
        f"{str(out)!r} was made with other parameters (seeds: 1 there, 2 here, steps: 50 there, 8 here); "
        "pass --overwrite (API: overwrite=True) to replace it, or write to another path"
    )
    np.testing.assert_array_equal(load_study(out).computed_at.values, made)  # untouched
    res = CliRunner().invoke(cli, [*base, "--param", "steps=8", "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    assert '"cells_kept": 0' in res.output and '"cells_computed": 1' in res.output
    assert (load_study(out).computed_at.values > made).all()
    res = CliRunner().invoke(cli, [*base, "--param", "steps=8", "--json"])
    assert '"cells_kept": 1' in res.output and '"cells_computed": 0' in res.output
    # a store without cells, and a folder that is no study
    save_study(load_study(out), out)
    with pytest.raises(OnnxAttrError, match=r"holds a study without resumable cells \(written by save_study\); pass --overwrite"):
        _run(models[:1], out)
    other = tmp_path / "photos.zarr"
    other.mkdir()
    (other / "a.png").write_bytes(b"")
    with pytest.raises(OnnxAttrError, match="'.*photos.zarr' exists and is not an onnxattr study; remove it"):
        _run(models[:1], other, overwrite=True)
    assert (other / "a.png").exists()


@pytest.mark.parametrize("param", ["store=x.zarr", "overwrite=True", "hr=True"])
def test_params_named_like_compare_arguments_are_one_line(models, tmp_path, param):
    res = CliRunner().invoke(cli, ["compare", str(models[0]), "--images", str(HR[0]), "--window", "30", "30", "12",
                                   "--param", param, "-o", str(tmp_path / "s.zarr")])
    assert isinstance(res.exception, OnnxAttrError)
    assert str(res.exception) == (f"lam has no parameter {param.split('=')[0]!r}; its parameters are steps, sigma, "
                                  "kernel_size, path, baseline, objective, reduce, smooth, noise, smooth_type, seed, "
                                  "receptive_field, field_crop, batch_size, memory_fraction (--param KEY=VALUE)")


def test_a_failing_cell_is_recorded_and_the_others_complete(tmp_path):
    model = conv_graph(tmp_path / "log.onnx", extra_op="Log")  # log(0): -inf on a black image
    black = tmp_path / "black-64.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(black)
    images = [IMAGES / "coffee-64.png", black, IMAGES / "chelsea-64.png"]
    out = tmp_path / "s.zarr"
    args = ["compare", str(model), "--images", *map(str, images), "--window", "60", "60", "16", "--param", "path=gradient",
            "--seeds", "1", "--ratios", "0.1", "-o", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and isinstance(res.exception, CellsFailed)
    assert str(res.exception).startswith("1 of 3 cells failed, first log.onnx on black-64.png window 60,60,16: log.onnx outputs NaN or Inf")
    assert str(res.exception).endswith(f"; the other 2 are in {out}, each failure in cell_error; fix the cause and rerun")
    ds = load_study(out)
    assert list(ds.cell_error.values[0, [0, 2], 0]) == ["", ""] and ds.cell_error.values[0, 1, 0].startswith("log.onnx outputs NaN")
    assert np.isnat(ds.computed_at.values[0, 1, 0]) and not np.isnat(ds.computed_at.values[0, [0, 2], 0]).any()
    assert np.isnan(ds.saliency.isel(image=1)).all() and np.isfinite(ds.saliency.isel(image=[0, 2], y=slice(0, 60))).all()
    assert ds.diffusion_index.isel(image=[0, 2]).notnull().all() and problems(ds) == []
    res = CliRunner().invoke(cli, args)  # a rerun keeps the two and retries the failed one
    assert "s.zarr: kept 2 of 3 cells" in res.output and isinstance(res.exception, CellsFailed)
    # .nc output: the finished cells are written too; the API raises with the study
    nc = tmp_path / "s.nc"
    res = CliRunner().invoke(cli, [*args[:-1], str(nc)])
    assert str(res.exception).endswith(f"the other 2 are in {nc}, each failure in cell_error; fix the cause and rerun")
    assert load(nc).cell_error.values[0, 1, 0].startswith("log.onnx outputs NaN")
    with pytest.raises(CellsFailed, match="the other 2 are in the result") as err:
        compare([model], images, (60, 60, 16), **FAST)
    xr.testing.assert_identical(err.value.dataset.drop_vars(TIMES), ds.drop_vars(TIMES))
    with pytest.raises(CellsFailed, match=r"^1 of 1 cells failed, first log.onnx on black-64.png window 60,60,16: .*; nothing was computed;"):
        compare([model], [black], (60, 60, 16), **FAST)


def test_two_compare_runs_on_one_store_both_finish(models, tmp_path):
    store = tmp_path / "s.zarr"
    args = [sys.executable, "-m", "onnxattr", "compare", *map(str, models), "--images", *map(str, HR), "--hr",
            "--window", "30", "30", "12", "--param", "path=gradient", "--seeds", "1", "--ratios", "0.1", "-q", "-o", str(store)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [(p.wait(300), p.stderr.read()) for p in procs] == [(0, ""), (0, "")]
    ds = load_study(store)
    assert (ds.cell_error == "").all() and not np.isnat(ds.computed_at.values).any()
    assert len(list((store / "cells").glob("*.nc"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.zarr.lock", "s.zarr"]


def _writer(path: str, value: float, barrier, rounds: int) -> None:
    ds = xr.Dataset({"v": (("a",), np.full(1000, value))}, attrs={"method": "compare"})
    barrier.wait()
    for _ in range(rounds):
        save_study(ds, path)


def test_concurrent_save_study_writers_are_safe(tmp_path):
    path = tmp_path / "s.zarr"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(path), float(i), barrier, 15)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    back = load_study(path)
    assert float(back.v[0]) in (0.0, 1.0) and (back.v == back.v[0]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.zarr.lock", "s.zarr"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temps_of_dead_writers_are_cleaned(tmp_path):
    path = tmp_path / "s.zarr"
    dead, live = _dead_pid(), os.getppid()
    stale_store = tmp_path / f".s.zarr.{dead}-0123456789ab.tmp"
    (stale_store / "cells").mkdir(parents=True)
    stale_cell = tmp_path / f".s.zarr.{dead}-ba9876543210.tmp"
    stale_cell.write_bytes(b"half a cell")
    running = tmp_path / f".s.zarr.{live}-00000000000a.tmp"
    running.write_bytes(b"being written")
    other = tmp_path / f".t.zarr.{dead}-00000000000b.tmp"
    other.write_bytes(b"another store's")
    Study.open(path, {"method": "lam"})
    assert not stale_store.exists() and not stale_cell.exists()
    assert running.exists() and other.exists()
    # killed between the two renames of the fallback replace: the old store is put back
    save_study(xr.Dataset({"v": (("a",), [1.0])}, attrs={"method": "compare"}), path)
    old = tmp_path / f".s.zarr.{dead}-0000000000cc.old"
    path.rename(old)
    assert onnxattr.results.locking.clean_stale(tmp_path, "s.zarr") == [] and not old.exists()
    assert float(load_study(path).v[0]) == 1.0


def test_a_killed_runs_temp_is_removed_by_the_next_run(models, tmp_path):
    """A run killed while writing its result leaves a temp named for its process; the next run writing a result
    into that folder removes it (the process is gone) and keeps a live writer's."""
    out = tmp_path / "lam.nc"
    code = ("import os, signal, sys, xarray as xr\n"
            "from onnxattr.results.files import save\n"
            "def die(self, path, **kw):\n"
            "    open(path, 'wb').write(b'half a result')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "xr.Dataset.to_netcdf = die\n"
            "save(xr.Dataset({'v': ('a', [1.0])}), sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.wait() == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert re.fullmatch(rf"\.lam\.nc\.{proc.pid}-[0-9a-f]{{12}}\.tmp\.nc", left.name)
    live = tmp_path / f".lam.nc.{os.getpid()}-00000000000a.tmp.nc"
    live.write_bytes(b"being written")
    res = CliRunner().invoke(cli, ["lam", str(models[0]), str(IMAGES / "chelsea-64.png"), "--window", "8", "8", "8",
                                   "--frame", "sr", "--steps", "2", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "lam.nc"]
    assert load(out).attrs["method"] == "lam"


def test_replace_without_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxattr.results.locking, "_exchange", lambda a, b: False)  # file systems without renameat2
    path = tmp_path / "s.zarr"
    for v in (1.0, 2.0):
        save_study(xr.Dataset({"v": (("a",), [v])}, attrs={"method": "compare"}), path)
    assert float(load_study(path).v[0]) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.zarr.lock", "s.zarr"]


def test_a_refused_path_gets_no_lock_file(tmp_path):
    """A folder of other things and a plain file named .zarr are refused before the store's lock is taken."""
    (tmp_path / "photos.zarr").mkdir()
    (tmp_path / "photos.zarr" / "a.png").write_bytes(b"")
    (tmp_path / "file.zarr").write_bytes(b"not a store")
    for name in ("photos.zarr", "file.zarr"):
        with pytest.raises(OnnxAttrError, match="exists and is not an onnxattr study; remove it"):
            Study.open(tmp_path / name, {"method": "lam"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.zarr", "photos.zarr"]


# ------------------------------------------------------------ a failed study leaves no store behind
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, models) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    truncated = folder / "truncated.onnx"
    truncated.write_bytes(models[0].read_bytes()[:200])
    unreadable = folder / "broken.png"
    unreadable.write_bytes(b"\x89PNG\r\n\x1a\n not an image after all")
    return {"non-sr": conv_graph(folder / "x1.onnx", scale=1), "truncated": truncated, "image": unreadable}


@pytest.fixture
def silent_scheduler(monkeypatch):
    """The address of a port that accepts and never answers (SCHEDULER_PROBE_S shortened to 1 s)."""
    import importlib
    import socket

    monkeypatch.setattr(importlib.import_module("onnxattr.study.scheduler"), "SCHEDULER_PROBE_S", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        yield f"tcp://127.0.0.1:{silent.getsockname()[1]}"


FAILING = {  # case -> (what is given besides the two good models and HR images, the error)
    "mixed scales without --hr": ({"hr": False}, "the models mix scales"),
    "a non-SR file among good ones": ({"model": "non-sr"}, "does not upscale"),
    "a truncated file among good ones": ({"model": "truncated"}, "is not an ONNX model"),
    "an unreadable image among good ones": ({"image": "image"}, "is not a readable image"),
    "a scheduler that does not answer": ({"scheduler": True}, "cannot reach the Dask scheduler"),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_a_failing_study_leaves_no_store(models, bad_files, tmp_path, request, case):
    """Everything that can be checked is checked before the store is made: the run fails with its line and the
    folder holds nothing (no store, no lock file); a later run with other parameters is not refused."""
    given, message = FAILING[case]
    store = tmp_path / "study.zarr"
    kw = {**FAST, "hr": given.get("hr", True)}
    if given.get("scheduler"):
        kw["scheduler"] = request.getfixturevalue("silent_scheduler")
    ms = [*models, bad_files[given["model"]]] if "model" in given else models
    images = [*HR, bad_files[given["image"]]] if "image" in given else HR
    with pytest.raises(OnnxAttrError, match=message):
        compare(ms, images, WINDOWS[:1], store=store, **kw)
    assert list(tmp_path.iterdir()) == []
    ds, lines = _run(models[:1], store, windows=WINDOWS[:1], seeds=2)  # other parameters: a fresh store
    assert lines == _line(0, 2) and problems(ds) == []


def test_a_failing_study_keeps_a_store_that_existed(models, bad_files, tmp_path):
    """A run that fails on an existing store with finished cells leaves it as it was: cells, study and files."""
    store = tmp_path / "study.zarr"
    first, _ = _run(models[:1], store, windows=WINDOWS[:1])
    before = {p.relative_to(tmp_path): p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(OnnxAttrError, match="does not upscale"):
        _run([models[0], bad_files["non-sr"]], store, windows=WINDOWS[:1])
    assert {p.relative_to(tmp_path): p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before
    xr.testing.assert_identical(load_study(store), first)


def test_a_study_whose_every_cell_fails_removes_the_store_it_made(models, tmp_path, monkeypatch):
    """Past the checks, a store is made; when every cell then fails, nothing was computed and the store goes too."""
    import importlib

    def fail(**kw):
        raise OnnxAttrError("this cell cannot be computed")

    monkeypatch.setattr(importlib.import_module("onnxattr.study.tasks"), "explain_pair", fail)
    with pytest.raises(CellsFailed, match=r"^2 of 2 cells failed, first .*this cell cannot be computed.*nothing was computed"):
        _run(models[:1], tmp_path / "study.zarr", windows=WINDOWS[:1])
    assert list(tmp_path.iterdir()) == []


def test_the_cli_leaves_no_store_after_a_refused_study(models, tmp_path, capsys):
    out = tmp_path / "study.zarr"
    from onnxattr.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["compare", *map(str, models), "--images", str(HR[0]), "--window", "30", "30", "12", "--param",
              "path=gradient", "-q", "-o", str(out)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("onnxattr: error: the models mix scales")
    assert list(tmp_path.iterdir()) == []
