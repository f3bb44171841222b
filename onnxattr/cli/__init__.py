"""The ``onnxattr`` command: one group, one module per command.

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

COMMAND_MODULES = ["inspect", "show", "lam", "glam", "l2x", "compare"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="onnxattr")
def cli() -> None:
    """Attribution maps for super-resolution networks exported to ONNX."""


for _name in COMMAND_MODULES:
    cli.add_command(importlib.import_module(f"{__name__}.{_name}").command)


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
