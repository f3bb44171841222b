"""``onnxattr check MODEL IMAGE --window X Y SIZE [--methods lam,l2x,glam] [--hr] [--layers N] -o CHECK.nc``: can each
method's map be trusted? The randomisation test and the deletion/insertion curves of every method, one report."""

from __future__ import annotations

from typing import Any

import click

from ..errors import OnnxAttrError
from ..methods.registry import METHODS, usable
from ..options import FORMATS
from .common import (check_label, check_output_path, finish, method_options, prepare_inputs, reported, stage_line,
                     window_spec)
from .compare import parse_params


def parse_methods(text: str | None, hr: bool) -> list[str]:
    """--methods a,b -> registered method names, each once (default: every method that can run, ``usable(hr)``)."""
    if text is None:
        return usable(hr)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise OnnxAttrError(f"--methods {text!r}: name registered methods, e.g. {','.join(METHODS)}")
    if len(set(names)) != len(names):
        raise OnnxAttrError(f"--methods {text!r}: name each method once")
    return names


def parse_method_params(pairs: tuple[str, ...], names: list[str]) -> dict[str, dict[str, Any]]:
    """METHOD.KEY=VALUE strings -> {method: {key: value}}, checked by name and kind before any model loads."""
    from ..study.plan import check_method_params

    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, dot, rest = pair.partition(".")
        if not dot or name not in names:
            raise OnnxAttrError(f"--param {pair!r}: write METHOD.KEY=VALUE for one of the checked methods "
                                f"({', '.join(names)}), e.g. lam.steps=20")
        out.setdefault(name, {}).update(parse_params((rest,)))
    return {name: check_method_params(name, p) for name, p in out.items()}


def parse_layers(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """--layers N (a whole number >= 1) or 'all'."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r}: give a whole number of steps >= 1, or 'all'")
    return int(value)


@click.command(name="check", help="Sanity and faithfulness checks of every method's map of a window: model "
               "parameter randomisation and deletion/insertion curves, with verdicts.")
@method_options
@click.option("--methods", default=None, metavar="A,B,...", help=f"Methods to check [default: all: {','.join(METHODS)}; those that need HR only with --hr].")
@click.option("--layers", default="12", show_default=True, callback=parse_layers, metavar="N|all",
              help="Randomisation steps: N layers of parametrised nodes, evenly spaced from the output; all: every node.")
@click.option("--independent/--no-independent", default=True, show_default=True,
              help="Also re-draw each layer alone (doubles the randomisation's maps).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the re-drawn weights.")
@click.option("--curve-steps", default=16, show_default=True, type=click.IntRange(min=2),
              help="Points of the deletion and insertion curves (fractions k / N of the influence region).")
@click.option("--curve-seeds", default=3, show_default=True, type=click.IntRange(min=1),
              help="Random orders and random maps of the controls.")
@click.option("--param", "params", multiple=True, metavar="METHOD.KEY=VALUE",
              help="A method's parameter, e.g. lam.steps=20 (repeatable).")
@click.option("--figure", default=None, type=click.Path(dir_okay=False), help="Also draw the report's figure (as show).")
@reported
def command(model, image, window, windows_file, grid, stride, frame, hr, label, crop, out, device, threads,
            value_range, no_verify, channel_order, probe_size, methods, layers, independent, seed, curve_steps,
            curve_seeds, params, figure, quiet) -> dict:
    out_path = check_output_path(out)
    check_label(label)
    fig_path = check_output_path(figure, FORMATS) if figure else None
    names = parse_methods(methods, hr)
    method_params = parse_method_params(params, names)
    spec = window_spec(window, windows_file, grid, stride, image)
    from ..checks import check
    inputs = prepare_inputs(model, image, device=device, value_range=value_range, no_verify=no_verify, hr=hr,
                            crop_at=crop, channel_order=channel_order, probe_size=probe_size, threads=threads)
    ds = check(inputs.model, inputs.image, spec, methods=names, params=method_params, frame=frame, hr=inputs.hr,
               layers=layers, independent=independent, seed=seed, curve_steps=curve_steps, curve_seeds=curve_seeds,
               progress=not quiet, report=None if quiet else stage_line)
    if label is not None:
        ds.attrs["model_label"] = label
    files = finish(ds, out_path)
    if fig_path is not None:
        from ..plot import show

        files += show(ds, fig_path)
    return check_summary(ds, files)


def check_summary(ds: Any, files: list) -> dict[str, Any]:
    """The verdicts per method (and the AUCs and the randomisation end-point as numbers for --json)."""
    per_method = {}
    for name in ds.method.values:
        m = ds.sel({"method": name})
        auc = m.auc.sel(order="map").mean("window")
        per_method[str(name)] = {
            "verdicts": [str(v) for v in m.verdict.values],
            "spearman_abs_all_random": float(m.similarity.sel(variant="cascading", measure="spearman_abs")
                                             .isel(step=-1).mean("window")),
            "deletion_auc": float(auc.sel(curve="deletion")), "insertion_auc": float(auc.sel(curve="insertion")),
        }
    windows = [[v.item() if not float(v).is_integer() else int(v) for v in (ds.window_x[k], ds.window_y[k], ds.window_size[k])]
               for k in range(ds.sizes["window"])]
    return {
        "command": "check", "model": ds.attrs.get("model_file"), "windows": windows, "per_method": per_method,
        "lines": [f"{name}: {line}" for name, v in per_method.items() for line in v["verdicts"]],
        "files": [str(p) for p in files],
    }
