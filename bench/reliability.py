"""``python -m bench.reliability``: the sample store under SIGKILL and load, at full size.

Runs the scenarios of ``tests/integration/test_store_crashes.py`` (the processes and rounds
live in ``tests/integration/_crash_child.py``) with more rounds, and prints one Markdown table:
samples lost, duplicated, ``check()`` failures, and the worst loss of a process killed while it
recorded and flushed (its unflushed tail, in samples and in seconds of recording).

- compaction kill: a child compacts a copy of a store of 540 metric batches (108,000 samples,
  some with metadata) and 180 record batches over 3 past hours, and is SIGKILLed at a delay
  drawn uniformly within one compaction's duration; this process then checks the survivor
  value by value, compacts it itself and checks again.
- flush kill: a child records bursts of unique values through ``PerformanceMonitor(store=...)``
  and flushes every 50 ms, and is SIGKILLed after 0–0.5 s; every round writes to one store.
- first write: a child's first write to a new store is SIGKILLed within its duration; the
  survivor must read as a (possibly empty) store and take writes.
- reader during compaction: a child compacts a copy over and over while another writes into the
  same hours and this process reads every series in a loop; a count may never fall.
- 8 × 4 × 25k: 8 fresh interpreters × 4 threads × 25,000 unique samples through the default
  background flusher, then a normal exit.

Options: ``--rounds N`` (kill rounds per scenario, default 50), ``--reader-rounds N``
(default 10), ``--seed N``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType

import numpy as np

_HELPER = Path(__file__).resolve().parent.parent / "tests" / "integration" / "_crash_child.py"
FLUSH_EVERY_S = 0.05
FLUSH_KILL_WITHIN_S = 0.5


def _helper() -> ModuleType:
    name = "_crash_child"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HELPER)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {_HELPER}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file runs
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class Line:
    """One scenario's row of the table."""

    scenario: str
    rounds: int
    checked: int  # samples (and records) compared with what must be there
    lost: int
    duplicated: int
    check_failures: int  # rounds where check() reported a problem (or raised)
    worst_loss: str = "–"
    notes: str = ""


def _compaction(crash: ModuleType, root: Path, rounds: int, rng: np.random.Generator) -> Line:
    template = crash.build_template(root / "template")
    duration = crash.compaction_duration(template, root)
    states: dict[str, int] = {}
    lost = duplicated = failures = torn = resumed_whole = 0
    for i, delay in enumerate(crash.uniform_delays(rng, rounds, duration)):
        r = crash.compaction_kill_round(template, root / f"kill-{i}", delay, resume=True)
        states[r.state] = states.get(r.state, 0) + 1
        for tally in (r.after_kill, r.resumed):
            lost += tally.lost + tally.unexpected + tally.records_lost
            duplicated += tally.duplicated + tally.records_duplicated
            torn += tally.torn + tally.records_changed
        failures += bool(r.after_kill.problems or r.resumed.problems)
        resumed_whole += r.resumed_rows == template.compacted_rows
    per_round = template.samples + len(template.records)
    state_text = ", ".join(f"{states.get(s, 0)} {s}" for s in ("untouched", "partial", "compacted"))
    return Line(
        "SIGKILL during compaction",
        rounds,
        2 * rounds * per_round,
        lost,
        duplicated,
        failures,
        notes=(
            f"compaction {duration * 1000:.0f} ms, {template.rows} → {template.compacted_rows} "
            f"rows; after the kill: {state_text}; a later compact() finished "
            f"{resumed_whole}/{rounds}; samples torn from their time or metadata: {torn}"
        ),
    )


def _flush(crash: ModuleType, root: Path, rounds: int, rng: np.random.Generator) -> Line:
    directory = root / "flush-store"
    earlier: dict[int, int] = {}
    lost_committed = duplicated = failures = gaps = beyond = dropped = tail = 0
    worst, worst_s = 0, 0.0
    problems: list[str] = []
    for i, delay in enumerate(crash.uniform_delays(rng, rounds, FLUSH_KILL_WITHIN_S)):
        r = crash.flush_kill_round(directory, i, delay, FLUSH_EVERY_S, earlier)
        lost_committed += r.lost_committed + r.earlier_changed
        duplicated += r.duplicated
        failures += bool(r.problems)
        problems.extend(f"round {i}: {p}" for p in r.problems[:1])
        gaps += r.gaps
        beyond += r.lost > r.recorded - r.committed
        dropped += r.child_dropped
        tail += r.lost
        worst, worst_s = max(worst, r.lost), max(worst_s, r.lost_s)
    notes = (
        f"flush every {FLUSH_EVERY_S * 1000:.0f} ms, kill within {FLUSH_KILL_WITHIN_S} s; "
        f"unflushed tails lost in all: {tail:,}; rounds losing more than their tail: {beyond}; "
        f"gaps: {gaps}; dropped_samples: {dropped}"
    )
    if problems:
        notes += f"; first problem: {problems[0][:160]}"
    return Line(
        "SIGKILL during flushes",
        rounds,
        sum(earlier.values()),
        lost_committed,
        duplicated,
        failures,
        worst_loss=f"{worst:,} samples, {worst_s * 1000:.0f} ms",
        notes=notes,
    )


def _first_open(crash: ModuleType, root: Path, rounds: int, rng: np.random.Generator) -> Line:
    duration = crash.first_write_duration(root)
    refused = moved = unwritable = headless = read_back = 0
    problems: list[str] = []
    for i, delay in enumerate(crash.uniform_delays(rng, rounds, duration)):
        r = crash.first_open_kill_round(root / f"first-{i}", delay)
        refused += bool(r.problems)
        problems.extend(r.problems[:1])
        moved += r.moved_aside
        unwritable += not r.written or r.read_back < 1
        read_back += r.read_back
        headless += r.files.get("cache.db", -1) == 0
    notes = (
        f"first write {duration * 1000:.0f} ms; kills leaving a 0-byte database: {headless}; "
        f"stores readers then refused: {refused}; moved aside as damaged by the next writer: "
        f"{moved}; not writable afterwards: {unwritable}"
    )
    if problems:
        notes += f"; e.g. {problems[0][:120]}"
    name = "SIGKILL in a new store's first write"
    return Line(name, rounds, read_back, unwritable, 0, refused, notes=notes)


def _reader(crash: ModuleType, root: Path, rounds: int) -> Line:
    template = crash.build_template(root / "reader-template")
    reads = falls = passes = merged = lost = duplicated = failures = checked = errors = 0
    for i in range(rounds):
        r = crash.reader_round(template, root / f"reader-{i}", writer_batches=150)
        reads, falls, passes = reads + r.reads, falls + r.falls, passes + r.passes
        merged += r.merged
        lost += r.lost  # missing or foreign values, against the template and the writer's
        duplicated += r.duplicated
        failures += bool(r.problems)
        errors += r.compact_errors
        checked += sum(r.final_counts.values())
    return Line(
        "reader during compaction + writer",
        rounds,
        checked,
        lost,
        duplicated,
        failures,
        notes=(
            f"{reads:,} reads over {passes} compactions ({merged:,} batches merged away); "
            f"a count fell {falls} times; compaction errors: {errors}"
        ),
    )


def _load(crash: ModuleType, root: Path, processes: int, threads: int, samples: int) -> Line:
    r = crash.run_load(root / "load-store", processes, threads, samples)
    dropped = sum(c["dropped_samples"] + c["monitor_dropped"] for c in r.children)
    waiting = sum(c["waiting_samples"] for c in r.children)
    errors = sum(c["error_count"] for c in r.children)
    return Line(
        f"{processes} processes × {threads} threads × {samples:,}",
        1,
        r.expected,
        r.lost + r.unexpected,
        r.duplicated,
        int(bool(r.problems)),
        notes=(
            f"{r.present:,} of {r.expected:,} read back in one store, {r.seconds:.1f} s; "
            f"children's dropped_samples: {dropped}, left waiting at exit: {waiting}, "
            f"write errors: {errors}"
        ),
    )


def table(lines: list[Line]) -> str:
    out = [
        "| scenario | rounds | samples checked | lost | duplicated | check() failures "
        "| worst flush-kill loss | notes |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for line in lines:
        out.append(
            f"| {line.scenario} | {line.rounds} | {line.checked:,} | {line.lost:,} "
            f"| {line.duplicated:,} | {line.check_failures} | {line.worst_loss} | {line.notes} |"
        )
    return "\n".join(out)


def _run(name: str, body: Callable[[], Line]) -> Line:
    start = time.perf_counter()
    try:
        line = body()
    except Exception as exc:  # one broken scenario must not hide the others' figures
        traceback.print_exc()
        return Line(name, 0, 0, 0, 0, 0, notes=f"**failed**: {type(exc).__name__}: {exc}")
    print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50, help="kill rounds per scenario")
    parser.add_argument("--reader-rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20_251_130)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--samples", type=int, default=25_000, help="per thread")
    args = parser.parse_args(argv)
    crash = _helper()
    rng = np.random.default_rng(args.seed)
    print(
        f"# ptpd-monitor store reliability, {date.today()}: Python "
        f"{platform.python_version()}, {os.cpu_count()} cores, seed {args.seed}\n"
    )
    with tempfile.TemporaryDirectory(prefix="ptpd-reliability-") as folder:
        root = Path(folder)
        lines = [
            _run("SIGKILL during compaction", lambda: _compaction(crash, root, args.rounds, rng)),
            _run("SIGKILL during flushes", lambda: _flush(crash, root, args.rounds, rng)),
            _run("SIGKILL in a first write", lambda: _first_open(crash, root, args.rounds, rng)),
            _run("reader during compaction", lambda: _reader(crash, root, args.reader_rounds)),
            _run(
                "many processes",
                lambda: _load(crash, root, args.processes, args.threads, args.samples),
            ),
        ]
    print(table(lines), flush=True)
    bad = any(
        line.lost or line.duplicated or line.check_failures or not line.rounds for line in lines
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
