"""The package's layers: every module imports only modules below it.

The data's way (README, "How it is built"): helpers and formats at the bottom, the store,
the flusher and publishers, the recorders, then what reads and reports, then the integrations
and the command. An import upward is a lower layer knowing its users; the few that exist on
purpose are listed below with their reason, and the test fails on any other, at module level
or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "monitoring"

LAYERS: dict[str, int] = {
    # formats, rules and probes that know nothing of the package
    "_metadata": 0,
    "_forks": 0,
    "stats": 0,
    "_codec": 0,
    "_folder": 0,
    "_series": 0,
    "_install": 0,
    "_totals": 0,
    "_common": 1,
    "settings": 1,
    "models": 2,
    "_nvml": 3,
    # the store and the way into it
    "store": 4,
    "_flusher": 5,
    "_publisher": 6,
    # what records
    "watches": 7,
    "monitor": 8,
    "api": 8,
    "cache": 8,
    "resources": 8,
    "profiler": 9,
    # what reads, reports and integrates
    "frames": 9,
    "report": 10,
    "exporter": 10,
    "rules": 10,
    "decorators": 10,
    "asgi": 10,
    "imaging": 10,
    "demo": 11,
    "cli": 12,
    "__init__": 13,
}

# (importer, imported): why this one import goes up.
ALLOWED_UPWARD = {
    ("store", "monitor"): "SampleStore.load_monitor, the README's alias of from_store",
    ("store", "api"): "SampleStore.load_api_tracker, the README's alias of from_store",
    ("store", "frames"): "SampleStore.metrics_frame & co., the README's aliases of frames.py",
    ("asgi", "__init__"): "the middleware records into the process-wide get_api_tracker()",
    ("decorators", "__init__"): "@timed and @profiled use the process-wide instances",
    ("demo", "__init__"): "the demo records through the process-wide instances",
    ("cli", "__init__"): "the command reads the process-wide store and settings",
}


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, wherever in the file the import sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x: a module, or a name of the package root
                for alias in node.names:
                    name = alias.name
                    found.add(name if (PACKAGE / f"{name}.py").exists() else "__init__")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            prefix = "ptpd_calibration.monitoring"
            if node.module == prefix:
                found.add("__init__")
            elif node.module.startswith(prefix + "."):
                found.add(node.module[len(prefix) + 1 :].split(".")[0])
    return found


def test_every_module_has_a_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert modules - set(LAYERS) == set(), "give each new module a layer in LAYERS"
    assert set(LAYERS) - modules == set(), "a module in LAYERS is gone"


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_a_module_imports_only_modules_below_it(module: str) -> None:
    upward = {
        imported
        for imported in _imports(PACKAGE / f"{module}.py")
        if imported != module
        and LAYERS[imported] >= LAYERS[module]
        and (module, imported) not in ALLOWED_UPWARD
    }
    assert upward == set(), f"{module} (layer {LAYERS[module]}) imports {sorted(upward)}"


def test_the_core_never_imports_the_image_pipeline() -> None:
    users = {path.stem for path in PACKAGE.glob("*.py") if "imaging" in _imports(path)}
    assert users <= {"demo", "cli"}
