"""Memory checks before computing: the free memory, a model's peak law, and the refusal or the lowered batch.

Free memory (``free_memory``): on CUDA ``torch.cuda.mem_get_info``; on the CPU the least of MemAvailable
(/proc/meminfo) and the cgroup's room (v2 ``memory.max - memory.current``, v1 ``memory.limit_in_bytes -
memory.usage_in_bytes``); ``ONNXATTR_MEMORY_LIMIT`` (e.g. ``2GiB``) caps either.

Peak of a pass (``pass_peak``): the bytes one forward + backward pass of the model holds at its peak at batch 1,
counted on real passes (``measure_peak``: the high-water mark of the bytes of every tensor created during the
pass and still alive, weights excluded). An image of at most ``SMALL_AREA`` times the law's first probe (s x s)
is measured at its own size, which the call runs anyway: one pass there costs no more than the law's probes.
A larger one is costed by the law (``pass_law``), so that it is refused before it is run:

    P(h, w) = c * (pad(h) + k) * (pad(w) + k),   pad(s) = p * ceil(s / p),

``c`` (bytes per px) and ``k`` (px: < 0 for convolutions without padding, whose maps shrink) come from passes at
32x32 and 32x64 (``c (32 + k)^2`` and ``c (32 + k)(64 + k)``); ``p`` from one more at 32x33: a convolutional
model costs there about 33/32 of 32x32, one that pads its input to a multiple of its attention window (DAT: 16 or
32) far more, and is then costed as padding to 32 (``fit_law``). The sides follow the model's size rule; a
fixed-size model has one size and a constant law. Each figure is measured once per model and kept with its cache
entry (``learned``: ``SRModel.remember``), so later processes measure nothing; ``cached`` keeps one for the life
of the model object only. Each method turns them into its own peak (``lam.estimate``, ``l2x.estimate``,
``glam.estimate``); ``require`` refuses with the figure and the fix and ``largest_batch`` finds the batch that fits.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import OnnxAttrError

LIMIT_ENV = "ONNXATTR_MEMORY_LIMIT"
BASE_SIDE = 32  # probe sides: 32x32, 32x64 and 32x33 (or the nearest the model's size rule takes)
SMALL_AREA = 4  # images up to 4 s^2 px (the three probes' area together) are measured at their own size
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
          "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}
_NO_LIMIT = 2**60  # cgroup v1 writes ~2^63 for "no limit"


# ------------------------------------------------------------------ free memory
def parse_size(text: str) -> int:
    """Bytes of a size such as ``2GiB``, ``512MiB``, ``1.5G`` or ``1000000`` (k/M/G/T decimal, KiB/MiB/GiB/TiB binary)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise OnnxAttrError(f"{LIMIT_ENV}={text!r} is not a size; write it like 2GiB, 512MiB or 1500000000")
    return int(float(match.group(1)) * _UNITS[unit])


def _read_int(path: Path) -> int | None:
    """The integer in a one-line file ('max' and absent files: None)."""
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_dirs(root: Path) -> list[tuple[Path, str]]:
    """(cgroup folder, 'v1' | 'v2') candidates: this process's own cgroup from /proc/self/cgroup, then the mount's root
    (where a container's namespaced cgroup appears)."""
    dirs: list[tuple[Path, str]] = []
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":
            dirs.append((root / "sys/fs/cgroup" / rel, "v2"))
        elif "memory" in parts[1].split(","):
            dirs.append((root / "sys/fs/cgroup/memory" / rel, "v1"))
    return dirs + [(root / "sys/fs/cgroup", "v2"), (root / "sys/fs/cgroup/memory", "v1")]


def cgroup_room(root: Path = Path("/")) -> int | None:
    """Bytes this process's memory cgroup still allows (limit - usage), or None without a limit."""
    files = {"v2": ("memory.max", "memory.current"), "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes")}
    for folder, version in _cgroup_dirs(root):
        limit_file, usage_file = files[version]
        limit, usage = _read_int(folder / limit_file), _read_int(folder / usage_file)
        if limit is not None and limit < _NO_LIMIT and usage is not None:
            return max(limit - usage, 0)
    return None


def meminfo_available(root: Path = Path("/")) -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where the file has no such line)."""
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_memory(device: torch.device, root: Path = Path("/")) -> int:
    """Bytes free for work on ``device``: CUDA's free memory, or on the CPU min(MemAvailable, the cgroup's room)
    (free physical pages where neither is known); capped by ``ONNXATTR_MEMORY_LIMIT`` when it is set."""
    if device.type == "cuda":
        free = int(torch.cuda.mem_get_info(device)[0])
    else:
        known = [v for v in (meminfo_available(root), cgroup_room(root)) if v is not None]
        free = min(known) if known else os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = os.environ.get(LIMIT_ENV, "")
    return min(free, parse_size(limit)) if limit else free


# ------------------------------------------------------------------ counting a pass
class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the tensor storages created while active that are still alive, and their peak.

    Every op's outputs pass through ``__torch_dispatch__`` (the backward's too); a storage is counted once,
    when it first appears, and uncounted when it is freed (a weak reference's callback). Storages made
    before the mode started (weights, inputs) are never counted.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """False: nothing runs compiled under this mode, so torch need not wrap ``__torch_dispatch__`` in
        ``torch._dynamo.disable``, whose first use imports dynamo (~2 s)."""
        return False

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def _count(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._refs:
            return
        size = storage.nbytes()

        def gone(_: object, key: int = key, size: int = size) -> None:
            self.live -= size
            self._refs.pop(key, None)

        self._refs[key] = weakref.ref(storage, gone)
        self.live += size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._count(t)
        return out


def measure_peak(fn: Callable[[], object]) -> int:
    """Peak bytes of the tensors ``fn()`` creates (``LiveBytes``); what it returns is dropped inside."""
    with LiveBytes() as counter:
        fn()
    return counter.peak


def forward_backward(model: Any, height: int, width: int) -> None:
    """One forward of a (1, C, height, width) image and one backward of the output's sum to the input."""
    x = torch.rand(1, model.in_channels, height, width, device=model.device, requires_grad=True)
    with torch.enable_grad():
        torch.autograd.grad(model(x).sum(), x)


# ------------------------------------------------------------------ the law
@dataclass(frozen=True)
class PeakLaw:
    """P(h, w) = c * (pad(h) + k) * (pad(w) + k) bytes, pad(s) = p * ceil(s / p); a constant for a fixed size."""

    c: float
    k: float
    p: int = 1
    fixed: int | None = None

    def __call__(self, height: int, width: int) -> int:
        if self.fixed is not None:
            return self.fixed
        ph, pw = (self.p * math.ceil(s / self.p) for s in (height, width))
        return int(self.c * max(ph + self.k, 1) * max(pw + self.k, 1))


def probe_sides(rule: Any) -> tuple[int, int, int]:
    """(s, 2 s, s + d): the law's probe sides under the size rule, s >= 32 and >= its minimum, d its multiple."""
    m = rule.multiple
    s = max(BASE_SIDE, rule.min_side)
    s = m * math.ceil(s / m)
    return s, 2 * s, s + m


def fit_law(measure: Callable[[int, int], int], rule: Any) -> PeakLaw:
    """The law from ``measure(h, w)`` (peak bytes) at s x s, s x 2s and s x (s + d) (``probe_sides``).

    (2s + k) / (s + k) = P(s, 2s) / P(s, s) gives k, then c = P(s, s) / (s + k)^2. When P(s, s + d) exceeds
    c (s + k)(s + d + k) by 5 % the model pads its input, and p = s: the upper bound for paddings to any
    divisor of s (one probe cannot tell which; DAT pads some blocks to 16, others to 32). Else p = 1."""
    if rule.fixed:
        return PeakLaw(0.0, 0.0, fixed=measure(*rule.fixed))
    s, s2, s3 = probe_sides(rule)
    base, wide = measure(s, s), measure(s, s2)
    r = wide / max(base, 1)
    k = (s2 - r * s) / (r - 1) if r > 1 + 1e-9 else 0.0
    k = max(k, 1.0 - s)  # the maps keep at least one px
    c = base / (s + k) ** 2
    padded = s3 > s and measure(s, s3) > 1.05 * c * (s + k) * (s3 + k)
    return PeakLaw(c, k, s if padded else 1)


_LAWS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()  # model -> key -> law


def cached(model: Any, key: str, make: Callable[[], Any]) -> Any:
    """The law ``key`` of ``model`` (e.g. 'glam-...'), made by ``make()`` on first use and kept while the model lives."""
    laws = _LAWS.setdefault(model, {})
    if key not in laws:
        laws[key] = make()
    return laws[key]


def inherit(copy: Any, model: Any) -> None:
    """Let ``copy``, the model with other weights (``intake.reweight``), share ``model``'s laws, measured or still
    to measure: peaks follow the graph's shapes, not its values."""
    _LAWS[copy] = _LAWS.setdefault(model, {})


def _code_hash(sources: Sequence[str]) -> str:
    """A short hash of this module's source and of ``sources`` (files): facts measured by other code are not reused."""
    digest = hashlib.sha256()
    for path in (__file__, *sources):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


def learned(model: Any, key: str, make: Callable[[], Any], sources: Sequence[str] = ()) -> Any:
    """``cached``, and kept with the model's cache entry (``SRModel.remember``; JSON values) under a hash of the code
    that measures it (this module and ``sources``, e.g. the method's module): a later process that loads the file
    reads it instead of calling ``make()``."""
    def recall_or_make() -> Any:
        name = f"memory {_code_hash(sources)} {key}"
        value = model.recall(name)
        if value is None:
            value = make()
            model.remember(name, value)
        return value

    return cached(model, key, recall_or_make)


def learned_law(model: Any, key: str, measure: Callable[[], PeakLaw | None], sources: Sequence[str] = ()
                ) -> PeakLaw | None:
    """The law ``measure()`` finds (None where it cannot be measured), once, kept as ``learned`` keeps a fact."""
    def found() -> dict[str, Any] | None:
        law = measure()
        return None if law is None else asdict(law)

    law = learned(model, key, found, sources)
    return None if law is None else PeakLaw(**law)


def pass_law(model: Any) -> PeakLaw:
    """The model's forward + backward law at batch 1 (float32, on its device), measured on first use."""
    law = learned_law(model, "pass-law", lambda: fit_law(
        lambda h, w: measure_peak(lambda: forward_backward(model, h, w)), model.size_rule))
    assert law is not None  # fit_law always finds one
    return law


def pass_peak(model: Any, height: int, width: int) -> int:
    """Peak bytes of one forward + backward of an h x w image at batch 1: counted on a pass at that size when
    h w <= SMALL_AREA s^2 (s x s the law's first probe), else the law ``pass_law``."""
    if not counted_at_size(model, height, width):
        return pass_law(model)(height, width)
    return int(learned(model, f"pass-{height}x{width}",
                       lambda: measure_peak(lambda: forward_backward(model, height, width))))


def counted_at_size(model: Any, height: int, width: int) -> bool:
    """Whether ``pass_peak`` counts an h x w pass at its own size (h w <= SMALL_AREA s^2, s x s the law's first
    probe; never for a fixed-size model) rather than costing it by the law."""
    s, _ = probe_size(model)
    return not model.size_rule.fixed and height * width <= SMALL_AREA * s * s


def probe_size(model: Any) -> tuple[int, int]:
    """(h, w) where the methods measure their own pass against ``pass_law``: the law's first probe, s x s."""
    if model.size_rule.fixed:
        return model.size_rule.fixed
    s = probe_sides(model.size_rule)[0]
    return s, s


# ------------------------------------------------------------------ the checks
def size_text(n: float) -> str:
    """Bytes as GiB (>= 1 GiB), MiB (>= 0.1 MiB), one decimal, or KiB."""
    return (f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 / 10
            else f"{n / 2**10:.1f} KiB")


def largest_batch(need: Callable[[int], int], budget: int, most: int) -> int:
    """The largest n in 1..``most`` with need(n) <= budget (need grows with n), or 0 when none fits."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def require(need: int, free: int, what: str, fixes: Sequence[str], device: torch.device) -> None:
    """Refuse ``what`` (e.g. "LAM ... for a 512x512 image at batch 8") when it needs more than ``free``:
    one line with both figures and the fixes."""
    if need > free:
        limit = os.environ.get(LIMIT_ENV, "")
        if limit:  # the cap may be what refuses: name it, and raising it as a fix
            fixes = [*fixes, f"raise {LIMIT_ENV}"]
        fix = ", ".join(fixes[:-1]) + f" or {fixes[-1]}" if len(fixes) > 1 else fixes[0]
        capped = f" ({LIMIT_ENV}={limit})" if limit else ""
        raise OnnxAttrError(
            f"{what} needs about {size_text(need)} but {size_text(free)} is free on {device.type}{capped}; {fix}")


def device_fix(device: torch.device) -> list[str]:
    """['use --device cuda'] for work on the CPU (a GPU machine has more room), else nothing."""
    return ["use --device cuda"] if device.type == "cpu" else []
