"""Image profiling: drop an image, run the negative pipeline N times, see where the time goes."""

from __future__ import annotations

import streamlit as st

from ptpd_calibration.dashboard import charts
from ptpd_calibration.dashboard.components import (
    current_window,
    empty_state,
    guarded,
    store_in_use,
)
from ptpd_calibration.dashboard.readers import cached_profiles, invalidate
from ptpd_calibration.dashboard.upload import (
    SIZE_CLASSES,
    BatchEstimate,
    UploadProfile,
    UploadRanking,
    profile_upload,
    rank_uploads,
)
from ptpd_calibration.monitoring import flush
from ptpd_calibration.monitoring.imaging import MAX_IMAGE_SETTING, PRINT_SIZES, ImageInputError
from ptpd_calibration.monitoring.settings import get_settings

_OUTCOME = "profiling_outcome"

st.title("Image profiling")
st.caption(
    "The reference platinum/palladium negative pipeline: decode, 16-bit luminance, resize to "
    "the print size, tone curve through a lookup table, invert, zone histogram, 16-bit TIFF."
)
limit_mp = get_settings().MAX_IMAGE_MEGAPIXELS
upload = st.file_uploader(
    "Drop an image (PNG, JPEG, TIFF incl. 16-bit)",
    type=["png", "jpg", "jpeg", "tif", "tiff", "gif", "bmp", "webp"],
    key="profiling_upload",
    help=f"Images up to {limit_mp:g} megapixels ({MAX_IMAGE_SETTING}). 16-bit files are "
    "profiled at 16 bits a channel.",
)
left, middle, right = st.columns(3)
runs = left.slider("Runs", 1, 10, 3, key="profiling_runs")
size_label = middle.selectbox("Print size", list(PRINT_SIZES), index=0, key="profiling_size")
batch = right.number_input("Batch size to estimate", 1, 10_000, 24, key="profiling_batch")
gamma = st.slider("Tone curve gamma", 0.5, 2.5, 1.0, 0.05, key="profiling_gamma")

if upload is not None and st.button("Profile", type="primary", key="profiling_run"):
    # The previous result goes first: its preview and negative need not outlive this run.
    st.session_state.pop(_OUTCOME, None)
    slot = st.empty()
    bar = slot.progress(0, text="Profiling…")

    def show_progress(fraction: float, text: str) -> None:
        bar.progress(min(100, int(fraction * 100)), text=text)

    try:
        outcome = profile_upload(
            upload.getvalue(),
            runs=runs,
            long_edge_px=PRINT_SIZES[size_label],
            gamma=gamma,
            batch_size=int(batch),
            progress=show_progress,
            name=upload.name,
        )
    except ImageInputError as exc:
        st.error(f"`{upload.name}` can't be profiled: {exc}")
    except MemoryError:
        st.error(f"`{upload.name}` is too large to process in the memory available.")
    else:
        st.session_state[_OUTCOME] = (upload.file_id, outcome)
        flush()  # so the ranking across uploads below already includes this one
        invalidate()
    finally:
        slot.empty()  # the bar has reached 100 %: it goes


def _batch_caption(estimate: BatchEstimate) -> str:
    if estimate.p10_s is None or estimate.p90_s is None:
        return "From one run, which gives no range: profile with more runs to see the spread."
    return (
        f"Median of {estimate.runs} runs; p10–p90 range {estimate.p10_s:.1f}–"
        f"{estimate.p90_s:.1f} s."
    )


stored = st.session_state.get(_OUTCOME)
if isinstance(stored, tuple) and isinstance(stored[1], UploadProfile):
    profiled_file, outcome = stored
    (sw, sh), (ow, oh) = outcome.source_size, outcome.output_size
    st.success(
        f"`{outcome.name}`: {sw}×{sh} {outcome.source_description} → {ow}×{oh} negative, "
        f"{outcome.runs} run(s)."
    )
    if outcome.upscale > 2:
        st.warning(
            f"The image is upscaled {outcome.upscale:.3g}× ({sw}×{sh} → {ow}×{oh}) to reach "
            f"{size_label}: the negative will be soft, and the resize and later steps are timed "
            "on pixels the image does not have."
        )
    st.subheader("Per step (median of the runs)")
    st.dataframe(outcome.steps, hide_index=True, width="stretch")
    st.caption("Peak memory: the most the step allocated at once, in the worst run.")
    st.subheader("Bottleneck ranking")
    st.plotly_chart(charts.bottleneck_bar(outcome.ranking), key="profiling_ranking")
    if outcome.batch is not None:
        st.metric(
            f"Estimated time for a batch of {outcome.batch.batch_size} such images",
            f"{outcome.batch.median_s:.1f} s",
        )
        st.caption(_batch_caption(outcome.batch))
    preview, facts = st.columns([2, 1])
    preview.image(outcome.preview_png, caption="The negative (preview)")
    facts.write("Zone histogram of the print")
    facts.bar_chart(outcome.histogram)
    if upload is not None and upload.file_id == profiled_file:
        source = upload  # the upload the widget holds anyway: no copy is kept for this

        def negative() -> bytes:
            return outcome.negative_tiff(source.getvalue())

        facts.download_button(
            "Download the negative (16-bit TIFF)",
            negative,  # made when clicked: the session keeps no negative
            file_name=f"negative-{outcome.upload_id}.tif",
            mime="image/tiff",
            key="profiling_download",
        )
    else:
        facts.caption("The upload has changed: profile it again to download its negative.")


def _ranking_note(label: str) -> str:
    classes = ", ".join(name for _, name in SIZE_CLASSES)
    return (
        f"{label} in the last {window.label}. Each step's time is divided by the megapixels it "
        "works on, so small and large images compare; a step is unstable (amber) when its p90 "
        f"is 1.5× its median among at least 5 runs of one size class ({classes})."
    )


def _show_ranking(ranking: UploadRanking, title: str, key: str, label: str) -> None:
    figure = charts.bottleneck_bar(ranking.ranking)
    figure.update_layout(
        title=f"{title}, per megapixel (label: p90/median within a size class; amber: unstable)",
        xaxis_title="share of the time per megapixel (%)",
    )
    st.plotly_chart(figure, key=key)
    st.caption(_ranking_note(label))
    st.write("Median milliseconds per megapixel, by image size")
    st.dataframe(ranking.by_size, width="stretch")


st.divider()
st.subheader("Ranking across uploads")
store = store_in_use()
window = current_window()
with guarded("the ranking across uploads"):
    if not empty_state(store, "profiling"):
        profiles = cached_profiles(str(store.directory), window.since, window.until)
        uploads = rank_uploads(profiles)
        if uploads.ranking:
            _show_ranking(
                uploads,
                "Bottlenecks across uploads",
                "profiling_history",
                f"{uploads.uploads} upload(s), {uploads.runs} pipeline run(s)",
            )
        else:
            st.caption(f"No uploads profiled in the last {window.label} yet.")
        if uploads.left_out:
            others = rank_uploads(profiles, uploads=False)
            st.subheader("Demo and app runs")
            st.caption(
                "Pipeline runs that were not uploads on this page (the demo's, the app's): "
                "ranked on their own, never mixed into the uploads above."
            )
            _show_ranking(
                others,
                "Bottlenecks of the demo and app runs",
                "profiling_other_runs",
                f"{others.runs} pipeline run(s)",
            )
