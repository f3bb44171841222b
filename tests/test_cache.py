"""The converted-graph cache: a second load reads the probes and the core, gives the same model, still checks it;
nothing in the cache is a pickle, and an edited entry is refused and rebuilt."""

from __future__ import annotations

import json
import pickletools
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from onnxattr import OnnxAttrError
from onnxattr.intake import cache
from onnxattr.intake import load_model

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "waifu2x-upconv7-x2.ts17.onnx"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ONNXATTR_CACHE", "1")
    monkeypatch.setenv("ONNXATTR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the signing key's folder
    return tmp_path / "cache"


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def test_second_load_comes_from_the_cache_and_equals_a_fresh_one(cache_dir):
    first = load_model(SAMPLE)
    assert not first.from_cache and len(_entries(cache_dir)) == 1
    again = load_model(SAMPLE)
    assert again.from_cache and "probing" not in again.load_seconds and "converting" not in again.load_seconds
    assert "rebuilding" in again.load_seconds
    for attr in ("scale", "offset", "size_rule", "value_range", "value_range_source", "value_range_scores",
                 "probe_size", "precision_gap", "sha256", "opset"):
        assert getattr(again, attr) == getattr(first, attr), attr
    assert np.array_equal(again.probe, first.probe)
    # the conversion check ran again on the graph rebuilt from the cached core, against the cached onnxruntime output
    assert again.conversion_error == first.conversion_error < 1e-4
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(x), first(x))
    assert [n.name for n in again.nodes] == [n.name for n in first.nodes]


def test_forward_only_loads_read_the_probes_from_the_cache(cache_dir, monkeypatch):
    """A forward-only load writes its own entry (no graph) and a later one probes nothing; CEM's memory law and
    batching check are kept there and not measured again; where a full load's entry exists, a forward-only load
    reads that one and writes none, and what it learns joins the full model's facts."""
    import importlib

    from onnxattr import cem
    from onnxattr.intake import load

    runner = importlib.import_module("onnxattr.methods.cem.runner")  # the package exports a function of that name

    hr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    kw = dict(hr=hr, block=16, coarse=1, fine=0, seed=0)
    first = load_model(SAMPLE, forward_only=True)
    assert not first.from_cache and "probing" in first.load_seconds and len(_entries(cache_dir)) == 1
    assert cache.read(_entries(cache_dir)[0].stem).prepared == b""
    done = cem(first, lr, (16, 16, 32), **kw)
    kept = cache.read(_entries(cache_dir)[0].stem).extra["learned"]
    assert sorted(k.split()[-1] for k in kept) == ["cem-onnxruntime-batches", "cem-onnxruntime-cpu"]

    def probed(*args, **kw):
        raise AssertionError("probed again")

    with monkeypatch.context() as patch:
        for module, name in ((load, "probe_and_convert"), (runner, "_ort_law"), (runner, "_batches")):
            patch.setattr(module, name, probed)
        again = load_model(SAMPLE, forward_only=True)
        effect = cem(again, lr, (16, 16, 32), **kw)["effect"].values
        assert np.array_equal(effect, done["effect"].values, equal_nan=True)
    assert again.from_cache and again.graph is None
    for attr in ("scale", "offset", "size_rule", "value_range", "output_range", "value_range_scores", "probe_size"):
        assert getattr(again, attr) == getattr(first, attr), attr
    assert np.array_equal(again.probe, first.probe)
    assert load_model(SAMPLE, forward_only=True, value_range=1, use_cache=False).load_seconds.get("probing")
    for entry in _entries(cache_dir):
        entry.unlink()
    full = load_model(SAMPLE)
    assert full.nodes  # learned and kept with the entry
    with monkeypatch.context() as patch:
        patch.setattr(load, "probe_and_convert", probed)
        forward = load_model(SAMPLE, forward_only=True)
    assert forward.from_cache and forward.scale == full.scale and forward.value_range == full.value_range
    with pytest.raises(OnnxAttrError, match="has no torch graph"):
        forward.nodes  # noqa: B018  (the entry's node list is the full model's, not this one's)
    cem(forward, lr, (16, 16, 32), **kw)
    (entry,) = _entries(cache_dir)
    kept = cache.read(entry.stem).extra["learned"]
    assert "nodes" in kept and sum(k.startswith("memory ") for k in kept) == 2


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
    refused = r"^onnxattr cache entry .* is refused \(unreadable: \w+\); loading the file anew$"
    with pytest.warns(UserWarning, match=refused):
        m = load_model(SAMPLE)
    assert not m.from_cache and m.conversion_error < 1e-4
    assert load_model(SAMPLE).from_cache


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` parses as a pickle stream (a PROTO opcode first, as torch.save and pickle write)."""
    if not data.startswith(b"\x80") or len(data) < 2 or not 2 <= data[1] <= 5:
        return False
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:  # noqa: BLE001  (not a whole pickle stream)
        return False
    return True


PICKLE_MARKS = (b"c__builtin__", b"cbuiltins", b"\x8c\x08builtins", b"torch._utils", b"_rebuild_tensor", b"data.pkl",
                b"\x8c\x0ccollections", b"ccopy_reg")


def test_the_cache_holds_no_pickle(cache_dir):
    """No file of the cache folder, and no member of an entry, is a pickle or names what pickles name (torch.save
    writes a zip with data.pkl of GLOBAL opcodes for torch._utils._rebuild_tensor_v2); the entry's members are
    plain npy arrays that load with allow_pickle=False."""
    fp16 = _fp16(cache_dir.parent)
    load_model(SAMPLE)
    load_model(fp16)
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert len(files) == 2 and all(p.suffix == ".npz" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not _is_pickle(data) and not any(mark in data for mark in PICKLE_MARKS)
        with zipfile.ZipFile(path) as z:
            assert sorted(z.namelist()) == ["facts.npy", "mac.npy", "onnx.npy", "probe.npy", "probe_output.npy"]
            for member in z.namelist():
                raw = z.read(member)
                assert raw.startswith(b"\x93NUMPY") and not _is_pickle(raw)
        with np.load(path, allow_pickle=False) as npz:
            assert {npz[k].dtype for k in npz.files} <= {np.dtype(np.uint8), np.dtype(np.float32)}
            facts = json.loads(npz["facts"].tobytes())
        assert facts["format"] == cache.FORMAT and facts["scale"] == 2
    assert cache.key_path().stat().st_mode & 0o077 == 0 and cache_dir not in cache.key_path().parents
    assert load_model(fp16).from_cache


def _fp16(folder: Path) -> Path:
    """The sample with float16 weights (a second entry, with a precision gap)."""
    import onnx
    from onnxconverter_common import float16

    path = folder / "upconv7-fp16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(SAMPLE), keep_io_types=True), path)
    return path


@pytest.mark.parametrize("edit", ["weights", "facts", "resigned-by-another-key"])
def test_a_tampered_entry_is_refused_and_rebuilt(cache_dir, tmp_path, monkeypatch, edit):
    """An entry edited in place (a weight of the core, the value range in the facts) or signed under another key
    (another user's, in a shared folder) parses, runs nothing, and is refused with a warning: the file is converted
    again and the entry replaced."""
    first = load_model(SAMPLE)
    (path,) = _entries(cache_dir)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    if edit == "weights":
        import onnx

        core = onnx.load_from_string(arrays["onnx"].tobytes())
        w = next(t for t in core.graph.initializer if t.dims and len(t.dims) == 4)
        w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w) * 0, w.name))
        arrays["onnx"] = np.frombuffer(core.SerializeToString(), np.uint8)
    elif edit == "facts":
        facts = json.loads(arrays["facts"].tobytes())
        facts["units"]["input"] = facts["units"]["output"] = 255.0
        arrays["facts"] = np.frombuffer(json.dumps(facts).encode(), np.uint8)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other-user"))
        forged = cache.Entry.from_facts(json.loads(arrays["facts"].tobytes()), arrays["onnx"].tobytes(),
                                        arrays["probe"], arrays["probe_output"])
        cache.write(path.stem, forged)  # a valid entry under another user's key
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    if edit != "resigned-by-another-key":
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    with pytest.warns(UserWarning, match=r"^onnxattr cache entry .* is refused \(its signature does not match: edited, "
                                         r"or written by another user or key\); loading the file anew$"):
        again = load_model(SAMPLE)
    assert not again.from_cache and again.value_range == first.value_range
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(x), first(x))
    assert load_model(SAMPLE).from_cache  # the entry was written anew


def test_facts_can_be_added_to_an_entry(cache_dir):
    """More facts are JSON added to an entry (signed again), kept through later reads: the format's extension point
    (per-model memory laws, the batch mode)."""
    load_model(SAMPLE)
    (path,) = _entries(cache_dir)
    assert cache.add_facts(path.stem, batch_mode="native", memory_law={"a": 1.5, "b": [2, 3]})
    entry = cache.read(path.stem)
    assert entry.extra == {"batch_mode": "native", "memory_law": {"a": 1.5, "b": [2, 3]}}
    assert entry.scale == 2 and load_model(SAMPLE).from_cache
    assert not cache.add_facts("0" * 32, batch_mode="loop")  # no such entry


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


def test_what_a_call_learns_is_kept_for_the_next_process(cache_dir, monkeypatch):
    """The batch mode, the node list, the memory figures and the receptive field a first LAM call finds are stored
    with the entry (its passes run on the window's 23x23 field), as is GL-AM's law; a later load reads them (nothing
    is counted or walked again) and reaches the same batch; an image over the small area is costed by the law, which
    is kept too."""
    from onnxattr import glam, lam
    from onnxattr.methods import memory, receptive_field

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    first = load_model(SAMPLE)
    done = lam(first, x, (10, 10, 16), frame="sr", steps=16)
    first.nodes
    memory.pass_peak(first, 200, 200)  # over SMALL_AREA s^2: the law
    maps = glam(first, x, (10, 10, 16), frame="sr")
    kept = cache.read(_entries(cache_dir)[0].stem).extra["learned"]
    assert kept["batch_mode"] == first.batch_mode and len(kept["nodes"]) == len(first.nodes)
    found = sorted(k.split()[-1].split(",")[0] for k in kept if k.startswith("memory "))
    assert found == ["glam-conv1_conv", "pass-23x23", "pass-law", "receptive-field"]
    assert done.attrs["field_box"].tolist() == [5, 5, 28, 28]

    def counted(_):
        raise AssertionError("measured again")

    monkeypatch.setattr(memory, "measure_peak", counted)
    monkeypatch.setattr(receptive_field, "find_field", counted)
    again = load_model(SAMPLE)
    assert again.recall("batch_mode") == first.batch_mode and again.nodes == first.nodes
    assert memory.pass_peak(again, 23, 23) == memory.pass_peak(first, 23, 23)
    assert memory.pass_peak(again, 200, 200) == memory.pass_peak(first, 200, 200)
    assert lam(again, x, (10, 10, 16), frame="sr", steps=16).attrs["batch_size"] == done.attrs["batch_size"]
    assert np.allclose(glam(again, x, (10, 10, 16), frame="sr")["local"].values, maps["local"].values)
