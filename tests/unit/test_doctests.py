"""Every ``>>>`` example in the package's docstrings runs, as ``python -m doctest`` would run it.

One test per module (as diskcache's ``tests/test_doctest.py`` does), found by walking the
packages, so a new module's examples are collected without touching this file. Examples marked
``# doctest: +SKIP`` (they need a running app, a GPU or a network port) are not run; every other
example must run and pass. The dashboard's Streamlit scripts (``app.py``, ``app_pages/``) are
never imported: importing them would run them.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import ptpd_calibration.dashboard as dashboard
import ptpd_calibration.monitoring as monitoring

STREAMLIT_SCRIPTS = {"ptpd_calibration.dashboard.app", "ptpd_calibration.dashboard.app_pages"}


def _modules(package: object) -> list[str]:
    name = package.__name__  # type: ignore[attr-defined]
    found = [name]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):  # type: ignore[attr-defined]
        if not any(info.name == s or info.name.startswith(f"{s}.") for s in STREAMLIT_SCRIPTS):
            found.append(info.name)
    return sorted(found)


MODULES = _modules(monitoring) + _modules(dashboard)


def _runnable_examples(tests: list[doctest.DocTest]) -> int:
    return sum(
        not example.options.get(doctest.SKIP, False) for test in tests for example in test.examples
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(name)
    examples = _runnable_examples(doctest.DocTestFinder().find(module))

    failed, attempted = doctest.testmod(module, report=False)

    report = capsys.readouterr().out  # doctest prints each failure: the expected and the got
    assert failed == 0, f"{failed} of {attempted} examples of {name} failed:\n{report}"
    assert attempted == examples  # every example that is not skipped ran


def test_the_walk_finds_the_modules_and_their_examples() -> None:
    """A control: the walk above sees every module on disk, and some run real examples."""
    on_disk = {
        f"ptpd_calibration.monitoring.{path.stem}"
        for path in Path(monitoring.__file__).parent.glob("*.py")
        if path.stem != "__init__"
    }
    assert on_disk <= set(MODULES)
    assert not any(name.startswith("ptpd_calibration.dashboard.app") for name in MODULES)
    runnable = {
        name: _runnable_examples(doctest.DocTestFinder().find(importlib.import_module(name)))
        for name in MODULES
    }
    assert runnable["ptpd_calibration.monitoring.monitor"] > 0
    assert sum(runnable.values()) >= 20
