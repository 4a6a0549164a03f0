"""Timing helpers shared by the benchmarks: best-of-N loops and a printed comparison table."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One measured figure beside a peer's (or a goal when there is no peer)."""

    what: str
    ours: float
    unit: str
    peer_name: str = ""
    peer: float | None = None
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.peer if self.peer else None


def per_call_ns(body: Callable[[int], None], calls: int, repeats: int = 5) -> float:
    """Nanoseconds per call of ``body(calls)`` (which loops ``calls`` times), best of repeats."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        body(calls)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def seconds(body: Callable[[], object], repeats: int = 5) -> float:
    """Best wall seconds of ``body()`` over repeats."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        body()
        best = min(best, time.perf_counter() - start)
    return best


def table(rows: list[Row]) -> str:
    """A Markdown table: each figure, the peer's, their ratio and the goal."""
    lines = [
        "| measurement | ptpd-monitor | peer | peer figure | ratio (ours/peer) | goal |",
        "|---|---:|---|---:|---:|---|",
    ]
    for row in rows:
        peer = f"{row.peer:,.3g} {row.unit}" if row.peer is not None else "–"
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "–"
        lines.append(
            f"| {row.what} | {row.ours:,.3g} {row.unit} | {row.peer_name or '–'} | {peer} "
            f"| {ratio} | {row.goal} |"
        )
    return "\n".join(lines)
