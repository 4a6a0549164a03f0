"""Reference platinum/palladium digital-negative pipeline, profiled by the dashboard.

The steps mirror what the calibration app does to a user's upload: decode it safely, reduce
it to 16-bit luminance, resize it to the print size, apply the correction curve, invert it
into a negative, summarise its tones by zone and encode a 16-bit TIFF for the printer.

Every step keeps full 16-bit precision (a Pt/Pd print shows banding from 8-bit negatives)
and works on uint16 arrays, using row chunks where a whole-image temporary would be large,
so that a 24-megapixel upload stays within a small multiple of its decoded size. The upload
is decoded at its own depth: a 16-bit RGB scan is profiled as 16-bit RGB (tifffile reads
TIFFs; Pillow alone would read it as 8-bit).

It stays at ``ptpd_calibration.monitoring.imaging`` because the README's quick start imports
it from there, but it sits above the monitoring core: only the demo and the dashboard use it,
and no core module (store, monitor, api, profiler, resources, cache, ...) imports it.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import psutil
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from .settings import get_settings

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_IMAGE_SETTING",
    "PIPELINE_STEPS",
    "PRINT_SIZES",
    "ImageInputError",
    "PipelineResult",
    "Pixels",
    "ProfileFn",
    "apply_tone_curve",
    "decode_image",
    "describe_pixels",
    "encode_tiff16",
    "generate_step_tablet",
    "invert_to_negative",
    "pixel_mode",
    "pixel_size",
    "preview_png",
    "resize_to_print",
    "run_pipeline",
    "step_tablet_tiff",
    "to_luminance16",
    "tone_curve_lut",
    "zone_histogram",
]

U16Array = npt.NDArray[np.uint16]
#: A decoded upload: a Pillow image, or a numpy array where Pillow cannot hold the bit depth.
Pixels: TypeAlias = Image.Image | npt.NDArray[Any]

#: The environment variable that sets the largest image decoded, in megapixels.
MAX_IMAGE_SETTING: Final = "PTPD_MONITORING_MAX_IMAGE_MEGAPIXELS"

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
_MODE_WORDS: Final[dict[str, str]] = {
    "1": "1-bit black and white",
    "L": "8-bit greyscale",
    "LA": "8-bit greyscale with alpha",
    "La": "8-bit greyscale with alpha",
    "P": "8-bit palette",
    "PA": "8-bit palette with alpha",
    "RGB": "8-bit RGB",
    "RGBX": "8-bit RGB",
    "RGBA": "8-bit RGBA",
    "RGBa": "8-bit RGBA",
    "CMYK": "8-bit CMYK",
    "YCbCr": "8-bit YCbCr",
    "LAB": "8-bit Lab",
    "HSV": "8-bit HSV",
    "I": "32-bit integer greyscale",
    "F": "32-bit float greyscale",
}
_TIFF_MAGIC: Final = frozenset({b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"})
_MINISWHITE, _MINISBLACK, _RGB = 0, 1, 2  # TIFF photometric interpretations
_ORIENTATION_TAG: Final = 0x0112  # EXIF and TIFF alike
_MIB: Final = 1 << 20
_GIB: Final = 1 << 30
# Besides the decoded image and the pipeline's copies, for the interpreter and the page.
_HEADROOM: Final = 64 * _MIB
_PILLOW_LIMIT_LOCK = threading.Lock()


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

    ``source_mode`` is Pillow's mode name of the decoded upload, or for one decoded as an
    array the nearest name (``RGB;16`` for 16-bit RGB; see ``pixel_mode``).

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
    #: The source's depth and colour model in words, e.g. "16-bit RGB" (see describe_pixels).
    source_description: str = ""


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


def _open_formats() -> list[str]:
    """Accepted formats this Pillow build can actually open (WebP support is optional)."""
    Image.init()
    return [fmt for fmt in ACCEPTED_FORMATS if fmt in Image.OPEN]


def _megapixels(pixels: float) -> str:
    mp = pixels / 1e6
    return f"{mp:,.0f}" if mp >= 100 else f"{mp:.3g}"


def _bytes_text(size: float) -> str:
    return f"{size / _GIB:.1f} GB" if size >= _GIB else f"{size / _MIB:.0f} MB"


def _pixel_limit(max_pixels: int | None) -> tuple[int, str | None]:
    """The pixel limit, and the setting it comes from (None when the caller gave it)."""
    if max_pixels is None:
        return int(get_settings().MAX_IMAGE_MEGAPIXELS * 1e6), MAX_IMAGE_SETTING
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    return max_pixels, None


def _check_pixels(size: tuple[int, int], limit: int, setting: str | None) -> None:
    width, height = size
    pixels = width * height
    if pixels <= limit:
        return
    if setting is None:
        raise ImageInputError(
            f"The image is {pixels:,} pixels ({width:,} × {height:,}), more than the limit of "
            f"{limit:,} pixels; downscale it or export a smaller version, then upload that."
        )
    raise ImageInputError(
        f"The image is {_megapixels(pixels)} megapixels ({width:,} × {height:,} pixels), more "
        f"than the limit of {_megapixels(limit)} megapixels set by {setting}; raise that "
        "setting or upload a smaller image."
    )


def _available_memory() -> int:
    """Bytes the machine can still give this process without swapping."""
    return int(psutil.virtual_memory().available)


def _check_memory(size: tuple[int, int], decoded_bytes: int, description: str) -> None:
    """Refuse an image whose decoded pixels and the pipeline's copies would not fit in memory.

    The decoded image lives beside its 16-bit luminance, which then lives beside its resized
    copy: about max(decoded + 2, 4) bytes a pixel, plus some headroom.
    """
    width, height = size
    pixels = width * height
    need = max(decoded_bytes + 2 * pixels, 4 * pixels) + _HEADROOM
    available = _available_memory()
    if need > available:
        raise ImageInputError(
            f"The image ({_megapixels(pixels)} megapixels, {description}) needs about "
            f"{_bytes_text(need)} of memory to decode and profile, but only "
            f"{_bytes_text(available)} is available; close other programs or upload a "
            "smaller image."
        )


@contextlib.contextmanager
def _pillow_limit(pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit raised, for this block, to let ``pixels`` through.

    Our own limit replaces Pillow's (which errors at twice ``Image.MAX_IMAGE_PIXELS``), but
    Pillow reads its limit from a module global: it is raised only for images above it, under
    a lock, and put back afterwards.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None or pixels <= 2 * current:
        yield
        return
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = (pixels + 1) // 2
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _bomb_pixels(exc: BaseException) -> int | None:
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return int(match.group(1)) if match else None


def _open_with_pillow(data: bytes, limit: int, setting: str | None) -> Image.Image:
    """Open (header only) with Pillow, whose bomb check gives way to ours."""
    for attempt in range(2):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with _pillow_limit(limit if attempt else 0):
                    return Image.open(io.BytesIO(data), formats=_open_formats())
        except Image.DecompressionBombError as exc:
            if attempt:  # above our limit too: say so in our words, not Pillow's
                pixels = _bomb_pixels(exc) or limit + 1
                raise ImageInputError(
                    f"The image is {_megapixels(pixels)} megapixels, more than the limit of "
                    f"{_megapixels(limit)} megapixels"
                    + (f" set by {setting}; raise that setting" if setting else "; downscale it")
                    + " or upload a smaller image."
                ) from None
        except UnidentifiedImageError as exc:
            raise ImageInputError(
                "The file is not an image Pillow can read; upload PNG, JPEG or TIFF "
                "(GIF, BMP and WebP also work)."
            ) from exc
        except Exception as exc:  # a malformed header can fail in many ways
            raise ImageInputError(
                f"The image header is corrupt and cannot be read ({exc}). "
                "Re-export or re-download the file and upload it again."
            ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # an unreadable EXIF block leaves the image as it is
        return 1
    return value if isinstance(value, int) else 1


def _orient(array: npt.NDArray[Any], orientation: int) -> npt.NDArray[Any]:
    """The EXIF/TIFF orientation applied to (height, width[, channels]) pixels, as a view."""
    turned = array.swapaxes(0, 1) if orientation in (5, 6, 7, 8) else array
    rows, cols = {2: (1, -1), 3: (-1, -1), 4: (-1, 1), 6: (1, -1), 7: (-1, -1), 8: (-1, 1)}.get(
        orientation, (1, 1)
    )
    return turned[::rows, ::cols]


def _tiff_pixels(data: bytes, limit: int, setting: str | None) -> npt.NDArray[Any] | None:
    """A TIFF's first page decoded by tifffile, at its own bit depth.

    None hands the file to Pillow: a file tifffile cannot parse (Pillow then says what is
    wrong), a colour model other than greyscale or RGB (CMYK, palette, YCbCr, Lab), a depth
    other than 8 or 16 bits, or a compression tifffile needs the optional imagecodecs package
    for (LZW, JPEG; Pillow keeps 16-bit colour there too, see ``_wide_with_pillow``).
    """
    try:
        tiff = tifffile.TiffFile(io.BytesIO(data))
    except Exception:
        return None
    with tiff:
        try:
            page = tiff.pages.first
            photometric = int(page.photometric)
            colours = {_MINISWHITE: 1, _MINISBLACK: 1, _RGB: 3}.get(photometric)
            dtype = np.dtype(page.dtype) if page.dtype is not None else None
            samples = int(page.samplesperpixel)
            extras = tuple(int(e) for e in page.extrasamples)
            size = (int(page.imagewidth), int(page.imagelength))
            usable = (
                colours is not None
                and dtype in (np.dtype(np.uint8), np.dtype(np.uint16))
                and int(page.bitspersample) in (8, 16)
                and samples >= colours
                and int(page.imagedepth) == 1
                and page.compression in tifffile.TIFF.DECOMPRESSORS
                and (page.predictor == 1 or page.predictor in tifffile.TIFF.UNPREDICTORS)
            )
            orientation = int(page.tags.valueof(_ORIENTATION_TAG, 1) or 1)
        except Exception:
            return None
        if not usable or colours is None or dtype is None:
            return None
        _check_pixels(size, limit, setting)
        alpha = extras[0] if samples > colours and extras and extras[0] in (1, 2) else None
        depth = 8 * dtype.itemsize
        kind = "greyscale" if colours == 1 else "RGB"
        _check_memory(size, size[0] * size[1] * samples * dtype.itemsize, f"{depth}-bit {kind}")
        try:
            array = page.asarray()
        except MemoryError as exc:
            raise ImageInputError(
                "The image is too large to decode in the memory available; upload a smaller image."
            ) from exc
        except Exception as exc:  # truncated strips, bad compressed data, ...
            raise ImageInputError(
                f"The image file is truncated or corrupt and could not be decoded ({exc}). "
                "Re-export or re-download it and upload it again."
            ) from exc
    if array.ndim == 3 and page.axes.startswith("S"):  # planar: one plane per sample
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        if alpha == 1:  # premultiplied: composite over white now, as luminance would
            _premultiplied_over_white(array, colours)
            alpha = None
        array = array[..., : colours + (alpha is not None)]
        if array.shape[-1] == 1:
            array = array[..., 0]
    if photometric == _MINISWHITE:
        top = np.iinfo(array.dtype).max
        colour = array if array.ndim == 2 else array[..., 0]
        np.subtract(array.dtype.type(top), colour, out=colour)
    return _orient(array, orientation)


def _premultiplied_over_white(array: npt.NDArray[Any], colours: int) -> None:
    """c + (max - alpha) per colour channel, in place and in row strips: a premultiplied
    pixel composited over white paper."""
    top = array.dtype.type(np.iinfo(array.dtype).max)
    rows = max(1, _CHUNK_PIXELS // max(1, array.shape[1]))
    for y0 in range(0, array.shape[0], rows):
        strip = array[y0 : y0 + rows]
        clear = np.subtract(top, strip[..., colours])
        for channel in range(colours):
            strip[..., channel] += np.minimum(clear, top - strip[..., channel])


# Pillow modes and raw modes of 16-bit colour that Pillow keeps only the high bytes of, and
# how to read them in full: two passes (the high bytes as Pillow reads them, then the low
# bytes through the opposite byte order's unpacker), or, for 16-bit grey + alpha, one pass
# that keeps all four bytes of a pixel as 8-bit RGBA.
_WIDE: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("RGB", "RGB;16B"): ("RGB;16B", "RGB;16L"),
    ("RGB", "RGB;16L"): ("RGB;16L", "RGB;16B"),
    ("RGB", "RGBX;16B"): ("RGBX;16B", "RGBX;16L"),
    ("RGB", "RGBX;16L"): ("RGBX;16L", "RGBX;16B"),
    ("RGBA", "RGBA;16B"): ("RGBA;16B", "RGBA;16L"),
    ("RGBA", "RGBA;16L"): ("RGBA;16L", "RGBA;16B"),
    ("RGBA", "LA;16B"): ("RGBA",),
    # libtiff (LZW and other compressed TIFFs) hands Pillow native byte order.
    ("RGB", "RGB;16N"): ("RGB;16N", "RGB;16B" if sys.byteorder == "little" else "RGB;16L"),
    ("RGB", "RGBX;16N"): ("RGBX;16N", "RGBX;16B" if sys.byteorder == "little" else "RGBX;16L"),
    ("RGBA", "RGBA;16N"): ("RGBA;16N", "RGBA;16B" if sys.byteorder == "little" else "RGBA;16L"),
}


def _tile_rawmode(tile: Any) -> str | None:
    args = tile.args
    raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
    return raw if isinstance(raw, str) else None


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile.args
    return tile._replace(args=rawmode if isinstance(args, str) else (rawmode, *args[1:]))


def _wide_passes(img: Image.Image) -> tuple[str, ...] | None:
    """How to read this image at 16 bits per channel, or None where Pillow keeps its depth."""
    rawmodes = {_tile_rawmode(tile) for tile in getattr(img, "tile", ())}
    if len(rawmodes) != 1:
        return None
    return _WIDE.get((img.mode, rawmodes.pop() or ""))


def _wide_with_pillow(data: bytes, img: Image.Image, passes: tuple[str, ...]) -> U16Array:
    """16-bit colour Pillow would cut to 8 bits, decoded by Pillow at full depth.

    The decoder unfilters and decompresses by the file's own pixel size; only the unpacker,
    which copies bytes into Pillow's 8-bit image, differs between the passes.
    """
    width, height = img.size
    grey_alpha = passes == ("RGBA",)
    channels = 2 if grey_alpha else len(img.getbands())
    img.close()  # each pass opens the file afresh
    out = np.zeros((height, width, channels), dtype=np.uint16)
    orientation = 1
    for index, rawmode in enumerate(passes):
        with Image.open(io.BytesIO(data), formats=_open_formats()) as part:
            if getattr(part, "n_frames", 1) > 1:
                part.seek(0)
            part.tile = [_with_rawmode(tile, rawmode) for tile in part.tile]
            part.load()
            if index == 0:
                orientation = _orientation(part)
            for y0, y1, strip in _row_chunks(part):
                values = np.asarray(strip)
                if grey_alpha:  # bytes: grey high, grey low, alpha high, alpha low
                    wide = values.astype(np.uint16)
                    out[y0:y1, :, 0] = (wide[..., 0] << 8) | wide[..., 1]
                    out[y0:y1, :, 1] = (wide[..., 2] << 8) | wide[..., 3]
                elif index == 0:
                    out[y0:y1] = values[..., :channels]
                    out[y0:y1] <<= 8
                else:
                    out[y0:y1] |= values[..., :channels]
    return _orient(out, orientation)


def _pillow_bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode in _SIXTEEN_BIT_MODES else 4


def _decode_with_pillow(data: bytes, limit: int, setting: str | None) -> Pixels:
    img = _open_with_pillow(data, limit, setting)
    try:
        _check_pixels(img.size, limit, setting)
        pixels = img.size[0] * img.size[1]
        passes = _wide_passes(img)
        if passes is not None:
            channels = 2 if passes == ("RGBA",) else len(img.getbands())
            description = describe_pixels(np.empty((1, 1, channels), dtype=np.uint16))
            _check_memory(img.size, pixels * (2 * channels + 4), description)
        else:
            _check_memory(
                img.size, pixels * _pillow_bytes_per_pixel(img.mode), describe_pixels(img)
            )
        with warnings.catch_warnings(), _pillow_limit(pixels):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if passes is not None:
                return _wide_with_pillow(data, img, passes)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # first frame of an animation or multi-page file
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
    except ImageInputError:
        img.close()
        raise
    except MemoryError as exc:
        img.close()
        raise ImageInputError(
            "The image is too large to decode in the memory available; upload a smaller image."
        ) from exc
    except Exception as exc:  # truncated/corrupt data: OSError, SyntaxError, zlib, ...
        img.close()
        raise ImageInputError(
            f"The image file is truncated or corrupt and could not be decoded ({exc}). "
            "Re-export or re-download it and upload it again."
        ) from exc
    return img


def decode_image(data: bytes, *, max_pixels: int | None = None) -> Pixels:
    """Open an upload from bytes and fully decode it at its own bit depth, or raise
    ImageInputError with a message meant for the user.

    TIFFs are read with tifffile, which keeps 16 bits per channel (Pillow cannot hold 16-bit
    colour): greyscale and RGB(A) TIFFs come back as numpy arrays, ``(height, width)`` or
    ``(height, width, channels)`` of uint8 or uint16 (channels: grey + alpha, RGB, RGBA). So
    do 16-bit colour PNGs (and 16-bit colour TIFFs tifffile cannot decompress without
    imagecodecs), read through Pillow at full depth. Everything else is a Pillow image: 8-bit
    files, 16-bit greyscale PNGs (mode ``I;16``), CMYK, palette, 1-bit and float images.

    The pixel count is checked from the header before any pixel is decoded, against
    ``max_pixels`` or, by default, ``PTPD_MONITORING_MAX_IMAGE_MEGAPIXELS``; so is the memory
    decoding and profiling it needs, against the memory available. Pillow's own
    decompression-bomb limit gives way to this one, and its wording never reaches the user.

    Animated or multi-page files (GIF, APNG, multi-page TIFF) yield their first frame only.
    EXIF (or TIFF) orientation is applied, so the result is upright.
    """
    if len(data) == 0:
        raise ImageInputError("The file is empty (0 bytes). Choose the image again and re-upload.")
    limit, setting = _pixel_limit(max_pixels)
    if data[:4] in _TIFF_MAGIC:
        array = _tiff_pixels(data, limit, setting)
        if array is not None:
            return array
    return _decode_with_pillow(data, limit, setting)


def describe_pixels(pixels: Pixels) -> str:
    """How an image holds its pixels, in words: ``16-bit RGB``, ``8-bit CMYK``, ..."""
    if isinstance(pixels, np.ndarray):
        channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
        kind = {1: "greyscale", 2: "greyscale with alpha", 3: "RGB", 4: "RGBA"}.get(
            channels, f"{channels}-channel"
        )
        return f"{8 * pixels.dtype.itemsize}-bit {kind}"
    if pixels.mode in _SIXTEEN_BIT_MODES:
        return "16-bit greyscale"
    return _MODE_WORDS.get(pixels.mode, pixels.mode)


def pixel_mode(pixels: Pixels) -> str:
    """Pillow's mode name, or for an array the nearest one (``RGB;16`` for 16-bit RGB)."""
    if not isinstance(pixels, np.ndarray):
        return pixels.mode
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    sixteen = pixels.dtype == np.uint16
    if channels == 1:
        return "I;16" if sixteen else "L"
    base = {2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}-channel")
    return f"{base};16" if sixteen else base


def pixel_size(pixels: Pixels) -> tuple[int, int]:
    """(width, height) of a Pillow image or a (height, width[, channels]) array."""
    if isinstance(pixels, np.ndarray):
        return int(pixels.shape[1]), int(pixels.shape[0])
    return pixels.size


# --------------------------------------------------------------------------------------
# Luminance
# --------------------------------------------------------------------------------------


def _row_chunks(img: Image.Image) -> Iterator[tuple[int, int, Image.Image]]:
    """Yield (y0, y1, strip) strips of about _CHUNK_PIXELS pixels, to bound temporaries."""
    width, height = img.size
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        with _pillow_limit(width * (y1 - y0)), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # crop checks too
            strip = img.crop((0, y0, width, y1))
        yield y0, y1, strip


def _rgb_to_lum(rgb: npt.NDArray[Any], scale: float = 257) -> npt.NDArray[np.float32]:
    """Rec. 709 luma of RGB on the 16-bit scale (8-bit values times 257), as float32
    (chunk-sized)."""
    out = rgb[..., 0].astype(np.float32)
    out *= np.float32(_REC709[0] * scale)
    tmp = rgb[..., 1].astype(np.float32)
    tmp *= np.float32(_REC709[1] * scale)
    out += tmp
    np.multiply(rgb[..., 2], np.float32(_REC709[2] * scale), out=tmp)
    out += tmp
    return out


def _over_white(
    lum: npt.NDArray[np.float32], alpha: npt.NDArray[Any], alpha_max: int = 255
) -> None:
    """Composite 16-bit-scale luminance over white paper in place (alpha up to alpha_max)."""
    # out = lum * a + white * (1 - a)  ==  white - (white - lum) * a
    a = alpha.astype(np.float32)
    a *= np.float32(1 / alpha_max)
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


def _array_luminance(pixels: npt.NDArray[Any]) -> U16Array:
    """to_luminance16 of a decoded array: (h, w) or (h, w, 2 | 3 | 4), uint8 or uint16."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"pixels must be uint8 or uint16, got dtype {pixels.dtype}")
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2]) if pixels.ndim == 3 else 0
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"pixels must be (h, w) or (h, w, 2-4), got shape {pixels.shape}")
    eight_bit = pixels.dtype == np.uint8
    if pixels.ndim == 2:
        out = np.array(pixels, dtype=np.uint16, order="C")
        if eight_bit:
            out *= np.uint16(257)
        return out
    scale, alpha_max = (257, 255) if eight_bit else (1, _MAX16)
    height, width = pixels.shape[:2]
    out = np.empty((height, width), dtype=np.uint16)
    rows = max(1, _CHUNK_PIXELS // max(1, width))
    for y0 in range(0, height, rows):
        chunk = pixels[y0 : y0 + rows]
        if channels < 3:
            lum = chunk[..., 0].astype(np.float32)
            lum *= np.float32(scale)
        else:
            lum = _rgb_to_lum(chunk, scale)
        if channels in (2, 4):
            _over_white(lum, chunk[..., -1], alpha_max)
        out[y0 : y0 + rows] = _to_u16(lum)
    return out


def to_luminance16(img: Pixels) -> U16Array:
    """Reduce a decoded image to 2-D uint16 luminance, 0 = black and 65535 = paper white.

    8-bit data is scaled by 257, 16-bit data keeps all 16 bits, mode "I" is clipped
    to 0..65535 and mode "F" is taken as 0..1 when its maximum is <= 1 (else clipped).
    Colour uses Rec. 709 weights on the encoded values; alpha is composited over white,
    because a transparent pixel prints as bare paper. Work is done in row strips so the
    only full-size allocation is the result. ``img`` is a Pillow image or an array as
    ``decode_image`` returns one.
    """
    if isinstance(img, np.ndarray):
        return _array_luminance(img)
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


def _peek_size(data: bytes, max_pixels: int | None) -> tuple[int, int] | None:
    """Header-only size for the decode step's profile; None if the header is unreadable."""
    try:
        if data[:4] in _TIFF_MAGIC:
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                page = tiff.pages.first
                return int(page.imagewidth), int(page.imagelength)
        limit, setting = _pixel_limit(max_pixels)
        with _open_with_pillow(data, limit, setting) as img:
            return img.size
    except Exception:  # decode_image reports the real problem
        return None


def _decode_step(data: bytes, max_pixels: int | None) -> Pixels:
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

    img: Pixels
    img, profiles["decode"] = run(
        _decode_step,
        data,
        max_pixels,
        operation_name="pipeline.decode",
        image_size=_peek_size(data, max_pixels),
    )
    source_size = pixel_size(img)
    source_mode = pixel_mode(img)
    source_description = describe_pixels(img)

    lum: U16Array
    lum, profiles["luminance"] = run(
        to_luminance16, img, operation_name="pipeline.luminance", image_size=source_size
    )
    if isinstance(img, Image.Image):
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
        source_description=source_description,
    )
