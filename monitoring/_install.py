"""Where ``ptpd_calibration.monitoring`` comes from, installed beside the calibration app.

The app (a regular ``ptpd_calibration`` package) shipped a ``ptpd_calibration/monitoring/``
of its own, and this project installs into the same folder name. Whichever is found first wins:
the app's old module when the app is installed editable (its package only searches its own
``src/``) or was installed last; ``pip uninstall`` of either deletes the shared
``__init__.py``. :func:`check_install` tells which file is imported and whether it is this
project's, and which other installed distributions put files into that folder, with the fix.

Only the standard library and no relative import: when the app's module shadows this package,
the ``ptpd-monitor`` console script loads this file by its path to say so.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["DISTRIBUTION", "EXTEND_PATH", "PACKAGE", "InstallCheck", "check_install"]

DISTRIBUTION = "ptpd-monitor"
PACKAGE = "ptpd_calibration.monitoring"
EXTEND_PATH = '__path__ = __import__("pkgutil").extend_path(__path__, __name__)'
_PARENT = "ptpd_calibration"
_FOLDER = "ptpd_calibration/monitoring/"
_INIT = _FOLDER + "__init__.py"
_HERE = Path(__file__).resolve().parent  # this project's monitoring folder
_KEY = 12  # doctor's lines: "key:" padded to this width


@dataclass(frozen=True)
class InstallCheck:
    """What :func:`check_install` found.

    Attributes:
        origin: the file ``ptpd_calibration.monitoring`` is imported from; None when it cannot
            be imported or has no file (a namespace package: its ``__init__.py`` was deleted).
        ours: whether that file is this project's.
        warnings: one line per problem, each saying what to do; empty when all is well.
        lines: what ``ptpd-monitor doctor`` prints: where the package comes from, then the
            warnings and the fix.
    """

    origin: str | None
    ours: bool
    warnings: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()


def check_install(*, scan: bool = True) -> InstallCheck:
    """Check where ``ptpd_calibration.monitoring`` is imported from (importing it if need be).

    Args:
        scan: also read every installed distribution's RECORD for files in
            ``ptpd_calibration/monitoring/`` that another distribution owns (tens of
            milliseconds; the console script skips it at start-up).

    Never raises: an import that fails is reported as a warning.
    """
    warnings: list[str] = []
    try:
        module = sys.modules.get(PACKAGE) or importlib.import_module(PACKAGE)
    except Exception as exc:  # the app's package itself may fail to import
        module = None
        warnings.append(f"{PACKAGE} cannot be imported ({type(exc).__name__}: {exc})")
    origin = getattr(module, "__file__", None) if module is not None else None
    origin = origin if isinstance(origin, str) else None
    ours = False
    ours_dist = _our_distribution()
    if module is not None and origin is None:
        where = ", ".join(str(p) for p in getattr(module, "__path__", ()) or ()) or "nowhere"
        warnings.append(
            f"{PACKAGE} has no __init__.py (a namespace package from {where}): uninstalling "
            "or reinstalling a package that also installed it deleted it"
        )
    elif origin is not None:
        found = Path(origin).resolve()
        if found.parent != _HERE:
            warnings.append(
                f"{PACKAGE} is imported from {origin}, not from ptpd-monitor's {_HERE}: "
                "another package's own monitoring module shadows it"
            )
        elif not _recorded_hash_matches(ours_dist, found):
            warnings.append(
                f"{origin} is not ptpd-monitor's: another package installed its own {_INIT} over it"
            )
        else:
            ours = True
    if scan:
        warnings.extend(_other_owners())
        if ours_dist is not None:
            warnings.extend(_missing_files(ours_dist))
    whose = f"ptpd-monitor's: {_describe(ours_dist)}" if ours else "not ptpd-monitor's"
    lines = [f"{'monitoring:':<{_KEY}}{origin or '-'} ({whose})"]
    if warnings:
        lines += [f"{'warning:':<{_KEY}}{w}" for w in warnings]
        steps = _fix(origin, ours_dist)
        lines.append(f"{'fix:':<{_KEY}}{steps[0]}")
        lines += [f"{'':<{_KEY}}{step}" for step in steps[1:]]
    return InstallCheck(origin, ours, tuple(warnings), tuple(lines))


# -- the distributions ------------------------------------------------------------------------


def _name(dist: metadata.Distribution) -> str:
    name = dist.metadata["Name"] if dist.metadata else None
    return str(name or "").lower().replace("_", "-").replace(".", "-")


def _our_distribution() -> metadata.Distribution | None:
    """The installed ptpd-monitor Python sees first (None when it is not installed).

    An installed one has a RECORD; the ``ptpd_monitor.egg-info`` an editable build leaves in
    the project folder (found first when Python runs there) has none.
    """
    try:
        found = list(metadata.distributions(name=DISTRIBUTION))
        return next((d for d in found if d.read_text("RECORD") is not None), None)
    except Exception:  # a broken dist-info folder
        return None


def _recorded_hash_matches(dist: metadata.Distribution | None, found: Path) -> bool:
    """False when ptpd-monitor's RECORD lists ``found`` with another content (overwritten)."""
    if dist is None:
        return True
    try:
        for entry in dist.files or ():
            if entry.as_posix() != _INIT or entry.hash is None:
                continue
            if Path(str(dist.locate_file(entry))).resolve() != found:
                continue
            if entry.hash.mode != "sha256":
                return True
            digest = hashlib.sha256(found.read_bytes()).digest()
            return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == entry.hash.value
    except OSError:
        return True  # unreadable: the import worked, so do not cry wolf
    return True  # an editable install records no sources


def _other_owners() -> list[str]:
    """A warning for each other installed distribution whose RECORD has files in the folder."""
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    for dist in _distributions():
        try:
            # Most RECORDs (some of thousands of lines) don't name the folder: read, don't parse.
            if _FOLDER not in (dist.read_text("RECORD") or ""):
                continue
            name = _name(dist)
            if name == DISTRIBUTION:
                continue
            files = [f for f in dist.files or () if f.as_posix().startswith(_FOLDER)]
        except Exception:
            continue
        if not files:
            continue
        where = str(Path(str(dist.locate_file(_FOLDER))).resolve())
        if (name, where) in seen:
            continue
        seen.add((name, where))
        shown = sorted(f.as_posix() for f in files if f.suffix == ".py") or [files[0].as_posix()]
        more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
        found.append(
            f"{dist.metadata['Name']} {dist.version} also owns files in {where} "
            f"({', '.join(shown[:3])}{more}): installing it again overwrites them and "
            "uninstalling it deletes them, whichever package put them there last"
        )
    return found


def _missing_files(dist: metadata.Distribution) -> list[str]:
    """A warning when files ptpd-monitor installed into the folder are gone."""
    try:
        missing = [
            f.as_posix()
            for f in dist.files or ()
            if f.as_posix().startswith(_FOLDER)
            and f.suffix == ".py"
            and not Path(str(dist.locate_file(f))).exists()
        ]
    except Exception:
        return []
    if not missing:
        return []
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return [
        f"ptpd-monitor's {', '.join(missing[:3])}{more} are gone: uninstalling another "
        "package that also installed them deleted them"
    ]


def _distributions() -> list[metadata.Distribution]:
    try:
        return list(metadata.distributions())
    except Exception:
        return []


def _direct_url(dist: metadata.Distribution | None) -> dict[str, object]:
    """PEP 610's direct_url.json: how the distribution was installed (empty when unknown)."""
    if dist is None:
        return {}
    try:
        loaded = json.loads(dist.read_text("direct_url.json") or "{}")
    except (ValueError, OSError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _source(dist: metadata.Distribution | None) -> tuple[str | None, bool]:
    """The local folder or file the distribution was installed from, and whether editable."""
    info = _direct_url(dist)
    url = info.get("url")
    dir_info = info.get("dir_info")
    editable = isinstance(dir_info, dict) and bool(dir_info.get("editable"))
    if isinstance(url, str) and url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path), editable
    return None, editable


def _describe(dist: metadata.Distribution | None) -> str:
    if dist is None:
        return "run from its source, not installed"
    source, editable = _source(dist)
    how = f", editable from {source}" if editable and source else ""
    return f"{dist.version}{how}"


# -- the fix ----------------------------------------------------------------------------------


def _fix(origin: str | None, ours: metadata.Distribution | None) -> list[str]:
    """The supported way to have the app and ptpd-monitor side by side, for this machine."""
    steps: list[str] = []
    parent_file = getattr(sys.modules.get(_PARENT), "__file__", None)
    if isinstance(parent_file, str):  # the app's regular package
        shadow = Path(origin).resolve().parent if origin is not None else None
        if shadow is not None and shadow != _HERE and not _installed(shadow):
            steps.append(f"delete {shadow}/ (the app's old monitoring module, in its source)")
        else:
            steps.append("delete ptpd_calibration/monitoring/ from the app's source")
        steps[-1] += " and the app's build/ folder (a build keeps a copy there)"
        if not _mentions(parent_file, "extend_path"):
            where = (
                parent_file
                if not _installed(Path(parent_file))
                else ("the app's ptpd_calibration/__init__.py")
            )
            steps.append(f"add `{EXTEND_PATH}` to {where}")
        steps.append("reinstall the app (pip install [-e] <the app's folder>), then ptpd-monitor:")
    else:
        steps.append("reinstall ptpd-monitor:")
    source, editable = _source(ours)
    target = f"{'-e ' if editable else ''}{source}" if source else DISTRIBUTION
    steps[-1] += f" pip install --force-reinstall --no-deps {target}"
    steps.append("(the README's 'Installed beside the app' tells more)")
    return steps


def _installed(path: Path) -> bool:
    """Whether ``path`` lies in a site-packages folder (an installed copy, not a source)."""
    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    try:
        import site

        folders.update(site.getsitepackages())
        folders.add(site.getusersitepackages())
    except AttributeError:  # an embedded or virtualenv-old site module
        pass
    resolved = path.resolve()
    return any(resolved.is_relative_to(Path(f).resolve()) for f in folders if f)


def _mentions(path: str, text: str) -> bool:
    try:
        return text in Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
