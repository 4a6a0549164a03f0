"""``python -m bench``: run every benchmark and print one Markdown table for BENCHMARKS.md."""

from __future__ import annotations

import platform
import sys
from datetime import date

import psutil

from bench import core, dashboard, flush_rate, idle, reliability
from bench._harness import table


def main() -> None:
    cpu = platform.processor() or platform.machine()
    print(
        f"# ptpd-monitor benchmarks, {date.today()}: Python {platform.python_version()}, "
        f"{psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB\n"
    )
    print("## Core\n")
    print(table(core.run()), flush=True)
    print("\n## Sustained rate: one thread recording, the background flusher writing\n")
    flush_rate.main()
    print("\n## Reliability: real processes, real kills\n", flush=True)
    if reliability.main([]) != 0:
        sys.exit(1)
    if "--core" not in sys.argv:
        print("\n## Dashboard and pipeline\n")
        print(table(dashboard.run() + idle.run(seconds=300.0)))


main()
