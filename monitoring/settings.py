"""Monitoring settings: read once from the environment (``PTPD_MONITORING_*``) and ``.env``."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "MonitoringSettings",
    "SettingsError",
    "default_store_dir",
    "get_settings",
    "load_settings",
]


def default_store_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/ptpd-monitor`` (``~/.local/share`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ptpd-monitor"


class MonitoringSettings(BaseSettings):
    """Every knob of the monitoring package; constructor arguments of the classes override these.

    >>> MonitoringSettings(CPU_THRESHOLD=75.0).CPU_THRESHOLD
    75.0
    """

    model_config = SettingsConfigDict(
        env_prefix="PTPD_MONITORING_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        # inf passes gt=0 and nan fails with a misleading message; neither is a setting.
        allow_inf_nan=False,
    )

    MAX_HISTORY: int = Field(10_000, ge=1, description="Samples kept in memory per series")
    CPU_THRESHOLD: float = Field(80.0, gt=0, le=100, description="CPU % that raises an alert")
    MEMORY_THRESHOLD: float = Field(85.0, gt=0, le=100, description="Memory % that raises an alert")
    DISK_THRESHOLD: float = Field(90.0, gt=0, le=100, description="Disk % that raises an alert")
    CACHE_SIZE: int = Field(1000, ge=1, description="Entries the default cache holds")
    CACHE_TTL: float = Field(3600.0, gt=0, description="Default cache entry lifetime, seconds")
    CACHE_BACKEND: Literal["memory", "disk"] = Field(
        "memory", description="Where cache entries live"
    )
    STORE_DIR: Path = Field(default_factory=default_store_dir, description="Sample store folder")
    STORE_ENABLED: bool = Field(True, description="Persist samples to the store")
    # The store keeps the cap in bytes as an SQLite integer (2**63 - 1 at most); 1e9 MB is 1 PB.
    STORE_SIZE_LIMIT_MB: float = Field(
        1024.0, gt=0, le=1e9, description="Store size cap; oldest go first"
    )
    RETENTION_DAYS: float = Field(30.0, gt=0, description="Samples older than this are removed")
    MAX_IMAGE_MEGAPIXELS: float = Field(
        300.0, gt=0, le=100_000, description="Largest image the profiler decodes, in megapixels"
    )
    FLUSH_INTERVAL_S: float = Field(1.0, gt=0, le=3600, description="Seconds between store writes")
    SAMPLE_INTERVAL_S: float = Field(2.0, gt=0, le=3600, description="Resource sampler period")
    DISK_PATH: Path = Field(Path("/"), description="Filesystem the disk gauge watches")
    # Watches (watches.py): rules on the app's operations and endpoints, judged over the store.
    WATCHES: str = Field("", description="Watches as a JSON list of rules ([] or empty: none)")
    WATCHES_FILE: Path | None = Field(
        None, description="A TOML file of [[watch]] rules, read at each evaluation"
    )
    DEFAULT_WATCHES: bool = Field(
        True, description="A built-in p95 regression watch on every timed operation"
    )

    @field_validator("STORE_DIR", "DISK_PATH", mode="before")
    @classmethod
    def _refuse_empty_paths(cls, value: object) -> object:
        """Path("") is ".": an empty variable would silently mean the working folder."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty; unset the variable to get the default")
        return value

    @field_validator("WATCHES", mode="before")
    @classmethod
    def _watches_as_json(cls, value: object) -> object:
        """Rules given in Python become the JSON the variable holds. watches.py checks them
        where they are judged: a bad rule never stops the app that records."""
        return json.dumps(value) if isinstance(value, list | dict) else value

    @field_validator("WATCHES_FILE", mode="before")
    @classmethod
    def _check_watches_file(cls, value: object) -> object:
        """The file itself is read at each evaluation, so it can change without a restart."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty; unset the variable to read no watches file")
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _expand_paths(self) -> MonitoringSettings:
        self.STORE_DIR = self.STORE_DIR.expanduser()
        self.DISK_PATH = self.DISK_PATH.expanduser()
        return self


class SettingsError(ValueError):
    """A monitoring setting has a bad value; the message names the environment variable."""


def load_settings(**overrides: object) -> MonitoringSettings:
    """Read the settings, turning pydantic's report into one line per bad variable.

    Raises:
        SettingsError: a variable is malformed or out of range, e.g.
            ``PTPD_MONITORING_CPU_THRESHOLD='abc': Input should be a valid number``.
    """
    try:
        return MonitoringSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(
                f"PTPD_MONITORING_{field.upper()}={error.get('input')!r}: {error['msg']}"
            )
        raise SettingsError(
            "Invalid monitoring settings (fix the environment or .env): " + "; ".join(problems)
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> MonitoringSettings:
    """The settings of this process, read once (a bad value fails here, naming the variable)."""
    return load_settings()
