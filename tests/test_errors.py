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
