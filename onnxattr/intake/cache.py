"""Converted graphs on disk: loading a file again skips the onnxruntime probes and the conversion.

An entry holds what the first load learned (the size rule, the output law, the value ranges and their scores,
the probe image with its onnxruntime output, the precision gap, the warnings the load gave) and the converted
GraphModule. The key is the file's sha256, the load options, the versions of onnxattr, torch, onnx,
onnxruntime and onnx2torch, and a hash of the conversion's own source files, so an edited converter never
serves an old graph. A cached load still runs the converted graph on the probe and reports that conversion
error; a damaged entry is removed and the file converted again.

Folder: ``$ONNXATTR_CACHE_DIR``, else ``$XDG_CACHE_HOME/onnxattr``, else ``~/.cache/onnxattr`` (created
0700: entries are pickles, trusted like the user's own files). ``ONNXATTR_CACHE=0`` turns the cache off.
At most ``MAX_ENTRIES`` entries are kept, the least recently used removed first.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import write_atomically

MAX_ENTRIES = 32


@dataclass
class Entry:
    """What a load of one file with one set of options found; ``graph`` is the converted GraphModule."""

    graph: Any
    prepared: bytes  # the cleaned ONNX the graph came from (serialized ModelProto)
    rule: Any  # sizes.SizeRule
    scale: int
    offset: int
    units: Any  # units.ValueRange: the value ranges of both ends, their sources and scores
    probe_size: tuple[int, int]
    probe: np.ndarray  # (1, C, H, W) in [0, 1]
    probe_output: np.ndarray  # onnxruntime's output on it, [0, 1] units
    precision_gap: float | None
    load_warnings: list[str]


def folder() -> Path | None:
    """The cache folder, or None when ``ONNXATTR_CACHE=0``."""
    if os.environ.get("ONNXATTR_CACHE", "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    if os.environ.get("ONNXATTR_CACHE_DIR"):
        return Path(os.environ["ONNXATTR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "onnxattr"


def _code_hash() -> str:
    """sha256 over the sources that decide what a load returns: every module of ``onnxattr.intake`` (this one's
    folder) and of ``onnxattr.converters``, whatever their names."""
    here = Path(__file__).resolve().parent
    files = sorted([*here.glob("*.py"), *(here.parent / "converters").glob("*.py")])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(sha256: str, **options: Any) -> str:
    """The entry name for a file (its sha256) loaded with ``options`` by this code and these libraries."""
    from ..version import __version__

    libs = {name: version(name) for name in ("torch", "onnx", "onnxruntime", "onnx2torch")}
    text = json.dumps({"sha256": sha256, "options": options, "onnxattr": __version__, "libs": libs,
                       "code": _code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read(name: str) -> Entry | None:
    """The entry ``name``, or None when absent, off, or unreadable (a damaged entry is removed)."""
    root = folder()
    path = root / f"{name}.pt" if root else None
    if path is None or not path.is_file():
        return None
    import torch

    from .. import converters  # noqa: F401  (before unpickling: onnx2torch without its torchvision modules)

    try:
        entry = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(entry, Entry):
            raise TypeError(f"not an {Entry.__name__}")
    except Exception as err:  # noqa: BLE001  (a torn or foreign file: convert again)
        warnings.warn(f"onnxattr cache entry {path} is unreadable ({type(err).__name__}); converting again", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # recently used
    return entry


def write(name: str, entry: Entry) -> None:
    """Store ``entry`` (atomically; a cache that cannot be written is skipped with a warning) and evict old ones."""
    root = folder()
    if root is None:
        return
    import torch

    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(root / f"{name}.pt", lambda tmp: torch.save(entry, tmp), "cache entry")
        entries = sorted(root.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            old.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001  (the cache only saves time; a load never fails because of it)
        warnings.warn(f"cannot write the onnxattr cache in {root} ({err}); set ONNXATTR_CACHE=0 or "
                      "ONNXATTR_CACHE_DIR to a writable folder", stacklevel=3)
