"""Summary statistics and exact percentiles: the one place they are computed.

Percentiles are numpy's default (linear) method over the raw samples: no buckets, no sketches.
``np.percentile`` costs about 1 ms over 10,000 samples, mostly overhead, so the same arithmetic
runs here on one ``np.partition`` pass: the results are bit-for-bit those of ``np.percentile``
(the tests compare them) at a tenth of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_PERCENTILES", "percentiles", "summarize"]

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
_SUMMARY_PERCENTILES = np.array([50.0, 90.0, 95.0, 99.0])


def _linear_percentiles(values: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``np.percentile(values, wanted)`` (method "linear"), plus the minimum and maximum.

    Mirrors numpy's virtual index and its two-sided lerp so every bit agrees.
    """
    n = values.size
    positions = (n - 1) * np.true_divide(wanted, 100)
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    part = np.partition(values, np.unique(np.concatenate([below, above, [0, n - 1]])))
    weight = positions - below
    low, high = part[below], part[above]
    span = high - low
    result = np.where(weight >= 0.5, high - span * (1 - weight), low + span * weight)
    return result, float(part[0]), float(part[-1])


def _key(p: float) -> str:
    """``50`` -> ``"p50"``, ``99.9`` -> ``"p99.9"``."""
    return f"p{p:g}"


def _checked(points: Sequence[float]) -> np.ndarray:
    wanted = np.asarray(list(points), dtype=np.float64)
    if wanted.ndim != 1 or not np.all(np.isfinite(wanted)) or np.any((wanted < 0) | (wanted > 100)):
        raise ValueError(f"Percentiles must be numbers between 0 and 100, got {list(points)!r}")
    return wanted


def percentiles(
    values: np.ndarray, points: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float]:
    """Exact percentiles of ``values`` as ``{"p50": ..., ...}``; ``{}`` when there are none.

    >>> percentiles(np.array([1.0, 2.0, 3.0, 4.0]), [50])
    {'p50': 2.5}
    """
    wanted = _checked(points)
    if values.size == 0:
        return {}
    result, _, _ = _linear_percentiles(values, wanted)
    return {_key(p): float(v) for p, v in zip(wanted, result, strict=True)}


def summarize(values: np.ndarray, unit: str | None = None) -> dict[str, float | int | str]:
    """count, min, max, mean, median, std, p50/p90/p95/p99 of ``values``; ``{"count": 0}`` if empty.

    One partition pass serves the median and every percentile.
    """
    if values.size == 0:
        return {"count": 0}
    (p50, p90, p95, p99), low, high = _linear_percentiles(values, _SUMMARY_PERCENTILES)
    summary: dict[str, float | int | str] = {
        "count": int(values.size),
        "min": low,
        "max": high,
        "mean": float(values.mean()),
        "median": float(p50),
        "std": float(values.std()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
    }
    if unit is not None:
        summary["unit"] = unit
    return summary
