"""A short, realistic calibration session, recorded through the public API.

It gives a fresh dashboard something true to show: real image operations on a generated step
tablet, API requests with a few errors, cache traffic and resource samples, all written to the
default store by the process-wide instances, as the calibration app itself would.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import (
    CacheManager,
    get_api_tracker,
    get_monitor,
    get_profiler,
    get_resource_monitor,
    get_settings,
    get_store,
)
from . import flush as flush_all
from .imaging import run_pipeline, step_tablet_tiff

__all__ = ["DEMO_ENDPOINTS", "record_demo_session"]

# (method, route template, median ms, share of traffic, error statuses and their chance)
DEMO_ENDPOINTS: tuple[tuple[str, str, float, float, tuple[int, ...], float], ...] = (
    ("GET", "/api/curves/{curve_id}", 12.0, 0.35, (404,), 0.04),
    ("POST", "/api/calibrations", 85.0, 0.15, (422, 500), 0.06),
    ("POST", "/api/images/upload", 240.0, 0.10, (413, 415), 0.05),
    ("GET", "/api/negatives/{negative_id}/tiff", 60.0, 0.20, (404,), 0.02),
    ("GET", "/api/health", 1.5, 0.20, (), 0.0),
)


def _api_traffic(rng: random.Random, session_id: str, requests: int) -> int:
    tracker = get_api_tracker()
    errors = 0
    weights = [endpoint[3] for endpoint in DEMO_ENDPOINTS]
    for method, route, median_ms, _, statuses, error_chance in rng.choices(
        DEMO_ENDPOINTS, weights, k=requests
    ):
        duration_s = median_ms * rng.lognormvariate(0.0, 0.45) / 1000.0
        status = 200 if method == "GET" else 201
        error = None
        if statuses and rng.random() < error_chance:
            status = rng.choice(statuses)
            error = "Internal Server Error" if status == 500 else None
            errors += 1
        tracker.track_request(
            route, duration_s, status, method, error=error, metadata={"session_id": session_id}
        )
    return errors


_DEMO_CACHES: dict[str, CacheManager] = {}


def _demo_cache() -> CacheManager:
    """A cache of its own: the app's cache (shared on disk, perhaps) never gets made-up curves.

    One per store folder, so sessions recorded into the same store add up.
    """
    settings = get_settings()
    folder = str(settings.STORE_DIR)
    cache = _DEMO_CACHES.get(folder)
    if cache is None:
        store = get_store() if settings.STORE_ENABLED else None
        cache = CacheManager(
            max_size=300, default_ttl=600, backend="memory", name="demo-curves", store=store
        )
        _DEMO_CACHES[folder] = cache
    return cache


def _cache_traffic(rng: random.Random, lookups: int) -> None:
    """Curve lookups with a few popular curves, so the hit rate settles somewhere realistic."""
    cache = _demo_cache()
    for _ in range(lookups):
        key = f"curve:{min(int(rng.paretovariate(0.6)), 1000)}"
        if cache.get(key) is None:
            cache.set(key, {"points": [round(rng.random(), 4) for _ in range(8)]}, ttl=600)


def record_demo_session(
    seconds: float = 8.0,
    *,
    progress: Callable[[float], None] | None = None,
    session_id: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Record about ``seconds`` of a calibration session; returns what was recorded.

    Args:
        seconds: how long to run (at least one pass of every part runs).
        progress: called with the fraction done, 0.0 to 1.0.
        session_id: tags the session's timings and requests (a fresh one by default).
        seed: makes the simulated traffic repeatable.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    rng = random.Random(seed)
    session_id = session_id or f"demo-{uuid.uuid4().hex[:8]}"
    monitor, profiler = get_monitor(), get_profiler()
    resources = get_resource_monitor()
    was_sampling = resources.is_sampling
    if not was_sampling:
        resources.start_sampling(interval=min(1.0, max(seconds / 10, 0.1)))
    tablet = step_tablet_tiff(width=1200, height=300, steps=21)
    tag = {"session_id": session_id}
    start, passes, requests, errors = time.monotonic(), 0, 0, 0
    try:
        while True:
            with monitor.timer("calibration.read_step_tablet", tag):
                result = run_pipeline(
                    tablet,
                    long_edge_px=rng.choice((600, 900, 1200)),
                    gamma=rng.uniform(0.8, 1.6),
                    profile=profiler.profile_operation,
                )
            with monitor.timer("curve.fit", tag):
                sum(result.histogram.values())
                time.sleep(rng.uniform(0.002, 0.02))
            batch = rng.randint(15, 40)
            errors += _api_traffic(rng, session_id, batch)
            requests += batch
            _cache_traffic(rng, rng.randint(30, 80))
            passes += 1
            done = (time.monotonic() - start) / seconds
            if progress is not None:
                progress(min(done, 1.0))
            if done >= 1.0:
                break
    finally:
        if not was_sampling:
            resources.stop_sampling()
        _demo_cache().flush()
        flush_all()
    return {
        "session_id": session_id,
        "pipeline_runs": passes,
        "requests": requests,
        "request_errors": errors,
        "cache": _demo_cache().get_stats().model_dump(mode="json"),
    }
