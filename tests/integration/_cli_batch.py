"""Run ``ptpd-monitor``'s ``main()`` for many argument lists in one child process.

For the checks that end in argument parsing (``--help``, usage errors): each run is
independent there, and one process instead of one per case saves a second of imports apiece.
Reads ``{name: argv}`` as JSON on stdin; writes ``{name: [exit code, stdout, stderr]}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from ptpd_calibration.monitoring.cli import main


def _run(argv: list[str]) -> list[object]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: object = main(argv)
        except SystemExit as exc:  # argparse exits; main itself returns
            code = 0 if exc.code is None else exc.code
    return [code, out.getvalue(), err.getvalue()]


if __name__ == "__main__":
    cases = json.load(sys.stdin)
    json.dump({name: _run(argv) for name, argv in cases.items()}, sys.stdout)
