"""Shared fixtures: ``device`` runs a test on the CPU and, when torch sees a GPU, on CUDA; ``zoo_cache`` exports
the conversion zoo once per session.

Tests and parameters that need a GPU carry the ``cuda`` marker (``devices.cuda_param``); without a GPU
they are skipped with a reason, so ``pytest -m cuda`` on a GPU machine runs exactly the CUDA part.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from devices import NO_CUDA, cuda_param
from zoo import Exported, export_arch

# Tests load models fresh (some patch converters to check the verification): the converted-graph cache is off
# here, in this process and in the CLI subprocesses it starts; tests/test_cache.py turns it on in a tmp folder.
os.environ["ONNXATTR_CACHE"] = "0"


@pytest.fixture(params=["cpu", cuda_param()], scope="module")
def device(request) -> torch.device:
    """torch.device('cpu'), then torch.device('cuda') when present."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Exported]:
    """The conversion zoo (``zoo.ARCHS``): each (arch, exporter) exported once per session into a temporary folder
    (tests/test_zoo.py and tests/test_fastgraph.py share the files)."""
    folder = tmp_path_factory.mktemp("zoo")
    done: dict[tuple[str, str], Exported] = {}

    def get(arch: str, exporter: str) -> Exported:
        if (arch, exporter) not in done:
            done[(arch, exporter)] = export_arch(arch, exporter, folder)
        return done[(arch, exporter)]

    return get


def pytest_collection_modifyitems(config, items) -> None:
    """Skip whole tests marked ``cuda`` when there is no GPU (``cuda_param`` parameters skip themselves)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
