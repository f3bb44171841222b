"""The converted-graph cache: a second load reads the probes and the graph, gives the same model, still checks it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from onnxattr.intake import cache
from onnxattr.intake import load_model

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "waifu2x-upconv7-x2.ts17.onnx"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ONNXATTR_CACHE", "1")
    monkeypatch.setenv("ONNXATTR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt")) if folder.is_dir() else []


def test_second_load_comes_from_the_cache_and_equals_a_fresh_one(cache_dir):
    first = load_model(SAMPLE)
    assert not first.from_cache and len(_entries(cache_dir)) == 1
    again = load_model(SAMPLE)
    assert again.from_cache and "probing" not in again.load_seconds and "converting" not in again.load_seconds
    for attr in ("scale", "offset", "size_rule", "value_range", "value_range_source", "value_range_scores",
                 "probe_size", "precision_gap", "sha256", "opset"):
        assert getattr(again, attr) == getattr(first, attr), attr
    assert np.array_equal(again.probe, first.probe)
    # the conversion check ran again on the unpickled graph, against the cached onnxruntime output
    assert again.conversion_error == first.conversion_error < 1e-4
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(x), first(x))
    assert [n.name for n in again.nodes] == [n.name for n in first.nodes]


def test_options_key_the_entry_and_unverified_loads_write_nothing(cache_dir):
    load_model(SAMPLE, verify=False)
    assert _entries(cache_dir) == []
    load_model(SAMPLE)
    with pytest.warns(UserWarning, match=r"value range 255 given, but on a photo the output with 1 is \d+x closer"):
        given = load_model(SAMPLE, value_range=255)
    assert not given.from_cache and given.value_range == 255 and len(_entries(cache_dir)) == 2
    # the load's warning is kept with the entry and given again on a cached load
    with pytest.warns(UserWarning, match=r"value range 255 given"):
        assert load_model(SAMPLE, value_range=255).from_cache
    assert cache.key("a" * 64, value_range="auto") != cache.key("b" * 64, value_range="auto")


def test_a_damaged_entry_is_converted_again(cache_dir):
    load_model(SAMPLE)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"^onnxattr cache entry .* is unreadable \(\w+\); converting again$"):
        m = load_model(SAMPLE)
    assert not m.from_cache and m.conversion_error < 1e-4
    assert load_model(SAMPLE).from_cache


def test_off_switch_and_unwritable_folder(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ONNXATTR_CACHE", "0")
    assert cache.folder() is None
    load_model(SAMPLE)
    assert _entries(cache_dir) == []
    monkeypatch.setenv("ONNXATTR_CACHE", "1")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("ONNXATTR_CACHE_DIR", str(blocker / "cache"))  # a folder below a file cannot be made
    with pytest.warns(UserWarning, match=r"^cannot write the onnxattr cache in .*; set ONNXATTR_CACHE=0 or"):
        m = load_model(SAMPLE)
    assert m.conversion_error < 1e-4


def test_cache_stays_bounded(cache_dir, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for vr in ("auto", 1, 255):
            load_model(SAMPLE, value_range=vr)
    assert len(_entries(cache_dir)) == 2


def test_the_checker_note_comes_once_per_file(cache_dir, tmp_path):
    """onnx.checker's note about a file is said at its first load, not again from the cache (every command)."""
    import onnx

    from nets import conv_graph

    path = conv_graph(tmp_path / "old.onnx")
    proto = onnx.load(path)
    proto.ir_version = 2  # the checker complains; onnxruntime runs it
    onnx.save(proto, path)
    for first in (True, False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_model(path)
        assert model.from_cache is not first
        assert any("onnx.checker flags old.onnx" in str(w.message) for w in caught) is first
