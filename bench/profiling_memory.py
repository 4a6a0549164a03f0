"""The server's memory over many profiles: 20 uploads of a 24-megapixel image, each profiled in
its own session (Streamlit's AppTest, in this process, as the server runs them), and the
process's resident memory (RSS, from psutil) before, after each and at the end.

The start is the RSS once the Image profiling page has been served (imports, caches and the
page itself are the server's fixed cost, not the profiles'). Each session uploads the image,
profiles it (3 runs by default) and is closed, as a browser tab is; with ``--keep`` every
session stays open to the end instead, holding its upload and its results.

    .venv/bin/python -m bench.profiling_memory [--sessions 20] [--runs 3] [--keep]
        [--image jpeg|tiff16] [--print-size "11x14 in @ 360 dpi"]

It prints one line per session and a summary, and exits 1 when the end is more than
``--budget`` MB (300) above the start.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench._harness import Row

_APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
_MB = 1024.0 * 1024.0


def camera_image(kind: str) -> tuple[str, bytes, str]:
    """A 6000 x 4000 (24 MP) picture with a photograph's smooth tones and grain.

    ``jpeg``: an 8-bit RGB JPEG at quality 92, as a camera writes; ``tiff16``: a 16-bit RGB
    TIFF, as a raw converter or a scanner writes (144 MB).
    """
    height, width = 4000, 6000
    rng = np.random.default_rng(7)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = 0.5 + 0.35 * np.sin(6.0 * x + 3.0 * y) * np.cos(4.0 * y - 2.0 * x)
    channels = [base, base * 0.9 + 0.05 * x, base * 0.8 + 0.1 * y]
    if kind == "tiff16":
        import tifffile

        pixels = np.empty((height, width, 3), dtype=np.uint16)
        for i, channel in enumerate(channels):
            grain = rng.normal(0.0, 0.01, (height, width)).astype(np.float32)
            pixels[..., i] = np.clip((channel + grain) * 65535, 0, 65535).astype(np.uint16)
        out = io.BytesIO()
        tifffile.imwrite(out, pixels, photometric="rgb")
        return "scan-24mp.tif", out.getvalue(), "image/tiff"
    from PIL import Image

    pixels8 = np.empty((height, width, 3), dtype=np.uint8)
    for i, channel in enumerate(channels):
        grain = rng.normal(0.0, 0.01, (height, width)).astype(np.float32)
        pixels8[..., i] = np.clip((channel + grain) * 255, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels8).save(out, format="JPEG", quality=92)
    return "camera-24mp.jpg", out.getvalue(), "image/jpeg"


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / _MB


def _settle() -> float:
    """RSS after a full collection (what a server's idle moment would show)."""
    gc.collect()
    time.sleep(0.5)
    return _rss_mb()


def _session(name: str, data: bytes, mime: str, runs: int, print_size: str) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(_APP), default_timeout=300).run()
    at.switch_page("app_pages/profiling.py").run()
    at.file_uploader(key="profiling_upload").set_value((name, data, mime)).run()
    at.slider(key="profiling_runs").set_value(runs).run()
    at.selectbox(key="profiling_size").set_value(print_size).run()
    at.button(key="profiling_run").click().run()
    if at.exception or not at.success:
        errors = [e.value for e in at.error] + [str(e.value) for e in at.exception]
        raise RuntimeError(f"the profile failed: {errors}")
    return at


class _PeakSampler:
    """The highest RSS seen, read every 20 ms by a thread."""

    def __init__(self) -> None:
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def measure(
    sessions: int = 20,
    runs: int = 3,
    keep: bool = False,
    image: str = "jpeg",
    print_size: str = "4x5 in @ 360 dpi",
) -> dict[str, Any]:
    """Profile the image in ``sessions`` sessions; the RSS figures in MB."""
    from streamlit.testing.v1 import AppTest

    from ptpd_calibration.dashboard.upload import release_memory

    name, data, mime = camera_image(image)
    release_memory()  # making the picture is this script's work, not the server's

    warm = AppTest.from_file(str(_APP), default_timeout=300).run()
    warm.switch_page("app_pages/profiling.py").run()
    del warm
    start = _settle()
    after: list[float] = []
    kept: list[Any] = []
    sampler = _PeakSampler()
    began = time.perf_counter()
    for index in range(sessions):
        at = _session(name, data, mime, runs, print_size)
        if keep:
            kept.append(at)
        del at
        after.append(_settle())
        print(
            f"session {index + 1:2d}: RSS {after[-1]:7.1f} MB "
            f"({after[-1] - start:+7.1f} MB from the start)",
            flush=True,
        )
    elapsed = time.perf_counter() - began
    peak = sampler.stop()
    end = _settle()
    kept.clear()
    closed = _settle()
    return {
        "image": f"{name}, {len(data) / _MB:.1f} MB",
        "sessions": sessions,
        "runs": runs,
        "print_size": print_size,
        "keep": keep,
        "start_mb": start,
        "peak_mb": peak,
        "after_mb": after,
        "end_mb": end,
        "closed_mb": closed,
        "seconds": elapsed,
    }


def run() -> list[Row]:
    """The figures for the benchmark table (sessions closed as they end)."""
    figures = measure()
    return [
        Row(
            "server RSS after 20 profiles of a 24 MP JPEG (separate sessions), above the start",
            figures["end_mb"] - figures["start_mb"],
            "MB",
            goal="≤ 300 MB",
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep every session open")
    parser.add_argument("--image", choices=("jpeg", "tiff16"), default="jpeg")
    parser.add_argument("--print-size", default="4x5 in @ 360 dpi", help="the page's choice")
    parser.add_argument("--budget", type=float, default=300.0, help="MB above the start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["PTPD_MONITORING_STORE_DIR"] = str(Path(folder) / "store")
        figures = measure(args.sessions, args.runs, args.keep, args.image, args.print_size)
    grown = figures["end_mb"] - figures["start_mb"]
    print(
        f"\n{figures['sessions']} profiles ({figures['runs']} runs each, {args.print_size}) of "
        f"{figures['image']} in {figures['seconds']:.0f} s, sessions "
        f"{'kept open' if args.keep else 'closed'}:\n"
        f"  start {figures['start_mb']:.1f} MB, peak {figures['peak_mb']:.1f} MB, "
        f"end {figures['end_mb']:.1f} MB ({grown:+.1f} MB)"
        + (f", after closing them {figures['closed_mb']:.1f} MB" if args.keep else "")
    )
    return 0 if grown <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
