"""Unit tests for ptpd_calibration.monitoring.stats: exact, numpy-identical statistics."""

from __future__ import annotations

import numpy as np
import pytest

from ptpd_calibration.monitoring.stats import DEFAULT_PERCENTILES, percentiles, summarize

SIZES = [1, 2, 3, 4, 5, 7, 10, 11, 64, 99, 100, 101, 1000, 1001, 10_000]
ODD_POINTS = [0, 100, 12.5, 99.9, 50, 0.1, 1, 25, 33.3, 66.7, 75, 90, 95, 99, 99.99]
SUMMARY_KEYS = {"count", "min", "max", "mean", "median", "std", "p50", "p90", "p95", "p99"}


def _same_bits(actual: float, expected: float) -> bool:
    """Bit-for-bit equality (also tells 0.0 from -0.0)."""
    return np.float64(actual).tobytes() == np.float64(expected).tobytes()


def _arrays() -> list[np.ndarray]:
    """Many random arrays: several distributions and scales, duplicates, negatives, zeros."""
    rng = np.random.default_rng(20240601)
    arrays = []
    for size in SIZES:
        arrays.append(rng.normal(size=size))
        arrays.append(rng.lognormal(mean=-3.0, sigma=1.5, size=size))  # timing-like
        arrays.append(rng.uniform(-1e6, 1e6, size=size))
        arrays.append(rng.integers(0, 5, size=size).astype(np.float64))  # many duplicates
        arrays.append(rng.exponential(scale=1e-7, size=size))  # microseconds
        arrays.append(np.full(size, 0.125))
        arrays.append(rng.normal(size=size) * rng.choice([1e-9, 1.0, 1e9], size=size))
    return arrays


ARRAYS = _arrays()


def _array_id(values: np.ndarray) -> str:
    return f"n{values.size}"


@pytest.mark.parametrize("values", ARRAYS, ids=_array_id)
def test_percentiles_are_bit_for_bit_numpy_linear(values: np.ndarray) -> None:
    result = percentiles(values, ODD_POINTS)
    expected = np.percentile(values, ODD_POINTS, method="linear")

    assert list(result) == [f"p{p:g}" for p in ODD_POINTS]
    for key, want in zip(result, expected, strict=True):
        assert _same_bits(result[key], want), (key, result[key], want)
        assert type(result[key]) is float


@pytest.mark.parametrize("values", ARRAYS, ids=_array_id)
def test_summarize_matches_numpy(values: np.ndarray) -> None:
    summary = summarize(values)
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99], method="linear")

    assert set(summary) == SUMMARY_KEYS
    assert summary["count"] == values.size
    assert type(summary["count"]) is int
    assert _same_bits(summary["min"], np.min(values))
    assert _same_bits(summary["max"], np.max(values))
    assert _same_bits(summary["mean"], np.mean(values))
    assert _same_bits(summary["std"], np.std(values))
    for key, want in (("p50", p50), ("p90", p90), ("p95", p95), ("p99", p99)):
        assert _same_bits(summary[key], want), key
    # The median is the linear 50th percentile, bit for bit; np.median averages the two middle
    # samples as (a + b) / 2 instead of a + (b - a) / 2, which can differ in the last bit.
    assert _same_bits(summary["median"], p50)
    assert summary["median"] == pytest.approx(np.median(values), rel=1e-15, abs=0)


def test_summarize_values_for_a_known_array() -> None:
    values = np.array([4.0, 1.0, 3.0, 2.0, 5.0])

    summary = summarize(values, unit="ms")

    assert summary == {
        "count": 5,
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
        "median": 3.0,
        "std": float(np.sqrt(2.0)),
        "p50": 3.0,
        "p90": 4.6,
        "p95": pytest.approx(4.8),
        "p99": pytest.approx(4.96),
        "unit": "ms",
    }


def test_percentiles_of_a_known_array() -> None:
    assert percentiles(np.array([1.0, 2.0, 3.0, 4.0]), [50]) == {"p50": 2.5}
    assert percentiles(np.array([10.0, 0.0]), [0, 25, 100]) == {"p0": 0.0, "p25": 2.5, "p100": 10.0}


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tiny_arrays_every_point(size: int) -> None:
    values = np.array([7.5, -2.25, 3.0][:size])
    points = np.linspace(0, 100, 401)

    result = percentiles(values, points)

    expected = np.percentile(values, points, method="linear")
    assert len(result) == len(points)
    for key, want in zip(result, expected, strict=True):
        assert _same_bits(result[key], want), key


def test_default_points_are_p50_p90_p95_p99() -> None:
    values = np.arange(1000, dtype=np.float64)

    result = percentiles(values)

    assert DEFAULT_PERCENTILES == (50, 90, 95, 99)
    assert list(result) == ["p50", "p90", "p95", "p99"]
    assert result == dict(
        zip(
            result,
            np.percentile(values, DEFAULT_PERCENTILES, method="linear").tolist(),
            strict=True,
        )
    )


def test_integer_arrays_match_numpy() -> None:
    values = np.random.default_rng(3).integers(-1000, 1000, size=257)

    result = percentiles(values, ODD_POINTS)

    for key, want in zip(result, np.percentile(values, ODD_POINTS, method="linear"), strict=True):
        assert _same_bits(result[key], want), key
    assert summarize(values)["mean"] == np.mean(values)


def test_inputs_are_not_modified() -> None:
    values = np.random.default_rng(5).normal(size=101)
    before = values.copy()

    percentiles(values, ODD_POINTS)
    summarize(values)

    assert np.array_equal(values, before)


def test_empty_input() -> None:
    empty = np.empty(0)

    assert percentiles(empty) == {}
    assert percentiles(empty, [0, 100]) == {}
    assert summarize(empty) == {"count": 0}
    assert summarize(empty, unit="seconds") == {"count": 0}


def test_unit_is_only_added_when_given() -> None:
    values = np.array([1.0, 2.0])

    assert "unit" not in summarize(values)
    assert summarize(values, unit="MB")["unit"] == "MB"


@pytest.mark.parametrize(
    "points",
    [
        [-1],
        [100.0001],
        [50, 101],
        [float("nan")],
        [float("inf")],
        [-float("inf")],
        [["50"]],
        ["abc"],
    ],
    ids=repr,
)
def test_bad_percentile_points_raise_value_error(points: list[object]) -> None:
    with pytest.raises(ValueError):
        percentiles(np.array([1.0, 2.0, 3.0]), points)  # type: ignore[arg-type]
    # also when there are no values to take them of: a bad argument is a bad argument
    with pytest.raises(ValueError):
        percentiles(np.empty(0), points)  # type: ignore[arg-type]


def test_bad_points_message_names_them() -> None:
    with pytest.raises(ValueError, match=r"between 0 and 100.*150"):
        percentiles(np.array([1.0]), [50, 150])


def test_percentile_keys_format() -> None:
    values = np.arange(10, dtype=np.float64)

    assert list(percentiles(values, [0, 100, 12.5, 99.9, 50.0])) == [
        "p0",
        "p100",
        "p12.5",
        "p99.9",
        "p50",
    ]
