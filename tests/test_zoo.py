"""Conversion zoo: tiny random SR architectures (spandrel + hand-written, ``zoo``), x2, exported with both
exporters (the session fixture ``zoo_cache``), converted with to_torch and compared against onnxruntime on the same
file."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onnxattr import load_model
from onnxattr.converters import to_torch

from zoo import ARCHS, EXPORTERS, SHAPE, Exported

CASES = [(arch, exporter) for arch in ARCHS for exporter in EXPORTERS]


@pytest.mark.parametrize(("arch", "exporter"), CASES)
def test_zoo_converts(arch: str, exporter: str, zoo_cache: Callable[[str, str], Exported]) -> None:
    exported = zoo_cache(arch, exporter)
    proto = onnx.load(exported.path)
    x = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    y_ort = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert y_ort.shape == (1, 3, 64, 64)
    module, prepared = to_torch(proto)
    y_prepared = ort.InferenceSession(prepared.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    assert np.abs(y_prepared - y_ort).max() <= 1e-6  # prepare() keeps the numerics
    with torch.no_grad():
        y_torch = module(torch.from_numpy(x)).numpy()
        y_original = exported.module(torch.from_numpy(x)).numpy()
    scale = np.abs(y_ort).max()
    assert np.abs(y_torch - y_ort).max() / scale < 1e-4
    assert np.abs(y_original - y_ort).max() / scale < 1e-4  # the export itself is faithful


@pytest.mark.parametrize(("arch", "exporter"), CASES)
def test_zoo_load_model(arch: str, exporter: str, zoo_cache: Callable[[str, str], Exported]) -> None:
    model = load_model(zoo_cache(arch, exporter).path)
    assert (model.scale, model.offset) == (2, 0)
    # the untapped fast path (onnxattr/fastgraph.py), built on the first call at a shape and used from the second:
    # every copy specialised (none fell back), and a batch of 2 (unchecked at run time) equals the full graph
    x = torch.rand(2, 3, *model.probe_size)
    with torch.no_grad():
        for xs in (x[:1], x[:1], x, x):
            fast = model(xs)
        full = torch.cat([model.graph(xi[None] * model.value_range) / model.value_range for xi in x])
    assert model.fast.cache and all(g is not model.graph for g in model.fast.cache.values())
    assert (fast - full).abs().max() <= 1e-5 * full.abs().max()
