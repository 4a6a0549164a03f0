"""Profiling an uploaded image through the reference negative pipeline, all runs or nothing.

A session keeps only what the page shows: the tables and a small preview. The decoded upload
and the pipeline's arrays, the negative included, are released when the run ends (the
download makes the negative again from the upload, when it is clicked), and the heap memory
they freed is handed back to the system, so a server that profiled large files does not stay
large.

Profiles published to the store are tagged ``source="upload"`` with the source image's pixel
count, so the ranking across uploads counts uploads only (not the demo's or the app's runs)
and compares them per megapixel, judging instability within one size class.
"""

from __future__ import annotations

import ctypes
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from ptpd_calibration.monitoring import get_profiler
from ptpd_calibration.monitoring.imaging import (
    PIPELINE_STEPS,
    PipelineResult,
    preview_png,
    run_pipeline,
)
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler

__all__ = [
    "SIZE_CLASSES",
    "UPLOAD_SOURCE",
    "BatchEstimate",
    "UploadProfile",
    "UploadRanking",
    "profile_upload",
    "rank_uploads",
    "size_class",
    "step_operations",
]

#: The ``source`` tag of profiles published from this page.
UPLOAD_SOURCE: Final = "upload"
#: Upper bounds (megapixels, exclusive) and names of the size classes uploads are judged in.
SIZE_CLASSES: Final[tuple[tuple[float, str], ...]] = (
    (1.0, "under 1 MP"),
    (10.0, "1–10 MP"),
    (30.0, "10–30 MP"),
    (100.0, "30–100 MP"),
    (math.inf, "100 MP and over"),
)
_PREVIEW_EDGE: Final = 800


def step_operations() -> list[str]:
    """The monitor's operation names of the pipeline steps, in pipeline order."""
    return [f"pipeline.{step}" for step in PIPELINE_STEPS]


def size_class(pixels: float) -> str:
    """The size class of an image of ``pixels`` pixels (see SIZE_CLASSES)."""
    megapixels = pixels / 1e6
    return next(name for bound, name in SIZE_CLASSES if megapixels < bound)


@dataclass(frozen=True)
class BatchEstimate:
    """Seconds a batch of such images would take: the median of the runs, and their range."""

    batch_size: int
    median_s: float
    p10_s: float | None  # None from one run: one run gives no range
    p90_s: float | None
    runs: int


@dataclass(frozen=True)
class UploadProfile:
    """What the page shows after profiling an upload, and nothing larger."""

    name: str
    source_size: tuple[int, int]
    output_size: tuple[int, int]
    source_mode: str
    source_description: str  # "16-bit RGB", ...
    steps: pd.DataFrame  # per step: median wall/CPU, peak memory, megapixels per second
    ranking: list[dict[str, Any]]  # identify_bottlenecks over this upload's runs
    batch: BatchEstimate | None
    runs: int
    preview_png: bytes  # 8-bit, at most 800 pixels on the long edge
    histogram: dict[str, float]
    upload_id: str
    long_edge_px: int  # what the negative was made with, to make it again for the download
    gamma: float

    @property
    def batch_estimate_s(self) -> float | None:
        """The median batch estimate (None without timings)."""
        return self.batch.median_s if self.batch is not None else None

    @property
    def upscale(self) -> float:
        """How many times longer the negative's long edge is than the source's."""
        return max(self.output_size) / max(1, max(self.source_size))

    def negative_tiff(self, data: bytes) -> bytes:
        """The negative of the upload ``data`` as profiled, as a 16-bit TIFF (made again)."""
        try:
            result = run_pipeline(data, long_edge_px=self.long_edge_px, gamma=self.gamma)
            return result.negative_tiff
        finally:
            release_memory()


def _step_table(profiles: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(profiles)
    rows = []
    for operation in step_operations():
        runs = frame[frame["operation"] == operation]
        if runs.empty:
            continue
        speeds = runs["megapixels_per_s"].dropna()
        rows.append(
            {
                "step": operation.removeprefix("pipeline."),
                "wall (ms)": 1000 * float(np.median(runs["wall_time_s"])),
                "CPU (ms)": 1000 * float(np.median(runs["cpu_time_s"])),
                "peak memory (MB)": float(runs["peak_memory_mb"].max()),
                "megapixels/s": float(np.median(speeds)) if len(speeds) else None,
            }
        )
    return pd.DataFrame(rows)


def _batch_estimate(profiles: list[dict[str, Any]], batch_size: int) -> BatchEstimate | None:
    """Each run's pipeline time times the batch: their median, and p10–p90 from two runs on."""
    steps = len(PIPELINE_STEPS)
    walls = [float(p["wall_time_s"]) for p in profiles]
    if not walls or len(walls) % steps:
        return None
    per_run = [batch_size * sum(walls[i : i + steps]) for i in range(0, len(walls), steps)]
    median = float(np.median(per_run))
    if len(per_run) < 2:
        return BatchEstimate(batch_size, median, None, None, 1)
    p10, p90 = (float(v) for v in np.percentile(per_run, [10, 90]))
    return BatchEstimate(batch_size, median, p10, p90, len(per_run))


_heap_trim: Callable[[int], int] | None = None


def release_memory() -> None:
    """Hand the heap memory freed by a run back to the system (glibc's ``malloc_trim``).

    glibc keeps freed memory for reuse, so without this a server that profiled a 100 MP scan
    stays that large for as long as it runs. Elsewhere it does nothing.
    """
    global _heap_trim
    if _heap_trim is None:
        try:
            trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            return
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
        _heap_trim = trim
    _heap_trim(0)


def _page_view(
    result: PipelineResult,
    profiles: list[dict[str, Any]],
    ranking: list[dict[str, Any]],
    name: str,
    upload_id: str,
    runs: int,
    batch_size: int,
    gamma: float,
) -> UploadProfile:
    return UploadProfile(
        name=name,
        source_size=result.source_size,
        output_size=result.output_size,
        source_mode=result.source_mode,
        source_description=result.source_description,
        steps=_step_table(profiles),
        ranking=ranking,
        batch=_batch_estimate(profiles, batch_size),
        runs=runs,
        preview_png=preview_png(result.negative, _PREVIEW_EDGE),
        histogram=dict(result.histogram),
        upload_id=upload_id,
        long_edge_px=max(result.output_size),
        gamma=gamma,
    )


def profile_upload(
    data: bytes,
    *,
    runs: int = 3,
    long_edge_px: int = 1800,
    gamma: float = 1.0,
    batch_size: int = 24,
    progress: Callable[[float, str], None] | None = None,
    name: str = "upload",
) -> UploadProfile:
    """Run the pipeline ``runs`` times; publish the timings only when every run succeeded.

    ``progress`` is called before each step with the fraction done and what runs now, and
    with 1.0 at the end. A failing run publishes the failed step's profile (its error) and
    re-raises, so the store gets an error, not the partial timings of a half-done run.
    """
    if not 1 <= runs <= 100:
        raise ValueError(f"runs must be between 1 and 100, got {runs}")
    local = ImageProcessingProfiler(PerformanceMonitor())
    shared = get_profiler()
    upload_id = uuid.uuid4().hex[:12]
    total_steps = runs * len(PIPELINE_STEPS)
    done = 0
    run = 0

    def profile_step(
        func: Callable[..., Any],
        *args: Any,
        operation_name: str,
        image_size: tuple[int, int] | None,
    ) -> tuple[Any, dict[str, Any]]:
        nonlocal done
        if progress is not None:
            step = operation_name.removeprefix("pipeline.")
            progress(done / total_steps, f"Profiling… run {run} of {runs}: {step}")
        outcome = local.profile_operation(
            func, *args, operation_name=operation_name, image_size=image_size
        )
        done += 1
        return outcome

    def publish(profiles: list[dict[str, Any]], source_pixels: int | None) -> None:
        tags = {"source": UPLOAD_SOURCE, "upload_id": upload_id, "image_pixels": source_pixels}
        for profile in profiles:
            shared.record_profile({**profile, **tags})

    result: PipelineResult | None = None
    try:
        for index in range(runs):
            run = index + 1  # for the progress text
            result = None  # the last run's arrays go before the next run makes its own
            result = run_pipeline(
                data, long_edge_px=long_edge_px, gamma=gamma, profile=profile_step
            )
        assert result is not None
        profiles = local.get_profiles()
        publish(profiles, result.source_size[0] * result.source_size[1])
        view = _page_view(
            result,
            profiles,
            local.identify_bottlenecks(step_operations()),
            name,
            upload_id,
            runs,
            batch_size,
            gamma,
        )
    except Exception:
        publish([p for p in local.get_profiles() if not p["success"]], None)
        raise
    finally:
        result = None
        release_memory()
    if progress is not None:
        progress(1.0, "Profiled.")
    return view


@dataclass(frozen=True)
class UploadRanking:
    """The pipeline steps ranked across runs, per megapixel.

    ``ranking`` has what ``charts.bottleneck_bar`` draws: each step's share of the summed
    median time per megapixel, and its p90/median slowdown judged within each size class
    (the worst class with ``min_samples`` runs; unstable when that reaches the factor).
    ``by_size`` is the median milliseconds per megapixel, steps by size class.
    """

    ranking: list[dict[str, Any]]
    by_size: pd.DataFrame
    uploads: int  # profiled uploads (one per press of Profile); 0 for the other runs
    runs: int  # pipeline runs ranked
    left_out: int  # pipeline runs of the other kind (uploads, or the demo's and the app's)


def rank_uploads(
    profiles: pd.DataFrame,
    *,
    uploads: bool = True,
    min_samples: int = 5,
    unstable_factor: float = 1.5,
) -> UploadRanking:
    """Rank the pipeline steps over stored profiles (``frames.profiles``).

    Only uploads profiled on the page count (``uploads=False``: only the other runs, the
    demo's and the app's). Time is normalised by the pixels each step works on (milliseconds
    per megapixel), so a tablet and an 88 MP scan compare; instability (p90 over median) is
    judged within one size class of source image (for runs that did not record it, of the
    step's own image), so size differences never pass for jitter.
    """
    empty = UploadRanking([], pd.DataFrame(), 0, 0, 0)
    if profiles.empty or "operation" not in profiles:
        return empty
    frame = profiles[profiles["operation"].isin(step_operations())]
    if frame.empty:
        return empty
    column = frame.get("source")
    uploaded = (
        column == UPLOAD_SOURCE
        if column is not None
        else pd.Series(False, index=frame.index, dtype=bool)
    )
    wanted = uploaded if uploads else ~uploaded
    decodes = frame["operation"] == "pipeline.decode"
    left_out = int((decodes & ~wanted).sum())
    frame = frame[wanted]
    if frame.empty:
        return UploadRanking([], pd.DataFrame(), 0, 0, left_out)
    pixels = pd.to_numeric(frame["pixels"], errors="coerce")
    wall = pd.to_numeric(frame["wall_time_s"], errors="coerce")
    source = pd.to_numeric(frame.get("image_pixels", pixels), errors="coerce").fillna(pixels)
    usable = frame["success"].fillna(False).astype(bool) & (pixels > 0) & (wall > 0)
    usable &= source > 0
    frame = frame[usable].assign(
        ms_per_mp=1000 * wall[usable] / (pixels[usable] / 1e6),
        size_class=[size_class(float(p)) for p in source[usable]],
    )
    if frame.empty:
        return UploadRanking([], pd.DataFrame(), 0, 0, left_out)
    medians = frame.groupby("operation")["ms_per_mp"].median()
    total = float(medians.sum())
    ranking: list[dict[str, Any]] = []
    for operation, median in medians.items():
        runs = frame[frame["operation"] == operation]
        judged = []
        for _, group in runs.groupby("size_class"):
            mid = float(group["ms_per_mp"].median())
            slowdown = float(group["ms_per_mp"].quantile(0.9)) / mid if mid > 0 else 1.0
            judged.append((len(group) >= min_samples, slowdown))
        enough = [slowdown for ok, slowdown in judged if ok]
        slowdown = max(enough) if enough else max(s for _, s in judged)
        ranking.append(
            {
                "operation": str(operation),
                "count": len(runs),
                "median_ms_per_mp": float(median),
                "share_of_total": float(median) / total if total > 0 else 0.0,
                "slowdown_factor": slowdown,
                "unstable": bool(enough) and max(enough) >= unstable_factor,
            }
        )
    ranking.sort(key=lambda entry: entry["share_of_total"], reverse=True)
    by_size = frame.pivot_table(
        index="operation", columns="size_class", values="ms_per_mp", aggfunc="median"
    )
    by_size = by_size.reindex(
        index=[op for op in step_operations() if op in by_size.index],
        columns=[name for _, name in SIZE_CLASSES if name in by_size.columns],
    )
    by_size.index = pd.Index([op.removeprefix("pipeline.") for op in by_size.index], name="step")
    by_size.columns = pd.Index([str(c) for c in by_size.columns])
    count = int(frame["upload_id"].nunique()) if uploads and "upload_id" in frame else 0
    runs_ranked = int((frame["operation"] == "pipeline.decode").sum())
    return UploadRanking(ranking, by_size, count, runs_ranked, left_out)
