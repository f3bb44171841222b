"""onnxattr: attribution maps (LAM, L2X, GL-AM) for super-resolution networks exported to ONNX.

The top-level names are imported on first use (PEP 562), so ``import onnxattr`` and the CLI's help
load neither torch nor onnx; ``onnxattr.lam(...)`` works as if imported eagerly.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "OnnxAttrError": "errors", "UnsupportedOpError": "errors", "SRModel": "model", "load_model": "model",
    "Window": "target", "Grid": "target", "compare": "compare", "glam": "glam", "read_image": "image", "l2x": "l2x", "lam": "lam",
    "load": "results", "save": "results", "combine": "results",
    "load_study": "compare", "save_study": "compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'onnxattr' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """Keeps ``onnxattr.lam`` (also compare, glam, l2x) the function: importing the submodule of the same
    name would otherwise bind the module over it, as Python does for every submodule import."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from .compare import compare, load_study, save_study
    from .errors import OnnxAttrError, UnsupportedOpError
    from .glam import glam
    from .image import read_image
    from .l2x import l2x
    from .lam import lam
    from .model import SRModel, load_model
    from .results import combine, load, save
    from .target import Grid, Window
