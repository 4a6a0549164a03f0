"""Profiling an uploaded image through the reference negative pipeline, all runs or nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ptpd_calibration.monitoring import get_profiler
from ptpd_calibration.monitoring.imaging import PIPELINE_STEPS, PipelineResult, run_pipeline
from ptpd_calibration.monitoring.monitor import PerformanceMonitor
from ptpd_calibration.monitoring.profiler import ImageProcessingProfiler

__all__ = ["UploadProfile", "profile_upload", "step_operations"]


def step_operations() -> list[str]:
    """The monitor's operation names of the pipeline steps, in pipeline order."""
    return [f"pipeline.{step}" for step in PIPELINE_STEPS]


@dataclass(frozen=True)
class UploadProfile:
    """What the page shows after profiling an upload."""

    result: PipelineResult
    steps: pd.DataFrame  # per step: median wall/CPU, peak memory, megapixels per second
    ranking: list[dict[str, Any]]  # identify_bottlenecks over this upload's runs
    batch_estimate_s: float | None
    runs: int


def _step_sizes(result: PipelineResult) -> list[tuple[int, int]]:
    """The pixels each step works on: the source for the first two, the print size after."""
    return [result.source_size] * 2 + [result.output_size] * (len(PIPELINE_STEPS) - 2)


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
                "wall ms": 1000 * float(np.median(runs["wall_time_s"])),
                "CPU ms": 1000 * float(np.median(runs["cpu_time_s"])),
                "peak memory MB": float(runs["peak_memory_mb"].max()),
                "megapixels/s": float(np.median(speeds)) if len(speeds) else None,
            }
        )
    return pd.DataFrame(rows)


def profile_upload(
    data: bytes,
    *,
    runs: int = 3,
    long_edge_px: int = 1800,
    gamma: float = 1.0,
    batch_size: int = 24,
    progress: Callable[[float], None] | None = None,
) -> UploadProfile:
    """Run the pipeline ``runs`` times; publish the timings only when every run succeeded.

    A failing run publishes the failed step's profile (its error) and re-raises, so the store
    gets an error, not the partial timings of a half-done run.
    """
    if not 1 <= runs <= 100:
        raise ValueError(f"runs must be between 1 and 100, got {runs}")
    local = ImageProcessingProfiler(PerformanceMonitor())
    shared = get_profiler()
    result: PipelineResult | None = None
    try:
        for done in range(1, runs + 1):
            result = run_pipeline(
                data, long_edge_px=long_edge_px, gamma=gamma, profile=local.profile_operation
            )
            if progress is not None:
                progress(done / runs)
    except Exception:
        for profile in local.get_profiles():
            if not profile["success"]:
                shared.record_profile(profile)
        raise
    assert result is not None
    profiles = local.get_profiles()
    for profile in profiles:
        shared.record_profile(profile)
    estimates = [
        local.estimate_batch_time([size] * batch_size, op)
        for op, size in zip(step_operations(), _step_sizes(result), strict=True)
    ]
    known = [e for e in estimates if e is not None]
    return UploadProfile(
        result=result,
        steps=_step_table(profiles),
        ranking=local.identify_bottlenecks(step_operations()),
        batch_estimate_s=sum(known) if known else None,
        runs=runs,
    )
