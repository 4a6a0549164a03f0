"""The README's Python examples run as shown, in a fresh process on a fresh store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_examples() -> None:
    assert len(_python_blocks()) >= 3


def test_every_python_example_runs_as_shown(tmp_path: Path) -> None:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("PTPD_MONITORING_")
    }
    env["PTPD_MONITORING_STORE_DIR"] = str(tmp_path / "store")
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(_python_blocks()), encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr
    assert "'count': 1" in done.stdout  # the first example's statistics
    # a wide CSV, as the original module wrote it: one row per operation first
    header = (tmp_path / "today.csv").read_text().splitlines()[0]
    assert header == "operation,count,min,max,mean,median,std,p50,p90,p95,p99,unit"
    assert "seconds" in done.stdout.splitlines()  # "Coming from the original module"
    # The read-back example found, through the store, the one timing and the one request.
    assert done.stdout.splitlines().count("1") == 2
