"""The command line as a user runs it: inspect output and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nets import ShuffleNet, conv_graph, export

ONNXATTR = [sys.executable, "-m", "onnxattr"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ONNXATTR, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return export(ShuffleNet(), tmp_path_factory.mktemp("cli"), "shuffle")


def test_version():
    res = run("--version")
    assert res.returncode == 0 and "0.1.0" in res.stdout


def test_inspect_json(model_file):
    res = run("inspect", model_file, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["scale"] == 2 and info["in_channels"] == 3 and info["fixed_size"] is None
    assert info["opset"] == 17
    assert info["op_types"] == {"Conv": 2, "DepthToSpace": 1, "Relu": 1}
    assert 0 <= info["conversion_error"] < 1e-6


def test_inspect_text_lists_nodes(model_file):
    res = run("inspect", model_file, "--nodes")
    assert res.returncode == 0, res.stderr
    assert "x2" in res.stdout and "DepthToSpace" in res.stdout


def _assert_user_error(res: subprocess.CompletedProcess, fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    errors = [line for line in res.stderr.splitlines() if line.startswith("onnxattr: error:")]
    assert len(errors) == 1 and fragment in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_user_errors_are_one_line(tmp_path):
    _assert_user_error(run("inspect", tmp_path / "missing.onnx"), "not found")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    _assert_user_error(run("inspect", tmp_path / "junk.onnx"), "not an ONNX model")
    _assert_user_error(run("inspect", conv_graph(tmp_path / "s1.onnx", scale=1)), "does not upscale")
    _assert_user_error(run("inspect", conv_graph(tmp_path / "op.onnx", extra_op="Hardmax")), "'extra'")


def test_show_refuses_a_non_result(tmp_path):
    (tmp_path / "r.nc").write_bytes(b"not netcdf")
    res = run("show", tmp_path / "r.nc", "-o", tmp_path / "f.png")
    _assert_user_error(res, "not a readable netCDF result")
    assert not (tmp_path / "f.png").exists()


def test_help_imports_no_heavy_module():
    """`onnxattr --help`, every command's `--help`, a command without its arguments and a group-level usage
    error load neither torch, onnx, onnxruntime, xarray, matplotlib nor numpy (they start in well under 1 s);
    every listed command resolves to a click command of that name."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from onnxattr.cli import COMMANDS, cli\n"
        "runner = CliRunner()\n"
        "assert runner.invoke(cli, ['--help']).exit_code == 0\n"
        "assert runner.invoke(cli, ['nosuch']).exit_code == 2\n"
        "for name in COMMANDS:\n"
        "    res = runner.invoke(cli, [name, '--help'])\n"
        "    assert res.exit_code == 0 and 'Usage: ' in res.output, (name, res.output)\n"
        "    assert runner.invoke(cli, [name]).exit_code == 2, name\n"
        "assert runner.invoke(cli, ['lam', 'm.onnx', 'i.png', '--steps', 'x']).exit_code == 2\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'onnx2torch', 'xarray', 'matplotlib', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert all(cli.get_command(None, name).name == name for name in COMMANDS)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_options_are_the_methods_own():
    """The CLI's choices (onnxattr.options, no torch) are the ones the API and the figures use."""
    from onnxattr import options
    from onnxattr.plot.common import STYLES

    assert tuple(STYLES) == options.STYLE_NAMES and all(STYLES[n].name == n for n in STYLES)


def test_lazy_top_level_names():
    """`onnxattr.lam` is the function even after its submodule is imported (also l2x, glam, compare)."""
    import onnxattr
    import onnxattr.methods.lam
    from onnxattr.methods.l2x import rules  # noqa: F401

    assert callable(onnxattr.lam) and callable(onnxattr.l2x) and callable(onnxattr.glam) and callable(onnxattr.compare)
    assert set(onnxattr.__all__) <= set(dir(onnxattr))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        onnxattr.nope  # noqa: B018
