"""Patch pools for CEM's interventions: HR patches of natural images, cut from the bundled photos or read from a
folder of the user's (e.g. the 8x8 DIV2K patches of the CEM paper). I/O at the edge; the method resizes them.

The default pool (``bundled_pool``): ``POOL_SIZE`` patches of b x b HR px, each at a position drawn uniformly
among every b x b position of the photos in ``POOL_IMAGES`` (a photo drawn with a probability proportional to its
number of positions), with a NumPy generator seeded by the run's seed: the same seed gives the same pool. The
photos are public domain / CC0 crops of scikit-image's astronaut, coffee and chelsea (samples/README.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import OnnxAttrError
from .image import read_image

DATA = Path(__file__).resolve().parent / "data"
POOL_IMAGES = ("astronaut-hr-128.png", "coffee-64.png", "chelsea-64.png")
POOL_SIZE = 1000
POOL_STREAM = 2  # the pool's generator: default_rng([seed, POOL_STREAM]) (CEM's draws use streams 0 and 1)
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@lru_cache(maxsize=8)
def bundled_pool(block: int, channels: int, seed: int, size: int = POOL_SIZE) -> torch.Tensor:
    """``size`` patches (N, C, block, block) in [0, 1] cut at seeded random positions from the bundled photos (made
    once per arguments; do not modify it)."""
    images = [read_image(DATA / name, channels=channels)[0] for name in POOL_IMAGES]
    counts = np.array([max(im.shape[1] - block + 1, 0) * max(im.shape[2] - block + 1, 0) for im in images])
    if counts.sum() == 0:
        raise OnnxAttrError(f"a {block} px block is larger than every bundled photo; pass a smaller --block or your "
                            "own patches (--patches DIR)")
    rng = np.random.default_rng([seed, POOL_STREAM])
    which = rng.choice(len(images), size=size, p=counts / counts.sum())
    out = torch.empty(size, channels, block, block)
    for n, i in enumerate(which):
        _, h, w = images[i].shape
        y, x = int(rng.integers(h - block + 1)), int(rng.integers(w - block + 1))
        out[n] = images[i][:, y : y + block, x : x + block]
    return out


def patch_files(folder: str | Path) -> list[Path]:
    """The image files of a patch folder, sorted by name; one-line errors for a missing or empty folder."""
    path = Path(folder)
    if not path.is_dir():
        kind = "not found" if not path.exists() else "is a file, not a folder"
        raise OnnxAttrError(f"patch folder {str(path)!r} {kind}; pass a folder of image patches (--patches DIR)")
    try:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    except OSError as err:
        raise OnnxAttrError(f"patch folder {str(path)!r} cannot be read ({err.strerror}); check its permissions") from None
    if not files:
        raise OnnxAttrError(f"patch folder {str(path)!r} holds no image files ({', '.join(SUFFIXES)}); "
                            "pass a folder of patches such as DIV2K 8x8 PNGs")
    return files


def read_patches(folder: str | Path, block: int, channels: int) -> torch.Tensor:
    """Every image of ``folder`` (``patch_files``) as a block x block patch (N, C, block, block) in [0, 1]: the
    central block x block of each (read as every image: RGB order, gray repeated, Y for gray models); a patch
    smaller than the block is an error naming it."""
    out = []
    for path in patch_files(folder):
        p = read_image(path, channels=channels)[0]
        _, h, w = p.shape
        if min(h, w) < block:
            raise OnnxAttrError(f"patch {path.name} is {w}x{h}, smaller than the {block} px block; pass patches of at "
                                f"least {block}x{block} px or a smaller --block")
        y, x = (h - block) // 2, (w - block) // 2
        out.append(p[:, y : y + block, x : x + block])
    return torch.stack(out)
