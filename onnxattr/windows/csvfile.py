"""Reading a windows file: CSV rows ``x,y,size[,image]`` (top-left column, row, side; optional image).

A first row of column names (``x``, ``y``, ``size`` and optionally ``image``, any order) names the columns; without it the columns are positional.
Blank lines and lines starting with ``#`` are skipped. Every bad row is an error naming its line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..paths import regular_file
from ..errors import OnnxAttrError

COLUMNS = ("x", "y", "size", "image")


@dataclass(frozen=True)
class WindowRow:
    """One row of a windows file: the window (x, y, size), its image name or None, and its line number."""

    x: int
    y: int
    size: int
    image: str | None
    line: int

    @property
    def window(self) -> tuple[int, int, int]:
        return (self.x, self.y, self.size)


def read_windows(path: str | Path) -> list[WindowRow]:
    """The rows of the windows file at ``path``; one-line errors for a missing file, a bad row, no rows."""
    path = Path(path)
    regular_file(path, "windows file", "pass a CSV file with rows x,y,size[,image]")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise OnnxAttrError(f"windows file {str(path)!r} is not readable text ({err}); pass a CSV file") from err
    rows = [(i, r) for i, r in enumerate(csv.reader(text.splitlines()), start=1)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    columns = list(COLUMNS)
    first = [c.strip().lower() for c in rows[0][1]] if rows else []
    if first and all(c in COLUMNS for c in first):
        columns = first
        if sorted(columns) not in (sorted(COLUMNS[:3]), sorted(COLUMNS)):
            raise OnnxAttrError(
                f"windows file {path.name} line {rows[0][0]}: header {','.join(rows[0][1])!r} must name the columns "
                "x,y,size and optionally image"
            )
        rows = rows[1:]
    if not rows:
        raise OnnxAttrError(f"windows file {path.name} has no window rows; add rows x,y,size[,image]")
    out = []
    for line, row in rows:
        cells = [c.strip() for c in row]
        bad = f"windows file {path.name} line {line}: {','.join(row)!r}"
        if len(cells) not in (3, 4) or len(cells) > len(columns):
            raise OnnxAttrError(f"{bad} needs {','.join(columns)} ({len(cells)} values given); write one window per "
                                "row, e.g. 48,40,16")
        values = dict(zip(columns, cells))
        try:
            x, y, size = (int(values[k]) for k in ("x", "y", "size"))
        except (ValueError, KeyError):
            raise OnnxAttrError(f"{bad}: x, y and size must be whole numbers (pixels); write them like 48,40,16") from None
        if size < 1:
            raise OnnxAttrError(f"{bad}: size must be at least 1 pixel; give the window a size of 1 or more")
        image = values.get("image") or None
        out.append(WindowRow(x, y, size, image, line))
    return out


def check_duplicates(rows: list[WindowRow], path: str | Path) -> None:
    """A window given twice for one image is an error naming both lines."""
    seen: dict[tuple[str | None, int, int, int], int] = {}
    for r in rows:
        key = (r.image, *r.window)
        if key in seen:
            raise OnnxAttrError(
                f"windows file {Path(path).name} line {r.line}: window {r.x},{r.y},{r.size}"
                + (f" on {r.image}" if r.image else "") + f" repeats line {seen[key]}; give each window once"
            )
        seen[key] = r.line


def image_matches(name: str, image_path: str | Path) -> bool:
    """A row's image names ``image_path`` by its path, file name or stem."""
    p = Path(image_path)
    return name in (str(image_path), p.name, p.stem)


def rows_for_images(rows: list[WindowRow], images: list[str], path: str | Path, flag: str = "--images") -> dict[str, list[WindowRow]]:
    """Rows grouped by image path; rows without an image apply to every image. An image column naming a
    file not among ``images`` is an error naming the row."""
    check_duplicates(rows, path)
    out: dict[str, list[WindowRow]] = {p: [] for p in images}
    for r in rows:
        if r.image is None:
            for p in images:
                out[p].append(r)
            continue
        matches = [p for p in images if image_matches(r.image, p)]
        if not matches:
            raise OnnxAttrError(
                f"windows file {Path(path).name} line {r.line}: image {r.image!r} is not in {flag} "
                f"({', '.join(Path(p).name for p in images)}); fix the row or add the image"
            )
        out[matches[0]].append(r)
    return out
