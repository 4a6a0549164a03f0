"""Cache: hit rate over time, hits/misses/evictions/expirations, size against max size."""

from __future__ import annotations

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import current_window, empty_state, guarded, store_in_use
from ptpd_calibration.dashboard.readers import cached_cache_stats
from ptpd_calibration.dashboard.transforms import bucket_seconds, cache_buckets, cache_totals

st.title("Cache")
store = store_in_use()
window = current_window()
with guarded("the cache page"):
    if not empty_state(store, "cache"):
        snapshots = cached_cache_stats(str(store.directory), window.since, window.until)
        totals = cache_totals(snapshots)
        if totals.empty:
            st.info(
                f"No cache statistics in the last {window.label}; `get_cache()` publishes "
                "them while the app uses it."
            )
        else:
            for row in totals.to_dict("records"):
                st.subheader(f"Cache `{row['cache']}`")
                a, b, c, d, e = st.columns(5)
                a.metric("Hit rate", f"{row['hit_rate']:.1%}")
                b.metric("Hits / misses", f"{int(row['hits']):,} / {int(row['misses']):,}")
                c.metric("Evictions", f"{int(row['evictions']):,}")
                d.metric("Expirations", f"{int(row['expirations']):,}")
                e.metric("Size", f"{int(row['size']):,} of {int(row['max_size']):,}")
                st.progress(
                    min(int(row["size"]) / max(int(row["max_size"]), 1), 1.0),
                    text=f"{row['processes']} process(es)",
                )
            buckets = cache_buckets(snapshots, bucket_seconds(window.seconds))
            st.plotly_chart(charts.cache_hit_rate_lines(buckets), key="cache_rate")
