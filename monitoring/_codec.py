"""The store's batch formats: how samples become bytes and back, and how batches merge.

Pure functions over numpy arrays and JSON, with no I/O, so the storage layer above holds no
format knowledge and these can be tested on their own.

Columnar batches (metric and API series) are ``PTPD1``, a little-endian header length, a
compact JSON header (unit, sample count, column count, sparse metadata) and the columns as
packed float64. Record batches (resource samples, cache snapshots, profiles) are JSON rows
when fresh and the same columnar format once compacted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "COLUMNAR_KINDS",
    "COLUMN_WIDTHS",
    "MAX_BATCH_SPAN_S",
    "BadBatch",
    "ColumnBatch",
    "RecordBatch",
    "SeriesData",
    "decode_columns",
    "decodes",
    "encode_columns",
    "in_time_order",
    "merged_columns",
    "merged_records",
    "plain",
    "record_columns",
    "split_by_span",
    "to_json",
]

METRIC, API = "metric", "api"
COLUMNAR_KINDS = frozenset({METRIC, API})
# Columns of each columnar kind: timestamp and value; timestamp, duration and status.
COLUMN_WIDTHS = {METRIC: 2, API: 3}
_MAGIC = b"PTPD1"
# A fresh batch (one flush) never spans more than this: a longer pause cuts it.
MAX_BATCH_SPAN_S = 60.0


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """New samples of one columnar series; ``columns[0]`` holds the epoch timestamps."""

    kind: str
    series: str
    columns: tuple[np.ndarray, ...]
    unit: str = ""
    meta: dict[int, dict[str, Any]] | None = None

    @property
    def size(self) -> int:
        return int(self.columns[0].size)


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """New JSON records of one series; every record carries its epoch time under ``"ts"``."""

    kind: str
    series: str
    rows: list[dict[str, Any]]

    @property
    def size(self) -> int:
        return len(self.rows)


@dataclass(slots=True)
class SeriesData:
    """A columnar series read back for a window: parallel arrays plus sparse metadata."""

    unit: str
    columns: list[np.ndarray]
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.columns[0].size) if self.columns else 0


def to_json(value: Any) -> str:
    """Compact JSON; values JSON lacks become their str(), and so do keys it refuses (tuples)."""
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except TypeError:
        return json.dumps(_str_keys(value), separators=(",", ":"), default=str)


def _str_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_str_keys(v) for v in value]
    return value


def encode_columns(batch: ColumnBatch, extra: dict[str, Any] | None = None) -> bytes:
    header = {"unit": batch.unit, "n": batch.size, "k": len(batch.columns), **(extra or {})}
    if batch.meta:
        header["meta"] = {str(i): m for i, m in batch.meta.items()}
    head = to_json(header).encode()
    body = b"".join(np.ascontiguousarray(c, dtype="<f8").tobytes() for c in batch.columns)
    return _MAGIC + len(head).to_bytes(4, "little") + head + body


class BadBatch(ValueError):
    """A stored value that is not a well-formed batch of ours: readers skip and count it."""


def decode_columns(blob: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header and columns of a columnar batch; :class:`BadBatch` for anything malformed.

    Every field is checked, so one damaged row costs its own samples and never a reader.
    """
    if not isinstance(blob, bytes) or not blob.startswith(_MAGIC):
        raise BadBatch("not a ptpd-monitor batch")
    start = len(_MAGIC) + 4
    head_len = int.from_bytes(blob[len(_MAGIC) : start], "little")
    try:
        header = json.loads(blob[start : start + head_len])
        n, k = int(header["n"]), int(header["k"])
        meta = header.get("meta", {})
        if n < 0 or k < 1 or not isinstance(meta, dict):
            raise BadBatch(f"impossible header (n={n}, k={k})")
        if len(blob) - start - head_len < n * k * 8:
            raise BadBatch(f"{n} samples announced, fewer stored")
        header["meta"] = {int(i): m for i, m in meta.items()}
        if any(not 0 <= i < n or not isinstance(m, dict) for i, m in header["meta"].items()):
            raise BadBatch("metadata for a sample the batch does not hold")
    except BadBatch:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadBatch(f"unreadable header: {exc}") from exc
    flat = np.frombuffer(blob, dtype="<f8", offset=start + head_len, count=n * k)
    return header, [flat[i * n : (i + 1) * n] for i in range(k)]


def in_time_order(batch: ColumnBatch) -> ColumnBatch:
    """The batch sorted by time, stably (threads interleave their appends; batches of several
    processes overlap): readers promise oldest first, and cutting by span needs the order."""
    ts = batch.columns[0]
    if ts.size < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return batch
    order = np.argsort(ts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    meta = {int(rank[i]): m for i, m in batch.meta.items()} if batch.meta else None
    columns = tuple(np.asarray(c)[order] for c in batch.columns)
    return ColumnBatch(batch.kind, batch.series, columns, batch.unit, meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def record_columns(value: bytes | str) -> dict[str, Any]:
    """A record batch as columns (numpy arrays where numeric), however it was written.

    A flush writes a JSON list of rows, a few at a time. Compaction writes the columnar batch
    format, numbers as packed float64 and the rest as JSON in the header: a week of resource
    samples then reads in a fraction of the time JSON number parsing takes.
    """
    if isinstance(value, bytes):
        header, arrays = decode_columns(value)
        try:
            columns: dict[str, Any] = dict(header.get("text", {}))
            ints = set(header.get("ints", ()))
            for name, array in zip(header["names"], arrays, strict=True):
                columns[name] = array.astype(np.int64) if name in ints else array
        except (ValueError, TypeError, KeyError) as exc:
            raise BadBatch(f"unreadable record columns: {exc}") from exc
    else:
        try:
            data = json.loads(value)
        except (ValueError, TypeError) as exc:
            raise BadBatch(f"not JSON records: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise BadBatch("not JSON records")
        keys = list(dict.fromkeys(key for row in data for key in row))
        columns = {key: [row.get(key) for row in data] for key in keys}
    size = len(columns.get("ts", ()))
    if "ts" not in columns or any(len(column) != size for column in columns.values()):
        raise BadBatch("records without a time for every row")
    try:
        stamps = np.asarray(columns["ts"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadBatch(f"records with a time that is not a number: {exc}") from exc
    if not np.all(np.isfinite(stamps)):
        raise BadBatch("records with a missing or non-finite time")
    return columns


def _encode_records(kind: str, series: str, columns: dict[str, list[Any]]) -> bytes:
    numeric = [
        n for n, values in columns.items() if all(v is None or _is_number(v) for v in values)
    ]
    ints = [
        n
        for n in numeric
        if all(isinstance(v, int) and not isinstance(v, bool) for v in columns[n])
    ]
    arrays = tuple(
        np.array([np.nan if v is None else v for v in columns[n]], dtype=np.float64)
        for n in numeric
    )
    text = {n: values for n, values in columns.items() if n not in numeric}
    extra = {"names": numeric, "ints": ints, "text": text}
    return encode_columns(ColumnBatch(kind, series, arrays), extra)


def decodes(kind: str, value: Any) -> bool:
    """Whether a stored value is a batch of ours that compaction can merge."""
    try:
        if kind in COLUMNAR_KINDS:
            if len(decode_columns(value)[1]) != COLUMN_WIDTHS[kind]:
                return False
        else:
            record_columns(value)
    except BadBatch:
        return False
    return True


def merged_records(kind: str, series: str, values: list[bytes | str]) -> tuple[bytes, float, float]:
    """One columnar record batch from several, in time order; its first and newest times."""
    parts = [record_columns(value) for value in values]
    keys = list(dict.fromkeys(key for part in parts for key in part))
    joined: dict[str, list[Any]] = {key: [] for key in keys}
    for part in parts:
        size = len(part["ts"])
        for key in keys:
            column = part.get(key, [None] * size)
            joined[key].extend(plain(v) for v in column)
    order = sorted(range(len(joined["ts"])), key=lambda i: float(joined["ts"][i]))
    columns = {key: [column[i] for i in order] for key, column in joined.items()}
    return _encode_records(kind, series, columns), float(columns["ts"][0]), float(columns["ts"][-1])


def plain(value: Any) -> Any:
    """A numpy scalar as the JSON value it was written as (NaN stood for None)."""
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def merged_columns(kind: str, series: str, blobs: list[bytes]) -> tuple[bytes, float, float]:
    """One encoded batch from several, in time order; with its first and newest timestamps."""
    columns: list[list[np.ndarray]] = []
    meta: dict[int, dict[str, Any]] = {}
    unit, offset = "", 0
    for blob in blobs:
        header, parts = decode_columns(blob)
        unit = header.get("unit", unit)
        for index, item in header["meta"].items():
            meta[offset + index] = item
        columns.append(parts)
        offset += int(parts[0].size)
    width = len(columns[0])
    joined = tuple(np.concatenate([c[i] for c in columns]) for i in range(width))
    batch = in_time_order(ColumnBatch(kind, series, joined, unit, meta or None))
    stamps = batch.columns[0]
    return encode_columns(batch), float(stamps.min()), float(stamps.max())


def split_by_span(ts: np.ndarray) -> list[slice]:
    """Cut a batch where it would span more than MAX_BATCH_SPAN_S (a rare, long pause)."""
    if ts.size == 0 or float(ts.max() - ts.min()) <= MAX_BATCH_SPAN_S:
        return [slice(0, ts.size)]
    cuts, start = [], 0  # ts is in order here: in_time_order sorted it
    for i in range(1, ts.size):
        if ts[i] - ts[start] > MAX_BATCH_SPAN_S:
            cuts.append(slice(start, i))
            start = i
    cuts.append(slice(start, ts.size))
    return cuts
