"""The disk cache shared by real processes: what one sets, another reads, and it outlives them.

Each child is a fresh interpreter (``sys.executable -c``) on a cache folder under ``tmp_path``;
the environment comes from the conftest, so no child touches the user's folders.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptpd_calibration.monitoring.cache import CacheManager

_PRELUDE = """
import json, os, sys
import numpy as np
from ptpd_calibration.monitoring.cache import CacheManager
directory = sys.argv[1]
"""


def _run_child(code: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``code`` in a new interpreter (cwd: no stray ``.env`` is read)."""
    script = _PRELUDE + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(child: subprocess.Popen[str]) -> Any:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out)


def test_one_process_sets_another_reads_and_entries_outlive_the_writer(tmp_path: Path) -> None:
    directory = tmp_path / "shared-cache"
    writer = _run_child(
        """
        cache = CacheManager(100, 3600, "disk", directory=directory)
        cache.set("curve:pt50", {"dmax": 1.58, "points": [0.0, 0.42, 1.0]})
        cache.set("lut", np.arange(256, dtype=np.uint16))
        cache.set("short", "gone soon", ttl=0.001)
        print(json.dumps({"pid": os.getpid(), "size": len(cache)}))
        """,
        str(directory),
        cwd=tmp_path,
    )
    written = _result(writer)
    assert written["size"] == 3

    reader = _run_child(
        """
        # Starting this interpreter took far longer than the 1 ms that "short" lives.
        cache = CacheManager(100, 3600, "disk", directory=directory)
        lut = cache.get("lut")
        result = {
            "pid": os.getpid(),
            "curve": cache.get("curve:pt50"),
            "lut_sum": int(lut.sum()),
            "lut_dtype": str(lut.dtype),
            "short": cache.get("short", "expired"),
        }
        stats = cache.get_stats()
        print(json.dumps({**result, "hits": stats.hits, "misses": stats.misses}))
        """,
        str(directory),
        cwd=tmp_path,
    )
    read = _result(reader)
    assert read["pid"] != written["pid"]
    assert read["curve"] == {"dmax": 1.58, "points": [0.0, 0.42, 1.0]}
    assert (read["lut_sum"], read["lut_dtype"]) == (sum(range(256)), "uint16")
    assert read["short"] == "expired"
    assert (read["hits"], read["misses"]) == (2, 1)  # counters are per process

    # Both children have exited; the entry is still there for this process too.
    here = CacheManager(100, 3600, "disk", directory=directory)
    assert here.get("curve:pt50") == {"dmax": 1.58, "points": [0.0, 0.42, 1.0]}
    np.testing.assert_array_equal(here.get("lut"), np.arange(256, dtype=np.uint16))


def test_processes_setting_at_once_keep_the_bound_and_the_counts(tmp_path: Path) -> None:
    directory = tmp_path / "shared-cache"
    per_process, max_size = 150, 40
    code = """
        worker = sys.argv[2]
        cache = CacheManager(int(sys.argv[3]), 3600, "disk", directory=directory)
        for i in range(int(sys.argv[4])):
            cache.set(f"{worker}:{i}", [worker, i])
            assert cache.get(f"{worker}:{i}") in (None, [worker, i])
        print(json.dumps({"evictions": cache.get_stats().evictions}))
        """
    children = [
        _run_child(code, str(directory), name, str(max_size), str(per_process), cwd=tmp_path)
        for name in ("a", "b")
    ]
    evictions = sum(_result(child)["evictions"] for child in children)

    cache = CacheManager(max_size, 3600, "disk", directory=directory)
    size = len(cache)
    assert size == max_size
    # Every key was set once, nothing expired: each missing one was evicted by exactly one process.
    assert evictions == 2 * per_process - size


# The cache a forked child inherits (a module global: fork copies it, nothing is pickled).
_FORKED: list[CacheManager] = []


def _child_counters(queue: multiprocessing.Queue[Any]) -> None:
    cache = _FORKED[0]
    queue.put((cache.get_stats().hits, cache.get("k"), cache.get_stats().hits))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_child_counts_from_zero() -> None:
    cache = CacheManager(10, 3600, "memory")
    cache.set("k", "v")
    cache.get("k")
    cache.get("k")
    _FORKED[:] = [cache]
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[Any] = context.Queue()
    child = context.Process(target=_child_counters, args=(queue,))
    child.start()
    try:
        before, value, after = queue.get(timeout=60)
    finally:
        child.join(timeout=60)
        _FORKED.clear()
    assert child.exitcode == 0
    assert (before, value, after) == (0, "v", 1)  # the parent's two hits stay the parent's
    assert cache.get_stats().hits == 2
