"""Which devices the tests run on: the CPU always, CUDA when torch sees a GPU (see conftest.py)."""

from __future__ import annotations

import pytest
import torch

NO_CUDA = "torch sees no CUDA GPU (torch.cuda.is_available() is False)"


def cuda_param(value: object = "cuda", **kw) -> object:
    """A pytest parameter that needs CUDA: marked ``cuda``, skipped with a reason without a GPU."""
    marks = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]
    return pytest.param(value, marks=marks, **kw)
