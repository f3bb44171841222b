"""Optional dependencies: one clear line naming the extra to install when one is missing."""

from __future__ import annotations

import importlib.util

from .errors import OnnxAttrError


def require_study_extra(*modules: str) -> None:
    """One clear line when an optional package of the ``study`` extra (dask, distributed, zarr) is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise OnnxAttrError(
            f"studies need {' and '.join(missing)}, which come with the 'study' extra; "
            "install it with: pip install 'onnxattr[study]'"
        )
