"""The QUICKREF data models: pydantic, JSON-serialisable, built only when someone asks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_serializer,
    model_validator,
)

from ._common import is_error

__all__ = ["APIMetric", "CacheStats", "GPUUsage", "PerformanceMetric", "ResourceUsage"]


def _now() -> datetime:
    return datetime.now(UTC)


class _Timestamped(BaseModel):
    """JSON dumps write ``timestamp`` as ``datetime.isoformat()`` (``+00:00``, not pydantic's
    ``Z``): one format in every export and report, as the original module wrote it."""

    @field_serializer("timestamp", when_used="json", check_fields=False)
    def _iso_timestamp(self, value: datetime) -> str:
        return value.isoformat()


class PerformanceMetric(_Timestamped):
    """One timed or recorded value of a named operation."""

    model_config = ConfigDict(frozen=True)

    metric_name: str
    value: float
    unit: str = "seconds"
    timestamp: datetime = Field(default_factory=_now)
    metadata: dict[str, Any] = Field(default_factory=dict)


class GPUUsage(BaseModel):
    """One NVIDIA GPU as NVML reports it; a field NVML cannot read is None."""

    index: int
    name: str
    utilization_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def memory_percent(self) -> float | None:
        """GPU memory in use as a percentage of its total."""
        if not self.memory_total_mb or self.memory_used_mb is None:
            return None
        return 100.0 * self.memory_used_mb / self.memory_total_mb


class ResourceUsage(_Timestamped):
    """A snapshot of the machine: CPU, memory, disk and every GPU.

    ``gpu_percent``, ``gpu_memory_mb`` (memory used, the original module's name) and
    ``gpu_memory_used_mb``/``gpu_memory_total_mb`` describe GPU 0; ``gpus`` lists every GPU.
    ``gpu_memory_mb`` and ``gpu_memory_used_mb`` are one reading: given either, both are set.
    """

    cpu_percent: float
    memory_percent: float
    memory_used_mb: float
    memory_available_mb: float = 0.0
    disk_percent: float
    disk_used_gb: float = 0.0
    disk_free_gb: float = 0.0
    gpu_percent: float | None = None
    gpu_memory_mb: float | None = None
    gpu_memory_used_mb: float | None = None
    gpu_memory_total_mb: float | None = None
    gpus: list[GPUUsage] = Field(default_factory=list)
    timestamp: datetime = Field(default_factory=_now)

    @model_validator(mode="before")
    @classmethod
    def _one_gpu_memory_reading(cls, data: Any) -> Any:
        if isinstance(data, dict):
            used, legacy = data.get("gpu_memory_used_mb"), data.get("gpu_memory_mb")
            if used is None and legacy is not None:
                data = {**data, "gpu_memory_used_mb": legacy}
            elif legacy is None and used is not None:
                data = {**data, "gpu_memory_mb": used}
        return data


class APIMetric(_Timestamped):
    """One HTTP request as the API tracker saw it."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    duration_ms: float
    status_code: int
    method: str = "GET"
    error: str | None = None
    timestamp: datetime = Field(default_factory=_now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        """Status 400 and above counts as an error."""
        return is_error(self.status_code)


class CacheStats(_Timestamped):
    """Hit/miss counters of one cache; rates are derived, never stored."""

    hits: int = 0
    misses: int = 0
    size: int = 0
    max_size: int = 0
    evictions: int = 0
    expirations: int = 0
    name: str = "default"
    timestamp: datetime = Field(default_factory=_now)

    def __getitem__(self, field: str) -> Any:
        """``stats["hits"]`` as well as ``stats.hits``: QUICKREF shows the stats as a mapping."""
        if field not in type(self).model_fields and field not in ("hit_rate", "miss_rate"):
            raise KeyError(field)
        return getattr(self, field)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def hit_rate(self) -> float:
        """Hits over lookups; 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def miss_rate(self) -> float:
        """Misses over lookups; 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.misses / total if total else 0.0
