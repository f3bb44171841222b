"""The ``onnxattr`` command: one group, one module per command, imported when that command runs.

User errors (``OnnxAttrError``) print one line on stderr and exit with status 2; warnings print
one line each (third-party Deprecation/FutureWarnings are hidden), only while ``main`` runs: the
package itself never changes warning filters or the matplotlib backend, so API users keep theirs.
A command module defines a click command named ``command``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from .. import __version__
from ..errors import OnnxAttrError

# command -> its one-line help in the command list; the module ``.<command>`` is imported only to run it
COMMANDS = {
    "compare": "Run one method on every MODEL x image: maps, metrics, CKA.",
    "glam": "GL-AM local and global attribution maps of an output window.",
    "inspect": "What the model is and how well it converted.",
    "l2x": "L2X attribution of an output window (per-op rules).",
    "lam": "Local attribution map (LAM) of an output window.",
    "show": "Draw the figure for a result file written by onnxattr.",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use: ``onnxattr --help`` and group-level usage errors
    never import torch, onnx or onnxruntime."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"{__name__}.{name}").command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxattr")
def cli() -> None:
    """Attribution maps for super-resolution networks exported to ONNX."""


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"onnxattr: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def main() -> None:
    """Entry point: run the group; user errors become one line and exit status 2."""
    import matplotlib

    matplotlib.use("Agg")  # the CLI only writes files; a Jupyter or GUI session keeps its backend
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            cli.main(standalone_mode=False)
    except OnnxAttrError as err:
        click.echo(f"onnxattr: error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("onnxattr: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
