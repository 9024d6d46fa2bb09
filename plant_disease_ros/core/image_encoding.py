"""Convert raw and compressed camera images to RGB uint8, and RGB back to raw encodings.

Everything works on numpy views of the message buffer: rows are sliced out of the padded
buffer (``step`` bytes per row), channels are reordered by OpenCV, and the result is
always a fresh H×W×3 uint8 C-contiguous array that never aliases the caller's buffer.
"""

from __future__ import annotations

import re
import sys
from typing import NamedTuple

import cv2
import numpy as np

# A colour filter array as it reads in the top-left 2×2 block, row by row (ROS names), and
# the OpenCV code that demosaics it (OpenCV names a pattern by the block one pixel in from
# the corner, so ROS rggb is OpenCV BG; checked by a red-green-blue mosaic in the tests).
BAYER_PATTERNS: dict[str, int] = {
    'rggb': cv2.COLOR_BayerBG2RGB,
    'bggr': cv2.COLOR_BayerRG2RGB,
    'gbrg': cv2.COLOR_BayerGR2RGB,
    'grbg': cv2.COLOR_BayerGB2RGB,
}
BAYER_ENCODINGS: tuple[str, ...] = tuple(
    f'bayer_{pattern}{bits}' for bits in (8, 16) for pattern in BAYER_PATTERNS)
MIN_BAYER_SIDE = 3
"""OpenCV demosaics a mosaic under 3 rows or columns to black; such a mosaic is refused."""

YUV420_ENCODINGS: tuple[str, ...] = ('nv12', 'nv21')
"""4:2:0 semi-planar: ``height`` luma rows, then ``height / 2`` rows of interleaved chroma
(U V for nv12, V U for nv21) with the same ``step``; each 2×2 block shares one pair."""

SUPPORTED_ENCODINGS: tuple[str, ...] = (
    'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'rgb16', 'bgr16', 'rgba16',
    'bgra16', 'yuv422', 'yuv422_yuy2', *YUV420_ENCODINGS, *BAYER_ENCODINGS)

# Other names for the same byte layouts (sensor_msgs/image_encodings.hpp and camera drivers).
ENCODING_ALIASES: dict[str, str] = {
    'uyvy': 'yuv422', 'yuyv': 'yuv422_yuy2',
    # OpenCV type names, from drivers that publish a cv::Mat as it is (cv_bridge's
    # CvImage(header, '8UC3', mat)). The name says nothing of channel order, so the order is
    # OpenCV's own: its capture, imread and imshow are BGR(A), and cv_bridge's
    # cvtColorForDisplay reads CV_8UC3 and CV_8UC4 as bgr8 and bgra8 for the same reason.
    # Reading 8UC3 as RGB would swap red and blue in the common case (a brown lesion turns
    # blue); a driver that fills the Mat from an RGB source must say rgb8.
    '8uc1': 'mono8', '8uc3': 'bgr8', '8uc4': 'bgra8',
}

# Encodings that are not pictures of the scene, refused with the reason why. REP 118 makes
# 16UC1 (millimetres) and 32FC1 (metres) the depth image encodings, and depth cameras
# publish 16UC1: read as mono16 a depth map would be classified as a grey leaf. (cv_bridge
# shows 16UC1 as mono16, but only to display it.) A grey 16-bit camera says mono16.
NOT_CAMERA_ENCODINGS: dict[str, str] = {
    '16uc1': 'a depth image (REP 118: millimetres)',
    '32fc1': 'a depth image (REP 118: metres)',
}

BYTES_PER_PIXEL: dict[str, int] = {
    'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, 'mono16': 2,
    'rgb16': 6, 'bgr16': 6, 'rgba16': 8, 'bgra16': 8, 'yuv422': 2, 'yuv422_yuy2': 2,
    **{name: 1 for name in YUV420_ENCODINGS},  # per row; see buffer_rows for the rows
    **{name: 1 if name.endswith('8') else 2 for name in BAYER_ENCODINGS},
}

# Raw encodings of a grey camera: one sample a pixel, no colour filter (8UC1 is mono8).
# Bayer encodings are one sample a pixel too, but of a colour mosaic: a colour camera.
GREY_ENCODINGS: tuple[str, ...] = ('mono8', 'mono16')

# The 8-bit layout the high bytes of a 16-bit encoding make (Bayer keeps its own name).
_EIGHT_BIT_LAYOUTS: dict[str, str] = {
    'mono16': 'mono8', 'rgb16': 'rgb8', 'bgr16': 'bgr8', 'rgba16': 'rgba8', 'bgra16': 'bgra8',
}
_CHROMA_PAIR_ENCODINGS: tuple[str, ...] = ('yuv422', 'yuv422_yuy2', *YUV420_ENCODINGS)

COMPRESSED_FORMATS: tuple[str, ...] = ('jpeg', 'png')

_TO_RGB_CODES: dict[str, int] = {
    'bgr8': cv2.COLOR_BGR2RGB,
    'rgba8': cv2.COLOR_RGBA2RGB,
    'bgra8': cv2.COLOR_BGRA2RGB,
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2,
    'nv12': cv2.COLOR_YUV2RGB_NV12,
    'nv21': cv2.COLOR_YUV2RGB_NV21,
}
_FROM_RGB_CODES: dict[str, int] = {
    'bgr8': cv2.COLOR_RGB2BGR,
    'rgba8': cv2.COLOR_RGB2RGBA,
    'bgra8': cv2.COLOR_RGB2BGRA,
}
# RGB to 4:2:2 came with OpenCV 4.9; Ubuntu 24.04 and Debian 12 ship 4.6, where
# _rgb_to_yuv422 packs it from OpenCV's 4:2:0 coefficients instead.
_YUV422_CODE_NAMES: dict[str, str] = {
    'yuv422': 'COLOR_RGB2YUV_UYVY', 'yuv422_yuy2': 'COLOR_RGB2YUV_YUY2'}
_FROM_RGB_CODES.update({name: getattr(cv2, code) for name, code in _YUV422_CODE_NAMES.items()
                        if hasattr(cv2, code)})
_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


class ImageConversionError(ValueError):
    """An image that cannot be converted; ``reason`` is a short key for diagnostics.

    Reasons: 'unknown_encoding', 'empty', 'truncated', 'bad_step', 'bad_size',
    'decode_failed', 'unsupported_format'.
    """

    def __init__(self, reason: str, message: str) -> None:
        """Create the error with its diagnostics ``reason`` key and a readable message."""
        super().__init__(message)
        self.reason = reason


def _camera_encoding_name(encoding: str) -> str:
    """Return the lower-case, de-aliased name of ``encoding``; refuse a depth encoding.

    Raises 'unknown_encoding' for an encoding of :data:`NOT_CAMERA_ENCODINGS`, whether it
    comes raw or as the encoding a CompressedImage's format names.
    """
    name = str(encoding).strip().lower()
    name = ENCODING_ALIASES.get(name, name)
    if name in NOT_CAMERA_ENCODINGS:
        raise ImageConversionError(
            'unknown_encoding',
            f'encoding {encoding!r} is {NOT_CAMERA_ENCODINGS[name]}, not a camera picture; '
            f'supported: {", ".join(SUPPORTED_ENCODINGS)}')
    return name


def normalize_encoding(encoding: str) -> str:
    """Return the canonical name of ``encoding`` or raise 'unknown_encoding'."""
    name = _camera_encoding_name(encoding)
    if name not in BYTES_PER_PIXEL:
        raise ImageConversionError(
            'unknown_encoding',
            f'unknown encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}')
    return name


def is_grey_encoding(encoding: str) -> bool:
    """Return whether a raw ``encoding`` is a grey camera's (mono8, mono16, 8UC1).

    The message says so itself: its pixels can have no colour, whatever the scene. Bayer
    encodings are colour mosaics (not grey); an encoding :func:`raw_to_rgb` refuses is not
    grey either.
    """
    try:
        return normalize_encoding(encoding) in GREY_ENCODINGS
    except ImageConversionError:
        return False


def buffer_rows(encoding: str, height: int) -> int:
    """Return how many rows of ``step`` bytes an image ``height`` pixels high takes.

    ``height`` for every encoding but the 4:2:0 ones (nv12, nv21), whose chroma plane adds
    ``height / 2`` rows of the same ``step`` after the luma rows.
    """
    name = normalize_encoding(encoding)
    return height + height // 2 if name in YUV420_ENCODINGS else height


def _as_byte_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Return a flat read-only-safe uint8 view of any buffer-protocol object."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as error:
        # A multi-byte buffer format (e.g. array('H')) is reinterpreted byte by byte.
        try:
            return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
        except TypeError:
            raise ImageConversionError(
                'bad_size', f'image data of type {type(data).__name__} is not a byte buffer'
            ) from error


def raw_to_rgb(data: bytes | bytearray | memoryview | np.ndarray, encoding: str,
               width: int, height: int, step: int, is_bigendian: bool = False) -> np.ndarray:
    """Convert a raw image buffer (a sensor_msgs/Image payload) to H×W×3 uint8 RGB.

    ``step`` is the length of a row in bytes (padding allowed); bytes beyond
    ``step * buffer_rows(encoding, height)`` are ignored. ``is_bigendian`` matters only for
    16-bit encodings (mono16, rgb16, bgr16, rgba16, bgra16, bayer_*16), which are scaled to
    8 bit by keeping the high byte (``>> 8``). nv12 and nv21 (4:2:0, even width and height)
    take ``height * 3 / 2`` rows: the luma plane, then the interleaved chroma plane at row
    ``height``, both ``step`` bytes a row. Bayer mosaics (a camera's raw colour filter
    array, at least 3×3) are demosaiced bilinearly, as ``image_proc`` would before the node.
    The OpenCV type names 8UC1, 8UC3 and 8UC4 are read as mono8, bgr8 and bgra8.
    """
    name = normalize_encoding(encoding)
    width, height, step = int(width), int(height), int(step)
    if width < 0 or height < 0:
        raise ImageConversionError('bad_size', f'negative image size {width}x{height}')
    if width == 0 or height == 0:
        raise ImageConversionError('empty', f'empty image: width {width} x height {height}')
    buffer = _as_byte_array(data)
    if buffer.size == 0:
        raise ImageConversionError(
            'empty', f'empty image data for a {width}x{height} {name} image')
    _check_chroma_size(name, width, height)
    _check_bayer_size(name, width, height)
    row_bytes = width * BYTES_PER_PIXEL[name]
    if step < row_bytes:
        raise ImageConversionError(
            'bad_step', f'step {step} < row of {width} px x {BYTES_PER_PIXEL[name]} bytes '
            f'= {row_bytes} for {name}')
    row_count = buffer_rows(name, height)
    needed = step * row_count
    if buffer.size < needed:
        rows_text = (f'height {height}' if row_count == height else
                     f'{row_count} rows ({height} luma + {row_count - height} chroma)')
        raise ImageConversionError(
            'truncated', f'truncated image: {buffer.size} bytes < step {step} x {rows_text} '
            f'= {needed}')
    # Rows as a strided view: the padding at the end of each row is never touched.
    rows = buffer[:needed].reshape(row_count, step)[:, :row_bytes]
    if name == 'rgb8':
        return np.array(rows.reshape(height, width, 3), dtype=np.uint8, order='C', copy=True)
    if name in YUV420_ENCODINGS:
        # One 3H/2-row image with the message's step: OpenCV reads the chroma from row H on.
        return cv2.cvtColor(rows, _TO_RGB_CODES[name])
    if name.endswith('16'):
        # The high byte of each sample is the sample >> 8.
        rows = (rows[:, 0::2] if is_bigendian else rows[:, 1::2]).copy()
        name = _EIGHT_BIT_LAYOUTS.get(name, name)
        if name == 'rgb8':
            return rows.reshape(height, width, 3)  # a fresh array already
    # OpenCV reads the row-strided view directly (padding skipped) and writes a new array.
    if name in BAYER_ENCODINGS:
        return cv2.cvtColor(rows, BAYER_PATTERNS[_bayer_pattern(name)])
    if name == 'mono8':
        return cv2.cvtColor(rows, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, BYTES_PER_PIXEL[name])
    return cv2.cvtColor(pixels, _TO_RGB_CODES[name])


def _check_chroma_size(name: str, width: int, height: int) -> None:
    """Refuse a size the encoding's shared chroma samples cannot cover."""
    if name in _CHROMA_PAIR_ENCODINGS and width % 2:
        raise ImageConversionError(
            'bad_size', f'odd width {width} for {name} (two pixels share one chroma pair)')
    if name in YUV420_ENCODINGS and height % 2:
        raise ImageConversionError(
            'bad_size', f'odd height {height} for {name} (two rows share one chroma row)')


def _bayer_pattern(name: str) -> str:
    """Return the pattern of a Bayer encoding: 'rggb' of 'bayer_rggb8'."""
    return name[len('bayer_'):len('bayer_') + 4]


def _check_bayer_size(name: str, width: int, height: int) -> None:
    if name in BAYER_ENCODINGS and min(width, height) < MIN_BAYER_SIDE:
        raise ImageConversionError(
            'bad_size', f'a {width}x{height} {name} mosaic is too small to demosaic (at least '
            f'{MIN_BAYER_SIDE}x{MIN_BAYER_SIDE})')


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Return the H×W single-channel mosaic a camera with ``pattern`` takes of ``rgb``."""
    mosaic = np.empty(rgb.shape[:2], dtype=rgb.dtype)
    for site, colour in enumerate(pattern):
        row, column = divmod(site, 2)
        mosaic[row::2, column::2] = rgb[row::2, column::2, 'rgb'.index(colour)]
    return mosaic


def rgb_to_raw(rgb: np.ndarray, encoding: str, *, step: int | None = None,
               is_bigendian: bool = False) -> tuple[bytes, int]:
    """Encode an H×W×3 uint8 RGB image as a raw buffer; return ``(data, step)``.

    The inverse of :func:`raw_to_rgb`. ``step`` (bytes per row, at least one row) adds
    zero padding at the end of each row; ``is_bigendian`` sets the byte order of the
    16-bit encodings (mono16, rgb16, bgr16, rgba16, bgra16, bayer_*16).
    Mono encodings store the luma; 16-bit encodings repeat the 8-bit value in both bytes
    so that ``>> 8`` returns it. YUV encodings are BT.601 as OpenCV writes them: 4:2:2 for
    yuv422 and yuv422_yuy2, 4:2:0 for nv12 and nv21 (its I420 planes, interleaved).
    Bayer encodings keep one colour per pixel, as the pattern's filter passes it.
    """
    name = normalize_encoding(encoding)
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageConversionError(
            'bad_size', f'expected an HxWx3 uint8 RGB image, got shape {image.shape} '
            f'dtype {image.dtype}')
    height, width = image.shape[:2]
    if width == 0 or height == 0:
        raise ImageConversionError('empty', f'empty image: width {width} x height {height}')
    _check_chroma_size(name, width, height)
    _check_bayer_size(name, width, height)
    image = np.ascontiguousarray(image)
    layout = _EIGHT_BIT_LAYOUTS.get(name, name)
    if name in YUV420_ENCODINGS:
        samples = _rgb_to_yuv420_semi_planar(image, name)
    elif name in _YUV422_CODE_NAMES and name not in _FROM_RGB_CODES:
        samples = _rgb_to_yuv422(image, name)
    elif layout == 'rgb8':
        samples = image
    elif layout == 'mono8':
        samples = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif name in BAYER_ENCODINGS:
        samples = bayer_mosaic(image, _bayer_pattern(name))
    else:
        samples = cv2.cvtColor(image, _FROM_RGB_CODES[layout])
    if name.endswith('16'):
        wide = samples.astype(np.uint16) * np.uint16(257)
        pixels = np.ascontiguousarray(wide.astype('>u2' if is_bigendian else '<u2'))
        pixels = pixels.view(np.uint8)
    else:
        pixels = samples
    row_bytes = width * BYTES_PER_PIXEL[name]
    rows = np.ascontiguousarray(pixels).reshape(buffer_rows(name, height), row_bytes)
    if step is None or step == row_bytes:
        return rows.tobytes(), row_bytes
    if step < row_bytes:
        raise ImageConversionError('bad_step', f'step {step} < row of {row_bytes} bytes')
    padded = np.zeros((rows.shape[0], step), dtype=np.uint8)
    padded[:, :row_bytes] = rows
    return padded.tobytes(), int(step)


# BT.601, video range, as OpenCV's RGB to YUV conversions compute it: Y, U, V rows
# applied to R, G, B in 0..255, plus the offsets.
_BT601_VIDEO = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                         [112.0, -93.786, -18.214]]) / 255.0
_BT601_OFFSETS = np.array([16.0, 128.0, 128.0])


def _rgb_to_yuv422(image: np.ndarray, name: str) -> np.ndarray:
    """Return the H×2W packed 4:2:2 samples (UYVY for yuv422, YUYV for yuv422_yuy2).

    For an OpenCV without RGB to 4:2:2 (before 4.9): each pixel's luma, and the chroma of
    each pair of pixels from their mean colour, with the coefficients of OpenCV's own
    conversions (within a level of them), so :func:`raw_to_rgb` reads it back as it
    reads a camera's.
    """
    height, width = image.shape[:2]
    rgb = image.astype(np.float64)
    luma = rgb @ _BT601_VIDEO[0] + _BT601_OFFSETS[0]
    pairs = rgb.reshape(height, width // 2, 2, 3).mean(axis=2)
    u = pairs @ _BT601_VIDEO[1] + _BT601_OFFSETS[1]
    v = pairs @ _BT601_VIDEO[2] + _BT601_OFFSETS[2]
    packed = np.empty((height, width // 2, 4), dtype=np.float64)
    luma_pairs = luma.reshape(height, width // 2, 2)
    if name == 'yuv422':      # U Y0 V Y1
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = (
            u, luma_pairs[..., 0], v, luma_pairs[..., 1])
    else:                     # Y0 U Y1 V
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = (
            luma_pairs[..., 0], u, luma_pairs[..., 1], v)
    samples = np.clip(np.rint(packed), 0, 255).astype(np.uint8)
    return samples.reshape(height, width * 2)


def _rgb_to_yuv420_semi_planar(image: np.ndarray, name: str) -> np.ndarray:
    """Return the (3H/2)×W nv12 or nv21 image of an even-sized RGB ``image``.

    OpenCV writes 4:2:0 only as planes (I420: Y, then U, then V); nv12 interleaves the
    chroma planes U V, nv21 V U.
    """
    height, width = image.shape[:2]
    planar = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    luma_size, chroma_size = height * width, height * width // 4
    u = planar[luma_size:luma_size + chroma_size].reshape(height // 2, width // 2)
    v = planar[luma_size + chroma_size:].reshape(height // 2, width // 2)
    first, second = (u, v) if name == 'nv12' else (v, u)
    chroma = np.empty((height // 2, width), dtype=np.uint8)
    chroma[:, 0::2] = first
    chroma[:, 1::2] = second
    return np.concatenate([planar[:luma_size].reshape(height, width), chroma])


def compressed_codec(format: str, data: np.ndarray | None = None) -> str:
    """Return 'jpeg', 'png' or '' (unknown, sniff the data) for a CompressedImage format.

    Understands plain names ('jpeg', 'jpg', 'png') and the image_transport style
    '<encoding>; <codec> compressed <encoding>'. Raises 'unsupported_format' for any
    other codec (compressedDepth, theora, h264, ...), and 'unknown_encoding' when the
    encoding before the ';' is a depth encoding (16UC1, 32FC1), as :func:`raw_to_rgb`
    does: image_transport's compressed plugin sends a depth image as a 16-bit PNG, which
    would decode as a grey picture.
    """
    text = str(format).strip().lower()
    if not text:
        if data is not None:
            head = data[:8].tobytes()
            if head.startswith(_JPEG_MAGIC):
                return 'jpeg'
            if head.startswith(_PNG_MAGIC):
                return 'png'
        return ''
    if 'compresseddepth' in text:
        raise ImageConversionError(
            'unsupported_format', f'unsupported compressed format {format!r} '
            '(compressedDepth is not a colour image)')
    codec_part = text
    if ';' in text:
        # The encoding as sent, for the message: the same refusal as a raw depth image's.
        _camera_encoding_name(str(format).split(';', 1)[0].strip())
        codec_part = text.split(';', 1)[1]
    tokens = codec_part.replace(',', ' ').split()
    for token in tokens:
        if token in ('jpeg', 'jpg'):
            return 'jpeg'
        if token == 'png':
            return 'png'
    raise ImageConversionError(
        'unsupported_format',
        f'unsupported compressed format {format!r}; supported: {", ".join(COMPRESSED_FORMATS)}')


def _jpeg_is_complete(raw: bytes) -> bool:
    """Return whether a JPEG stream ends its last scan with an end-of-image marker.

    libjpeg pads a truncated stream with grey and only warns, so truncation is checked
    here: scan data cannot contain 0xFFD9 (0xFF is byte-stuffed), so the last EOI must
    come after the last start-of-scan.
    """
    return raw.rfind(b'\xff\xd9') > raw.rfind(b'\xff\xda') >= 0


MAX_COMPRESSED_PIXELS = 50_000_000
"""Largest image a compressed payload may claim, in pixels (a 50 Mpx camera)."""

MAX_DECODED_BYTES = 150_000_000
"""Largest image a compressed payload may claim, in bytes as OpenCV decodes it.

Pixels × channels × bytes per sample, read from the header before anything is decoded:
150 MB is a 50 Mpx 8-bit colour image, so every 8-bit grey or colour image within
:data:`MAX_COMPRESSED_PIXELS` passes, while 8-bit RGBA stops at 37.5 Mpx, 16-bit RGB at
25 Mpx and 16-bit RGBA at 18.75 Mpx (a 380 KB PNG claiming 7000×7000 16-bit RGBA would
decode to 392 MB). Decoding briefly takes about twice the decoded size (measured with
OpenCV 5.1's cv2.imdecode); past the decoder only the RGB result is full-size.
"""

# JPEG start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# A JPEG marker as libjpeg's reader finds it between segments: the last 0xFF before a byte
# that is neither another (fill) 0xFF nor the 0x00 of a stuffed 0xFF00. Searched for in C:
# megabytes of junk between segments must not cost a Python step a byte.
_JPEG_MARKER = re.compile(rb'\xff[^\x00\xff]')
# Segments a JPEG may have before its frame header. A camera writes a dozen (APPn, DQT, DHT,
# COM); an ICC profile split over APP2 segments adds at most 255. A stream of thousands of
# tiny segments (5 MB of empty comments: a million) would cost a Python step each.
MAX_JPEG_SEGMENTS_BEFORE_FRAME = 1024
# Channels OpenCV decodes each PNG colour type to (IMREAD_UNCHANGED): grey stays one
# channel, grey + alpha becomes BGRA; RGB and palette become BGRA with a tRNS chunk.
_PNG_CHANNELS: dict[int, int] = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
_PNG_CHANNELS_WITH_TRNS: dict[int, int] = {**_PNG_CHANNELS, 2: 4, 3: 4}
# The PNG colour types that store no colour: grey (0) and grey + alpha (4). A palette (3)
# may hold colours, so it is never taken for grey.
_PNG_GREY_TYPES = frozenset({0, 4})
_HIGH_BYTE = 1 if sys.byteorder == 'little' else 0
"""Index of the high byte of a native uint16 seen as two uint8."""
_BLEND_PIXELS = 1 << 20
"""Pixels blended over a background at a time: the float32 temporaries stay ~12 MB each."""


class ClaimedImage(NamedTuple):
    """What a compressed image's header says it decodes to (as OpenCV decodes it)."""

    width: int
    height: int
    channels: int
    """Channels OpenCV decodes to (1 grey, 3 BGR, 4 BGRA), not as the file stores them."""
    sample_bytes: int
    """1, or 2 for 16-bit samples (a 16-bit PNG; a JPEG of more than 8-bit precision)."""
    grey: bool = False
    """Whether the file stores no colour: a JPEG of one component, a PNG of colour type 0
    (grey) or 4 (grey + alpha). A BMP is never called grey (its palette may be colour)."""

    @property
    def pixels(self) -> int:
        """Return width × height."""
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """Return the size of the decoded image: pixels × channels × bytes per sample."""
        return self.pixels * self.channels * self.sample_bytes


def _png_claim(raw: bytes) -> ClaimedImage | None:
    """Walk a PNG's chunks; return what its IHDR claims (None without one).

    A chunk longer than the data left is refused. libpng reads only the first IHDR (it
    refuses another). A tRNS chunk before the image data makes OpenCV decode RGB and
    palette images with alpha (4 channels).
    """
    position = 8
    header: tuple[int, int, int, int] | None = None
    transparency = seen_data = False
    while position + 8 <= len(raw):
        length = int.from_bytes(raw[position:position + 4], 'big')
        kind = raw[position + 4:position + 8]
        left = len(raw) - position - 12
        if length > left:
            raise ImageConversionError(
                'decode_failed', f'corrupt PNG: chunk {kind.decode("latin-1")!r} claims '
                f'{length} bytes, {max(0, left)} left')
        if kind == b'IHDR' and length >= 8 and header is None:
            body = raw[position + 8:position + 8 + length]
            # A header too short for its bit depth and colour type is taken at the worst:
            # 16-bit RGBA.
            depth, colour = (body[8], body[9]) if length >= 10 else (16, 6)
            header = (int.from_bytes(body[0:4], 'big'), int.from_bytes(body[4:8], 'big'),
                      depth, colour)
        elif kind == b'tRNS' and not seen_data:
            transparency = True
        elif kind == b'IDAT':
            seen_data = True
        elif kind == b'IEND':
            break
        position += 12 + length
    if header is None:
        return None
    width, height, depth, colour = header
    channels = _PNG_CHANNELS_WITH_TRNS if transparency else _PNG_CHANNELS
    # Bit depths 1, 2 and 4 are expanded to a byte; an unknown colour type counts as RGBA.
    return ClaimedImage(width, height, channels.get(colour, 4), 2 if depth > 8 else 1,
                        grey=colour in _PNG_GREY_TYPES)


def _bmp_claim(raw: bytes) -> ClaimedImage:
    """Return what a BMP's header (at least 26 bytes) claims.

    OpenCV decodes 32 bits a pixel as BGRA (when it has alpha) and every other depth as
    BGR or grey: counted as 4 and 3 channels. (Counting a grey palette as 3 refuses
    nothing: 3 bytes a pixel within :data:`MAX_COMPRESSED_PIXELS` is within
    :data:`MAX_DECODED_BYTES`.) A header cut short before its bit count counts as 32.
    """
    header = int.from_bytes(raw[14:18], 'little')
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = (int.from_bytes(raw[18:20], 'little'),
                         int.from_bytes(raw[20:22], 'little'))
        bits = int.from_bytes(raw[24:26], 'little')
    else:  # height < 0: rows stored top-down
        width, height = (abs(int.from_bytes(raw[18:22], 'little', signed=True)),
                         abs(int.from_bytes(raw[22:26], 'little', signed=True)))
        bits = int.from_bytes(raw[28:30], 'little') if len(raw) >= 30 else 32
    return ClaimedImage(width, height, 4 if bits == 32 else 3, 1)


def claimed_image(data: bytes | np.ndarray) -> ClaimedImage | None:
    """Return the size and samples a JPEG, PNG or BMP payload's header claims.

    Only the headers are walked (microseconds). ``None`` for a PNG without IHDR (the
    decoder refuses it). Raises :class:`ImageConversionError` ('decode_failed') for a PNG
    chunk longer than the data, a JPEG without a frame header before its image data, and
    anything that is not JPEG, PNG or BMP (a BMP of 26 bytes at least).
    """
    raw = data if isinstance(data, bytes) else _as_byte_array(data).tobytes()
    if raw.startswith(_PNG_MAGIC):
        return _png_claim(raw)
    if raw.startswith(_JPEG_MAGIC):
        claim = _jpeg_frame(raw)
        if claim is None:
            raise ImageConversionError(
                'decode_failed', f'corrupt JPEG: no frame header before its image data '
                f'({len(raw)} bytes)')
        return claim
    if raw.startswith(b'BM') and len(raw) >= 26:
        return _bmp_claim(raw)
    raise ImageConversionError(
        'decode_failed', f'not a JPEG, PNG or BMP stream (starts {raw[:8].hex(" ")}, '
        f'{len(raw)} bytes)')


def compressed_grey_kind(data: bytes | np.ndarray) -> str:
    """Return 'grey JPEG' or 'grey PNG' for a payload that stores no colour, else ''.

    Read from the header (:attr:`ClaimedImage.grey`): a JPEG of one component, a PNG of
    colour type 0 or 4. This is the camera's own word that its pictures have no colour; a
    colour JPEG of a grey scene (gravel, concrete), which decodes without colour too (its
    chroma noise compressed away), is a colour picture here. '' for a colour JPEG or PNG,
    a BMP and a payload whose header cannot be read (the decoder says what is wrong).
    """
    try:
        raw = data if isinstance(data, bytes) else _as_byte_array(data).tobytes()
        claim = claimed_image(raw)
    except ImageConversionError:
        return ''
    return _grey_kind(claim, raw[:8])


def _grey_kind(claim: ClaimedImage | None, head: bytes) -> str:
    """Return :func:`compressed_grey_kind` of a payload starting ``head`` that claims ``claim``."""
    if claim is None or not claim.grey:
        return ''
    return 'grey PNG' if head.startswith(_PNG_MAGIC) else 'grey JPEG'


def _check_compressed_header(raw: bytes) -> ClaimedImage | None:
    """Refuse a payload whose header would make the decoder allocate far beyond its size.

    OpenCV trusts the header: a corrupt PNG chunk length or a JPEG frame header claiming
    20000×20000 pixels makes it allocate gigabytes from a few hundred bytes (found by the
    fuzz tests), which can get a robot's node killed for memory; so does a small PNG
    claiming 7000×7000 16-bit RGBA (8 bytes a pixel), hence the cap on decoded bytes as
    well as on pixels. Only the headers are walked, so this costs microseconds. Only
    JPEG, PNG and BMP are let through: OpenCV decodes a dozen more formats whatever the
    message's ``format`` says (a WebP labelled 'jpeg'), whose headers are not checked
    here. A JPEG is walked as libjpeg reads it (bytes between segments are skipped), and
    one without a frame header is refused, so junk before the frame header cannot hide
    its size. Returns what the header claims (None for a PNG without IHDR).
    """
    claim = claimed_image(raw)
    if claim is None:
        return None
    if claim.pixels > MAX_COMPRESSED_PIXELS:
        raise ImageConversionError(
            'bad_size', f'compressed image claims {claim.width}x{claim.height} pixels, more '
            f'than {MAX_COMPRESSED_PIXELS}')
    if claim.decoded_bytes > MAX_DECODED_BYTES:
        raise ImageConversionError(
            'bad_size', f'compressed image claims {claim.width}x{claim.height} pixels of '
            f'{claim.channels} x {8 * claim.sample_bytes}-bit samples, '
            f'{claim.decoded_bytes / 1e6:.0f} MB decoded, more than '
            f'{MAX_DECODED_BYTES / 1e6:.0f} MB')
    return claim


def _jpeg_frame(raw: bytes) -> ClaimedImage | None:
    """Return what a JPEG's frame header claims, or None if none comes first.

    Walks the segments as libjpeg's marker reader does: bytes that are not a marker are
    skipped (libjpeg warns of "extraneous bytes" and goes on), as are fill bytes (0xFF)
    and a stuffed 0xFF00; a segment with a length is jumped over. OpenCV decodes one
    component as grey and three or four (CMYK) as BGR; a precision above 8 bits (a 12-bit
    JPEG) as 16-bit samples. The bytes between segments are searched for the next marker
    (in C), not stepped through, so junk padding a frame cannot stall the caller; more
    than :data:`MAX_JPEG_SEGMENTS_BEFORE_FRAME` segments before the frame header are
    refused ('decode_failed') for the same reason.
    """
    position = 2
    segments = 0
    while (found := _JPEG_MARKER.search(raw, position)) is not None:
        position = found.start()
        segments += 1
        if segments > MAX_JPEG_SEGMENTS_BEFORE_FRAME:
            raise ImageConversionError(
                'decode_failed', f'corrupt JPEG: more than {MAX_JPEG_SEGMENTS_BEFORE_FRAME} '
                f'segments before its frame header ({len(raw)} bytes)')
        marker = raw[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            position += 2
            continue
        if marker in _JPEG_FRAME_MARKERS:
            # Length (2), precision (1), height (2), width (2), components (1).
            if position + 10 > len(raw):
                return None
            precision, components = raw[position + 4], raw[position + 9]
            return ClaimedImage(int.from_bytes(raw[position + 7:position + 9], 'big'),
                                int.from_bytes(raw[position + 5:position + 7], 'big'),
                                1 if components == 1 else 3, 2 if precision > 8 else 1,
                                grey=components == 1)
        if marker in (0xDA, 0xD9):  # start of scan or end of image: no frame header
            return None
        if position + 4 > len(raw):
            return None
        position += 2 + int.from_bytes(raw[position + 2:position + 4], 'big')
    return None


def _over_background(bgra: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Blend a BGRA image (8 or 16 bit) over an RGB ``background``; return uint8 RGB.

    Blended in bands of about :data:`_BLEND_PIXELS` pixels, so the float32 temporaries
    stay a few megabytes whatever the image's size (the same values as the whole at once).
    """
    if bgra.dtype not in (np.uint8, np.uint16):
        raise ImageConversionError(
            'unsupported_format', f'decoded image has unsupported dtype {bgra.dtype}')
    full = float(np.iinfo(bgra.dtype).max)
    below = np.asarray(background, np.float32).reshape(1, 1, 3) / 255.0
    height, width = bgra.shape[:2]
    rgb = np.empty((height, width, 3), np.uint8)
    band = max(1, _BLEND_PIXELS // max(1, width))
    for top in range(0, height, band):
        part = bgra[top:top + band]
        colour = part[..., 2::-1].astype(np.float32) / full
        alpha = part[..., 3:].astype(np.float32) / full
        blended = colour * alpha + below * (1.0 - alpha)
        rgb[top:top + band] = np.clip(np.rint(blended * 255.0), 0, 255)
    return rgb


def _high_bytes_to_rgb(image: np.ndarray) -> np.ndarray:
    """Return a 16-bit grey, BGR or BGRA image as uint8 RGB of its high bytes (``>> 8``).

    One pass, no intermediate: OpenCV copies the high byte of each sample (the uint16
    array seen as bytes) straight to its RGB place, dropping alpha.
    """
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    samples = np.ascontiguousarray(image).reshape(height, width, channels).view(np.uint8)
    if channels == 1:
        pairs = [_HIGH_BYTE, 0, _HIGH_BYTE, 1, _HIGH_BYTE, 2]
    elif channels in (3, 4):  # B G R (A): R, G, B are samples 2, 1, 0
        pairs = [4 + _HIGH_BYTE, 0, 2 + _HIGH_BYTE, 1, _HIGH_BYTE, 2]
    else:
        raise ImageConversionError(
            'unsupported_format', f'decoded image has {channels} channels')
    rgb = np.empty((height, width, 3), np.uint8)
    cv2.mixChannels([samples], [rgb], pairs)
    return rgb


def check_compressed_payload(data: bytes | np.ndarray) -> ClaimedImage | None:
    """Refuse, before decoding, a payload no decoder should be given.

    Empty data; a stream that is not JPEG, PNG or BMP; a header claiming more than
    :data:`MAX_COMPRESSED_PIXELS` pixels or :data:`MAX_DECODED_BYTES` decoded bytes
    ('bad_size'), or a PNG chunk longer than the data; a JPEG without an end-of-image
    marker (libjpeg would pad it with grey). Raises :class:`ImageConversionError`.
    Returns what the header claims (:func:`claimed_image`), walked once here.
    """
    buffer = _as_byte_array(data)
    if buffer.size == 0:
        raise ImageConversionError('empty', 'empty compressed image data')
    raw = buffer.tobytes()  # one copy for both header checks
    claim = _check_compressed_header(raw)
    if raw.startswith(_JPEG_MAGIC) and not _jpeg_is_complete(raw):
        raise ImageConversionError(
            'decode_failed', f'truncated JPEG: {buffer.size} bytes, no end-of-image marker')
    return claim


def compressed_to_rgb(data: bytes | np.ndarray, format: str = '',
                      alpha_background: tuple[int, int, int] | None = None) -> np.ndarray:
    """Decode a JPEG or PNG (a sensor_msgs/CompressedImage payload) to H×W×3 uint8 RGB.

    Grey images are expanded to three channels and 16-bit PNGs are scaled to 8 bit
    (``>> 8``). Alpha is dropped (a camera's alpha carries nothing) unless
    ``alpha_background`` gives an RGB colour: then each pixel is blended over it by its
    alpha, so the colours a transparent pixel happens to store never show (a leaf cut out
    of its photo; an alpha that is zero everywhere is ignored). ``format`` may be empty
    (the data is sniffed), 'jpeg', 'png' or the
    image_transport style 'bgr8; jpeg compressed bgr8'. A truncated JPEG, which libjpeg
    would pad with grey, is refused, as is a header claiming more than
    :data:`MAX_DECODED_BYTES` decoded. Past the decoder, the only full-size array made is
    the RGB result (and the bands of an alpha blend).
    """
    return compressed_to_rgb_and_grey_kind(data, format, alpha_background)[0]


def compressed_to_rgb_and_grey_kind(
        data: bytes | np.ndarray, format: str = '',
        alpha_background: tuple[int, int, int] | None = None) -> tuple[np.ndarray, str]:
    """Decode as :func:`compressed_to_rgb`; return the RGB and :func:`compressed_grey_kind`.

    The header is walked once for both (a camera frame needs both), and the payload
    copied once.
    """
    buffer = _as_byte_array(data)
    codec = compressed_codec(format, buffer)
    grey_kind = _grey_kind(check_compressed_payload(buffer), buffer[:8].tobytes())
    return _decode_to_rgb(buffer, codec, format, alpha_background), grey_kind


def _decode_to_rgb(buffer: np.ndarray, codec: str, format: str,
                   alpha_background: tuple[int, int, int] | None) -> np.ndarray:
    """Decode a checked payload with OpenCV; return H×W×3 uint8 RGB (see compressed_to_rgb)."""
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else 'cv2 error'
        raise ImageConversionError(
            'decode_failed', f'cannot decode {codec or "compressed"} image '
            f'({buffer.size} bytes): {message}') from error
    if image is None or image.size == 0:
        raise ImageConversionError(
            'decode_failed', f'cannot decode {codec or "compressed"} image '
            f'({buffer.size} bytes, format {format!r})')
    if (image.ndim == 3 and image.shape[2] == 4 and alpha_background is not None
            and image[..., 3].any()):
        # An alpha that is zero everywhere is a writer's omission (some 32-bit BMPs), not
        # a photo of nothing: such an image is taken as opaque.
        return _over_background(image, alpha_background)
    if image.dtype == np.uint16:
        return _high_bytes_to_rgb(image)
    if image.dtype != np.uint8:
        raise ImageConversionError(
            'unsupported_format', f'decoded image has unsupported dtype {image.dtype}')
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageConversionError(
        'unsupported_format', f'decoded image has {image.shape[2]} channels')
