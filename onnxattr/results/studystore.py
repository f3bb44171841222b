"""Study stores that resume: a zarr store holding the assembled study and, in ``cells/``, every finished
cell (``study.cells.Cell``) with the parameters the study was made with (``cells/study.json``) and the facts of
each model file loaded for it (``cells/model-SHA256[-verified].json``).

``Study.check`` refuses a store made with other parameters (unless ``overwrite``) and writes nothing, so a run
checks everything else before ``Study.create`` makes the store (``Study.open`` does both); ``Study.kept`` reads
the finished cells a run can keep, ``Study.write`` adds a cell as soon as it is computed and ``Study.save``
replaces the assembled study in one step, keeping the cells. ``Study.discard`` removes a store the run made
itself and left without a finished cell (a failed run leaves nothing behind; a store that existed before is
kept as it is). Every change is made under
the store's lock and through a temp name of the writing process (``locking``), so concurrent writers are
safe and what a killed run leaves behind is cleaned by the next one. ``save_study`` and ``load_study`` write and
read a study in one step.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import xarray as xr

from ..errors import OnnxAttrError
from ..extras import require_study_extra
from ..paths import check_disk_space, existing_folder, temp_path
from .locking import clean_stale, lock_path, locked, remove, replace_folder

STUDY_SUFFIX = ".zarr"
CELLS = "cells"
PARAMS_FILE = "study.json"


def check_study_path(path: str | os.PathLike) -> Path:
    """``path`` as a study store path (``.zarr``; the ``study`` extra installed), else a one-line error."""
    path = Path(path)
    if path.suffix != STUDY_SUFFIX:
        raise OnnxAttrError(f"study path {str(path)!r} should end in .zarr; pick a name like study.zarr")
    require_study_extra("zarr")
    return path


def _differences(there: dict[str, Any], here: dict[str, Any]) -> str:
    """``name: value there, value here`` for each parameter that differs (JSON values; ``absent``)."""
    def show(params: dict[str, Any], key: str) -> str:
        return json.dumps(params[key]) if key in params else "absent"

    keys = [k for k in {**there, **here} if show(there, k) != show(here, k)]
    return ", ".join(f"{k}: {show(there, k)} there, {show(here, k)} here" for k in keys)


def _write_json(path: Path, value: Any, store: Path) -> None:
    tmp = temp_path(store)
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.replace(path)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, where links fail) every file under ``src`` to the same place under ``dst``."""
    for f in src.rglob("*"):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)


class Study:
    """A study store at ``path`` (``.zarr``) opened for a run with these parameters."""

    def __init__(self, path: Path, params: dict[str, Any], overwrite: bool = False) -> None:
        self.path, self.params, self.overwrite = path, params, overwrite
        self.cells = path / CELLS
        self.created = False  # this run made the store (``create``)

    @classmethod
    def check(cls, path: str | os.PathLike, params: dict[str, Any], overwrite: bool = False) -> Study:
        """The store at ``path`` for a run with these parameters, checked, nothing written (no folder, no lock
        file): refuses a path that holds no onnxattr study, and a study made with other parameters or one that
        is not resumable, unless ``overwrite`` (then ``create`` replaces it)."""
        study = cls(check_study_path(path), params, overwrite)
        existing_folder(study.path, "study")
        study._refuse_foreign()
        if study._exists() and not overwrite:
            study._check_existing(overwrite)
        return study

    def create(self) -> None:
        """Make the store (or take over the one there): under its lock, dead writers' temps cleaned, an existing
        store checked again (another run may have made it since) and, with ``overwrite``, removed; the
        parameters written. ``created`` says whether this run made the folder."""
        folder = existing_folder(self.path, "study")
        with locked(self.path):
            clean_stale(folder, self.path.name)
            if self._exists():
                self._check_existing(self.overwrite)
            self.created = not self.path.exists()
            self.cells.mkdir(parents=True, exist_ok=True)
            if not (self.cells / PARAMS_FILE).exists():
                _write_json(self.cells / PARAMS_FILE, self.params, self.path)

    @classmethod
    def open(cls, path: str | os.PathLike, params: dict[str, Any], overwrite: bool = False) -> Study:
        """Open (or start) the store for a run: ``check``, then ``create``."""
        study = cls.check(path, params, overwrite)
        study.create()
        return study

    def discard(self) -> bool:
        """Remove the store, and its lock file, when this run made it and it holds no finished cell (a failed
        run leaves nothing behind); a store that existed before, or one with finished cells, is kept as it is.
        True when removed."""
        if not self.created or (self.cells.is_dir() and any(self.cells.glob("*.nc"))):
            return False
        with locked(self.path):
            gone = temp_path(self.path)  # renamed first: a kill while removing leaves a stale temp, not half a store
            if self.path.exists():
                self.path.rename(gone)
            remove(gone)
        lock_path(self.path).unlink(missing_ok=True)
        self.created = False
        return True

    def _exists(self) -> bool:
        return self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir()))

    def _refuse_foreign(self) -> None:
        """Refuse a path that exists and holds no onnxattr study (a file, or a folder of other things)."""
        if not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir())):
            return
        if not self.path.is_dir() or (not (self.cells / PARAMS_FILE).exists() and not (self.path / ".zmetadata").exists()):
            raise OnnxAttrError(f"{str(self.path)!r} exists and is not an onnxattr study; remove it or write to another path")

    def _check_existing(self, overwrite: bool) -> None:
        """Refuse (or, with ``overwrite``, remove) an existing store this run cannot resume."""
        name = str(self.path)
        params_file = self.cells / PARAMS_FILE
        self._refuse_foreign()
        if overwrite:
            gone = temp_path(self.path)  # renamed first: a kill while removing leaves a stale temp, not half a store
            self.path.rename(gone)
            remove(gone)
            return
        if not params_file.exists():
            raise OnnxAttrError(
                f"{name!r} holds a study without resumable cells (written by save_study); "
                "pass --overwrite (API: overwrite=True) to replace it, or write to another path"
            )
        there = json.loads(params_file.read_text())
        if there != self.params:
            raise OnnxAttrError(
                f"{name!r} was made with other parameters ({_differences(there, self.params)}); "
                "pass --overwrite (API: overwrite=True) to replace it, or write to another path"
            )

    def kept(self, keys: Iterable[str]) -> dict[str, xr.Dataset]:
        """The finished cells among ``keys``: key -> the cell as written (``study.cells.encode``), in memory."""
        out = {}
        for key in keys:
            f = self.cells / f"{key}.nc"
            if f.exists():
                with xr.open_dataset(f, engine="h5netcdf") as ds:
                    out[key] = ds.load()
        return out

    def write(self, key: str, cell: xr.Dataset) -> None:
        """Add a finished cell (a temp file beside the store, then renamed in under the lock)."""
        tmp = temp_path(self.path)
        check_disk_space(tmp.parent, cell.nbytes, "study cell")
        try:
            cell.to_netcdf(tmp, engine="h5netcdf")
            with locked(self.path):
                self.cells.mkdir(exist_ok=True)
                tmp.replace(self.cells / f"{key}.nc")
        finally:
            tmp.unlink(missing_ok=True)

    def model_facts(self, sha256: str, verified: bool) -> dict[str, Any] | None:
        """The facts (JSON) kept for the model file with this SHA-256 by an earlier run (None: not yet)."""
        f = self.cells / f"model-{sha256}{'-verified' if verified else ''}.json"
        return json.loads(f.read_text()) if f.exists() else None

    def save_model_facts(self, sha256: str, verified: bool, facts: dict[str, Any]) -> None:
        """Keep a model file's facts (JSON values) for later runs."""
        with locked(self.path):
            _write_json(self.cells / f"model-{sha256}{'-verified' if verified else ''}.json", facts, self.path)

    def save(self, ds: xr.Dataset) -> Path:
        """Replace the assembled study, keeping the cells."""
        return write_store(ds, self.path, keep_cells=True)


def write_store(ds: xr.Dataset, path: Path, keep_cells: bool) -> Path:
    """Write ``ds`` as the zarr store at ``path`` in one step: a temp store beside it, then (under the
    lock, with the current cells linked in when ``keep_cells``) put in place of the old one."""
    folder = existing_folder(path, "study")
    tmp = temp_path(path)
    try:
        ds.to_zarr(tmp, mode="w-", zarr_format=2, consolidated=True)
        with locked(path):
            clean_stale(folder, path.name)
            if keep_cells and (path / CELLS).is_dir():
                _link_tree(path / CELLS, tmp / CELLS)
            replace_folder(tmp, path)
    finally:
        remove(tmp)
    return path


def read_store(path: Path) -> xr.Dataset:
    """The assembled study at ``path``, fully in memory."""
    if not (path / ".zmetadata").exists() and (path / CELLS).is_dir():
        n = len(list((path / CELLS).glob("*.nc")))
        raise OnnxAttrError(f"study {str(path)!r} is not finished ({n} cells computed so far); rerun its compare command to finish it")
    if not (path / ".zmetadata").exists():
        raise OnnxAttrError(f"{str(path)!r} is a folder but no onnxattr study (no zarr metadata); pass a .nc result "
                            "or a .zarr study written by onnxattr")
    with xr.open_zarr(path, consolidated=True) as ds:
        return ds.load()


def save_study(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a study to a zarr store in one step (a temp store beside the target, then put in its place
    under the store's lock; see ``locking``). A resumable store's cells are dropped: the store holds ``ds``."""
    path = check_study_path(path)
    return write_store(ds, path, keep_cells=False)


def load_study(path: str | os.PathLike) -> xr.Dataset:
    """Open a study written by :func:`save_study` or ``compare(store=...)``, fully into memory."""
    path = Path(path)
    if not path.is_dir():
        raise OnnxAttrError(f"study {str(path)!r} not found; pass a .zarr store written by save_study")
    require_study_extra("zarr")
    return read_store(path)
