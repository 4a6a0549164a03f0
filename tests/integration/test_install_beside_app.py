"""ptpd-monitor installed beside the calibration app, in fresh virtual environments.

The app is a regular ``ptpd_calibration`` package with a ``monitoring/`` of its own, and its
``__init__`` prints and logs to stdout when imported. Each scenario installs a stand-in for it
and this project into one new venv, editable or not, in either order; checks that the conflict
is there and that ``ptpd-monitor doctor`` names it with the fix; applies the change the README
documents ("Installed beside the app": delete the app's ``monitoring/``, add the extend_path
line, reinstall); then checks that ``ptpd_calibration.monitoring`` is this project's, that
``ptpd_calibration.config`` still imports, that doctor is content, and that ``report --format
json`` and ``export --format csv`` write nothing but the report and the CSV to stdout.

Fast and offline: ``venv --without-pip``; the dependencies (pip and setuptools included) come
from this project's .venv through a ``.pth`` file pointing at a folder of links to its
site-packages, less this project's own install; both projects install with ``--no-deps
--no-build-isolation --no-index``; this project's wheel is built once, from a copy of the
source (builds write into the source folder). The scenarios run concurrently, once, in a
module fixture; each test then checks one scenario's outcome.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ptpd_calibration.monitoring import PerformanceMonitor, SampleStore

ROOT = Path(__file__).resolve().parents[2]
EXTEND_PATH = '__path__ = __import__("pkgutil").extend_path(__path__, __name__)'
PIP = ("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index")
# This project's source, as a build needs it (the rest stays out of the copy).
SOURCES = ("pyproject.toml", "README.md", "ptpd_monitor_cli.py", "monitoring", "dashboard")
APP_LINES = ('{"event": "app import"}', '{"log": "app logging configured"}')

APP_FILES = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "ptpd-calibration"
version = "1.0.0"

[tool.setuptools.packages.find]
where = ["src"]
""",
    "src/ptpd_calibration/__init__.py": '''\
"""The Pt/Pd calibration app (a stand-in)."""

from . import startup
from .config import PAPER
''',
    # As the real app: JSON lines on stdout when imported, by print, logging and the fd itself,
    # and one more at exit.
    "src/ptpd_calibration/startup.py": """\
import atexit
import logging
import os
import sys

print('{"event": "app import"}')
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='{"log": "%(message)s"}')
logging.getLogger("ptpd_calibration").info("app logging configured")
sys.stdout.flush()
os.write(1, b'{"event": "app fd write"}\\n')
atexit.register(print, '{"event": "app exit"}')
""",
    "src/ptpd_calibration/config.py": 'PAPER = "Arches Platine"\n',
    "src/ptpd_calibration/monitoring/__init__.py": "APPS_OLD_MONITORING = True\n",
}


@dataclass(frozen=True)
class Scenario:
    app_editable: bool
    ours_editable: bool
    app_first: bool

    @property
    def id(self) -> str:
        app = "app-e" if self.app_editable else "app"
        ours = "ours-e" if self.ours_editable else "ours"
        return f"{app},{ours}" if self.app_first else f"{ours},{app}"


SCENARIOS = [
    Scenario(app_editable, ours_editable, app_first)
    for app_editable in (True, False)
    for ours_editable in (True, False)
    for app_first in (True, False)
]


# -- what every scenario shares ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The dependency links, this project's source copy and wheel, and a store with samples."""
    root = tmp_path_factory.mktemp("beside")
    deps = root / "deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name
        if (
            name.startswith(("ptpd_monitor", "ptpd_calibration", "__editable__", "_ptpd"))
            or name.endswith((".pth", ".egg-link"))
            or name == "__pycache__"
        ):
            continue
        (deps / name).symlink_to(entry)
    for needed in ("pip", "setuptools"):
        assert (deps / needed).exists(), f"{needed} is not installed in {site}"

    project = _copy_project(root / "ptpd-monitor")
    wheels = root / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *PIP[3:], "-w", str(wheels), str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("ptpd_monitor-*.whl")

    store = root / "store"
    monitor = PerformanceMonitor(store=SampleStore(store))
    for value in (0.25, 0.5, 1.0):
        monitor.record_metric("curve.fit", value)
    monitor.flush()
    return {"root": root, "deps": deps, "wheel": wheel, "store": store}


def _copy_project(to: Path) -> Path:
    """This project's source as a build needs it; builds write into it, never into ROOT."""
    to.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, to / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, to / name)
    return to


# -- one scenario --------------------------------------------------------------------------------


class Venv:
    """A fresh venv with the dependencies visible, the stand-in app's source beside it, and
    (for editable installs) a copy of this project's source of its own."""

    def __init__(self, where: Path, shared: dict[str, Path]) -> None:
        self.where = where
        self.shared = shared
        where.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(where / "venv")],
            check=True,
            timeout=60,
        )
        self.python = where / "venv" / "bin" / "python"
        [self.site] = (where / "venv" / "lib").glob("python*/site-packages")
        (self.site / "ptpd_deps.pth").write_text(f"{shared['deps']}\n")
        self.app = where / "app"
        for name, text in APP_FILES.items():
            (self.app / name).parent.mkdir(parents=True, exist_ok=True)
            (self.app / name).write_text(text)
        self.project = where / "ptpd-monitor"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PTPD_MONITORING_")}
        self.env.update(
            PTPD_MONITORING_STORE_DIR=str(shared["store"]),
            XDG_DATA_HOME=str(where / "xdg"),
            PIP_NO_CACHE_DIR="1",
        )
        self.env.pop("PYTHONPATH", None)

    def run(self, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            env=self.env,
            cwd=self.where,  # not the project folder: nothing found through the working folder
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pip(self, *args: str) -> None:
        done = self.run([str(self.python), *PIP, *args])
        if done.returncode != 0:
            raise AssertionError(f"pip install {' '.join(args)}:\n{done.stdout}{done.stderr}")

    def install_app(self, editable: bool) -> None:
        self.pip(*(["-e"] if editable else []), str(self.app))

    def install_ours(self, editable: bool, again: bool = False) -> None:
        force = ["--force-reinstall"] if again else []
        if not editable:
            self.pip(*force, str(self.shared["wheel"]))
            return
        if not self.project.exists():
            _copy_project(self.project)
        self.pip(*force, "-e", str(self.project))

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.where / "venv" / "bin" / "ptpd-monitor"), *args])

    def probe(self) -> dict[str, object]:
        """ptpd_calibration.monitoring's file and whether it is the app's old module, and
        ptpd_calibration.config, from a new process."""
        out = self.where / "probe.json"
        code = (
            "import json, sys\n"
            "import ptpd_calibration.config as config\n"
            "try:\n"
            "    import ptpd_calibration.monitoring as m\n"
            "    found, old = m.__file__, hasattr(m, 'APPS_OLD_MONITORING')\n"
            "except Exception as exc:\n"
            "    found, old = repr(exc), None\n"
            "json.dump({'monitoring': found, 'old': old, 'paper': config.PAPER},"
            " open(sys.argv[1], 'w'))\n"
        )
        done = self.run([str(self.python), "-c", code, str(out)])
        if done.returncode != 0:
            raise AssertionError(f"the probe failed:\n{done.stderr}")
        result: dict[str, object] = json.loads(out.read_text())
        return result

    def ours(self, editable: bool) -> Path:
        """Where this project's ptpd_calibration/monitoring/__init__.py must be."""
        if editable:
            return self.project / "monitoring" / "__init__.py"
        return self.site / "ptpd_calibration" / "monitoring" / "__init__.py"

    def adopt(self) -> None:
        """The README's change to the app, as a person makes it in the app's source."""
        shutil.rmtree(self.app / "src" / "ptpd_calibration" / "monitoring")
        # A build from the source (pip install <folder>) leaves a copy of it in build/, and
        # setuptools puts what it finds there into the next wheel.
        shutil.rmtree(self.app / "build", ignore_errors=True)
        init = self.app / "src" / "ptpd_calibration" / "__init__.py"
        docstring, rest = init.read_text().split("\n", 1)
        init.write_text(f"{docstring}\n{EXTEND_PATH}\n{rest}")


Run = subprocess.CompletedProcess[str]


@dataclass
class Outcome:
    """What one scenario saw; ``failed`` when a step could not run at all."""

    ours: Path | None = None
    before: dict[str, object] | None = None
    doctor_before: Run | None = None
    export_before: Run | None = None
    after: dict[str, object] | None = None
    doctor: Run | None = None
    report: Run | None = None
    export: Run | None = None
    failed: str | None = None


def _play(scenario: Scenario, shared: dict[str, Path], where: Path) -> Outcome:
    outcome = Outcome()
    try:
        venv = Venv(where, shared)
        if scenario.app_first:
            venv.install_app(scenario.app_editable)
        venv.install_ours(scenario.ours_editable)
        if not scenario.app_first:
            venv.install_app(scenario.app_editable)
        outcome.ours = venv.ours(scenario.ours_editable)
        outcome.before = venv.probe()
        outcome.doctor_before = venv.script("doctor")
        if outcome.doctor_before.returncode == 1:  # a command that cannot run
            outcome.export_before = venv.script("export", "--format", "csv")

        # The README's change: three lines of the app's, then the two reinstalls.
        venv.adopt()
        venv.install_app(scenario.app_editable)
        venv.install_ours(scenario.ours_editable, again=True)

        outcome.after = venv.probe()
        outcome.doctor = venv.script("doctor")
        outcome.report = venv.script("report", "daily", "--format", "json")
        outcome.export = venv.script("export", "--format", "csv")
    except Exception as exc:
        outcome.failed = f"{type(exc).__name__}: {exc}"
    return outcome


@pytest.fixture(scope="module")
def outcomes(shared: dict[str, Path]) -> dict[Scenario, Outcome]:
    """Every scenario, played once, concurrently (each in a venv of its own)."""
    root = shared["root"]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {
            s: pool.submit(_play, s, shared, root / f"scenario-{i}")
            for i, s in enumerate(SCENARIOS)
        }
        return {s: future.result() for s, future in futures.items()}


def _same(found: object, expected: Path) -> bool:
    return isinstance(found, str) and Path(found).resolve() == expected.resolve()


def _lines(text: str, key: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(key)]


def _played(outcomes: dict[Scenario, Outcome], scenario: Scenario) -> Outcome:
    outcome = outcomes[scenario]
    assert outcome.failed is None, outcome.failed
    return outcome


# -- the checks, one scenario at a time -----------------------------------------------------------

IDS = [s.id for s in SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_before_the_change_doctor_names_the_conflict_and_the_fix(
    scenario: Scenario, outcomes: dict[Scenario, Outcome]
) -> None:
    outcome = _played(outcomes, scenario)
    assert outcome.ours is not None and outcome.before is not None
    doctor = outcome.doctor_before
    assert doctor is not None
    assert outcome.before["paper"] == "Arches Platine"
    if not scenario.app_editable and not scenario.ours_editable and scenario.app_first:
        # Installed last into the same folder, this project's __init__.py replaced the app's:
        # it works, but the app owns that file too (reinstalling or uninstalling it deletes it).
        assert _same(outcome.before["monitoring"], outcome.ours)
        assert outcome.before["old"] is False
        assert doctor.returncode == 0, doctor.stderr
        [warning] = _lines(doctor.stdout, "warning:")
        assert "ptpd-calibration 1.0.0 also owns files in" in warning
    else:
        assert outcome.before["old"] is True, outcome.before  # the app's old module won
        assert doctor.returncode == 1
        [error] = _lines(doctor.stderr, "ptpd-monitor: error:")  # after the app's lines
        assert "ptpd_calibration.monitoring is not ptpd-monitor's" in error
        assert _lines(doctor.stdout, "warning:"), doctor.stdout
        # A command that cannot run says so on stderr, once, and leaves stdout empty.
        export = outcome.export_before
        assert export is not None
        assert (export.returncode, export.stdout) == (1, "")
        assert len(_lines(export.stderr, "ptpd-monitor: error:")) == 1, export.stderr
    [where] = _lines(doctor.stdout, "monitoring:")
    assert where.endswith(
        "(ptpd-monitor's: 0.1.0)" if doctor.returncode == 0 else "not ptpd-monitor's)"
    )
    assert EXTEND_PATH in doctor.stdout
    assert "pip install --force-reinstall --no-deps" in doctor.stdout


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_after_the_change_both_work(scenario: Scenario, outcomes: dict[Scenario, Outcome]) -> None:
    outcome = _played(outcomes, scenario)
    assert outcome.ours is not None and outcome.after is not None
    assert _same(outcome.after["monitoring"], outcome.ours), outcome.after
    assert outcome.after["old"] is False
    assert outcome.after["paper"] == "Arches Platine"

    doctor = outcome.doctor
    assert doctor is not None
    assert doctor.returncode == 0, doctor.stderr
    [where] = _lines(doctor.stdout, "monitoring:")
    assert f"{outcome.ours} (ptpd-monitor's: 0.1.0" in where, where
    assert not _lines(doctor.stdout, "warning:"), doctor.stdout


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_stdout_holds_the_report_and_the_csv_alone(
    scenario: Scenario, outcomes: dict[Scenario, Outcome]
) -> None:
    outcome = _played(outcomes, scenario)
    report, export = outcome.report, outcome.export
    assert report is not None and export is not None
    for result in (report, export):
        assert result.returncode == 0, result.stderr
        # What the app wrote to stdout, at import and at exit, went to stderr.
        for line in (*APP_LINES, '{"event": "app fd write"}', '{"event": "app exit"}'):
            assert line in result.stderr.splitlines(), (line, result.stderr)
    assert json.loads(report.stdout)["report_type"] == "daily"
    rows = list(csv.reader(io.StringIO(export.stdout)))
    assert rows[0] == ["metric_name", "value", "unit", "timestamp", "metadata"]
    assert sorted(row[1] for row in rows[1:]) == ["0.25", "0.5", "1.0"]


def test_here_the_package_is_ours_and_nothing_else_owns_its_folder() -> None:
    from ptpd_calibration.monitoring._install import check_install

    check = check_install()

    assert (check.ours, check.warnings) == (True, ())
    assert check.origin is not None and Path(check.origin).parent == ROOT / "monitoring"
    [line] = check.lines
    assert line.startswith(f"monitoring: {check.origin} (ptpd-monitor's: 0.1.0"), line
