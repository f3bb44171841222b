"""Converted graphs on disk: loading a file again skips the onnxruntime probes and the conversion's cleaning.

An entry holds what the first load learned, in formats that run nothing when read: one ``.npz`` file (read with
``allow_pickle=False``) whose members are the cleaned ONNX core (its protobuf bytes), the probe image with its
onnxruntime output (float32 arrays) and the facts as JSON (``facts``: the size rule, the output law, the value
ranges and their scores, the probe size, the precision gap, the warnings the load gave, and any facts added later
with ``add_facts``, e.g. per-model memory laws). The torch graph is rebuilt from the core by onnx2torch
(``converters.build``), the onnxscript cleaning skipped. A member ``mac`` is an HMAC-SHA256 of the others under a
key of the user's (``key_path``, 0600, outside the cache folder): an entry edited by hand, or written by another
user into a shared folder, is refused with a warning, removed and the file loaded anew; so is a torn or
foreign file. The key of an entry is the file's sha256, the load options, the versions of onnxattr, torch, onnx,
onnxruntime and onnx2torch, and a hash of the conversion's own source files, so an edited converter never serves
an old graph. A cached load still runs the converted graph on the probe and reports that conversion error.
A forward-only load (CEM on onnxruntime) reads the probes' facts from the file's full entry, else from its own
(keyed apart, ``prepared`` empty: nothing is converted), which it writes.

Folder: ``$ONNXATTR_CACHE_DIR``, else ``$XDG_CACHE_HOME/onnxattr``, else ``~/.cache/onnxattr`` (created 0700).
``ONNXATTR_CACHE=0`` turns the cache off. At most ``MAX_ENTRIES`` entries are kept, the least recently used
removed first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import write_atomically
from .sizes import SizeRule
from .units import ValueRange

MAX_ENTRIES = 32
FORMAT = 2  # 1: pickled entries (torch.save), read no more
SUFFIX = ".npz"
ARRAYS = ("onnx", "probe", "probe_output", "facts")  # the members the MAC covers, in this order


@dataclass
class Entry:
    """What a load of one file with one set of options found; ``prepared`` is the cleaned ONNX core the graph is
    converted from (serialized ModelProto), ``extra`` the facts added later (``add_facts``), by name."""

    prepared: bytes
    rule: SizeRule
    scale: int
    offset: int
    units: ValueRange  # the value ranges of both ends, their sources and scores
    probe_size: tuple[int, int]
    probe: np.ndarray  # (1, C, H, W) in [0, 1]
    probe_output: np.ndarray  # onnxruntime's output on it, [0, 1] units
    precision_gap: float | None
    load_warnings: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """Everything but the core and the arrays, as JSON values."""
        units = asdict(self.units)
        units["scores"] = {f"{k!r}": v for k, v in self.units.scores.items()}
        return {**self.extra, "format": FORMAT, "rule": asdict(self.rule), "scale": self.scale, "offset": self.offset,
                "units": units, "probe_size": list(self.probe_size), "precision_gap": self.precision_gap,
                "load_warnings": list(self.load_warnings)}

    @classmethod
    def from_facts(cls, facts: dict[str, Any], prepared: bytes, probe: np.ndarray, probe_output: np.ndarray) -> Entry:
        """The entry of ``facts`` (as ``facts()`` wrote them; KeyError or TypeError when they are not)."""
        facts = dict(facts)
        if facts.pop("format") != FORMAT:
            raise TypeError("another entry format")
        rule = facts.pop("rule")
        units = dict(facts.pop("units"))
        units["scores"] = {float(k): float(v) for k, v in units["scores"].items()}
        return cls(
            prepared=prepared, rule=SizeRule(**{**rule, "fixed": tuple(rule["fixed"]) if rule["fixed"] else None}),
            scale=int(facts.pop("scale")), offset=int(facts.pop("offset")), units=ValueRange(**units),
            probe_size=tuple(facts.pop("probe_size")), probe=probe, probe_output=probe_output,  # type: ignore[arg-type]
            precision_gap=facts.pop("precision_gap"), load_warnings=list(facts.pop("load_warnings")), extra=facts,
        )


def folder() -> Path | None:
    """The cache folder, or None when ``ONNXATTR_CACHE=0``."""
    if os.environ.get("ONNXATTR_CACHE", "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    if os.environ.get("ONNXATTR_CACHE_DIR"):
        return Path(os.environ["ONNXATTR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "onnxattr"


def key_path() -> Path:
    """The user's key that signs the entries: ``$XDG_CONFIG_HOME/onnxattr/cache.key``, else
    ``~/.config/onnxattr/cache.key`` (outside the cache folder, which may be shared or synced)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "onnxattr" / "cache.key"


def _key(create: bool) -> bytes | None:
    """The signing key (32 random bytes, made 0600 on the first write); None when absent and not created."""
    path = key_path()
    if path.is_file():
        data = path.read_bytes()
        if len(data) == 32:
            return data
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    return path.read_bytes()


def _mac(key: bytes, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """HMAC-SHA256 over each member's name, dtype, shape and bytes, in ``ARRAYS`` order."""
    digest = hmac.new(key, digestmod=hashlib.sha256)
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode() + a.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


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
                       "code": _code_hash(), "format": FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(name: str) -> Path | None:
    root = folder()
    return root / f"{name}{SUFFIX}" if root else None


def _refuse(path: Path, why: str) -> None:
    warnings.warn(f"onnxattr cache entry {path} is refused ({why}); loading the file anew", stacklevel=4)
    path.unlink(missing_ok=True)


def read(name: str) -> Entry | None:
    """The entry ``name``, or None when absent or off; a torn, foreign or edited entry (its MAC does not match
    under the user's key) is refused with a warning and removed. Nothing read runs code: ``np.load`` with
    ``allow_pickle=False``, JSON and protobuf bytes."""
    path = _path(name)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in (*ARRAYS, "mac")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        _refuse(path, f"unreadable: {type(err).__name__}")
        return None
    user_key = _key(create=False)
    if user_key is None or not hmac.compare_digest(_mac(user_key, arrays).tobytes(), arrays["mac"].tobytes()):
        _refuse(path, "its signature does not match: edited, or written by another user or key")
        return None
    try:
        facts = json.loads(arrays["facts"].tobytes().decode())
        entry = Entry.from_facts(facts, arrays["onnx"].tobytes(), arrays["probe"], arrays["probe_output"])
    except (ValueError, KeyError, TypeError) as err:
        _refuse(path, f"unreadable facts: {type(err).__name__}")
        return None
    os.utime(path)  # recently used
    return entry


def _save(path: Path, entry: Entry, user_key: bytes) -> None:
    arrays = {
        "onnx": np.frombuffer(entry.prepared, dtype=np.uint8),
        "probe": np.ascontiguousarray(entry.probe, dtype=np.float32),
        "probe_output": np.ascontiguousarray(entry.probe_output, dtype=np.float32),
        "facts": np.frombuffer(json.dumps(entry.facts(), sort_keys=True).encode(), dtype=np.uint8),
    }
    arrays["mac"] = _mac(user_key, arrays)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomically(path, write, "cache entry")


def write(name: str, entry: Entry) -> None:
    """Store ``entry`` (atomically; a cache that cannot be written is skipped with a warning) and evict old ones."""
    root = folder()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        _save(root / f"{name}{SUFFIX}", entry, _key(create=True))  # type: ignore[arg-type]
        entries = sorted(root.glob(f"[!.]*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[MAX_ENTRIES:]:
            old.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001  (the cache only saves time; a load never fails because of it)
        warnings.warn(f"cannot write the onnxattr cache in {root} ({err}); set ONNXATTR_CACHE=0 or "
                      "ONNXATTR_CACHE_DIR to a writable folder", stacklevel=3)


def add_facts(name: str, **facts: Any) -> bool:
    """Add JSON facts to the entry ``name`` (e.g. a model's memory laws, found after the load), signed again;
    ``Entry.extra`` holds them on the next read. A fact that is a dict is merged into the entry's dict of that name
    (two models of one file, each adding what it found, keep both). False when there is no readable entry or it
    cannot be written."""
    entry = read(name)
    path, user_key = _path(name), _key(create=False)
    if entry is None or path is None or user_key is None:
        return False
    for fact, value in json.loads(json.dumps(facts)).items():
        old = entry.extra.get(fact)
        entry.extra[fact] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    try:
        _save(path, entry, user_key)
    except OSError:
        return False
    return True
