"""Results on disk: ``save`` and ``load`` for a run (netCDF, ``.nc``) or a study (zarr, ``.zarr``; ``studystore``).

netCDF files are written atomically (a temp file in the target folder, named for the writing process, renamed
into place) after a check that the disk holds them, and read fully into memory (the file is closed afterwards). A
write first removes the temps a killed run left for the same file (``locking.clean_stale``).
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from ..errors import OnnxAttrError
from ..paths import check_disk_space, existing_folder, regular_file, write_atomically
from .locking import clean_stale
from .studystore import STUDY_SUFFIX, load_study, save_study


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` atomically: netCDF (h5netcdf) for ``.nc``, a zarr store for ``.zarr`` (studies).

    netCDF goes to a temp file in the target folder (``.NAME.PID-HEX.tmp.nc``), then is renamed; a failed write
    leaves no file behind and an existing file is replaced only by a complete one; the temps of killed writers of
    the same file are removed first. ``.zarr`` uses ``save_study``.
    """
    path = Path(path)
    if path.suffix == STUDY_SUFFIX:
        return save_study(ds, path)
    if path.suffix not in (".nc", ".nc4", ".netcdf"):
        raise OnnxAttrError(f"result path {str(path)!r} should end in .nc (netCDF) or .zarr; pick a name like out.nc")
    folder = existing_folder(path, "result")
    clean_stale(folder, path.name)
    check_disk_space(folder, ds.nbytes, "result")
    return write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"), "result")


def load(path: str | os.PathLike) -> xr.Dataset:
    """Open a result fully into memory (the file is closed afterwards): a ``.nc`` file or a ``.zarr`` study."""
    path = Path(path)
    if path.suffix == STUDY_SUFFIX or path.is_dir():
        return load_study(path)
    regular_file(path, "result file", "pass a .nc file or .zarr study written by onnxattr")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as err:
        raise OnnxAttrError(f"{str(path)!r} is not a readable netCDF result ({err}); pass a .nc file written by onnxattr") from err
