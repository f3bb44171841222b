"""``onnxattr erf MODEL --images IMG... [--point X Y | --window X Y SIZE | --grid SIZE] -o ERF.nc``: the effective
receptive field (Luo et al. 2016) of an output pixel or window, averaged over the images."""

from __future__ import annotations

import click

from ..errors import OnnxAttrError
from ..methods.registry import METHODS
from ..options import DEFAULT_MEMORY_FRACTION
from .common import (ImagesCommand, check_output_path, finish, load, model_options, reported, result_summary,
                     smooth_options, window_options, window_spec)


def read_images(paths: list[str], model, hr: bool, size: tuple[int, int] | None):
    """The LR images (N, C, h, w): each read for the model's channels, downscaled with ``hr``, centre-cropped to
    ``size`` (H, W) if given; they must share one size."""
    import torch

    from ..image import crop, downscale, read_image
    from ..study.plan import distinct_paths

    distinct_paths(paths, "image")
    out = []
    for p in paths:
        x = read_image(p, channels=model.in_channels)
        if hr:
            x = downscale(x, model.scale)[0]
        if size is not None:
            h, w = size
            if x.shape[2] < h or x.shape[3] < w:
                raise OnnxAttrError(f"image {p} is {x.shape[3]}x{x.shape[2]} (LR), smaller than --size {h} {w}; pass a "
                                    "smaller --size or larger images")
            x = crop(x, (x.shape[3] - w) // 2, (x.shape[2] - h) // 2, h, w)
        out.append(x)
    sizes = sorted({(int(x.shape[3]), int(x.shape[2])) for x in out})
    if len(sizes) > 1:
        raise OnnxAttrError(f"the images differ in size ({', '.join(f'{w}x{h}' for w, h in sizes)} LR px); pass --size H W "
                            "to centre-crop them all to one size")
    return torch.cat(out)


@click.command(name="erf", cls=ImagesCommand,
               help="Effective receptive field (Luo et al. 2016): |d output / d input| of an output pixel or window, "
               "summed over the channels and averaged over the images; its radii and the theoretical field.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--images", "images", multiple=True, required=True, metavar="IMG...",
              help="Image files (LR, or HR with --hr), one size (or --size).")
@click.option("--point", nargs=2, type=int, default=None, metavar="X Y",
              help="Output pixel (column, row; in --frame) [default: the centre of the SR output].")
@window_options
@click.option("--hr", is_flag=True, help="The images are HR: the model gets their bicubic downscale.")
@click.option("--size", nargs=2, type=click.IntRange(min=1), default=None, metavar="H W",
              help="Centre-crop every LR image to H x W [default: the images share one size].")
@smooth_options
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Images per pass [default: from the memory budget].")
@click.option("--memory-fraction", default=DEFAULT_MEMORY_FRACTION, show_default=True,
              type=click.FloatRange(0, 1, min_open=True), help="Share of free RAM (or CUDA memory) a pass may use.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Result .nc file.")
@model_options
@reported
def command(model, images, point, window, windows_file, grid, stride, frame, hr, size, smooth, noise, smooth_type, seed,
            batch_size, memory_fraction, out, device, threads, value_range, no_verify, channel_order, probe_size,
            quiet) -> dict:
    from ..methods.erf import erf

    out_path = check_output_path(out)
    METHODS["erf"].check_params(point=point, smooth=smooth, noise=noise, smooth_type=smooth_type, batch_size=batch_size,
                                memory_fraction=memory_fraction)
    spec = window_spec(window, windows_file, grid, stride)
    if spec is not None and point is not None:
        raise OnnxAttrError("give the ERF a point (--point) or windows (--window / --windows / --grid), not both")
    loaded = load(model, device, value_range, no_verify, channel_order, probe_size, threads)
    stack = read_images(list(images), loaded, hr, tuple(size) if size else None)
    ds = erf(loaded, stack, spec, frame=frame, point=point, smooth=smooth, noise=noise, smooth_type=smooth_type,
             seed=seed, batch_size=batch_size, memory_fraction=memory_fraction, progress=not quiet)
    return result_summary(ds, "erf", finish(ds, out_path))
