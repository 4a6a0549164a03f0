"""One cache's totals across processes: the one place the snapshots of its processes are summed.

Every process of a cache publishes cumulative snapshots (see ``CacheManager``); the exporter
and the dashboard both add up the newest snapshot of each process here, so they cannot
disagree on what a cache's hits, misses or size are.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheTotals", "sum_cache_snapshots"]


@dataclass(frozen=True, slots=True)
class CacheTotals:
    """The summed counters and size of one cache, over the processes whose snapshots were given."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    size: int = 0
    max_size: int = 0
    processes: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits per lookup, 0.0 without lookups (never NaN)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


def _count(value: object) -> int:
    """A snapshot field as an int: a missing, non-numeric or non-finite one counts 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return 0
    number = float(value)
    return int(number) if math.isfinite(number) else 0


def sum_cache_snapshots(snapshots: Iterable[Mapping[str, Any]]) -> CacheTotals:
    """Sum the newest snapshot of each process of one cache.

    Counters are per process, so they add up. Sizes add up too, except a disk-backed cache's:
    it is one folder that every process reports, so it counts once (the largest reported).

    Args:
        snapshots: one snapshot per process (hits, misses, evictions, expirations, size,
            max_size, backend); a missing or non-numeric field counts as 0.

    >>> totals = sum_cache_snapshots([
    ...     {"hits": 30, "misses": 10, "size": 40, "max_size": 100, "backend": "memory"},
    ...     {"hits": 8, "misses": 2, "size": 10, "max_size": 100, "backend": "memory"},
    ... ])
    >>> totals.hits, totals.misses, totals.size, totals.max_size, totals.hit_rate
    (38, 12, 50, 200, 0.76)
    >>> sum_cache_snapshots([{"size": 7, "backend": "disk"}, {"size": 9, "backend": "disk"}]).size
    9
    """
    hits = misses = evictions = expirations = processes = 0
    size = max_size = shared_size = shared_max_size = 0
    for row in snapshots:
        processes += 1
        hits += _count(row.get("hits"))
        misses += _count(row.get("misses"))
        evictions += _count(row.get("evictions"))
        expirations += _count(row.get("expirations"))
        if row.get("backend") == "disk":
            shared_size = max(shared_size, _count(row.get("size")))
            shared_max_size = max(shared_max_size, _count(row.get("max_size")))
        else:
            size += _count(row.get("size"))
            max_size += _count(row.get("max_size"))
    return CacheTotals(
        hits=hits,
        misses=misses,
        evictions=evictions,
        expirations=expirations,
        size=size + shared_size,
        max_size=max_size + shared_max_size,
        processes=processes,
    )
