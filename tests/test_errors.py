"""The CLI's error contract: every failure ends with one line on stderr and a documented exit status
(2: the user's input, 1: an internal error with a log file, 130: interrupted). Commands run in-process
through ``main`` (as the ``onnxattr`` script does); one run goes through a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from onnxattr.cli import main

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MODEL = SAMPLES / "waifu2x-upconv7-x2.ts17.onnx"
IMAGE = SAMPLES / "images" / "chelsea-64.png"


def cli(capsys, *args) -> tuple[int, str]:
    """Run ``onnxattr ARGS`` through ``main``: (exit status, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_fails(res: tuple[int, str], status: int, fragment: str) -> str:
    """Exit ``status``; stderr is warnings and then exactly one line, which holds ``fragment``."""
    code, err = res
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status, err
    assert lines and fragment in lines[-1], err
    assert all(line.startswith("onnxattr: warning:") for line in lines[:-1]), err
    prefix = {2: "onnxattr: error: ", 1: "onnxattr: internal error: ", 130: "onnxattr: interrupted"}[status]
    assert lines[-1].startswith(prefix), err
    return lines[-1]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["lam"], "Missing argument 'MODEL'; see `onnxattr lam --help`"),
        (["lam", MODEL, IMAGE, "--window", "1", "2"], "Option '--window' requires 3 arguments"),
        (["lam", MODEL, IMAGE, "--window", "1", "2", "3", "-o", "o.nc", "--steps", "0"], "Invalid value for '--steps'"),
        (["nosuch"], "No such command 'nosuch'; see `onnxattr --help`"),
        (["show"], "Missing argument 'RESULT'"),
        (["compare", MODEL], "Missing option '--images'"),
    ],
)
def test_usage_errors_are_one_line(capsys, args, fragment):
    assert_fails(cli(capsys, *args), 2, fragment)


def test_bare_command_prints_the_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 0 and "Commands:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "device, fragment",
    [
        ("foo", "device 'foo' is not a torch device; use cpu, cuda or cuda:N"),
        ("meta", "device 'meta': onnxattr runs on cpu or cuda (cuda:N); use --device cpu or --device cuda"),
        ("mps", "device 'mps': onnxattr runs on cpu or cuda"),
        ("cuda:99", "cuda:99"),
    ],
)
def test_devices_are_checked_before_loading(capsys, device, fragment, tmp_path):
    assert_fails(cli(capsys, "inspect", tmp_path / "not-read.onnx", "--device", device), 2, fragment)


def _unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
        return folder
    try:  # root may write anywhere but sysfs
        (Path("/sys") / ".onnxattr-probe").touch()
    except OSError:
        return Path("/sys")
    pytest.skip("no unwritable folder for root here")


def test_unwritable_output_is_refused_before_computing(capsys, tmp_path):
    folder = _unwritable_folder(tmp_path)
    line = assert_fails(cli(capsys, "lam", MODEL, IMAGE, "--window", "30", "30", "8", "-o", folder / "r.nc"), 2,
                        f"cannot write the output into folder {str(folder)!r}")
    assert "fix the folder's permissions" in line
    assert_fails(cli(capsys, "lam", MODEL, IMAGE, "--window", "30", "30", "8", "-o", tmp_path), 2, "is a directory")


def test_internal_errors_name_a_log_with_the_traceback(capsys, monkeypatch):
    import onnxattr.cli.inspect as inspect_cmd

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inspect_cmd, "load", broken)
    line = assert_fails(cli(capsys, "inspect", MODEL), 1, "internal error: ZeroDivisionError: a bug; traceback in ")
    log = Path(line.split("traceback in ")[1].split(";")[0])
    text = log.read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and "inspect" in text
    log.unlink()


def test_interrupt_is_130(capsys, monkeypatch):
    import onnxattr.cli.inspect as inspect_cmd

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_cmd, "load", interrupted)
    assert_fails(cli(capsys, "inspect", MODEL), 130, "onnxattr: interrupted")


def test_the_script_keeps_the_contract(tmp_path):
    """A real process: the entry point of `python -m onnxattr` ends with one line and status 2."""
    res = subprocess.run([sys.executable, "-m", "onnxattr", "lam", str(MODEL), str(IMAGE), "--window", "1", "1", "8",
                          "-o", str(tmp_path / "o.nc"), "--device", "meta"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "onnxattr: error: device 'meta': onnxattr runs on cpu or cuda (cuda:N); use --device cpu or --device cuda"
    ], res.stderr


# ------------------------------------------------------------- the cases, one by one
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    from imagefiles import png_header_only
    from nets import conv_graph

    d = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "1x1.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(d / "black.png")
    png_header_only(d / "8000.png", 8000, 8000)
    png_header_only(d / "bomb.png", 20000, 20000)
    return {
        "dir": d,
        "1x1": d / "1x1.png",
        "black": d / "black.png",
        "8000": d / "8000.png",
        "bomb": d / "bomb.png",
        "tiny": conv_graph(d / "tiny.onnx"),
        "nan": conv_graph(d / "nan.onnx", extra_op=["Neg", "Sqrt"]),  # NaN on every image
        "log": conv_graph(d / "log.onnx", extra_op="Log"),  # -inf on a black image only (log 0)
        "huge": conv_graph(d / "huge.onnx", size=(100000, 100000)),
    }


def lam_args(model, image, out, *extra):
    return ["lam", model, image, "--window", "10", "10", "8", "--steps", "2", "-o", out, *extra]


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("8000", "image 8000.png is 8000x8000 (64.0 Mpx), over onnxattr's budget of 33.6 Mpx (ONNXATTR_MAX_PIXELS); "
                 "crop or downscale it first"),
        ("bomb", "image bomb.png declares 400.0 Mpx, over onnxattr's budget of 33.6 Mpx"),
    ],
)
def test_images_over_the_budget(capsys, files, case, fragment):
    out = files["dir"] / f"{case}.nc"
    assert_fails(cli(capsys, *lam_args(files["tiny"], files[case], out)), 2, fragment)
    assert not out.exists()


def test_small_image_names_the_models_minimum(capsys, files):
    assert_fails(cli(capsys, *lam_args(MODEL, files["1x1"], files["dir"] / "o.nc")), 2,
                 "waifu2x-upconv7-x2.ts17.onnx needs sides of at least 15; the image is 1x1: use an image with sides "
                 "of at least 15")


def test_huge_fixed_input_is_refused_before_the_probe(capsys, files):
    assert_fails(cli(capsys, "inspect", files["huge"]), 2,
                 "huge.onnx's fixed input is 100000x100000 (10000.0 Mpx), over onnxattr's budget of 33.6 Mpx "
                 "(ONNXATTR_MAX_PIXELS); re-export the model with a dynamic or smaller input size")


def test_nan_model_is_blamed_on_itself_not_a_converter(capsys, files):
    line = assert_fails(cli(capsys, "inspect", files["nan"]), 2, "nan.onnx")
    assert "NaN" in line and "converter in converters/ is wrong" not in line


@pytest.mark.parametrize("verify", [[], ["--no-verify"]])
def test_nan_output_is_refused_naming_the_node(capsys, files, verify):
    """log(0) = -inf on a black image: no result, and the line names the node and the model (not a converter)."""
    out = files["dir"] / "log.nc"
    line = assert_fails(cli(capsys, *lam_args(files["log"], files["black"], out, *verify)), 2,
                        "log.onnx outputs NaN or Inf on this input (")
    assert "first at node 'extra' (Log)" in line and "so the model itself makes them (not a converter)" in line
    assert line.endswith("no result written") and not out.exists()


@pytest.mark.parametrize("flag", ["--sigma inf", "--sigma nan", "--sigma -1", "--kernel-size 0"])
def test_lam_and_l2x_refuse_blurs_that_give_nan(capsys, files, flag):
    for command in ("lam", "l2x"):
        args = [command, "/not/loaded.onnx", IMAGE, "--window", "1", "1", "8", "-o", files["dir"] / "o.nc", *flag.split()]
        fragment = "needs a finite sigma > 0" if "sigma" in flag else "Invalid value for '--kernel-size'"
        assert_fails(cli(capsys, *args), 2, fragment)


@pytest.mark.parametrize(
    "param, fragment",
    [
        ("nosuch=1", "lam has no parameter 'nosuch'; its parameters are steps, sigma, kernel_size, path, baseline, "
                     "objective, reduce, smooth, noise, smooth_type, seed, receptive_field, field_crop, batch_size, "
                     "memory_fraction (--param KEY=VALUE)"),
        ("steps=0", "steps=0: the path needs at least 1 step"),
        ("steps=abc", "lam parameter steps='abc' should be a whole number (default 50)"),
        ("sigma=inf", "lam parameter sigma='inf' should be a number"),
        ("9=x", "write KEY=VALUE"),
    ],
)
def test_compare_params_are_checked_before_any_model_loads(capsys, files, param, fragment):
    """The model file does not exist: the parameter error comes first, with no progress bar above it."""
    args = ["compare", "/not/loaded.onnx", "--images", IMAGE, "--window", "1", "1", "8", "--param", param,
            "-o", files["dir"] / "o.nc"]
    assert_fails(cli(capsys, *args), 2, fragment)


@pytest.fixture(scope="module")
def lam_result(files) -> Path:
    import onnxattr

    model = onnxattr.load_model(files["tiny"])
    ds = onnxattr.lam(model, onnxattr.read_image(IMAGE), (10, 10, 8), path="gradient")
    return onnxattr.save(ds, files["dir"] / "lam.nc")


@pytest.mark.parametrize(
    "command, fragment",
    [
        ("lam", "LAM at batch 1 for a 64x64 image needs about"),
        ("l2x", "L2X of 1 window(s) for a 64x64 image needs about"),
        ("glam", "GL-AM of 1 window(s) and 7 layers for a 64x64 image needs about"),
    ],
)
def test_every_method_refuses_work_over_the_free_memory_in_one_line(capsys, files, monkeypatch, command, fragment):
    """The estimate is checked before the method allocates: exit 2, the figures and the fixes, no result file."""
    monkeypatch.setenv("ONNXATTR_MEMORY_LIMIT", "4MiB")
    out = files["dir"] / f"mem-{command}.nc"
    args = [command, MODEL, IMAGE, "--window", "40", "40", "8", "-o", out]
    line = assert_fails(cli(capsys, *args), 2, fragment)
    assert "but 4.0 MiB is free on cpu (ONNXATTR_MEMORY_LIMIT=4MiB);" in line
    assert "crop the image (--crop), use --device cuda or raise ONNXATTR_MEMORY_LIMIT" in line
    assert not out.exists()


def test_show_on_a_result_it_cannot_draw(capsys, files, lam_result):
    import onnxattr

    ds = onnxattr.load(lam_result)
    odd = ds.copy()
    odd.attrs["method"] = "gradcam"
    onnxattr.save(odd, files["dir"] / "odd.nc")
    fig = files["dir"] / "f.png"
    assert_fails(cli(capsys, "show", files["dir"] / "odd.nc", "-o", fig), 2,
                 "no figure for results of method 'gradcam' (known: lam, l2x, glam, erf, cem, compare, check and combined "
                 "runs)")
    onnxattr.save(ds.drop_vars("input"), files["dir"] / "noinput.nc")
    assert_fails(cli(capsys, "show", files["dir"] / "noinput.nc", "-o", fig), 2,
                 "the lam result lacks 'input', which its figure needs; pass a complete result written by onnxattr")
    assert not fig.exists()
    assert cli(capsys, "show", lam_result, "-o", fig)[0] == 0 and fig.stat().st_size > 1000


def test_lam_refuses_work_over_the_free_memory(files, monkeypatch):
    """The batch is sized against the free memory (ONNXATTR_MEMORY_LIMIT caps it) before anything is allocated."""
    import onnxattr

    model = onnxattr.load_model(files["tiny"])
    image = onnxattr.read_image(IMAGE)
    monkeypatch.setenv("ONNXATTR_MEMORY_LIMIT", "1MiB")
    with pytest.raises(onnxattr.OnnxAttrError, match=r"LAM at batch 1 for a 64x64 image needs about .* but 1.0 MiB is free "
                       r"on cpu \(ONNXATTR_MEMORY_LIMIT=1MiB\); pass fewer steps \(--steps\), crop the image \(--crop\), "
                       r"use --device cuda or raise ONNXATTR_MEMORY_LIMIT"):
        onnxattr.lam(model, image, (10, 10, 8), steps=50)


def test_a_full_disk_is_the_users_problem_in_one_line(capsys, files, monkeypatch):
    """ENOSPC while writing the result (h5py also complains from finalizers, which Python prints unless kept):
    exit 2, one line naming the disk, no file left behind."""
    import errno

    import xarray as xr

    class Finalizer:
        def __del__(self):
            raise RuntimeError("Can't decrement id ref count (file write failed: errno = 28)")

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        Finalizer()  # dropped at once: its error goes to sys.unraisablehook
        raise OSError(errno.ENOSPC, "Can't close file (file write failed: errno = 28)")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    out = files["dir"] / "full.nc"
    line = assert_fails(cli(capsys, *lam_args(files["tiny"], IMAGE, out)), 2,
                        "no space left on device (")
    assert line.endswith("free some space or write to another folder (-o)")
    assert not out.exists() and not list(files["dir"].glob(".full.*"))


def test_scheduler_addresses_that_are_no_address(capsys, files):
    for address in ("banana", "http://127.0.0.1:8787"):
        assert_fails(cli(capsys, "compare", MODEL, "--images", IMAGE, "--window", "40", "40", "8", "--scheduler",
                         address, "-o", files["dir"] / "s.nc"), 2,
                     f"cannot reach the Dask scheduler {address!r} (")


def test_show_on_a_folder_that_is_no_study(capsys, files, tmp_path):
    (tmp_path / "photos").mkdir()
    assert_fails(cli(capsys, "show", tmp_path / "photos", "-o", tmp_path / "f.png"), 2,
                 "is a folder but no onnxattr study (no zarr metadata); pass a .nc result or a .zarr study")


def test_a_port_that_is_no_scheduler_fails_quickly(capsys, files, monkeypatch):
    """A port that accepts and stays silent, and an HTTP server (a dashboard port): Dask's Client would wait for
    ever or read the HTTP reply as a 3 EiB message; the handshake probe refuses both within its limit."""
    import http.server
    import socket
    import threading
    import time

    import importlib

    module = importlib.import_module("onnxattr.study.scheduler")
    monkeypatch.setattr(module, "SCHEDULER_PROBE_S", 2.0)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the server's own request log is not onnxattr's stderr
            pass

    web = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        for port in (silent.getsockname()[1], web.server_address[1]):
            address = f"tcp://127.0.0.1:{port}"
            start = time.monotonic()
            assert_fails(cli(capsys, "compare", MODEL, "--images", IMAGE, "--window", "40", "40", "8", "--scheduler",
                             address, "-o", files["dir"] / "s.nc"), 2,
                         f"cannot reach the Dask scheduler {address!r} (it does not answer as a Dask scheduler within 2 s)")
            assert time.monotonic() - start < 30
    finally:
        silent.close()
        web.shutdown()


def test_a_scheduler_without_workers_is_named(capsys, files, monkeypatch):
    from distributed import LocalCluster

    import importlib

    monkeypatch.setattr(importlib.import_module("onnxattr.study.scheduler"), "WORKER_WAIT_S", 1.0)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        assert_fails(cli(capsys, "compare", MODEL, "--images", IMAGE, "--window", "40", "40", "8", "--scheduler",
                         cluster.scheduler_address, "-o", files["dir"] / "s.nc"), 2,
                     f"the Dask scheduler {cluster.scheduler_address!r} has no workers (waited 1 s); start some")


@pytest.mark.parametrize("command", ["lam", "l2x"])
def test_a_flat_image_gives_a_zero_map_with_undefined_measures_and_says_so(capsys, files, command):
    """On a black image the blurred baseline is the image: the attribution is exactly zero; its diffusion index,
    Gini and reach are undefined, NaN with a warning, not DI 100 as the 1e-7 of the LAM code's Gini would say."""
    import numpy as np

    import onnxattr

    out = files["dir"] / f"flat-{command}.nc"
    steps = ["--steps", "2"] if command == "lam" else []
    code, err = cli(capsys, command, files["tiny"], files["black"], "--window", "4", "4", "8", *steps, "-o", out)
    assert code == 0 and "the attribution of window(s) 1 of 1 is zero everywhere" in err
    ds = onnxattr.load(out)
    assert float(np.abs(ds.attribution).max()) == 0 and np.isnan(ds.reach.values).all()
    assert all(np.isnan(ds[v].values).all() for v in ("diffusion_index", "gini") if v in ds)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("dup-image", "image {IMAGE} is given twice; give each image once"),
        ("probe-huge", "--probe-size 100000 100000 is over onnxattr's probe limit of 4096x4096; pass a smaller H W"),
        ("hr-small", "needs LR sides of at least 15; with --hr the 15x15 image is downscaled x2 to 7x7: pass an HR "
                     "image with sides of at least 30"),
        ("pixel-no-target", "a pixel is explained only with target 'pixel', not 'detector'; pass --target pixel"),
        ("pixel-and-window", "target 'pixel' explains one output value: drop the window"),
        ("csv-short", "line 1: '48,40' needs x,y,size,image (2 values given); write one window per row, e.g. 48,40,16"),
        ("stride-0", "grid stride 0 must be at least 1 pixel; pass --stride S with S >= 1"),
        ("dev-zero", "model file '/dev/zero' is not a regular file (a device or pipe); pass the path of an .onnx file"),
        ("dpi", "Invalid value for '--dpi'"),
    ],
)
def test_the_line_names_the_real_cause(capsys, files, tmp_path, case, fragment):
    """Mistakes whose first message blamed something else (the model, a repeated window, an internal size) or
    gave no fix (the hostile-input audit of 2026-12-06)."""
    import numpy as np
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((15, 15, 3)) * 255).astype(np.uint8)).save(tmp_path / "15.png")
    (tmp_path / "w.csv").write_text("48,40\n")
    out = tmp_path / "o.nc"
    args = {
        "dup-image": ["compare", MODEL, "--images", IMAGE, IMAGE, "--window", "48", "40", "16", "-o", out],
        "probe-huge": ["inspect", MODEL, "--probe-size", "100000", "100000"],
        "hr-small": ["lam", MODEL, tmp_path / "15.png", "--hr", "--window", "4", "4", "4", "-o", out],
        "pixel-no-target": ["l2x", MODEL, IMAGE, "--window", "48", "40", "16", "--pixel", "50", "50", "-o", out],
        "pixel-and-window": ["l2x", MODEL, IMAGE, "--target", "pixel", "--pixel", "50", "50", "--window", "48", "40",
                             "16", "-o", out],
        "csv-short": ["lam", MODEL, IMAGE, "--windows", tmp_path / "w.csv", "-o", out],
        "stride-0": ["glam", MODEL, IMAGE, "--grid", "16", "--stride", "0", "-o", out],
        "dev-zero": ["inspect", "/dev/zero"],
        "dpi": ["show", out, "-o", tmp_path / "f.png", "--dpi", "100000"],
    }[case]
    assert_fails(cli(capsys, *args), 2, fragment.format(IMAGE=IMAGE))
    assert not out.exists()


def test_too_little_disk_is_refused_before_h5py_writes(capsys, files, monkeypatch):
    """h5py crashes the process (segfault, after screens of tracebacks) when the disk fills under it, so the free
    space is checked against the result's size first (a real 200 KB tmpfs gave exit 2 and this line)."""
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 200 * 1024, 200 * 1024))
    out = files["dir"] / "small-disk.nc"
    line = assert_fails(cli(capsys, *lam_args(files["tiny"], IMAGE, out)), 2, "no space left for the result: it needs about")
    assert "MiB and 0.2 MiB is free in" in line and line.endswith("free some space or write to another folder (-o)")
    assert not out.exists()
