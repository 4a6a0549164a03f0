"""The ``ptpd-monitor`` console script: stdout carries the command's output and nothing else.

The calibration app's ``ptpd_calibration/__init__.py`` prints and logs to stdout when it is
imported, and every command runs inside that package: ``ptpd-monitor report daily | jq`` would
read the app's lines before the report. This module lies outside the package (a top-level
module of its own), so it runs first: it points file descriptor 1 and ``sys.stdout`` at stderr
for the whole process, then imports ``ptpd_calibration``, and gives the command a stream on the
real stdout as its ``sys.stdout``. Whatever the app prints or logs to stdout, at import or
later (its handlers hold the diverted stream), goes to stderr, as does anything written to
file descriptor 1 itself (C code, ``sys.__stdout__``, child processes).

It checks first that ``ptpd_calibration.monitoring`` is this project's: where the app's old
module shadows it, it says so with the fix and exits 1 (``doctor`` prints the same on stdout)
instead of failing with a traceback.

``python -m ptpd_monitor_cli ARGS`` is the same as ``ptpd-monitor ARGS``; ``python -m
ptpd_calibration.monitoring.cli`` imports the app before it can divert anything.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

__all__ = ["main"]

PROG = "ptpd-monitor"
_HERE = Path(__file__).resolve().parent
# _install.py beside this file: installed (a wheel), or in the source tree (editable).
_INSTALL_FILES = (
    _HERE / "ptpd_calibration" / "monitoring" / "_install.py",
    _HERE / "monitoring" / "_install.py",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ptpd-monitor`` with ``argv`` (default: the command line); returns the exit code.

    Meant to run once per process, as the console script: stdout stays diverted to stderr
    afterwards, so whatever the app prints at exit doesn't land after the output either.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    real = _divert_stdout()
    out = real if real is not None else sys.stdout
    try:
        problem = _install_problem(scan="doctor" in args)
        if problem is not None:
            print(f"{PROG}: error: {problem[0]}", file=sys.stderr, flush=True)
            details = out if "doctor" in args else sys.stderr
            print(*problem[1:], sep="\n", file=details, flush=True)
            return 1
        from ptpd_calibration.monitoring.cli import main as run

        with contextlib.redirect_stdout(out):
            return run(args)
    finally:
        if real is not None:
            _flush(real)


def _divert_stdout() -> TextIO | None:
    """Point fd 1 and ``sys.stdout`` at stderr; a stream on the real stdout (None: no stdout)."""
    original = sys.stdout
    if original is None or sys.stderr is None:  # pythonw, or a closed stream
        return None
    with contextlib.suppress(Exception):
        original.flush()
    try:
        saved = os.dup(1)  # not inheritable: child processes get the diverted fd 1
    except OSError:
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    encoding = getattr(original, "encoding", None) or "utf-8"
    errors = getattr(original, "errors", None) or "strict"
    real = io.TextIOWrapper(
        open(saved, "wb", buffering=-1),  # noqa: SIM115 (the real stdout, open until exit)
        encoding=encoding,
        errors=errors,
        line_buffering=bool(getattr(original, "line_buffering", False)),
        write_through=bool(getattr(original, "write_through", False)),
    )
    sys.stdout = sys.stderr
    return real


def _flush(real: TextIO) -> None:
    """Flush the real stdout; a reader that went away (``| head``) is no error."""
    try:
        real.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), real.fileno())  # no second error at exit
    except (OSError, ValueError):
        pass


def _install_problem(*, scan: bool) -> list[str] | None:
    """None when ``ptpd_calibration.monitoring`` is this project's; else what to print.

    ``scan``: also name the other distributions with files in its folder (for ``doctor``).
    """
    install = _load_install()
    if install is None:  # no _install.py anywhere: nothing to check with, let the import tell
        return None
    check_install: Callable[..., Any] = install.check_install
    try:
        check = check_install(scan=scan)
    except Exception:  # never: but a failed check must not stop a command that would work
        return None
    if check.ours:
        return None
    first = "ptpd_calibration.monitoring is not ptpd-monitor's; no command was run"
    return [first, *check.lines]


def _load_install() -> ModuleType | None:
    """ptpd-monitor's ``_install`` module, by its file when the package is shadowed."""
    with contextlib.suppress(Exception):
        module = importlib.import_module("ptpd_calibration.monitoring._install")
        if callable(getattr(module, "check_install", None)):
            return module
    for path in _INSTALL_FILES:
        if not path.is_file():
            continue
        spec = importlib.util.spec_from_file_location("_ptpd_monitor_install", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[spec.name]
            continue
        return module
    return None


if __name__ == "__main__":
    raise SystemExit(main())
