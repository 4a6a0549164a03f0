"""Unit tests for the reference digital-negative pipeline (ptpd_calibration.monitoring.imaging).

All inputs are generated in memory with numpy/Pillow; nothing here asserts on timing.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from PIL import Image, ImageOps, features

from ptpd_calibration.monitoring import imaging
from ptpd_calibration.monitoring.imaging import (
    MAX_IMAGE_SETTING,
    PIPELINE_STEPS,
    PRINT_SIZES,
    ImageInputError,
    apply_tone_curve,
    decode_image,
    describe_pixels,
    encode_tiff16,
    generate_step_tablet,
    invert_to_negative,
    pixel_mode,
    pixel_size,
    preview_png,
    resize_to_print,
    run_pipeline,
    step_tablet_tiff,
    to_luminance16,
    tone_curve_lut,
    zone_histogram,
)

MAX16 = 65535


# ----------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def noise_rgb(width: int = 200, height: int = 200, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gradient16(width: int, height: int) -> npt.NDArray[np.uint16]:
    """A 16-bit ramp whose values are mostly not multiples of 257."""
    y, x = np.mgrid[0:height, 0:width]
    ramp: npt.NDArray[np.uint16] = ((x * 131 + y * 17) % 65536).astype(np.uint16)
    return ramp


def lzw(data: bytes) -> bytes:
    """TIFF LZW of a short byte string (under 250 codes, so every code stays 9 bits)."""
    table = {bytes([i]): i for i in range(256)}
    codes, word = [256], b""  # Clear first
    for value in data:
        longer = word + bytes([value])
        if longer in table:
            word = longer
            continue
        codes.append(table[word])
        table[longer] = 258 + len(table) - 256
        word = bytes([value])
    codes += [table[word], 257]  # the rest, then end of information
    assert max(codes) < 500
    bits = "".join(f"{code:09b}" for code in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def rgb16_tiff(pixels: npt.NDArray[np.uint16], compression: int = 1) -> bytes:
    """Hand-written little-endian 16-bit-per-channel RGB TIFF, uncompressed or LZW (5)."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    if compression == 5:
        data = lzw(data)
    ifd_offset = 8 + len(data)
    short, long_ = 3, 4
    entries = [
        (256, short, 1, width),
        (257, short, 1, height),
        (258, short, 3, None),  # BitsPerSample -> offset to (16, 16, 16)
        (259, short, 1, compression),
        (262, short, 1, 2),
        (273, long_, 1, 8),
        (277, short, 1, 3),
        (278, short, 1, height),
        (279, long_, 1, len(data)),
        (284, short, 1, 1),
    ]
    bps_offset = ifd_offset + 2 + len(entries) * 12 + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + data + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if value is None:
            out += struct.pack("<HHII", tag, typ, count, bps_offset)
        elif typ == short:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    return out + struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16)


class Recorder:
    """Stand-in for ImageProcessingProfiler.profile_operation that records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, int] | None]] = []

    def __call__(
        self,
        func: Any,
        *args: Any,
        operation_name: str,
        image_size: tuple[int, int] | None,
    ) -> tuple[Any, dict[str, Any]]:
        self.calls.append((operation_name, image_size))
        return func(*args), {"operation": operation_name, "image_size": image_size}


# ----------------------------------------------------------------------------- decode


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP"])
def test_decode_accepts_supported_formats(fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    data = encode(noise_rgb(64, 48), fmt)
    img = decode_image(data)
    assert pixel_size(img) == (64, 48)
    lum = to_luminance16(img)
    assert lum.shape == (48, 64)
    assert lum.dtype == np.uint16


def test_decode_applies_exif_orientation() -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, 20:] = 255  # left half black, right half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    data = encode(Image.fromarray(stored), "JPEG", exif=exif, quality=95)

    img = decode_image(data)
    assert img.size == (20, 40)  # width and height swapped
    lum = to_luminance16(img)
    assert lum.shape == (40, 20)
    # The stored left (black) edge is now the top, the white right edge the bottom.
    assert lum[:15].mean() < 5000
    assert lum[-15:].mean() > 60000


def test_decode_animated_gif_uses_first_frame() -> None:
    black = Image.new("L", (16, 12), 0)
    white = Image.new("L", (16, 12), 255)
    data = encode(black, "GIF", save_all=True, append_images=[white], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2

    lum = to_luminance16(decode_image(data))
    assert lum.shape == (12, 16)
    assert int(lum.max()) == 0


def test_decode_multipage_tiff_uses_first_page() -> None:
    first = Image.fromarray(np.full((8, 10), 1000, dtype=np.uint16))
    second = Image.fromarray(np.full((8, 10), 2000, dtype=np.uint16))
    data = encode(first, "TIFF", save_all=True, append_images=[second])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2

    lum = to_luminance16(decode_image(data))
    assert np.all(lum == 1000)


def test_decode_empty_bytes() -> None:
    with pytest.raises(ImageInputError, match="The file is empty"):
        decode_image(b"")


def test_decode_random_bytes() -> None:
    data = np.random.default_rng(1).bytes(4096)
    with pytest.raises(ImageInputError, match="not an image Pillow can read") as info:
        decode_image(data)
    assert "PNG, JPEG or TIFF" in str(info.value)


def test_decode_rejects_formats_outside_the_allowlist() -> None:
    data = encode(Image.new("RGB", (8, 8)), "PPM")
    with pytest.raises(ImageInputError, match="not an image Pillow can read"):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decode_truncated_file(fmt: str) -> None:
    data = encode(noise_rgb(), fmt)
    with pytest.raises(ImageInputError, match="truncated or corrupt") as info:
        decode_image(data[: len(data) // 2])
    assert "upload it again" in str(info.value)


@pytest.mark.timeout(30)
def test_decode_bomb_rejected_before_decoding() -> None:
    data = encode(Image.new("L", (100, 100), 128), "PNG")
    with pytest.raises(ImageInputError) as info:
        decode_image(data, max_pixels=1000)
    message = str(info.value)
    assert "10,000 pixels" in message
    assert "limit of 1,000 pixels" in message


@pytest.fixture
def limit_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Sets PTPD_MONITORING_MAX_IMAGE_MEGAPIXELS for one test (settings are read once)."""
    from ptpd_calibration.monitoring.settings import get_settings

    def set_limit(megapixels: float) -> None:
        monkeypatch.setenv(MAX_IMAGE_SETTING, str(megapixels))
        get_settings.cache_clear()

    get_settings.cache_clear()
    yield set_limit
    monkeypatch.delenv(MAX_IMAGE_SETTING, raising=False)
    get_settings.cache_clear()


def test_the_default_limit_allows_big_camera_files_and_scans() -> None:
    from ptpd_calibration.monitoring.settings import MonitoringSettings

    assert MonitoringSettings().MAX_IMAGE_MEGAPIXELS >= 300


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_decode_over_the_setting_names_size_limit_and_setting(limit_setting: Any, fmt: str) -> None:
    limit_setting(0.005)
    with pytest.raises(ImageInputError) as info:
        decode_image(encode(Image.new("L", (120, 100), 128), fmt))
    message = str(info.value)
    assert message == (
        "The image is 0.012 megapixels (120 × 100 pixels), more than the limit of 0.005 "
        f"megapixels set by {MAX_IMAGE_SETTING}; raise that setting or upload a smaller image."
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pillow_limit", [5000, 4000])  # Pillow's warning, then its error
def test_pillow_bomb_limit_gives_way_to_the_setting(
    monkeypatch: pytest.MonkeyPatch, pillow_limit: int
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    data = encode(Image.new("L", (100, 100), 128), "PNG")
    with (  # Pillow itself warns or refuses...
        pytest.raises((Image.DecompressionBombWarning, Image.DecompressionBombError)),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.open(io.BytesIO(data))
    assert pixel_size(decode_image(data)) == (100, 100)  # ...we go up to our own limit
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # and Pillow's is as it was
    assert pixel_size(decode_image(encode(Image.new("L", (200, 100)), "GIF"))) == (200, 100)


@pytest.mark.timeout(30)
def test_over_both_limits_never_shows_pillows_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("L", (100, 100), 128), "PNG")
    with pytest.raises(ImageInputError) as info:
        decode_image(data, max_pixels=5000)
    message = str(info.value)
    assert "10,000 pixels" in message or "0.01 megapixels" in message
    assert "bomb" not in message and "DOS" not in message


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG"])
def test_decode_refuses_an_image_the_memory_cannot_hold(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(imaging, "_available_memory", lambda: 10 * 2**20)
    data = encode(Image.new("RGB", (3000, 2000), (1, 2, 3)), fmt)
    with pytest.raises(ImageInputError) as info:
        decode_image(data)
    message = str(info.value)
    assert message.startswith("The image (6 megapixels, 8-bit RGB) needs about ")
    assert "of memory to decode and profile, but only 10 MB is available" in message


def test_decode_checks_memory_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def available() -> int:
        asked.append(1)
        return 2**40

    monkeypatch.setattr(imaging, "_available_memory", available)
    decode_image(encode(Image.new("L", (30, 20)), "PNG"))
    decode_image(encode(Image.new("L", (30, 20)), "TIFF"))
    assert len(asked) == 2


def test_decode_default_limit_allows_normal_images() -> None:
    data = encode(Image.new("L", (100, 100), 128), "PNG")
    assert decode_image(data, max_pixels=10_000).size == (100, 100)


def test_decode_rejects_nonpositive_max_pixels() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        decode_image(encode(Image.new("L", (4, 4)), "PNG"), max_pixels=0)


# ----------------------------------------------------------------------------- luminance


def test_luminance_8bit_scales_by_257() -> None:
    arr = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    lum = to_luminance16(Image.fromarray(arr))
    assert lum.dtype == np.uint16
    assert lum.tolist() == [[0, 257, 128 * 257, MAX16]]


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_luminance_16bit_grayscale_keeps_full_precision(fmt: str) -> None:
    arr = np.array([[0, 1, 1000, 12345, MAX16]], dtype=np.uint16)
    lum = to_luminance16(decode_image(encode(Image.fromarray(arr), fmt)))
    assert lum.dtype == np.uint16
    assert lum.tolist() == arr.tolist()  # 1000 is not a multiple of 257: no 8-bit trip


def test_luminance_16bit_big_endian_mode() -> None:
    img = Image.new("I;16B", (3, 2), 1000)
    assert np.all(to_luminance16(img) == 1000)


def test_luminance_rgb_uses_rec709_weights() -> None:
    arr = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    lum = to_luminance16(Image.fromarray(arr))
    expected = [round(0.2126 * MAX16), round(0.7152 * MAX16), round(0.0722 * MAX16), MAX16]
    assert np.abs(lum[0].astype(int) - np.array(expected)).max() <= 1


def test_luminance_rgba_transparent_pixel_is_paper_white() -> None:
    arr = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [255, 255, 255, 255]]], dtype=np.uint8)
    lum = to_luminance16(Image.fromarray(arr))
    assert lum.tolist() == [[MAX16, 0, MAX16]]
    half = to_luminance16(Image.new("RGBA", (1, 1), (0, 0, 0, 128)))
    assert abs(int(half[0, 0]) - round(MAX16 * (1 - 128 / 255))) <= 1


def test_luminance_la_mode() -> None:
    arr = np.array([[[0, 0], [0, 255], [100, 255]]], dtype=np.uint8)
    img = Image.fromarray(arr)
    assert img.mode == "LA"
    assert to_luminance16(img).tolist() == [[MAX16, 0, 100 * 257]]


def test_luminance_palette_with_and_without_transparency() -> None:
    img = Image.new("P", (4, 2), 1)
    img.putpalette([255, 0, 0, 0, 0, 0, 255, 255, 255])
    img.putpixel((0, 0), 2)
    lum = to_luminance16(img)
    assert lum[0, 0] == MAX16
    assert lum[1, 1] == 0

    img.info["transparency"] = 1  # black index becomes transparent -> paper white
    assert np.all(to_luminance16(img) == MAX16)


def test_luminance_palette_png_with_transparency_round_trip() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 255, 255])
    data = encode(img, "PNG", transparency=0)
    decoded = decode_image(data)
    assert decoded.mode == "P"
    assert np.all(to_luminance16(decoded) == MAX16)


def test_luminance_cmyk() -> None:
    assert np.all(to_luminance16(Image.new("CMYK", (3, 3), (0, 0, 0, 0))) == MAX16)
    assert np.all(to_luminance16(Image.new("CMYK", (3, 3), (0, 0, 0, 255))) == 0)


def test_luminance_bilevel() -> None:
    img = Image.new("1", (4, 2), 0)
    img.putpixel((1, 0), 1)
    lum = to_luminance16(img)
    assert lum.dtype == np.uint16
    assert lum.tolist() == [[0, MAX16, 0, 0], [0, 0, 0, 0]]


def test_luminance_int32_mode_is_clipped() -> None:
    arr = np.array([[-5, 0, 1000, 65535, 70000]], dtype=np.int32)
    img = Image.fromarray(arr)
    assert img.mode == "I"
    assert to_luminance16(img).tolist() == [[0, 0, 1000, MAX16, MAX16]]


def test_luminance_float_mode() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert to_luminance16(unit).tolist() == [[0, 32768, MAX16]]
    wide = Image.fromarray(np.array([[-3.0, 300.4, 70000.0]], dtype=np.float32))
    assert to_luminance16(wide).tolist() == [[0, 300, MAX16]]


def test_luminance_16bit_rgb_tiff_works() -> None:
    pixels = np.zeros((2, 4, 3), dtype=np.uint16)
    pixels[..., 1] = MAX16  # pure green
    lum = to_luminance16(decode_image(rgb16_tiff(pixels)))
    assert lum.shape == (2, 4)
    assert np.all(np.abs(lum.astype(int) - round(0.7152 * MAX16)) <= 1)


def test_luminance_large_image_is_processed_in_strips() -> None:
    # Taller than one strip, so strip boundaries are exercised.
    arr = np.random.default_rng(2).integers(0, 256, (1200, 1000), dtype=np.uint8)
    lum = to_luminance16(Image.fromarray(arr))
    assert np.array_equal(lum, arr.astype(np.uint16) * 257)


# ----------------------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("shape", "long_edge", "expected"),
    [((200, 300), 150, (100, 150)), ((300, 200), 150, (150, 100)), ((10, 20), 40, (20, 40))],
)
def test_resize_keeps_aspect_and_dtype(
    shape: tuple[int, int], long_edge: int, expected: tuple[int, int]
) -> None:
    lum = gradient16(shape[1], shape[0])
    out = resize_to_print(lum, long_edge)
    assert out.shape == expected
    assert out.dtype == np.uint16


def test_resize_preserves_16bit_levels() -> None:
    out = resize_to_print(np.full((90, 120), 1000, dtype=np.uint16), 60)
    assert out.shape == (45, 60)
    assert np.all(out == 1000)


def test_resize_rejects_bad_long_edge() -> None:
    with pytest.raises(ValueError, match="long_edge_px"):
        resize_to_print(np.zeros((4, 4), dtype=np.uint16), 0)


def test_print_sizes() -> None:
    assert PRINT_SIZES["4x5 in @ 360 dpi"] == 1800
    assert PRINT_SIZES["8x10 in @ 360 dpi"] == 3600
    assert PRINT_SIZES["11x14 in @ 360 dpi"] == 5040
    assert all(isinstance(v, int) and v > 0 for v in PRINT_SIZES.values())


# ----------------------------------------------------------------------------- tone curve


def test_tone_curve_identity() -> None:
    lut = tone_curve_lut(1.0)
    assert lut.shape == (65536,)
    assert lut.dtype == np.uint16
    assert np.array_equal(lut, np.arange(65536, dtype=np.uint16))


def test_tone_curve_gamma_two_at_mid_grey() -> None:
    lut = tone_curve_lut(2.0)
    assert abs(int(lut[32768]) - 0.25 * MAX16) <= 2
    assert lut[0] == 0
    assert lut[MAX16] == MAX16


@pytest.mark.parametrize("gamma", [0.45, 1.0, 1.8, 3.0])
def test_tone_curve_is_monotonic(gamma: float) -> None:
    lut = tone_curve_lut(gamma, dmin=0.05, dmax=0.9)
    assert np.all(np.diff(lut.astype(np.int64)) >= 0)


def test_tone_curve_dmin_dmax_mapping() -> None:
    lut = tone_curve_lut(1.0, dmin=0.1, dmax=0.8)
    assert lut[0] == round(0.1 * MAX16)
    assert lut[MAX16] == round(0.8 * MAX16)
    assert abs(int(lut[32768]) - (0.1 + 0.7 * 32768 / MAX16) * MAX16) <= 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gamma": 0.0},
        {"gamma": -1.0},
        {"gamma": float("nan")},
        {"dmin": 0.5, "dmax": 0.5},
        {"dmin": 0.6, "dmax": 0.5},
        {"dmin": -0.1},
        {"dmax": 1.1},
    ],
)
def test_tone_curve_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        tone_curve_lut(**kwargs)


def test_apply_tone_curve_indexes_the_lut() -> None:
    lut = tone_curve_lut(2.0)
    lum = gradient16(70, 30)
    out = apply_tone_curve(lum, lut)
    assert out.shape == lum.shape
    assert out.dtype == np.uint16
    assert np.array_equal(out, lut[lum])


# ----------------------------------------------------------------------------- invert


def test_invert_to_negative_values() -> None:
    lum = np.array([[0, MAX16, 1000, 32768, 1]], dtype=np.uint16)
    neg = invert_to_negative(lum)
    assert neg.dtype == np.uint16
    assert neg.tolist() == [[MAX16, 0, MAX16 - 1000, MAX16 - 32768, MAX16 - 1]]
    assert np.array_equal(invert_to_negative(neg), lum)


def test_invert_rejects_other_dtypes() -> None:
    with pytest.raises(TypeError):
        bad: Any = np.zeros((2, 2), dtype=np.uint8)
        invert_to_negative(bad)


# ----------------------------------------------------------------------------- histogram


def test_zone_histogram_black_white() -> None:
    lum = np.zeros((10, 10), dtype=np.uint16)
    lum[:, 5:] = MAX16
    hist = zone_histogram(lum)
    assert list(hist) == [
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
    ]
    assert hist["Zone 0"] == pytest.approx(0.5)
    assert hist["Zone X"] == pytest.approx(0.5)
    assert sum(hist.values()) == pytest.approx(1.0)


def test_zone_histogram_sums_to_one_and_spreads_a_ramp() -> None:
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    hist = zone_histogram(ramp)
    assert sum(hist.values()) == pytest.approx(1.0)
    for fraction in hist.values():
        assert fraction == pytest.approx(1 / 11, abs=1e-4)


def test_zone_histogram_mid_grey_is_zone_v() -> None:
    assert zone_histogram(np.full((3, 3), 32768, dtype=np.uint16))["Zone V"] == 1.0


# ----------------------------------------------------------------------------- encode


def test_encode_tiff16_round_trips_exactly() -> None:
    arr = gradient16(123, 45)
    data = encode_tiff16(arr)
    img = Image.open(io.BytesIO(data))
    assert img.format == "TIFF"
    assert img.mode == "I;16"
    assert np.array_equal(np.asarray(img), arr)


def test_preview_png_is_8bit_and_bounded() -> None:
    neg = gradient16(1000, 500)
    img = Image.open(io.BytesIO(preview_png(neg, max_edge=200)))
    assert img.format == "PNG"
    assert img.mode == "L"
    assert img.size == (200, 100)
    small = Image.open(io.BytesIO(preview_png(np.array([[0, MAX16]], dtype=np.uint16))))
    assert np.asarray(small).tolist() == [[0, 255]]


# ----------------------------------------------------------------------------- step tablet


def test_step_tablet_levels() -> None:
    tablet = generate_step_tablet(1200, 300, 21)
    assert tablet.shape == (300, 1200)
    assert tablet.dtype == np.uint16
    row = tablet[0]
    assert len(np.unique(row)) == 21
    assert np.all(np.diff(row.astype(np.int64)) <= 0)  # white on the left to black
    assert row[0] == MAX16
    assert row[-1] == 0
    assert np.all(tablet == row)  # vertical bands


def test_step_tablet_tiff_decodes() -> None:
    data = step_tablet_tiff(width=220, height=40, steps=11)
    lum = to_luminance16(decode_image(data))
    assert lum.shape == (40, 220)
    assert np.array_equal(lum, generate_step_tablet(220, 40, 11))


@pytest.mark.parametrize(("width", "height", "steps"), [(100, 10, 1), (10, 10, 21), (100, 0, 5)])
def test_step_tablet_rejects_bad_arguments(width: int, height: int, steps: int) -> None:
    with pytest.raises(ValueError):
        generate_step_tablet(width, height, steps)


# ----------------------------------------------------------------------------- pipeline


def _expected_negative(data: bytes, long_edge: int, gamma: float) -> npt.NDArray[np.uint16]:
    lum = to_luminance16(decode_image(data))
    negative: npt.NDArray[np.uint16] = invert_to_negative(
        apply_tone_curve(resize_to_print(lum, long_edge), tone_curve_lut(gamma))
    )
    return negative


def test_pipeline_on_16bit_tiff() -> None:
    data = encode_tiff16(gradient16(300, 200))
    recorder = Recorder()
    result = run_pipeline(data, long_edge_px=150, gamma=2.2, profile=recorder)

    assert result.source_size == (300, 200)
    assert result.output_size == (150, 100)
    assert result.source_mode == "I;16"
    assert result.negative.shape == (100, 150)
    assert result.negative.dtype == np.uint16
    assert np.array_equal(result.negative, _expected_negative(data, 150, 2.2))

    decoded = Image.open(io.BytesIO(result.negative_tiff))
    assert decoded.mode == "I;16"
    assert np.array_equal(np.asarray(decoded), result.negative)

    assert sum(result.histogram.values()) == pytest.approx(1.0)

    assert [name for name, _ in recorder.calls] == [f"pipeline.{s}" for s in PIPELINE_STEPS]
    sizes = dict(recorder.calls)
    assert sizes["pipeline.decode"] == (300, 200)
    assert sizes["pipeline.luminance"] == (300, 200)
    for step in PIPELINE_STEPS[2:]:
        assert sizes[f"pipeline.{step}"] == (150, 100)
    assert list(result.step_profiles) == list(PIPELINE_STEPS)
    assert result.step_profiles["invert"]["operation"] == "pipeline.invert"


def test_pipeline_on_jpeg_portrait() -> None:
    data = encode(noise_rgb(240, 320, seed=3), "JPEG", quality=90)
    recorder = Recorder()
    result = run_pipeline(data, long_edge_px=100, gamma=1.0, profile=recorder)

    assert result.source_size == (240, 320)
    assert result.output_size == (75, 100)
    assert result.source_mode == "RGB"
    assert result.negative.shape == (100, 75)
    assert np.array_equal(result.negative, _expected_negative(data, 100, 1.0))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(result.negative_tiff))), result.negative)
    assert len(recorder.calls) == len(PIPELINE_STEPS)


def test_pipeline_histogram_describes_the_print() -> None:
    # An all-white source prints as paper white (Zone X); its negative is black.
    data = encode(Image.new("L", (40, 20), 255), "PNG")
    result = run_pipeline(data, long_edge_px=40)
    assert np.all(result.negative == 0)
    assert result.histogram["Zone X"] == 1.0


def test_pipeline_default_profile_and_frozen_result() -> None:
    result = run_pipeline(step_tablet_tiff(width=210, height=30), long_edge_px=105)
    assert result.step_profiles == {step: {} for step in PIPELINE_STEPS}
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.__setattr__("source_mode", "L")
    with pytest.raises(ValueError):
        result.negative[0, 0] = 1


def test_pipeline_bad_input_raises_through_profiler() -> None:
    recorder = Recorder()
    with pytest.raises(ImageInputError, match="not an image"):
        run_pipeline(b"definitely not an image", profile=recorder)
    assert recorder.calls == [("pipeline.decode", None)]


def test_pipeline_bomb_limit_is_passed_to_decode() -> None:
    data = encode(Image.new("L", (100, 100), 128), "PNG")
    with pytest.raises(ImageInputError, match="limit of 1,000 pixels"):
        run_pipeline(data, max_pixels=1000)


@pytest.mark.parametrize("kwargs", [{"long_edge_px": 0}, {"gamma": 0.0}])
def test_pipeline_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run_pipeline(b"", **kwargs)


def test_public_names_are_exported() -> None:
    for name in imaging.__all__:
        assert hasattr(imaging, name)
        assert not name.startswith("_")


# ----------------------------------------------------------------------------- bit depth


def png16(pixels: npt.NDArray[np.uint16]) -> bytes:
    """Hand-written 16-bit PNG (grey + alpha, RGB or RGBA, by the last axis), its rows
    filtered with each of PNG's five filters in turn, as encoders mix them."""
    height, width, channels = pixels.shape
    step = 2 * channels  # bytes a pixel: the distance the filters look left
    body, above = bytearray(), bytes(width * step)
    for y in range(height):
        row = pixels[y].astype(">u2").tobytes()
        kind = y % 5
        body.append(kind)
        for i, value in enumerate(row):
            left = row[i - step] if i >= step else 0
            up, corner = above[i], above[i - step] if i >= step else 0
            if kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            else:
                guess = (0, left, up, (left + up) // 2)[kind]
            body.append((value - guess) % 256)
        above = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    colour_type = {2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(body)))
        + chunk(b"IEND", b"")
    )


def tiff(pixels: npt.NDArray[Any], **options: Any) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, pixels, **options)
    return out.getvalue()


def random16(*shape: int, seed: int = 7) -> npt.NDArray[np.uint16]:
    values: npt.NDArray[np.uint16] = np.random.default_rng(seed).integers(
        0, MAX16 + 1, shape, dtype=np.uint16
    )
    return values


@pytest.mark.parametrize(
    "options",
    [
        {"photometric": "rgb"},
        {"photometric": "rgb", "compression": "zlib"},
        {"photometric": "rgb", "compression": "zlib", "predictor": True},
        {"photometric": "rgb", "byteorder": ">"},
        {"photometric": "rgb", "rowsperstrip": 3},
        {"photometric": "rgb", "tile": (16, 16)},
    ],
    ids=["plain", "zip", "zip-predictor", "big-endian", "strips", "tiles"],
)
def test_a_16_bit_rgb_tiff_decodes_at_16_bits(options: dict[str, Any]) -> None:
    pixels = random16(20, 30, 3)
    decoded = decode_image(tiff(pixels, **options))

    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, pixels)
    assert describe_pixels(decoded) == "16-bit RGB"
    assert pixel_mode(decoded) == "RGB;16"
    assert pixel_size(decoded) == (30, 20)


def test_a_planar_16_bit_rgb_tiff_decodes_at_16_bits() -> None:
    pixels = random16(20, 30, 3)
    data = tiff(np.moveaxis(pixels, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(decode_image(data), pixels)


def test_luminance_of_16_bit_rgb_keeps_the_low_bits() -> None:
    pixels = np.full((2, 3, 3), 1000, dtype=np.uint16)  # grey 1000: not a multiple of 257
    pixels[1, 2] = (MAX16, 0, 0)
    lum = to_luminance16(decode_image(tiff(pixels, photometric="rgb")))
    assert lum[0].tolist() == [1000, 1000, 1000]  # an 8-bit trip would give 1028
    assert lum[1, 2] == round(0.2126 * MAX16)


def test_a_16_bit_greyscale_tiff_decodes_at_16_bits() -> None:
    pixels = random16(20, 30)
    decoded = decode_image(tiff(pixels, photometric="minisblack"))
    np.testing.assert_array_equal(decoded, pixels)
    assert describe_pixels(decoded) == "16-bit greyscale"
    np.testing.assert_array_equal(to_luminance16(decoded), pixels)


def test_a_min_is_white_tiff_is_inverted() -> None:
    pixels = np.array([[0, 1000, MAX16]], dtype=np.uint16)
    decoded = decode_image(tiff(pixels, photometric="miniswhite"))
    assert to_luminance16(decoded).tolist() == [[MAX16, MAX16 - 1000, 0]]


def test_an_8_bit_rgb_tiff_stays_8_bit() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    decoded = decode_image(tiff(pixels, photometric="rgb"))
    assert describe_pixels(decoded) == "8-bit RGB"
    np.testing.assert_array_equal(decoded, pixels)
    expected = to_luminance16(Image.fromarray(pixels))
    np.testing.assert_array_equal(to_luminance16(decoded), expected)


@pytest.mark.parametrize("extra", [2, 1], ids=["straight", "premultiplied"])
def test_a_16_bit_rgba_tiff_composites_over_white(extra: int) -> None:
    pixels = np.zeros((1, 3, 4), dtype=np.uint16)
    pixels[0, 0] = (0, 0, 0, MAX16)  # opaque black
    pixels[0, 1] = (0, 0, 0, 0)  # transparent: paper white
    half = MAX16 // 2 + 1
    pixels[0, 2] = (0, 0, 0, half)  # half-transparent black (straight and premultiplied alike)
    decoded = decode_image(tiff(pixels, photometric="rgb", extrasamples=[extra]))
    lum = to_luminance16(decoded)
    assert lum[0, :2].tolist() == [0, MAX16]
    assert abs(int(lum[0, 2]) - (MAX16 - half)) <= 1


def test_a_16_bit_lzw_rgb_tiff_keeps_16_bits_without_imagecodecs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LZW (what Photoshop writes) needs imagecodecs in tifffile: Pillow reads it in full."""
    if not features.check("libtiff"):
        pytest.skip("Pillow built without libtiff")
    pixels = random16(3, 4, 3)
    data = rgb16_tiff(pixels, compression=5)
    with Image.open(io.BytesIO(data)) as pillow:
        assert pillow.mode == "RGB"  # what Pillow alone would give: 8 bits a channel
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", {1: None})  # as without imagecodecs
    decoded = decode_image(data)
    assert isinstance(decoded, np.ndarray)
    np.testing.assert_array_equal(decoded, pixels)


def test_a_16_bit_rgb_tiff_read_by_pillow_keeps_16_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "_tiff_pixels", lambda *_: None)  # tifffile declines
    pixels = random16(6, 5, 3)
    np.testing.assert_array_equal(decode_image(rgb16_tiff(pixels)), pixels)


@pytest.mark.parametrize(("channels", "words"), [(3, "16-bit RGB"), (4, "16-bit RGBA")])
def test_a_16_bit_colour_png_decodes_at_16_bits(channels: int, words: str) -> None:
    pixels = random16(7, 9, channels)
    data = png16(pixels)
    with Image.open(io.BytesIO(data)) as pillow:
        assert pillow.mode in ("RGB", "RGBA")  # Pillow alone: 8 bits a channel
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded, pixels)
    assert describe_pixels(decoded) == words


def test_a_16_bit_grey_alpha_png_decodes_at_16_bits() -> None:
    pixels = random16(7, 9, 2)
    decoded = decode_image(png16(pixels))
    np.testing.assert_array_equal(decoded, pixels)
    assert describe_pixels(decoded) == "16-bit greyscale with alpha"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation: int) -> None:
    stored = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = Image.fromarray(stored)
    image.getexif()[0x0112] = orientation
    upright = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(imaging._orient(stored, orientation), upright)


def test_a_tiff_orientation_tag_is_applied() -> None:
    stored = random16(3, 5, 3)
    data = tiff(stored, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    decoded = decode_image(data)
    assert pixel_size(decoded) == (3, 5)
    np.testing.assert_array_equal(decoded, np.rot90(stored, -1))


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (Image.new("CMYK", (6, 4), (0, 50, 100, 20)), "8-bit CMYK"),
        (Image.new("P", (6, 4), 3), "8-bit palette"),
        (Image.new("RGBA", (6, 4), (1, 2, 3, 4)), "8-bit RGBA"),
        (Image.new("1", (6, 4), 1), "1-bit black and white"),
    ],
    ids=["cmyk", "palette", "rgba", "bilevel"],
)
def test_other_tiffs_are_read_by_pillow(image: Image.Image, words: str) -> None:
    decoded = decode_image(encode(image, "TIFF"))
    assert describe_pixels(decoded) == words
    assert to_luminance16(decoded).shape == (4, 6)


def test_pipeline_on_a_16_bit_rgb_tiff_describes_it() -> None:
    pixels = random16(40, 60, 3)
    result = run_pipeline(tiff(pixels, photometric="rgb"), long_edge_px=30)
    assert result.source_description == "16-bit RGB"
    assert result.source_mode == "RGB;16"
    assert result.source_size == (60, 40)
    lum = to_luminance16(pixels)
    expected = invert_to_negative(apply_tone_curve(resize_to_print(lum, 30), tone_curve_lut(1.0)))
    np.testing.assert_array_equal(result.negative, expected)


def test_pipeline_describes_pillow_images_too() -> None:
    result = run_pipeline(encode(noise_rgb(40, 30), "JPEG"), long_edge_px=20)
    assert (result.source_mode, result.source_description) == ("RGB", "8-bit RGB")
