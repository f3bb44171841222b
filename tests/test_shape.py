"""The package's shape holds (docs/architecture.md): imports point down the layers of the data flow and never go
round in a cycle, no module reads another's private names, and a wheel built from the sources installs and runs
with no source tree beside it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "onnxattr"

# Bottom to top: a module may import from its own layer or the layers below (docs/architecture.md).
LAYERS = [
    {"errors", "version", "options", "limits", "paths", "arrays", "device", "image", "extras", "converters", "patches"},
    {"intake"},
    {"windows"},
    {"metrics"},
    {"results"},
    {"methods"},
    {"checks"},
    {"study"},
    {"plot"},
    {"cli"},
    {"__init__", "__main__"},
]


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package by its __init__)."""
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (relative) import in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported onnxattr module, names taken from it, line) for every import in ``module``, at any depth (imports
    inside functions count: they run too)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            if not base.startswith("onnxattr"):
                continue
            names = [a.name for a in node.names]
            # ``from pkg import sub`` imports the submodule pkg.sub
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            out += [(s, [], node.lineno) for s in subs]
            if len(subs) < len(names):
                out.append((base, [n for n in names if f"{base}.{n}" not in MODULES], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("onnxattr")]
    return out


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _in_type_checking(module: str) -> set[int]:
    """Lines of imports under ``if TYPE_CHECKING:`` (for type checkers only; they never run)."""
    tree = ast.parse(MODULES[module].read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    return lines


def test_every_module_is_in_a_layer():
    assert all(_layer(m) >= 0 for m in MODULES)


def test_imports_point_down_the_layers():
    up = []
    for module in MODULES:
        for target, _, line in _imports(module):
            if target in MODULES and target != "onnxattr" and _layer(target) > _layer(module):
                up.append(f"{module}:{line} imports {target}")
    assert up == []


def test_no_module_imports_the_package_root():
    """The root (``onnxattr/__init__``) only lists the public names: importing it from inside would be an upward
    import (its ``__version__`` lives in the leaf ``version``)."""
    assert [(m, line) for m in MODULES if m != "onnxattr" for t, _, line in _imports(m) if t == "onnxattr"] == []


def test_the_import_graph_has_no_cycle():
    graph = {m: {t for t, _, line in _imports(m) if t in MODULES and t != m and line not in _in_type_checking(m)}
             for m in MODULES}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def _private_attributes() -> dict[str, set[str]]:
    """Per module, the private attributes (``self._x``) its classes use: another module reading ``obj._x`` reaches
    into that class."""
    out = {}
    for module, path in MODULES.items():
        out[module] = {node.attr for node in ast.walk(ast.parse(path.read_text()))
                       if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                       and node.attr.startswith("_") and not node.attr.startswith("__")}
    return out


def test_no_module_reads_another_modules_private_names():
    own = _private_attributes()
    private = set().union(*own.values())
    found = []
    for module, path in MODULES.items():
        for target, names, line in _imports(module):
            hidden = [n for n in names if n.startswith("_") and not n.startswith("__")]
            hidden += [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            found += [f"{module}:{line} imports {target}.{n}" for n in hidden]
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in private - own[module] and not
                    (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{module}:{node.lineno} reads .{node.attr}")
    assert found == []


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A wheel built from the project's files (tracked and new, as a fresh clone holds them) installed into a fresh
    venv that reuses this environment's dependencies; its bin folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, text=True)
    wheel = next((tmp / "dist").glob("onnxattr-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # torch & co. from this environment (its site-packages, not the source tree)
    (site / "zz_dependencies.pth").write_text("".join(f"{p}\n" for p in sys.path if "site-packages" in p))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, text=True)
    return venv / "bin"


def test_the_wheel_holds_every_package(installed_wheel):
    code = "import onnxattr, pkgutil; print(onnxattr.__file__); print(*sorted(m.name for m in pkgutil.walk_packages(onnxattr.__path__, 'onnxattr.')))"
    res = subprocess.run([str(installed_wheel / "python"), "-c", code], capture_output=True, text=True, cwd=installed_wheel,
                         check=True)
    where, found = res.stdout.splitlines()
    assert Path(where).is_relative_to(installed_wheel.parent) and not Path(where).is_relative_to(ROOT)
    assert set(found.split()) == set(MODULES) - {"onnxattr"}
    data = Path(where).parent / "data" / "chelsea-64.png"
    assert data.is_file()


def test_the_installed_command_runs(installed_wheel, tmp_path):
    env = {**os.environ, "ONNXATTR_CACHE": "0"}
    env.pop("PYTHONPATH", None)
    model, image = ROOT / "samples" / "waifu2x-upresnet10-x2.ts17.onnx", ROOT / "samples" / "images" / "chelsea-64.png"

    def run(*args: str) -> str:
        res = subprocess.run([str(installed_wheel / "onnxattr"), *args], capture_output=True, text=True, cwd=tmp_path,
                             env=env, timeout=300)
        assert res.returncode == 0, res.stderr
        return res.stdout + res.stderr

    assert "lam" in run("--help") and "glam" in run("--help")
    win = ["--window", "40", "40", "16", "--threads", "1"]
    run("lam", str(model), str(image), *win, "--steps", "4", "-o", "lam.nc")
    run("l2x", str(model), str(image), *win, "--float32", "-o", "l2x.nc")
    run("glam", str(model), str(image), *win, "-o", "glam.nc")
    run("show", "lam.nc", "-o", "lam.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("lam.nc", "l2x.nc", "glam.nc", "lam.png"))
