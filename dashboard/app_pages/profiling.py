"""Image profiling: drop an image, run the negative pipeline N times, see where the time goes."""

from __future__ import annotations

import hashlib

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import (
    current_window,
    empty_state,
    guarded,
    progress_callback,
    store_in_use,
)
from ptpd_calibration.dashboard.data import cached_monitor
from ptpd_calibration.dashboard.upload import UploadProfile, profile_upload, step_operations
from ptpd_calibration.monitoring import flush
from ptpd_calibration.monitoring.imaging import PRINT_SIZES, ImageInputError, preview_png
from ptpd_calibration.monitoring.profiler import rank_bottlenecks

st.title("Image profiling")
st.caption(
    "The reference platinum/palladium negative pipeline: decode, 16-bit luminance, resize to "
    "the print size, tone curve through a lookup table, invert, zone histogram, 16-bit TIFF."
)
upload = st.file_uploader(
    "Drop an image (PNG, JPEG, TIFF incl. 16-bit)",
    type=["png", "jpg", "jpeg", "tif", "tiff", "gif", "bmp", "webp"],
    key="profiling_upload",
)
left, middle, right = st.columns(3)
runs = left.slider("Runs", 1, 10, 3, key="profiling_runs")
size_label = middle.selectbox("Print size", list(PRINT_SIZES), index=0, key="profiling_size")
batch = right.number_input("Batch size to estimate", 1, 10_000, 24, key="profiling_batch")
gamma = st.slider("Tone curve gamma", 0.5, 2.5, 1.0, 0.05, key="profiling_gamma")

if upload is not None and st.button("Profile", type="primary", key="profiling_run"):
    data = upload.getvalue()
    bar = st.progress(0, text="Profiling…")
    try:
        outcome = profile_upload(
            data,
            runs=runs,
            long_edge_px=PRINT_SIZES[size_label],
            gamma=gamma,
            batch_size=int(batch),
            progress=progress_callback(bar, "Profiling…"),
        )
    except ImageInputError as exc:
        st.session_state.pop("profiling_outcome", None)
        st.error(f"`{upload.name}` can't be profiled: {exc}")
    except MemoryError:
        st.session_state.pop("profiling_outcome", None)
        st.error(f"`{upload.name}` is too large to process in the memory available.")
    else:
        digest = hashlib.sha256(data).hexdigest()[:12]
        st.session_state["profiling_outcome"] = (upload.name, digest, outcome)
        flush()  # so the ranking across uploads below already includes this one
        st.cache_data.clear()
        cached_monitor.clear()

stored = st.session_state.get("profiling_outcome")
if stored is not None:
    name, digest, outcome = stored
    assert isinstance(outcome, UploadProfile)
    result = outcome.result
    st.success(
        f"`{name}`: {result.source_size[0]}×{result.source_size[1]} {result.source_mode} → "
        f"{result.output_size[0]}×{result.output_size[1]} negative, {outcome.runs} run(s)."
    )
    st.subheader("Per step (median of the runs)")
    st.dataframe(outcome.steps, hide_index=True, width="stretch")
    st.subheader("Bottleneck ranking")
    st.plotly_chart(charts.bottleneck_bar(outcome.ranking), key="profiling_ranking")
    if outcome.batch_estimate_s is not None:
        st.metric(
            f"Estimated time for a batch of {int(batch)} such images",
            f"{outcome.batch_estimate_s:.1f} s",
        )
    preview, facts = st.columns([2, 1])
    preview.image(preview_png(result.negative), caption="The negative (preview)")
    facts.write("Zone histogram of the print")
    facts.bar_chart(result.histogram)
    facts.download_button(
        "Download the negative (16-bit TIFF)",
        result.negative_tiff,
        file_name=f"negative-{digest}.tif",
        mime="image/tiff",
        key="profiling_download",
    )

st.divider()
st.subheader("Ranking across uploads")
store = store_in_use()
window = current_window()
with guarded("the ranking history"):
    if not empty_state(store, "profiling"):
        monitor = cached_monitor(str(store.directory), window.since, window.until)
        history = rank_bottlenecks(monitor, step_operations())
        if history:
            st.plotly_chart(charts.bottleneck_bar(history), key="profiling_history")
        else:
            st.caption(f"No pipeline runs in the last {window.label} yet.")
