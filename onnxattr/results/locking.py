"""Study stores and result files on disk: one lock per store, temp names that say which process made them, the
leftovers of killed writers cleaned, and a store folder replaced in one step.

Every temp name is ``.NAME.PID-HEX.KIND[SUFFIX]`` (``paths.temp_path``) beside (or inside) the store or file, so
concurrent writers never share a name and a later run can tell a live writer's temp (kept) from a dead one's (removed); a result file's temp
ends in the file's own suffix (``.out.nc.PID-HEX.tmp.nc``), which its writer reads the format from. The lock is
``.NAME.lock`` beside the store, an ``flock`` that the system releases when its holder dies, so a
killed run never leaves a stale lock.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..paths import temp_path

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{12}\.(?P<kind>tmp|old)(\.[^.]+)?$")
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of the store at ``path`` (waits for other holders)."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or a system without signal 0
        return True
    return True


def remove(path: Path) -> None:
    """Remove a file or a folder tree (nothing when it is absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(folder: Path, name: str) -> list[Path]:
    """Remove the temps of ``name`` in ``folder`` left by processes that no longer run (call under the
    lock). A dead writer's ``.old`` store is put back when it died between the two renames of
    :func:`replace_folder`'s fallback, leaving no store at ``folder / name``. Returns what was removed."""
    removed = []
    for p in sorted(folder.iterdir()):
        m = _TEMP.match(p.name)
        if m is None or m["name"] != name or _alive(int(m["pid"])):
            continue
        target = folder / name
        if m["kind"] == "old" and not target.exists():
            p.rename(target)
            continue
        remove(p)
        removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is missing."""
    if not sys.platform.startswith("linux"):
        return False
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the file system cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(new: Path, path: Path) -> None:
    """Put the folder ``new`` at ``path`` (call under the lock; both in one folder). Readers see the old
    store or the new one, never none: the two are exchanged in one step, then the old one is removed.
    Where the file system cannot exchange, two renames; a crash between them is undone by
    :func:`clean_stale`."""
    if not path.exists():
        new.rename(path)
        return
    if _exchange(new, path):
        remove(new)  # now the old store
        return
    old = temp_path(path, "old")
    path.rename(old)
    new.rename(path)
    remove(old)
