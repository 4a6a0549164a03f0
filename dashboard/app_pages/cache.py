"""Cache: hit rate over time, hits, misses, evictions, expirations, size against max size."""

from __future__ import annotations

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.readers import cached_cache_stats
from ptpd_calibration.dashboard.transforms import cache_buckets, cache_totals, time_grid

st.title("Cache")
store = store_in_use()
window = current_window()
with guarded("the cache page"):
    if not empty_state(store, "cache"):
        snapshots = cached_cache_stats(str(store.directory), window.since, window.until)
        totals = cache_totals(snapshots)
        if totals.empty:
            st.info(
                f"No cache statistics {window.within}; `get_cache()` publishes "
                "them while the app uses it."
            )
        else:
            for row in totals.to_dict("records"):
                st.subheader(f"Cache `{row['cache']}`")
                # Two rows of three: a count of six digits and more still fits its column.
                a, b, c = st.columns(3)
                a.metric("Hit rate", f"{100 * row['hit_rate']:.1f} %")
                b.metric("Hits", f"{int(row['hits']):,}")
                c.metric("Misses", f"{int(row['misses']):,}")
                d, e, f = st.columns(3)
                d.metric("Evictions", f"{int(row['evictions']):,}")
                e.metric("Expirations", f"{int(row['expirations']):,}")
                processes = int(row["processes"])
                f.metric(
                    "Processes",
                    f"{processes:,}",
                    help="Processes whose cache published in this window; the numbers above "
                    "are their sums.",
                )
                size, max_size = int(row["size"]), int(row["max_size"])
                # How full the cache is: a fill level in the theme's colour, full being normal
                # for a warm cache (evictions tell when it is too small).
                st.progress(
                    min(size / max(max_size, 1), 1.0),
                    text=f"size {size:,} of {max_size:,}",
                )
            # Each process publishes its cache on its own rhythm: their intervals count apart.
            publishers = snapshots["cache"].astype(str) + "/" + snapshots["pid"].astype(str)
            grid = time_grid(snapshots["timestamp"], window.since, window.until, keys=publishers)
            if grid is not None:
                st.plotly_chart(
                    charts.cache_hit_rate_lines(cache_buckets(snapshots, grid), grid=grid),
                    key="cache_rate",
                )
