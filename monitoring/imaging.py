"""Reference platinum/palladium digital-negative pipeline, profiled by the dashboard.

The steps mirror what the calibration app does to a user's upload: decode it safely, reduce
it to 16-bit luminance, resize it to the print size, apply the correction curve, invert it
into a negative, summarise its tones by zone and encode a 16-bit TIFF for the printer.

Every step keeps full 16-bit precision (a Pt/Pd print shows banding from 8-bit negatives)
and works on uint16 arrays, using row chunks where a whole-image temporary would be large,
so that a 24-megapixel upload stays within a small multiple of its decoded size.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "PIPELINE_STEPS",
    "PRINT_SIZES",
    "ImageInputError",
    "PipelineResult",
    "ProfileFn",
    "apply_tone_curve",
    "decode_image",
    "encode_tiff16",
    "generate_step_tablet",
    "invert_to_negative",
    "preview_png",
    "resize_to_print",
    "run_pipeline",
    "step_tablet_tiff",
    "to_luminance16",
    "tone_curve_lut",
    "zone_histogram",
]

U16Array = npt.NDArray[np.uint16]

#: Formats an upload may be in (Pillow format names; a multi-picture JPEG opens as "MPO").
ACCEPTED_FORMATS: Final[tuple[str, ...]] = ("PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP")

#: Long edge in pixels for common contact-print sizes at 360 dpi.
PRINT_SIZES: Final[dict[str, int]] = {
    "4x5 in @ 360 dpi": 1800,
    "5x7 in @ 360 dpi": 2520,
    "8x10 in @ 360 dpi": 3600,
    "11x14 in @ 360 dpi": 5040,
}

#: Pipeline steps in the order they run; each is profiled as ``pipeline.<step>``.
PIPELINE_STEPS: Final[tuple[str, ...]] = (
    "decode",
    "luminance",
    "resize",
    "tone_curve",
    "invert",
    "histogram",
    "encode",
)

_MAX16: Final = 65535
_ZONES: Final = 11
_ZONE_NAMES: Final[tuple[str, ...]] = (
    "Zone 0",
    "Zone I",
    "Zone II",
    "Zone III",
    "Zone IV",
    "Zone V",
    "Zone VI",
    "Zone VII",
    "Zone VIII",
    "Zone IX",
    "Zone X",
)
# Rec. 709 luma weights (R, G, B).
_REC709: Final[tuple[float, float, float]] = (0.2126, 0.7152, 0.0722)
# About a million pixels per chunk keeps per-chunk temporaries to a few MiB.
_CHUNK_PIXELS: Final = 1 << 20
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class ImageInputError(ValueError):
    """An upload that cannot be processed; the message is meant to be shown to the user."""


class ProfileFn(Protocol):
    """The profiler hook, e.g. ``ImageProcessingProfiler.profile_operation``.

    It must call ``func(*args)``, re-raise whatever ``func`` raises, and return
    ``(result, profile_dict)``.
    """

    def __call__(
        self,
        func: Callable[..., Any],
        *args: Any,
        operation_name: str,
        image_size: tuple[int, int] | None,
    ) -> tuple[Any, dict[str, Any]]: ...


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """Everything one pipeline run produced, plus each step's profile.

    ``histogram`` is the zone distribution of the tone-corrected positive, i.e. of the
    intended print (Zone 0 = print black), not of the negative.
    """

    negative_tiff: bytes
    negative: U16Array
    source_size: tuple[int, int]
    output_size: tuple[int, int]
    source_mode: str
    histogram: dict[str, float]
    step_profiles: dict[str, dict[str, Any]]


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


def _open_formats() -> list[str]:
    """Accepted formats this Pillow build can actually open (WebP support is optional)."""
    Image.init()
    return [fmt for fmt in ACCEPTED_FORMATS if fmt in Image.OPEN]


def _bomb_message(pixels: int, size: tuple[int, int], limit: int) -> str:
    return (
        f"The image is {pixels:,} pixels ({size[0]} x {size[1]}), more than the limit of "
        f"{limit:,} pixels. Downscale it or export a smaller version, then upload that."
    )


def decode_image(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open an upload from bytes and fully decode it, or raise ImageInputError.

    ``max_pixels`` defaults to ``Image.MAX_IMAGE_PIXELS`` (read at call time) and is
    checked from the header before any pixel data is decoded, so a decompression bomb is
    rejected cheaply; Pillow's own bomb warning is treated as an error too. A limit above
    Pillow's is honoured up to Pillow's hard limit (twice ``MAX_IMAGE_PIXELS``).

    Animated or multi-page files (GIF, APNG, multi-page TIFF) yield their first frame only.
    EXIF orientation is applied, so the result is upright.
    """
    if len(data) == 0:
        raise ImageInputError("The file is empty (0 bytes). Choose the image again and re-upload.")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = pillow_limit if max_pixels is None else max_pixels
    if limit is not None and limit < 1:
        raise ValueError(f"max_pixels must be at least 1, got {limit}")
    with warnings.catch_warnings():
        # Escalate Pillow's bomb warning unless the caller explicitly allowed a larger image.
        if limit is None or pillow_limit is None or limit <= pillow_limit:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        else:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=_open_formats())
        except UnidentifiedImageError as exc:
            raise ImageInputError(
                "The file is not an image Pillow can read; upload PNG, JPEG or TIFF "
                "(GIF, BMP and WebP also work)."
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(
                f"The image is too large to process safely ({exc}). "
                "Downscale it or export a smaller version, then upload that."
            ) from exc
        except Exception as exc:  # a malformed header can fail in many ways
            raise ImageInputError(
                f"The image header is corrupt and cannot be read ({exc}). "
                "Re-export or re-download the file and upload it again."
            ) from exc

        width, height = img.size
        pixels = width * height
        if limit is not None and pixels > limit:
            img.close()
            raise ImageInputError(_bomb_message(pixels, img.size, limit))
        try:
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # first frame of an animation or multi-page file
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as exc:
            img.close()
            raise ImageInputError(
                f"The image is too large to process safely ({exc or 'out of memory'}). "
                "Downscale it or export a smaller version, then upload that."
            ) from exc
        except Exception as exc:  # truncated/corrupt data: OSError, SyntaxError, zlib, ...
            img.close()
            raise ImageInputError(
                f"The image file is truncated or corrupt and could not be decoded ({exc}). "
                "Re-export or re-download it and upload it again."
            ) from exc
    return img


# --------------------------------------------------------------------------------------
# Luminance
# --------------------------------------------------------------------------------------


def _row_chunks(img: Image.Image) -> Iterator[tuple[int, int, Image.Image]]:
    """Yield (y0, y1, strip) strips of about _CHUNK_PIXELS pixels, to bound temporaries."""
    width, height = img.size
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        yield y0, y1, img.crop((0, y0, width, y1))


def _rgb_to_lum(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Rec. 709 luma of 8-bit RGB on the 16-bit scale, as float32 (chunk-sized)."""
    out = rgb[..., 0].astype(np.float32)
    out *= np.float32(_REC709[0] * 257)
    tmp = rgb[..., 1].astype(np.float32)
    tmp *= np.float32(_REC709[1] * 257)
    out += tmp
    np.multiply(rgb[..., 2], np.float32(_REC709[2] * 257), out=tmp)
    out += tmp
    return out


def _over_white(lum: npt.NDArray[np.float32], alpha: npt.NDArray[np.uint8]) -> None:
    """Composite 16-bit-scale luminance over white paper in place (alpha is 8-bit)."""
    # out = lum * a + white * (1 - a)  ==  white - (white - lum) * a
    a = alpha.astype(np.float32)
    a *= np.float32(1 / 255)
    np.subtract(np.float32(_MAX16), lum, out=lum)
    lum *= a
    np.subtract(np.float32(_MAX16), lum, out=lum)


def _to_u16(values: npt.NDArray[np.float32]) -> U16Array:
    """Round and clip float32 values to uint16."""
    np.rint(values, out=values)
    np.clip(values, 0, _MAX16, out=values)
    return values.astype(np.uint16)


def _float_scale(img: Image.Image) -> float:
    """Scale for mode "F": 0..1 data is normalised, anything larger is already 16-bit."""
    _lo, hi = img.getextrema()
    hi_f = float(hi) if isinstance(hi, (int, float)) else math.nan
    return float(_MAX16) if math.isfinite(hi_f) and hi_f <= 1.0 else 1.0


def _strip_lum(strip: Image.Image, mode: str, f_scale: float) -> U16Array:
    """Convert one strip of a known mode to uint16 luminance."""
    if mode == "1":
        return np.asarray(strip).astype(np.uint16) * np.uint16(_MAX16)
    if mode == "L":
        return np.asarray(strip).astype(np.uint16) * np.uint16(257)
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(strip).astype(np.uint16)
    if mode == "I":
        wide: npt.NDArray[np.int32] = np.asarray(strip, dtype=np.int32)
        return np.clip(wide, 0, _MAX16).astype(np.uint16)
    if mode == "F":
        values = np.asarray(strip).astype(np.float32)
        np.nan_to_num(values, copy=False, nan=0.0, posinf=_MAX16, neginf=0.0)
        values *= np.float32(f_scale)
        return _to_u16(values)
    if mode == "LA":
        la = np.asarray(strip)
        lum = la[..., 0].astype(np.float32)
        lum *= np.float32(257)
        _over_white(lum, la[..., 1])
        return _to_u16(lum)
    if mode in ("RGB", "RGBX"):
        return _to_u16(_rgb_to_lum(np.asarray(strip)[..., :3]))
    if mode == "RGBA":
        rgba = np.asarray(strip)
        lum = _rgb_to_lum(rgba[..., :3])
        _over_white(lum, rgba[..., 3])
        return _to_u16(lum)
    raise AssertionError(f"unhandled mode {mode}")  # pragma: no cover


def _plan(img: Image.Image) -> tuple[str, str | None]:
    """Pick (mode handled natively, mode to convert each strip to first or None)."""
    mode = img.mode
    native = {"1", "L", "I", "F", "LA", "RGB", "RGBX", "RGBA", *_SIXTEEN_BIT_MODES}
    if mode in native:
        return mode, None
    if mode == "La":
        return "LA", "LA"
    # P, PA, RGBa, CMYK, YCbCr, LAB, HSV, ...: let Pillow produce RGB(A) strip by strip.
    target = "RGBA" if img.has_transparency_data else "RGB"
    return target, target


def to_luminance16(img: Image.Image) -> U16Array:
    """Reduce any Pillow image to 2-D uint16 luminance, 0 = black and 65535 = paper white.

    8-bit data is scaled by 257, 16-bit grayscale keeps all 16 bits, mode "I" is clipped
    to 0..65535 and mode "F" is taken as 0..1 when its maximum is <= 1 (else clipped).
    Colour uses Rec. 709 weights on the encoded values; alpha is composited over white,
    because a transparent pixel prints as bare paper. Work is done in row strips so the
    only full-size allocation is the result.
    """
    width, height = img.size
    mode, convert_to = _plan(img)
    f_scale = _float_scale(img) if mode == "F" else 1.0
    out = np.empty((height, width), dtype=np.uint16)
    try:
        for y0, y1, strip in _row_chunks(img):
            if convert_to is not None:
                strip = strip.convert(convert_to)
            out[y0:y1] = _strip_lum(strip, mode, f_scale)
    except (ValueError, OSError) as exc:
        raise ImageInputError(
            f"Images in Pillow mode {img.mode!r} cannot be converted to grayscale ({exc}). "
            "Save it as an 8- or 16-bit grayscale or RGB PNG/TIFF and upload that."
        ) from exc
    return out


# --------------------------------------------------------------------------------------
# Geometry, tone and encoding
# --------------------------------------------------------------------------------------


def _require_u16(arr: npt.NDArray[Any], name: str, *, two_d: bool = False) -> None:
    if arr.dtype != np.uint16:
        raise TypeError(f"{name} must be a uint16 array, got dtype {arr.dtype}")
    if two_d and arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (height, width), got shape {arr.shape}")


def _fit_size(size: tuple[int, int], long_edge_px: int) -> tuple[int, int]:
    """(width, height) scaled so the long edge is long_edge_px, aspect kept."""
    width, height = size
    if width >= height:
        return long_edge_px, max(1, round(height * long_edge_px / width))
    return max(1, round(width * long_edge_px / height)), long_edge_px


def resize_to_print(lum: U16Array, long_edge_px: int) -> U16Array:
    """Lanczos-resize 16-bit luminance so its long edge is long_edge_px, keeping aspect.

    Pillow's "I;16" resampler is used so 16-bit precision survives without a float copy.
    """
    if long_edge_px < 1:
        raise ValueError(f"long_edge_px must be at least 1, got {long_edge_px}")
    _require_u16(lum, "lum", two_d=True)
    height, width = lum.shape
    if width < 1 or height < 1:
        raise ValueError("cannot resize an empty image")
    target = _fit_size((width, height), long_edge_px)
    if target == (width, height):
        return lum.copy()
    src = Image.fromarray(np.ascontiguousarray(lum))
    resized = src.resize(target, Image.Resampling.LANCZOS)
    del src
    return np.array(resized, dtype=np.uint16)


def tone_curve_lut(gamma: float = 1.0, *, dmin: float = 0.0, dmax: float = 1.0) -> U16Array:
    """65536-entry correction LUT: dmin + (dmax - dmin) * x**gamma on normalised x.

    dmin/dmax are the output range as fractions of full scale (e.g. to keep the negative
    off pure black); gamma > 1 darkens mid-tones. The curve is monotonic non-decreasing.
    """
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma}")
    if not 0.0 <= dmin < dmax <= 1.0:
        raise ValueError(f"need 0 <= dmin < dmax <= 1, got dmin={dmin}, dmax={dmax}")
    x = np.arange(_MAX16 + 1, dtype=np.float64) / _MAX16
    np.power(x, gamma, out=x)
    x *= (dmax - dmin) * _MAX16
    x += dmin * _MAX16
    np.rint(x, out=x)
    np.clip(x, 0, _MAX16, out=x)
    return x.astype(np.uint16)


def apply_tone_curve(lum: U16Array, lut: U16Array) -> U16Array:
    """Map every pixel through the LUT (``lut[lum]``), chunked to avoid an intp-sized copy."""
    _require_u16(lum, "lum")
    _require_u16(lut, "lut")
    if lut.shape != (_MAX16 + 1,):
        raise ValueError(f"lut must have shape (65536,), got {lut.shape}")
    src = np.ascontiguousarray(lum).reshape(-1)
    out = np.empty(src.shape, dtype=np.uint16)
    for i in range(0, src.size, _CHUNK_PIXELS):
        out[i : i + _CHUNK_PIXELS] = lut[src[i : i + _CHUNK_PIXELS]]
    return out.reshape(lum.shape)


def invert_to_negative(lum: U16Array) -> U16Array:
    """The digital negative: 65535 - lum, so print highlights become dense areas."""
    _require_u16(lum, "lum")
    return np.subtract(np.uint16(_MAX16), lum, dtype=np.uint16)


def zone_histogram(lum: U16Array) -> dict[str, float]:
    """Fraction of pixels in each of Ansel Adams' zones, "Zone 0" (black) to "Zone X".

    The 0..65535 range is cut into 11 equal-width bins. Counting per 16-bit value first
    (chunked) avoids the large index temporaries np.histogram would make.
    """
    _require_u16(lum, "lum")
    if lum.size == 0:
        raise ValueError("cannot compute a histogram of an empty image")
    flat = np.ascontiguousarray(lum).reshape(-1)
    counts = np.zeros(_MAX16 + 1, dtype=np.int64)
    for i in range(0, flat.size, _CHUNK_PIXELS):
        counts += np.bincount(flat[i : i + _CHUNK_PIXELS], minlength=_MAX16 + 1)
    zone_of_value = (np.arange(_MAX16 + 1, dtype=np.int64) * _ZONES) >> 16
    per_zone = np.bincount(zone_of_value, weights=counts, minlength=_ZONES)
    fractions = per_zone / flat.size
    return {name: float(frac) for name, frac in zip(_ZONE_NAMES, fractions, strict=True)}


def encode_tiff16(arr: U16Array) -> bytes:
    """Uncompressed 16-bit grayscale TIFF (mode I;16), which every print RIP can read."""
    _require_u16(arr, "arr", two_d=True)
    img = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    img.save(buf, format="TIFF")
    return buf.getvalue()


def preview_png(negative: U16Array, max_edge: int = 800) -> bytes:
    """8-bit grayscale PNG thumbnail for display (browsers cannot show 16-bit TIFF)."""
    if max_edge < 1:
        raise ValueError(f"max_edge must be at least 1, got {max_edge}")
    _require_u16(negative, "negative", two_d=True)
    small = negative if max(negative.shape) <= max_edge else resize_to_print(negative, max_edge)
    wide = small.astype(np.uint32)
    wide *= 255
    wide += _MAX16 // 2
    wide //= _MAX16
    buf = io.BytesIO()
    Image.fromarray(wide.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def generate_step_tablet(width: int = 1200, height: int = 300, steps: int = 21) -> U16Array:
    """Demo step tablet: ``steps`` equal vertical bands from white (left) to black (right).

    Like a Stouffer 21-step in layout, but the steps are equal in 16-bit value rather than
    in density, which is what a digital-negative calibration target needs.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    if width < steps or height < 1:
        raise ValueError(f"need width >= steps and height >= 1, got {width}x{height}")
    levels = np.rint(np.linspace(_MAX16, 0, steps)).astype(np.uint16)
    band = (np.arange(width, dtype=np.int64) * steps) // width
    row = levels[band]
    return np.ascontiguousarray(np.broadcast_to(row, (height, width)))


def step_tablet_tiff(width: int = 1200, height: int = 300, steps: int = 21) -> bytes:
    """The demo step tablet as a 16-bit grayscale TIFF upload."""
    return encode_tiff16(generate_step_tablet(width, height, steps))


# --------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------


def _no_profile(
    func: Callable[..., Any],
    *args: Any,
    operation_name: str,
    image_size: tuple[int, int] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Default hook when no profiler is given: run the step, record nothing."""
    return func(*args), {}


def _peek_size(data: bytes) -> tuple[int, int] | None:
    """Header-only size for the decode step's profile; None if the header is unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_open_formats()) as img:
                return img.size
    except Exception:  # decode_image reports the real problem
        return None


def _decode_step(data: bytes, max_pixels: int | None) -> Image.Image:
    return decode_image(data, max_pixels=max_pixels)


def _tone_step(lum: U16Array, gamma: float) -> U16Array:
    return apply_tone_curve(lum, tone_curve_lut(gamma))


def run_pipeline(
    data: bytes,
    *,
    long_edge_px: int = 1800,
    gamma: float = 1.0,
    profile: ProfileFn | None = None,
    max_pixels: int | None = None,
) -> PipelineResult:
    """Turn an uploaded image into a 16-bit digital negative, profiling every step.

    Each step in PIPELINE_STEPS is run through ``profile`` as ``pipeline.<step>`` with the
    (width, height) it works on: the source size for decode and luminance, the print size
    afterwards. Bad uploads raise ImageInputError; bad arguments raise ValueError before
    any work is done. Full-size intermediates are dropped as soon as they are used.
    """
    if long_edge_px < 1:
        raise ValueError(f"long_edge_px must be at least 1, got {long_edge_px}")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma}")
    run: ProfileFn = _no_profile if profile is None else profile
    profiles: dict[str, dict[str, Any]] = {}

    img: Image.Image
    img, profiles["decode"] = run(
        _decode_step,
        data,
        max_pixels,
        operation_name="pipeline.decode",
        image_size=_peek_size(data),
    )
    source_size = img.size
    source_mode = img.mode

    lum: U16Array
    lum, profiles["luminance"] = run(
        to_luminance16, img, operation_name="pipeline.luminance", image_size=source_size
    )
    img.close()
    del img

    output_size = _fit_size(source_size, long_edge_px)
    small: U16Array
    small, profiles["resize"] = run(
        resize_to_print, lum, long_edge_px, operation_name="pipeline.resize", image_size=output_size
    )
    del lum

    positive: U16Array
    positive, profiles["tone_curve"] = run(
        _tone_step, small, gamma, operation_name="pipeline.tone_curve", image_size=output_size
    )
    del small

    negative: U16Array
    negative, profiles["invert"] = run(
        invert_to_negative, positive, operation_name="pipeline.invert", image_size=output_size
    )

    histogram: dict[str, float]
    histogram, profiles["histogram"] = run(
        zone_histogram, positive, operation_name="pipeline.histogram", image_size=output_size
    )
    del positive

    tiff: bytes
    tiff, profiles["encode"] = run(
        encode_tiff16, negative, operation_name="pipeline.encode", image_size=output_size
    )

    negative.setflags(write=False)
    return PipelineResult(
        negative_tiff=tiff,
        negative=negative,
        source_size=source_size,
        output_size=(negative.shape[1], negative.shape[0]),
        source_mode=source_mode,
        histogram=histogram,
        step_profiles={step: dict(profiles[step]) for step in PIPELINE_STEPS},
    )
