"""Raw and compressed image conversion: round trips, byte layouts and every error case."""

from __future__ import annotations

import array
from pathlib import Path

import cv2
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from plant_disease_ros.core import image_encoding
from plant_disease_ros.core.image_encoding import (
    BAYER_ENCODINGS,
    bayer_mosaic,
    buffer_rows,
    BYTES_PER_PIXEL,
    compressed_to_rgb,
    ImageConversionError,
    raw_to_rgb,
    rgb_to_raw,
    SUPPORTED_ENCODINGS,
    YUV420_ENCODINGS,
)

LEAVES_DIR = Path(__file__).resolve().parents[1] / 'data' / 'leaves'
YUV_ENCODINGS = ('yuv422', 'yuv422_yuy2')
COLOUR16_ENCODINGS = ('rgb16', 'bgr16', 'rgba16', 'bgra16')
# BT.601 4:2:2 stores luma with 8 bits in 16..235 and shares chroma between two pixels.
YUV_TOLERANCE = 3


def grey(rgb: np.ndarray) -> np.ndarray:
    """Return the image as mono encodings keep it: luma repeated in three channels."""
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def pair_constant(rgb: np.ndarray) -> np.ndarray:
    """Give each horizontal pixel pair one colour, so 4:2:2 chroma loses nothing."""
    out = rgb.copy()
    out[:, 1::2] = out[:, 0::2]
    return out


def block_constant(rgb: np.ndarray) -> np.ndarray:
    """Give each 2×2 pixel block one colour, so 4:2:0 chroma loses nothing."""
    out = pair_constant(rgb)
    out[1::2] = out[0::2]
    return out


def expected_after_round_trip(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """Return what a round trip through ``encoding`` should give, and the tolerance."""
    if encoding.startswith('mono'):
        return grey(rgb), 0
    if encoding in YUV_ENCODINGS + YUV420_ENCODINGS:
        return rgb, YUV_TOLERANCE
    # Bayer: random_image gives one colour, which demosaicing restores exactly.
    return rgb, 0


def random_image(rng: np.random.Generator, height: int, width: int,
                 encoding: str) -> np.ndarray:
    """Return a random image that ``encoding`` can represent (exactly or nearly)."""
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if encoding.startswith('mono'):
        return grey(image)
    if encoding in YUV_ENCODINGS + YUV420_ENCODINGS:
        # Keep colours inside the video range so clipping does not add error.
        image = (16 + image.astype(np.uint16) * 219 // 255).astype(np.uint8)
        return pair_constant(image) if encoding in YUV_ENCODINGS else block_constant(image)
    if encoding in BAYER_ENCODINGS:
        # A mosaic keeps one colour a pixel; only a uniform colour comes back exactly.
        image[:] = image[0, 0]
    return image


@pytest.fixture(scope='module')
def leaf() -> np.ndarray:
    """Return a real leaf photo as RGB."""
    bgr = cv2.imread(str(LEAVES_DIR / 'Tomato___Early_blight.jpg'))
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def assert_rgb_array(image: np.ndarray, height: int, width: int) -> None:
    """Check the output contract: H×W×3 uint8 C-contiguous."""
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
@pytest.mark.parametrize('padding', [0, 1, 7, 64])
@pytest.mark.parametrize('is_bigendian', [False, True])
def test_round_trip_every_encoding(encoding: str, padding: int, is_bigendian: bool) -> None:
    rng = np.random.default_rng(7)
    height, width = 12, 18
    rgb = random_image(rng, height, width, encoding)
    row = width * BYTES_PER_PIXEL[encoding]
    data, step = rgb_to_raw(rgb, encoding, step=row + padding, is_bigendian=is_bigendian)
    assert step == row + padding
    assert len(data) == step * buffer_rows(encoding, height)
    out = raw_to_rgb(data, encoding, width, height, step, is_bigendian)
    assert_rgb_array(out, height, width)
    expected, tolerance = expected_after_round_trip(rgb, encoding)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_round_trip_real_photo(leaf: np.ndarray, encoding: str) -> None:
    data, step = rgb_to_raw(leaf, encoding)
    assert step == leaf.shape[1] * BYTES_PER_PIXEL[encoding]
    out = raw_to_rgb(data, encoding, leaf.shape[1], leaf.shape[0], step)
    expected, _ = expected_after_round_trip(leaf, encoding)
    difference = np.abs(out.astype(int) - expected.astype(int))
    if encoding in YUV_ENCODINGS + YUV420_ENCODINGS:
        assert difference.mean() < 2.0
    elif encoding in BAYER_ENCODINGS:
        # Two thirds of the colour samples are interpolated: close on average, not exact.
        assert difference.mean() < 4.0
    else:
        assert difference.max() == 0


@pytest.mark.parametrize('encoding', BAYER_ENCODINGS)
def test_bayer_patterns_put_each_filter_where_the_name_says(encoding: str) -> None:
    """Each 2×2 site read as the name's colour: a red-green-blue scene comes back as itself.

    The scene is one colour with distinct channels, so a pattern read with the wrong
    filter order (or OpenCV's shifted names taken literally) swaps or mixes them.
    """
    pattern, wide = encoding[6:10], encoding.endswith('16')
    colour = np.array([200, 110, 30], np.uint8)
    height, width = 6, 8
    samples = np.empty((height, width), np.uint8)
    for row in range(height):
        for column in range(width):
            samples[row, column] = colour['rgb'.index(pattern[2 * (row % 2) + column % 2])]
    for is_bigendian in (False, True):
        data = samples.tobytes()
        if wide:  # 16-bit samples: the value in the high byte, sensor bits below 8 in the low
            values = samples.astype(np.uint16) * np.uint16(256) + np.uint16(0x3F)
            data = values.astype('>u2' if is_bigendian else '<u2').tobytes()
        step = width * BYTES_PER_PIXEL[encoding]
        out = raw_to_rgb(data, encoding, width, height, step, is_bigendian)
        assert_rgb_array(out, height, width)
        assert (out == colour).all(), (encoding, is_bigendian, out[2, 2])
    np.testing.assert_array_equal(bayer_mosaic(np.broadcast_to(colour, (height, width, 3)),
                                               pattern), samples)


@pytest.mark.parametrize('size', [(2, 8), (8, 2), (1, 1)])
def test_bayer_mosaic_too_small_to_demosaic_is_refused(size: tuple[int, int]) -> None:
    height, width = size
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(width * height), 'bayer_rggb8', width, height, width)
    assert info.value.reason == 'bad_size'
    assert f'a {width}x{height} bayer_rggb8 mosaic is too small to demosaic' in str(info.value)
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((height, width, 3), np.uint8), 'bayer_rggb8')
    assert info.value.reason == 'bad_size'


def test_colour_byte_orders() -> None:
    red = (255, 0, 0)
    cases = {
        'rgb8': bytes([255, 0, 0, 255, 0, 0]),
        'bgr8': bytes([0, 0, 255, 0, 0, 255]),
        'rgba8': bytes([255, 0, 0, 9, 255, 0, 0, 9]),
        'bgra8': bytes([0, 0, 255, 9, 0, 0, 255, 9]),
    }
    for encoding, data in cases.items():
        out = raw_to_rgb(data, encoding, 2, 1, len(data))
        assert tuple(out[0, 0]) == red, encoding
        assert tuple(out[0, 1]) == red, encoding


def test_yuv_byte_orders() -> None:
    # Red in BT.601 video range: Y 81, U (Cb) 90, V (Cr) 240.
    uyvy = bytes([90, 81, 240, 81])
    yuyv = bytes([81, 90, 81, 240])
    for encoding, data in (('yuv422', uyvy), ('yuv422_yuy2', yuyv), ('uyvy', uyvy),
                           ('yuyv', yuyv)):
        out = raw_to_rgb(data, encoding, 2, 1, 4)
        assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 4, encoding
    # The two layouts are not interchangeable.
    swapped = raw_to_rgb(yuyv, 'yuv422', 2, 1, 4)
    assert np.abs(swapped.astype(int) - [255, 0, 0]).max() > 40


@pytest.mark.parametrize('encoding', YUV_ENCODINGS)
def test_yuv422_packing_without_opencv_4_9_matches_opencv(encoding: str) -> None:
    # OpenCV before 4.9 (Ubuntu 24.04 and Debian 12 ship 4.6) cannot write 4:2:2; the
    # packing used there must give what OpenCV 4.9+ gives, within a level, and read back.
    rgb = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    packed = image_encoding._rgb_to_yuv422(rgb, encoding)
    assert packed.shape == (24, 64) and packed.dtype == np.uint8
    code = getattr(cv2, image_encoding._YUV422_CODE_NAMES[encoding], None)
    if code is not None:
        opencv = cv2.cvtColor(rgb, code).reshape(24, 64)
        assert np.abs(opencv.astype(int) - packed.astype(int)).max() <= 1
    # Red in BT.601 video range: Y 81, U 90, V 240 (as test_yuv_byte_orders reads it).
    red = image_encoding._rgb_to_yuv422(np.full((1, 2, 3), (255, 0, 0), np.uint8), encoding)
    expected = [90, 81, 240, 81] if encoding == 'yuv422' else [81, 90, 81, 240]
    assert np.abs(red.reshape(-1).astype(int) - expected).max() <= 1
    back = raw_to_rgb(packed.tobytes(), encoding, 32, 24, 64)
    # Chroma is shared by two pixels: compare each pair's mean colour.
    pairs = rgb.reshape(24, 16, 2, 3).astype(float).mean(axis=2)
    back_pairs = back.reshape(24, 16, 2, 3).astype(float).mean(axis=2)
    assert np.abs(pairs - back_pairs).mean() < 3


@pytest.mark.parametrize('is_bigendian', [False, True])
def test_mono16_keeps_high_byte(is_bigendian: bool) -> None:
    samples = np.array([[0x0000, 0x00FF, 0x1234], [0x8001, 0xFF00, 0xFFFF]], dtype=np.uint16)
    data = samples.astype('>u2' if is_bigendian else '<u2').tobytes()
    out = raw_to_rgb(data, 'mono16', 3, 2, 6, is_bigendian)
    expected = (samples >> 8).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected)
    # Reading with the wrong byte order gives the low bytes instead.
    wrong = raw_to_rgb(data, 'mono16', 3, 2, 6, not is_bigendian)
    np.testing.assert_array_equal(wrong[..., 0], (samples & 0xFF).astype(np.uint8))


def nv_from_i420(rgb: np.ndarray, encoding: str, step: int, fill: int = 0xEE) -> bytes:
    """Pack ``rgb`` as nv12/nv21 from OpenCV's planar I420 (Y plane, U plane, V plane).

    Written apart from the module's encoder: the U and V planes are interleaved (U V for
    nv12, V U for nv21) into H/2 rows after the H luma rows, each row padded to ``step``
    with ``fill``.
    """
    height, width = rgb.shape[:2]
    planar = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    u, v = planar[height:].reshape(2, height // 2, width // 2)
    pair = (u, v) if encoding == 'nv12' else (v, u)
    chroma = np.stack(pair, axis=-1).reshape(height // 2, width)
    rows = np.concatenate([planar[:height], chroma])
    padded = np.full((rows.shape[0], step), fill, np.uint8)
    padded[:, :width] = rows
    return padded.tobytes()


def test_yuv420_byte_orders() -> None:
    """Hand-packed 4×2 frame: a red 2×2 block, then a blue one (BT.601 video range)."""
    luma = [81, 81, 41, 41] * 2
    # Red: U (Cb) 90, V (Cr) 240; blue: U 240, V 110.
    planes = {'nv12': bytes(luma + [90, 240, 240, 110]),
              'nv21': bytes(luma + [240, 90, 110, 240])}
    for encoding, data in planes.items():
        out = raw_to_rgb(data, encoding, 4, 2, 4)
        assert_rgb_array(out, 2, 4)
        assert np.abs(out[:, :2].astype(int) - [255, 0, 0]).max() <= 4, encoding
        assert np.abs(out[:, 2:].astype(int) - [0, 0, 255]).max() <= 4, encoding
    # The two chroma orders are not interchangeable.
    swapped = raw_to_rgb(planes['nv21'], 'nv12', 4, 2, 4)
    assert np.abs(swapped[:, :2].astype(int) - [255, 0, 0]).max() > 40


@pytest.mark.parametrize('encoding', YUV420_ENCODINGS)
@pytest.mark.parametrize('padding', [0, 13])
def test_yuv420_from_opencv_i420(encoding: str, padding: int) -> None:
    """An OpenCV-made frame, rows padded with junk: the chroma plane is read at row H."""
    height, width = 12, 16
    rgb = random_image(np.random.default_rng(5), height, width, encoding)
    step = width + padding
    data = nv_from_i420(rgb, encoding, step) + b'\x55' * 5
    out = raw_to_rgb(data, encoding, width, height, step)
    assert_rgb_array(out, height, width)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= YUV_TOLERANCE
    # The module's encoder writes the same planes (its padding is zeros).
    assert rgb_to_raw(rgb, encoding) == (nv_from_i420(rgb, encoding, width), width)
    assert rgb_to_raw(rgb, encoding, step=step)[0] == nv_from_i420(rgb, encoding, step, 0)


@pytest.mark.parametrize('encoding', YUV420_ENCODINGS)
def test_yuv420_real_photo_from_opencv_i420(leaf: np.ndarray, encoding: str) -> None:
    height, width = leaf.shape[:2]
    out = raw_to_rgb(nv_from_i420(leaf, encoding, width + 32), encoding, width, height,
                     width + 32)
    # Each 2×2 block shares one chroma pair: close on average, not exact at edges.
    assert np.abs(out.astype(int) - leaf.astype(int)).mean() < 2.0


@pytest.mark.parametrize('encoding', YUV420_ENCODINGS)
def test_yuv420_buffer_with_only_the_luma_plane_is_truncated(encoding: str) -> None:
    height, width, step = 6, 8, 12
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(step * height), encoding, width, height, step)
    assert info.value.reason == 'truncated'
    assert str(info.value) == ('truncated image: 72 bytes < step 12 x 9 rows (6 luma + 3 '
                               'chroma) = 108')


@pytest.mark.parametrize('encoding', YUV420_ENCODINGS)
@pytest.mark.parametrize(('height', 'width', 'text'), [
    (4, 3, 'odd width 3'), (3, 4, 'odd height 3'), (1, 2, 'odd height 1')])
def test_yuv420_odd_size_is_refused(encoding: str, height: int, width: int,
                                    text: str) -> None:
    """A 2×2 block shares one chroma pair: an odd width or height has half a block."""
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(64), encoding, width, height, 4)
    assert info.value.reason == 'bad_size'
    assert f'{text} for {encoding}' in str(info.value)
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((height, width, 3), np.uint8), encoding)
    assert info.value.reason == 'bad_size'


@pytest.mark.parametrize('encoding', COLOUR16_ENCODINGS)
@pytest.mark.parametrize('is_bigendian', [False, True])
def test_colour16_keeps_high_byte(encoding: str, is_bigendian: bool) -> None:
    """Distinct high and low bytes in every sample, rows padded with junk."""
    rng = np.random.default_rng(11)
    height, width = 3, 5
    channels = BYTES_PER_PIXEL[encoding] // 2
    high = rng.integers(0, 256, (height, width, channels), dtype=np.uint16)
    low = rng.integers(0, 256, (height, width, channels), dtype=np.uint16)
    samples = (high << 8) | low
    row = width * channels * 2
    step = row + 6
    rows = np.full((height, step), 0xEE, np.uint8)
    rows[:, :row] = samples.astype('>u2' if is_bigendian else '<u2').view(np.uint8).reshape(
        height, row)
    order = [0, 1, 2] if encoding.startswith('rgb') else [2, 1, 0]
    out = raw_to_rgb(rows.tobytes(), encoding, width, height, step, is_bigendian)
    assert_rgb_array(out, height, width)
    np.testing.assert_array_equal(out, high[..., order].astype(np.uint8))
    # Reading with the wrong byte order gives the low bytes instead.
    wrong = raw_to_rgb(rows.tobytes(), encoding, width, height, step, not is_bigendian)
    np.testing.assert_array_equal(wrong, low[..., order].astype(np.uint8))


def test_opencv_type_names_read_as_cv_bridge_displays_them() -> None:
    """8UC1, 8UC3 and 8UC4 are mono8, bgr8 and bgra8 (OpenCV's channel order)."""
    red = (255, 0, 0)
    for name in ('8UC3', '8uc3'):
        assert tuple(raw_to_rgb(bytes([0, 0, 255, 0, 0, 255]), name, 2, 1, 6)[0, 1]) == red
    assert tuple(raw_to_rgb(bytes([0, 0, 255, 9] * 2), '8UC4', 2, 1, 8)[0, 1]) == red
    out = raw_to_rgb(bytes([0, 77, 255, 0xEE]), '8UC1', 3, 1, 4)
    np.testing.assert_array_equal(out[0], [[0] * 3, [77] * 3, [255] * 3])
    rgb = np.random.default_rng(2).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    for name, canonical in (('8UC1', 'mono8'), ('8UC3', 'bgr8'), ('8UC4', 'bgra8')):
        assert rgb_to_raw(rgb, name) == rgb_to_raw(rgb, canonical)


@pytest.mark.parametrize('encoding', ['16UC1', '16uc1', '32FC1'])
def test_depth_images_are_refused_as_depth(encoding: str) -> None:
    """REP 118 depth frames (1.5 m everywhere here) are not grey camera pictures."""
    millimetres = np.full((4, 6), 1500, np.uint16).tobytes()
    with pytest.raises(ImageConversionError, match='is a depth image') as info:
        raw_to_rgb(millimetres, encoding, 6, 4, 12)
    assert info.value.reason == 'unknown_encoding'


@pytest.mark.parametrize('format', [
    '16UC1; png compressed 16UC1', '32FC1; png compressed 32FC1',
    ' 16uc1 ; png compressed 16UC1', '16UC1; jpeg compressed mono8'])
def test_compressed_depth_images_are_refused_as_raw_ones_are(format: str) -> None:
    """image_transport's compressed plugin sends a depth map as a 16-bit PNG, a grey one."""
    millimetres = np.arange(64, dtype=np.uint16).reshape(8, 8) * 300
    ok, png = cv2.imencode('.png', millimetres)
    assert ok
    with pytest.raises(ImageConversionError, match='is a depth image') as info:
        compressed_to_rgb(png.tobytes(), format)
    assert info.value.reason == 'unknown_encoding'
    encoding = format.split(';')[0].strip()
    assert f'encoding {encoding!r} is a depth image' in str(info.value)
    # The same payload from a grey 16-bit camera is a picture.
    assert compressed_to_rgb(png.tobytes(), 'mono16; png compressed mono16').shape == (8, 8, 3)


@pytest.mark.parametrize('encoding', [*YUV420_ENCODINGS, *COLOUR16_ENCODINGS])
def test_huge_claimed_size_is_truncated_before_any_allocation(encoding: str) -> None:
    width, height = 2**31, 2**32 - 2
    step = width * BYTES_PER_PIXEL[encoding]
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(64), encoding, width, height, step)
    assert info.value.reason == 'truncated'


def test_padding_bytes_are_ignored() -> None:
    # 2x2 rgb8 with a step of 8: two padding bytes of 0xEE per row, and trailing junk.
    rows = [bytes([1, 2, 3, 4, 5, 6]) + b'\xee\xee', bytes([7, 8, 9, 10, 11, 12]) + b'\xee\xee']
    data = b''.join(rows) + b'\xffextra'
    out = raw_to_rgb(data, 'rgb8', 2, 2, 8)
    np.testing.assert_array_equal(out.reshape(-1), np.arange(1, 13, dtype=np.uint8))


@pytest.mark.parametrize('kind', ['bytes', 'bytearray', 'memoryview', 'ndarray', 'array'])
def test_buffer_types(kind: str) -> None:
    raw = bytes(range(24))
    data = {
        'bytes': raw,
        'bytearray': bytearray(raw),
        'memoryview': memoryview(raw),
        'ndarray': np.frombuffer(raw, dtype=np.uint8).reshape(2, 12),
        'array': array.array('B', raw),
    }[kind]
    out = raw_to_rgb(data, 'bgr8', 4, 2, 12)
    assert_rgb_array(out, 2, 4)
    assert tuple(out[0, 0]) == (2, 1, 0)


def test_output_does_not_alias_input() -> None:
    data = bytearray(range(12))
    out = raw_to_rgb(data, 'rgb8', 2, 2, 6)
    data[0] = 200
    assert out[0, 0, 0] == 0
    assert out.flags.writeable


def test_truncated_message_names_sizes() -> None:
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(1000), 'rgb8', 640, 480, 1920)
    assert info.value.reason == 'truncated'
    assert str(info.value) == ('truncated image: 1000 bytes < step 1920 x height 480 '
                               '= 921600')


@pytest.mark.parametrize(('data', 'encoding', 'width', 'height', 'step', 'reason', 'text'), [
    (b'', 'rgb8', 4, 4, 12, 'empty', 'empty'),
    (bytes(48), 'rgb8', 0, 4, 12, 'empty', 'width 0'),
    (bytes(48), 'rgb8', 4, 0, 12, 'empty', 'height 0'),
    (bytes(48), 'rgb8', -4, 4, 12, 'bad_size', 'negative'),
    (bytes(48), 'rgb8', 4, 4, 11, 'bad_step', 'step 11 < row'),
    (bytes(48), 'rgba8', 4, 4, 12, 'bad_step', '= 16'),
    (bytes(48), 'mono16', 8, 3, 15, 'bad_step', 'mono16'),
    (bytes(48), 'yuv422', 3, 4, 12, 'bad_size', 'odd width 3'),
    (bytes(48), 'yuv422_yuy2', 5, 2, 12, 'bad_size', 'odd width 5'),
    (bytes(47), 'rgb8', 4, 4, 12, 'truncated', '47 bytes < step 12 x height 4 = 48'),
    (bytes(48), 'rgb32', 4, 4, 12, 'unknown_encoding', "'rgb32'"),
    (bytes(48), 'nv16', 4, 4, 4, 'unknown_encoding', "'nv16'"),
    (bytes(48), '16UC1', 4, 4, 8, 'unknown_encoding', "'16UC1' is a depth image"),
    (bytes(48), 'nv12', 3, 4, 4, 'bad_size', 'odd width 3 for nv12'),
    (bytes(48), 'nv21', 4, 3, 4, 'bad_size', 'odd height 3 for nv21'),
    (bytes(48), 'nv12', 8, 4, 7, 'bad_step', 'step 7 < row of 8 px x 1 bytes = 8 for nv12'),
    (bytes(48), 'rgb16', 4, 2, 23, 'bad_step', '= 24 for rgb16'),
    (bytes(48), 'bgra16', 2, 2, 15, 'bad_step', 'step 15 < row of 2 px x 8 bytes = 16'),
    (bytes(63), 'rgba16', 2, 4, 16, 'truncated', '63 bytes < step 16 x height 4 = 64'),
    (bytes(71), 'nv21', 8, 6, 8, 'truncated',
     '71 bytes < step 8 x 9 rows (6 luma + 3 chroma) = 72'),
    (bytes(48), '', 4, 4, 12, 'unknown_encoding', 'supported'),
    (bytes(48), '32FC1', 4, 3, 16, 'unknown_encoding', '32FC1'),
])
def test_raw_errors(data: bytes, encoding: str, width: int, height: int, step: int,
                    reason: str, text: str) -> None:
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(data, encoding, width, height, step)
    assert info.value.reason == reason
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


ENCODING_STRATEGY = st.sampled_from(SUPPORTED_ENCODINGS)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoding=ENCODING_STRATEGY, height=st.integers(1, 24), half_width=st.integers(1, 20),
       odd=st.booleans(), padding=st.integers(0, 17), extra=st.integers(0, 9),
       is_bigendian=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(encoding: str, height: int, half_width: int, odd: bool,
                             padding: int, extra: int, is_bigendian: bool,
                             seed: int) -> None:
    chroma_pairs = encoding in YUV_ENCODINGS + YUV420_ENCODINGS
    width = 2 * half_width - (1 if odd and not chroma_pairs else 0)
    if encoding in BAYER_ENCODINGS:  # smaller mosaics are refused (tested on their own)
        height, width = max(height, 3), max(width, 3)
    if encoding in YUV420_ENCODINGS:  # odd heights are refused (tested on their own)
        height += height % 2
    rgb = random_image(np.random.default_rng(seed), height, width, encoding)
    row = width * BYTES_PER_PIXEL[encoding]
    data, step = rgb_to_raw(rgb, encoding, step=row + padding, is_bigendian=is_bigendian)
    out = raw_to_rgb(data + b'\x55' * extra, encoding, width, height, step, is_bigendian)
    assert_rgb_array(out, height, width)
    expected, tolerance = expected_after_round_trip(rgb, encoding)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance
    # One byte short of step x rows is always an error ('empty' when nothing is left).
    size = step * buffer_rows(encoding, height)
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(data[:size - 1], encoding, width, height, step, is_bigendian)
    assert info.value.reason == ('empty' if size == 1 else 'truncated')


@settings(max_examples=40, deadline=None)
@given(encoding=ENCODING_STRATEGY, width=st.integers(1, 30), height=st.integers(1, 10),
       shortfall=st.integers(1, 30))
def test_short_step_property(encoding: str, width: int, height: int, shortfall: int) -> None:
    width += width % 2
    if encoding in BAYER_ENCODINGS:  # smaller mosaics are refused before the step is read
        height, width = max(height, 3), max(width, 3)
    if encoding in YUV420_ENCODINGS:  # as are odd heights
        height += height % 2
    row = width * BYTES_PER_PIXEL[encoding]
    step = max(0, row - shortfall)
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(bytes(row * buffer_rows(encoding, height)), encoding, width, height, step)
    assert info.value.reason == 'bad_step'


def test_rgb_to_raw_rejects_bad_input() -> None:
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((4, 4), dtype=np.uint8), 'rgb8')
    assert info.value.reason == 'bad_size'
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((4, 4, 3), dtype=np.uint8), 'rgb8', step=5)
    assert info.value.reason == 'bad_step'
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((4, 4, 3), dtype=np.uint8), 'nv16')
    assert info.value.reason == 'unknown_encoding'
    with pytest.raises(ImageConversionError) as info:
        rgb_to_raw(np.zeros((4, 4, 3), dtype=np.uint8), '16UC1')
    assert info.value.reason == 'unknown_encoding'


# Compressed images ---------------------------------------------------------------------

def two_colour_image() -> np.ndarray:
    """Return an RGB image: red left half, blue right half (channel order shows)."""
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[:, :24] = (255, 0, 0)
    rgb[:, 24:] = (0, 0, 255)
    return rgb


def encode(rgb: np.ndarray, extension: str) -> bytes:
    """Encode an RGB (or grey, or 16-bit) image with OpenCV, which expects BGR."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buffer = cv2.imencode(extension, image)
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize(('extension', 'format'), [
    ('.jpg', 'jpeg'), ('.jpg', 'jpg'), ('.jpg', 'JPEG'), ('.jpg', ''),
    ('.jpg', 'bgr8; jpeg compressed bgr8'), ('.jpg', 'rgb8; jpeg compressed bgr8'),
    ('.png', 'png'), ('.png', ''), ('.png', 'rgb8; png compressed bgr8'),
    ('.png', 'bgr8; png compressed bgr8'),
])
def test_compressed_colour(extension: str, format: str) -> None:
    rgb = two_colour_image()
    out = compressed_to_rgb(encode(rgb, extension), format)
    assert_rgb_array(out, 32, 48)
    tolerance = 0 if extension == '.png' else 12
    assert np.abs(out[4:-4, 4:20].astype(int) - [255, 0, 0]).max() <= tolerance
    assert np.abs(out[4:-4, 28:-4].astype(int) - [0, 0, 255]).max() <= tolerance


def test_compressed_real_photo_bytes(leaf: np.ndarray) -> None:
    data = (LEAVES_DIR / 'Tomato___Early_blight.jpg').read_bytes()
    np.testing.assert_array_equal(compressed_to_rgb(data, 'jpeg'), leaf)
    as_array = np.frombuffer(encode(leaf, '.png'), dtype=np.uint8)
    np.testing.assert_array_equal(compressed_to_rgb(as_array, 'png'), leaf)


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
def test_compressed_grey_gives_three_channels(extension: str) -> None:
    mono = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    out = compressed_to_rgb(encode(mono, extension), 'mono8; ' + extension[1:]
                            + ' compressed mono8')
    assert_rgb_array(out, 8, 16)
    assert np.array_equal(out[..., 0], out[..., 1])
    assert np.array_equal(out[..., 1], out[..., 2])
    tolerance = 0 if extension == '.png' else 8
    assert np.abs(out[..., 0].astype(int) - mono).max() <= tolerance


def test_compressed_png_16bit_scaled() -> None:
    mono16 = np.array([[0x0000, 0x1234, 0xFFFF]], dtype=np.uint16)
    out = compressed_to_rgb(encode(mono16, '.png'), 'mono16; png compressed mono16')
    np.testing.assert_array_equal(out[..., 0], [[0x00, 0x12, 0xFF]])
    rgb16 = np.full((2, 2, 3), 0x4000, dtype=np.uint16)
    rgb16[..., 2] = 0xFF00
    out = compressed_to_rgb(encode(rgb16, '.png'), 'png')
    assert tuple(out[0, 0]) == (0x40, 0x40, 0xFF)


def test_compressed_png_alpha_dropped() -> None:
    bgra = np.zeros((4, 4, 4), dtype=np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = 17
    ok, buffer = cv2.imencode('.png', bgra)
    assert ok
    out = compressed_to_rgb(buffer.tobytes(), 'bgra8; png compressed bgra8')
    assert_rgb_array(out, 4, 4)
    assert tuple(out[0, 0]) == (200, 0, 0)


def test_compressed_png_alpha_blended_over_a_given_background() -> None:
    bgra = np.zeros((2, 3, 4), dtype=np.uint16)
    bgra[..., 2] = 0xFFFF                # red, 16 bit
    bgra[0, :, 3] = 0                    # transparent row
    bgra[1, :, 3] = 0xFFFF               # opaque row
    bgra[1, 2, 3] = 0x8000               # about half
    ok, buffer = cv2.imencode('.png', bgra)
    assert ok
    out = compressed_to_rgb(buffer.tobytes(), 'png', alpha_background=(10, 20, 30))
    assert_rgb_array(out, 2, 3)
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[1, 0]) == (255, 0, 0)
    assert tuple(out[1, 2]) == (133, 10, 15)  # 0.5 * 255 + 0.5 * (10, 20, 30), rounded
    # Without a background (camera frames) the same payload drops alpha.
    assert tuple(compressed_to_rgb(buffer.tobytes(), 'png')[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize('case', ['jpeg_half', 'jpeg_no_eoi', 'png_half', 'png_header_only',
                                  'garbage', 'garbage_as_png', 'zeros'])
def test_compressed_decode_failures(case: str) -> None:
    jpeg = encode(two_colour_image(), '.jpg')
    png = encode(two_colour_image(), '.png')
    data, format = {
        'jpeg_half': (jpeg[:len(jpeg) // 2], 'jpeg'),
        'jpeg_no_eoi': (jpeg[:-2], 'bgr8; jpeg compressed bgr8'),
        'png_half': (png[:len(png) // 2], 'png'),
        'png_header_only': (png[:40], ''),
        'garbage': (b'this is not an image at all' * 4, 'jpeg'),
        'garbage_as_png': (b'\x89PNG\r\n\x1a\n' + bytes(64), 'png'),
        'zeros': (bytes(256), ''),
    }[case]
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(data, format)
    assert info.value.reason == 'decode_failed'


def test_compressed_empty() -> None:
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(b'', 'jpeg')
    assert info.value.reason == 'empty'


@pytest.mark.parametrize('format', ['h264', 'theora', '16UC1; compressedDepth png',
                                    'rgb8; webp compressed bgr8'])
def test_compressed_unsupported_format(format: str) -> None:
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(encode(two_colour_image(), '.png'), format)
    assert info.value.reason == 'unsupported_format'
    assert format in str(info.value)


def jpeg_with_frame(width: int, height: int, junk_before_frame: bytes = b'') -> bytes:
    """Return a real 16×16 JPEG whose frame header claims ``width``×``height``."""
    ok, encoded = cv2.imencode('.jpg', np.full((16, 16, 3), 100, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.find(b'\xff\xc0')
    data[sof + 5:sof + 9] = int(height).to_bytes(2, 'big') + int(width).to_bytes(2, 'big')
    return bytes(data[:sof] + junk_before_frame + data[sof:])


def test_junk_before_a_jpeg_frame_header_does_not_hide_its_size() -> None:
    """libjpeg skips "extraneous bytes" between segments; the size check must as well."""
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(jpeg_with_frame(20000, 20000, b'\x00\x17'), 'jpeg')
    assert info.value.reason == 'bad_size' and '20000x20000' in str(info.value)
    # Junk, fill bytes and a stuffed 0xFF00 before an honest frame: decoded as libjpeg does.
    out = compressed_to_rgb(jpeg_with_frame(16, 16, b'\x00\x17\xff\x00\xff\xff'), 'jpeg')
    assert out.shape == (16, 16, 3)


def test_a_jpeg_without_a_frame_header_is_refused() -> None:
    data = jpeg_with_frame(16, 16)
    sof = data.find(b'\xff\xc0')
    length = int.from_bytes(data[sof + 2:sof + 4], 'big')
    with pytest.raises(ImageConversionError, match='no frame header') as info:
        compressed_to_rgb(data[:sof] + data[sof + 2 + length:], 'jpeg')
    assert info.value.reason == 'decode_failed'


@pytest.mark.parametrize('extension', ['.webp', '.tiff'])
@pytest.mark.parametrize('format', ['jpeg', '', 'bgr8; jpeg compressed bgr8', 'png'])
def test_formats_other_than_jpeg_png_and_bmp_are_refused_whatever_the_label(
        extension: str, format: str) -> None:
    """OpenCV would decode them, but their headers (so their sizes) are not checked."""
    ok, encoded = cv2.imencode(extension, np.zeros((8, 8, 3), np.uint8))
    assert ok
    with pytest.raises(ImageConversionError, match='not a JPEG, PNG or BMP') as info:
        compressed_to_rgb(encoded.tobytes(), format)
    assert info.value.reason == 'decode_failed'


def test_bmp_is_decoded_and_its_claimed_size_checked() -> None:
    ok, encoded = cv2.imencode('.bmp', np.full((3, 5, 3), (10, 20, 30), np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    assert tuple(compressed_to_rgb(bytes(data))[0, 0]) == (30, 20, 10)
    data[18:26] = (20000).to_bytes(4, 'little') + (-20000).to_bytes(4, 'little', signed=True)
    with pytest.raises(ImageConversionError, match='20000x20000') as info:
        compressed_to_rgb(bytes(data))
    assert info.value.reason == 'bad_size'
