"""pandas frames over the store, for the dashboard, the reports and the HTML report.

Above the store, which knows nothing of pandas: each function reads the window through the
store's raw readers (``read_columns``, ``record_batches``) and returns a frame sorted by time,
with typed empty frames when the window holds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ._common import TimeBound, split_endpoint_key
from .store import API, CACHE, METRIC, PROFILE, RESOURCE, SampleStore

__all__ = ["api_frame", "cache_stats", "metrics_frame", "profiles", "resource_samples"]


def metrics_frame(
    store: SampleStore,
    since: TimeBound = None,
    until: TimeBound = None,
    operations: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Raw metric samples: columns timestamp (UTC), operation, value, unit."""
    names = list(operations) if operations is not None else store.series_names(METRIC)
    frames = []
    for name in names:
        data = store.read_columns(METRIC, name, since, until)
        if data.size:
            frames.append(
                pd.DataFrame(
                    {
                        "timestamp": pd.to_datetime(data.columns[0], unit="s", utc=True),
                        "operation": name,
                        "value": data.columns[1],
                        "unit": data.unit,
                    }
                )
            )
    if not frames:
        return pd.DataFrame(
            {
                "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                "operation": pd.Series([], dtype=object),
                "value": pd.Series([], dtype=float),
                "unit": pd.Series([], dtype=object),
            }
        )
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", ignore_index=True)


def api_frame(store: SampleStore, since: TimeBound = None, until: TimeBound = None) -> pd.DataFrame:
    """Raw requests: timestamp (UTC), endpoint, method, duration_ms, status_code, error."""
    frames = []
    for name in store.series_names(API):
        data = store.read_columns(API, name, since, until)
        if not data.size:
            continue
        method, endpoint = split_endpoint_key(name)
        errors = [data.meta.get(i, {}).get("error") for i in range(data.size)]
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(data.columns[0], unit="s", utc=True),
                    "endpoint": endpoint,
                    "method": method,
                    "duration_ms": data.columns[1],
                    "status_code": data.columns[2].astype(int),
                    "error": errors,
                }
            )
        )
    columns = ["timestamp", "endpoint", "method", "duration_ms", "status_code", "error"]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}).astype(
            {"timestamp": "datetime64[ns, UTC]", "duration_ms": float, "status_code": int}
        )
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", ignore_index=True)


def _records_frame(
    store: SampleStore, kind: str, series: str | None, since: TimeBound, until: TimeBound
) -> pd.DataFrame:
    frames = [
        pd.DataFrame(columns)[keep]
        for columns, keep in store.record_batches(kind, series, since, until)
    ]
    if not frames:
        return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]")})
    frame = pd.concat(frames, ignore_index=True).sort_values("ts", ignore_index=True)
    frame.insert(0, "timestamp", pd.to_datetime(frame.pop("ts"), unit="s", utc=True))
    return frame


def resource_samples(
    store: SampleStore, since: TimeBound = None, until: TimeBound = None
) -> pd.DataFrame:
    """Resource samples: timestamp plus the ResourceUsage fields (GPU columns per device)."""
    return _records_frame(store, RESOURCE, None, since, until)


def cache_stats(
    store: SampleStore, since: TimeBound = None, until: TimeBound = None, name: str | None = None
) -> pd.DataFrame:
    """Cache-stats snapshots: timestamp, cache, pid, hits, misses, size, max_size, ..."""
    return _records_frame(store, CACHE, name, since, until)


def profiles(
    store: SampleStore,
    since: TimeBound = None,
    until: TimeBound = None,
    operation: str | None = None,
) -> pd.DataFrame:
    """Profiled operations: timestamp, operation, wall/cpu time, memory, pixels, success."""
    return _records_frame(store, PROFILE, operation, since, until)
