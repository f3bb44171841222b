"""The ``onnxattr`` command: one group, one module per command, imported when that command runs.

Error contract (README "Errors and exit status"): every failure ends with exactly one line on stderr
and one of three exit statuses:

* 2: the user's input (a file, option, image, model, window or parameter) or its environment (a full or
  read-only disk, too little memory); the line names the problem and the fix. ``OnnxAttrError``, click usage
  errors and those OSErrors.
* 1: an internal error (a bug in onnxattr or a library); the line names the exception and the path of a
  log file holding the traceback.
* 130: interrupted (Ctrl-C).

Warnings print one line each, and a line already printed is not printed again (third-party
Deprecation/FutureWarnings are hidden), only while ``main`` runs: the package itself never changes warning filters or the matplotlib backend, so API users keep
theirs. A command module defines a click command named ``command``.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import tempfile
import time
import traceback
import warnings

import click

from ..version import __version__
from ..errors import OnnxAttrError, first_line
from ..methods.registry import METHODS

# command -> its one-line help in the command list (a method's from the registry); the module ``.<command>`` is
# imported only to run it
COMMANDS = dict(sorted({
    "check": "Can each method's map be trusted? Randomisation and deletion/insertion checks.",
    "compare": "Run one method on every MODEL x image: maps, metrics, CKA.",
    "inspect": "What the model is and how well it converted.",
    "show": "Draw the figure for a result file written by onnxattr.",
    **{m.name: m.summary for m in METHODS.values()},
}.items()))
USER_ERROR, INTERNAL_ERROR, INTERRUPTED = 2, 1, 130
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the user's disk, not a bug
_UNRAISABLE: list[str] = []  # errors Python could not raise (e.g. h5py closing a file on a full disk), for the log
_WARNED: set[str] = set()  # the warning lines printed by this run of ``main``


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
    text = f"onnxattr: warning: {str(message).splitlines()[0]}"
    if text not in _WARNED:  # the same line from several tasks, windows or loads is said once
        _WARNED.add(text)
        print(text, file=sys.stderr)


def _usage_line(err: click.UsageError) -> str:
    """A click usage error as one line: the message and where the help is."""
    where = err.ctx.command_path if err.ctx is not None else "onnxattr"
    return f"{first_line(err.format_message()).rstrip('.')}; see `{where} --help`"


def write_crash_log(err: BaseException) -> str:
    """Write the traceback of ``err`` (and the command line) to a fresh log file; its path."""
    folder = os.path.join(tempfile.gettempdir(), "onnxattr-logs")
    os.makedirs(folder, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=time.strftime("crash-%Y%m%d-%H%M%S-"), suffix=".log", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"onnxattr {__version__}, python {sys.version.split()[0]}\ncommand: {' '.join(sys.argv)}\n\n")
        fh.write("".join(traceback.format_exception(type(err), err, err.__traceback__)))
        fh.writelines(f"\nignored during the run: {line}\n" for line in _UNRAISABLE)
    return path


def _fail(line: str, status: int) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # a closed pipe (onnxattr ... | head)
        pass
    click.echo(f"onnxattr: {line}", err=True)
    sys.exit(status)


def _keep_unraisable(info: "sys.UnraisableHookArgs") -> None:
    """Errors raised where Python cannot propagate them (finalizers) are kept for the crash log, not printed:
    h5py prints dozens of tracebacks while closing a file on a full disk, before the error that ends the run."""
    _UNRAISABLE.append(f"{type(info.exc_value).__name__}: {first_line(info.exc_value)}")


def main(args: list[str] | None = None) -> None:
    """Entry point: run the group and map every failure onto one stderr line and an exit status (see above)."""
    os.environ["MPLBACKEND"] = "Agg"  # the CLI only writes files (read when matplotlib is first imported)
    hook, sys.unraisablehook = sys.unraisablehook, _keep_unraisable
    _UNRAISABLE.clear()  # this run's, for its crash log (main may run several times in one process)
    _WARNED.clear()
    try:
        _run(args)
    finally:
        sys.unraisablehook = hook


def _run(args: list[str] | None) -> None:
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            cli.main(args=args, prog_name="onnxattr", standalone_mode=False)
    except OnnxAttrError as err:
        _fail(f"error: {first_line(err)}", USER_ERROR)
    except click.UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `onnxattr`: the help, not a failure
            click.echo(err.ctx.get_help())
            sys.exit(0)
        _fail(f"error: {_usage_line(err)}", USER_ERROR)
    except click.ClickException as err:  # e.g. click.FileError
        _fail(f"error: {first_line(err.format_message())}", USER_ERROR)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted", INTERRUPTED)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            _internal_error(err)
        _fail(f"error: {os.strerror(err.errno).lower()} ({first_line(err)[:200]}); free some space or write to "
              "another folder (-o)", USER_ERROR)
    except Exception as err:  # noqa: BLE001  (anything else is a bug: one line plus the traceback's log file)
        if not _out_of_memory(err):
            _internal_error(err)
        _fail(
            f"error: out of memory ({first_line(err) or 'MemoryError'}); pass a smaller --batch-size, "
            "crop the image (--crop), or use --device cuda",
            USER_ERROR,
        )


def _out_of_memory(err: BaseException) -> bool:
    """Python's MemoryError or torch's OutOfMemoryError (torch is not imported just to check)."""
    torch = sys.modules.get("torch")
    return isinstance(err, MemoryError) or (torch is not None and isinstance(err, torch.OutOfMemoryError))


def _internal_error(err: BaseException) -> None:
    """A bug: one line naming the exception and the log file that holds its traceback; exit 1."""
    try:
        log = write_crash_log(err)
    except OSError:
        log = "none (could not write a log file)"
    _fail(
        f"internal error: {type(err).__name__}: {first_line(err)[:300]}; traceback in {log}; "
        "please report it with that file",
        INTERNAL_ERROR,
    )
