"""The code in README.md and docs/*.md runs as written: every ```python block, in a temp folder that
holds the samples, the blocks of one page in order in one namespace."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def test_pages_have_examples():
    assert blocks(ROOT / "README.md") and blocks(ROOT / "docs" / "compare.md") and blocks(ROOT / "docs" / "results.md")


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. CKA over too few images
        for i, code in enumerate(blocks(page)):
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
