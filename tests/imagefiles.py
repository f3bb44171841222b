"""Image files the tests write themselves: 16-bit PNGs with every PNG filter (Pillow writes no 16-bit colour PNG)."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))

def write_png16(path, arr: np.ndarray) -> None:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by channel count) with rows cycling the five filters."""
    h, w, c = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    data = arr.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, -1).astype(np.int64)
    bpp = 2 * c
    rows = []
    prev = np.zeros(data.shape[1], np.int64)
    for i, row in enumerate(data):
        f = i % 5
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        pred = [0, left, prev, (left + prev) // 2, _paeth(left, prev, upleft)][f]
        rows.append(bytes([f]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    with open(path, "wb") as fh:
        fh.write(png)


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header declares width x height, with one row of pixel data (a decoder would allocate all)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (3 * width + 1))) + chunk(b"IEND", b"")
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + data)
