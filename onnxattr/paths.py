"""Paths the tool reads and writes: checks that name what is wrong (missing, a folder, unwritable, a full disk)
and atomic writes, so a result or figure file is complete or absent, never partial."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from .errors import OnnxAttrError


def regular_file(path: str | Path, what: str, fix: str) -> Path:
    """``path`` when it is a regular file, else one error saying what it is instead (missing, a folder, a device
    or pipe) and ``fix``."""
    path = Path(path)
    if not path.is_file():
        kind = ("not found" if not path.exists() else "is a folder, not a file" if path.is_dir()
                else "is not a regular file (a device or pipe)")
        raise OnnxAttrError(f"{what} {str(path)!r} {kind}; {fix}")
    return path


def existing_folder(path: Path, what: str) -> Path:
    """The folder ``path`` goes into; an error naming ``what`` is written when it does not exist."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OnnxAttrError(f"folder {str(folder)!r} for the {what} does not exist; create it first")
    return folder


def check_writable(path: Path, what: str) -> Path:
    """Fail early when nothing can be written beside ``path``: create and remove a temp file in its folder."""
    folder = existing_folder(path, what)
    probe = folder / f".{path.name}.{uuid.uuid4().hex[:12]}.probe"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        raise OnnxAttrError(
            f"cannot write the {what} into folder {str(folder)!r} ({err.strerror or type(err).__name__}); "
            "pick another -o path or fix the folder's permissions"
        ) from None
    return folder


def check_disk_space(folder: Path, nbytes: int, what: str) -> None:
    """Refuse writing about ``nbytes`` into ``folder`` when its file system has less free (with 5 % and 1 MiB to
    spare): h5py, which writes the netCDF files, crashes the process when the disk fills under it."""
    need = int(nbytes * 1.05) + 2**20
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OnnxAttrError(
            f"no space left for the {what}: it needs about {need / 2**20:.1f} MiB and {free / 2**20:.1f} MiB is free "
            f"in {str(folder)!r}; free some space or write to another folder (-o)"
        )


def temp_path(path: Path, kind: str = "tmp", suffix: str = "") -> Path:
    """A fresh hidden name beside ``path`` that says which process made it: ``.NAME.PID-HEX.KIND`` and ``suffix``
    (``results.locking.clean_stale`` removes those of processes that no longer run)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{kind}{suffix}")


def write_atomically(path: Path, write: Callable[[Path], object], what: str) -> Path:
    """``write(tmp)`` to a fresh name in ``path``'s folder (same file system: ``temp_path``, ending in ``path``'s
    suffix, which writers read the format from), then rename it over ``path``.

    A missing folder is an error naming ``what`` is written. A failed write removes the temporary file and
    leaves an existing ``path`` untouched. The writer creates the file itself, so it gets the user's usual
    permissions (umask), not mkstemp's 0600.
    """
    existing_folder(path, what)
    tmp = temp_path(path, suffix=path.suffix)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
