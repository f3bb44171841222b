"""What the benchmarks share: wall-clock timing (synchronised on CUDA, medians of interleaved rounds) and
windows given in SR output pixels whichever window API the package has."""

from __future__ import annotations

import inspect
import statistics
import time
from typing import Callable

import torch

import onnxattr

# The benchmarks give windows in SR output pixels: pass frame="sr" where the methods take a frame (their
# default frame is then the HR image's), nothing where they do not.
SR = {"frame": "sr"} if "frame" in inspect.signature(onnxattr.lam).parameters else {}


def sync(device: torch.device | str | None) -> None:
    """Wait for the device's queued kernels (CUDA runs asynchronously); a no-op elsewhere."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Seconds ``fn()`` takes, the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_times(
    fs: list[Callable[[], object]], repeats: int, device: torch.device | str | None = None, warmup: bool = True
) -> list[float]:
    """Median time of each function over ``repeats`` interleaved rounds (after one warm-up round when
    ``warmup``), so that load from other processes hits every function alike."""
    times: list[list[float]] = [[] for _ in fs]
    for r in range(repeats + int(warmup)):
        for f, ts in zip(fs, times):
            t = timed(f, device)
            if r or not warmup:
                ts.append(t)
    return [statistics.median(ts) for ts in times]


def check(ds, name: str) -> float:
    """A method's check (e.g. ``completeness_error``) of the first window: a per-window variable, or an attr
    where the result has one window and no window dimension."""
    return float(ds[name].values.ravel()[0]) if name in ds.data_vars else float(ds.attrs[name])
