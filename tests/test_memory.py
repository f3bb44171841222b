"""The memory checks (onnxattr.memory): sizes, the free memory from /proc and cgroup files, the law's fit."""

import pytest
import torch

from onnxattr.errors import OnnxAttrError
from onnxattr.methods.memory import PeakLaw, fit_law, free_memory, parse_size
from onnxattr.intake.sizes import SizeRule


def _root(tmp_path, files):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_parse_size():
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("512MiB") == 512 * 2**20 and parse_size("1.5G") == 1_500_000_000
    assert parse_size("1000") == 1000
    with pytest.raises(OnnxAttrError, match="ONNXATTR_MEMORY_LIMIT='lots' is not a size; write it like 2GiB"):
        parse_size("lots")


def test_free_memory_from_fake_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("ONNXATTR_MEMORY_LIMIT", raising=False)
    cpu = torch.device("cpu")
    meminfo = "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n"
    v2 = _root(tmp_path / "v2", {"proc/meminfo": meminfo, "proc/self/cgroup": "0::/job\n",
                                 "sys/fs/cgroup/job/memory.max": "1073741824\n", "sys/fs/cgroup/job/memory.current": "73741824\n"})
    assert free_memory(cpu, v2) == 1_000_000_000  # the cgroup's room, under MemAvailable
    v1 = _root(tmp_path / "v1", {"proc/meminfo": meminfo, "proc/self/cgroup": "4:memory:/\n",
                                 "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
                                 "sys/fs/cgroup/memory/memory.usage_in_bytes": "5\n"})
    assert free_memory(cpu, v1) == 4_000_000 * 1024  # no v1 limit: MemAvailable
    limited = _root(tmp_path / "v1l", {"proc/meminfo": meminfo, "sys/fs/cgroup/memory/memory.limit_in_bytes": "3000\n",
                                       "sys/fs/cgroup/memory/memory.usage_in_bytes": "1000\n"})
    assert free_memory(cpu, limited) == 2000
    monkeypatch.setenv("ONNXATTR_MEMORY_LIMIT", "1KiB")
    assert free_memory(cpu, v1) == 1024


def test_fit_law_recovers_a_known_law():
    conv = PeakLaw(7000.0, -10.0)
    got = fit_law(conv, SizeRule())
    assert got.p == 1 and got.k == pytest.approx(-10.0) and got.c == pytest.approx(7000.0)
    padded = PeakLaw(1000.0, 0.0, 32)
    got = fit_law(padded, SizeRule())
    assert got.p == 32 and got(45, 45) == padded(45, 45) == 1000 * 64 * 64
    assert fit_law(conv, SizeRule(fixed=(40, 50))).fixed == conv(40, 50)
