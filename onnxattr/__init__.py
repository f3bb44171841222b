"""onnxattr: attribution maps (LAM, L2X, GL-AM, CEM) and effective receptive fields for super-resolution networks
exported to ONNX.

The top-level names are imported on first use (PEP 562), so ``import onnxattr`` and the CLI's help
load neither torch nor onnx; ``onnxattr.lam(...)`` works as if imported eagerly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# public name -> the submodule that defines it
_EXPORTS = {
    "OnnxAttrError": "errors", "UnsupportedOpError": "errors", "read_image": "image",
    "SRModel": "intake.model", "load_model": "intake.load", "Window": "windows.geometry", "Grid": "windows.geometry",
    "lam": "methods.lam", "l2x": "methods.l2x", "glam": "methods.glam", "cem": "methods.cem", "erf": "methods.erf",
    "receptive_field": "methods.receptive_field", "check": "checks.report", "compare": "study.compare",
    "load": "results.files", "save": "results.files", "combine": "results.combine",
    "load_study": "results.studystore", "save_study": "results.studystore",
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


if TYPE_CHECKING:
    from .checks.report import check
    from .errors import OnnxAttrError, UnsupportedOpError
    from .image import read_image
    from .intake.load import load_model
    from .intake.model import SRModel
    from .methods.cem import cem
    from .methods.erf import erf
    from .methods.glam import glam
    from .methods.l2x import l2x
    from .methods.lam import lam
    from .methods.receptive_field import receptive_field
    from .results.combine import combine
    from .results.files import load, save
    from .results.studystore import load_study, save_study
    from .study.compare import compare
    from .windows.geometry import Grid, Window
