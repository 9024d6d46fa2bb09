"""Seeded generators of good and bad Image, CompressedImage and NavSatFix messages.

Every generated :class:`FuzzCase` carries the message and what the node's conversion must
make of it: ``expected=None`` for a usable message, a reason key (``'truncated'``, ...)
for a message with exactly one defect, or ``ANY_REASON`` for a message mangled at
random (it must then convert or fail with one of the documented reasons, nothing else).
Usable raw images also carry the RGB image they hold, so the conversion is checked
pixel for pixel where the encoding is lossless.

The same cases feed the pure-function fuzz test (10,000 messages through
``conversions.py`` and the core) and the burst into a live classifier node.
"""

from __future__ import annotations

import array
from collections.abc import Iterator
from dataclasses import dataclass
import math
import struct
import zlib

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, NavSatFix, NavSatStatus

from helpers.encoded_images import png_chunk, PNG_SIGNATURE
from helpers.gps import make_fix

# The reasons documented in docs/ARCHITECTURE.md (ImageConversionError.reason).
IMAGE_REASONS = frozenset({'unknown_encoding', 'empty', 'truncated', 'bad_step',
                           'bad_size', 'decode_failed', 'unsupported_format'})
# The reasons of fix_rejection_reason.
FIX_REASONS = frozenset({'no_fix', 'non_finite', 'out_of_range', 'inaccurate'})
ANY_REASON = '*'

RAW_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422',
                 'yuv422_yuy2', 'bayer_rggb8', 'bayer_gbrg8', 'bayer_bggr16', 'bayer_grbg16')
BYTES_PER_PIXEL = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, 'mono16': 2,
                   'yuv422': 2, 'yuv422_yuy2': 2, 'bayer_rggb8': 1, 'bayer_gbrg8': 1,
                   'bayer_bggr16': 2, 'bayer_grbg16': 2}
MIN_BAYER_SIDE = 3  # smaller mosaics cannot be demosaiced and are refused as bad_size
BOGUS_ENCODINGS = ('', ' ', 'RGB 8', 'bgr32', 'rgb10', '16UC1', '32FC1', '8UC2', 'jpeg',
                   'bayer_rgbg8', 'nv16', 'y\u00fcv422', 'mono8 mono8',
                   'a' * 300)
JPEG_FORMATS = ('jpeg', 'jpg', 'JPEG', 'bgr8; jpeg compressed bgr8',
                'rgb8; jpeg compressed rgb8', '')
PNG_FORMATS = ('png', 'PNG', 'bgr8; png compressed bgr8', 'mono8; png compressed mono8', '')
UNSUPPORTED_FORMATS = ('theora', 'h264', 'tiff', 'webp', 'bmp', 'avif', 'x',
                       '16UC1; compressedDepth png', 'compressedDepth')

STAMP_SEC_MAX = 2**31 - 1


@dataclass
class FuzzCase:
    """One generated message and what its conversion must give."""

    kind: str  # 'image' | 'compressed' | 'fix'
    msg: Image | CompressedImage | NavSatFix
    expected: str | None  # None: usable; a reason; or ANY_REASON
    note: str
    rgb: np.ndarray | None = None  # the image a usable lossless raw message holds


def _payload(data: bytes | np.ndarray) -> array.array:
    """Return message data as array('B') (assigned without per-element checks)."""
    payload = array.array('B')
    payload.frombytes(data.tobytes() if isinstance(data, np.ndarray) else bytes(data))
    return payload


def _random_rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return a random RGB image with some structure (compressible, not pure noise)."""
    base = rng.integers(0, 256, (max(1, height // 4 + 1), max(1, width // 4 + 1), 3),
                        dtype=np.uint8)
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_NEAREST)
    noise = rng.integers(0, 16, image.shape, dtype=np.uint8)
    return np.ascontiguousarray(image + noise)


def _stamp(rng: np.random.Generator, msg, odd: bool = False) -> None:
    """Give a message a plausible stamp, or (``odd``) a zero, negative, huge or early one."""
    if odd:
        sec = int(rng.choice([0, 1, -1, -2**31, STAMP_SEC_MAX, int(rng.integers(0, 1_000))]))
    else:
        sec = 1_700_000_000 + int(rng.integers(0, 100_000))
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = int(rng.integers(0, 1_000_000_000))
    msg.header.frame_id = 'camera' if not odd else str(rng.choice(['', 'x' * 200, 'cam']))


def encode_raw(rgb: np.ndarray, encoding: str, rng: np.random.Generator,
               is_bigendian: bool = False) -> tuple[bytes, int, np.ndarray | None]:
    """Encode ``rgb`` in ``encoding`` with numpy only (independent of the core).

    Return ``(row bytes, bytes per row, the RGB the decoder must give back or None)``;
    the last is ``None`` for lossy YUV.
    """
    height, width = rgb.shape[:2]
    if encoding == 'rgb8':
        return rgb.tobytes(), width * 3, rgb
    if encoding == 'bgr8':
        return rgb[:, :, ::-1].tobytes(), width * 3, rgb
    if encoding in ('rgba8', 'bgra8'):
        alpha = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        colour = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
        return np.concatenate([colour, alpha], axis=2).tobytes(), width * 4, rgb
    if encoding == 'mono8':
        gray = rgb[:, :, 0]
        return gray.tobytes(), width, np.repeat(gray[:, :, None], 3, axis=2)
    if encoding == 'mono16':
        high = rgb[:, :, 0].astype(np.uint16)
        wide = (high << 8) | rng.integers(0, 256, high.shape, dtype=np.uint16)
        data = wide.astype('>u2' if is_bigendian else '<u2').tobytes()
        expected = np.repeat(high.astype(np.uint8)[:, :, None], 3, axis=2)
        return data, width * 2, expected
    if encoding.startswith('bayer_'):
        # Any mosaic is a valid picture (the demosaiced colours are OpenCV's); only the
        # shape is checked. The low byte of a 16-bit sample is noise that must not matter.
        samples = rng.integers(0, 256, (height, width), dtype=np.uint16)
        if encoding.endswith('8'):
            return samples.astype(np.uint8).tobytes(), width, None
        wide = (samples << 8) | rng.integers(0, 256, samples.shape, dtype=np.uint16)
        return wide.astype('>u2' if is_bigendian else '<u2').tobytes(), width * 2, None
    # yuv422 / yuv422_yuy2: any bytes are a valid picture; only the shape is checked.
    return rng.integers(0, 256, height * width * 2, dtype=np.uint8).tobytes(), width * 2, None


def _pad_rows(rows: bytes, height: int, row_bytes: int, step: int,
              rng: np.random.Generator) -> bytes:
    """Return ``rows`` laid out ``step`` bytes per row, the padding filled with noise."""
    if step == row_bytes:
        return rows
    padded = rng.integers(0, 256, (height, step), dtype=np.uint8)
    padded[:, :row_bytes] = np.frombuffer(rows, dtype=np.uint8).reshape(height, row_bytes)
    return padded.tobytes()


def make_image(encoding: str, rgb: np.ndarray, rng: np.random.Generator, *,
               pad: int = 0, extra: int = 0, is_bigendian: bool = False
               ) -> tuple[Image, np.ndarray | None]:
    """Return a usable Image holding ``rgb`` and the RGB its conversion must give."""
    height, width = rgb.shape[:2]
    rows, row_bytes, expected = encode_raw(rgb, encoding, rng, is_bigendian)
    step = row_bytes + pad
    data = _pad_rows(rows, height, row_bytes, step, rng)
    if extra:
        data += rng.integers(0, 256, extra, dtype=np.uint8).tobytes()
    msg = Image()
    msg.height, msg.width, msg.step = height, width, step
    msg.encoding = encoding
    msg.is_bigendian = int(is_bigendian)
    msg.data = _payload(data)
    return msg, expected


def _image_size(rng: np.random.Generator, encoding: str) -> tuple[int, int]:
    """Return a small (height, width), even width for YUV."""
    height = int(rng.integers(1, 40))
    width = int(rng.integers(1, 40))
    if encoding.startswith('yuv422') and width % 2:
        width += 1
    if encoding.startswith('bayer_'):
        height, width = max(height, MIN_BAYER_SIDE), max(width, MIN_BAYER_SIDE)
    return height, width


def image_case(rng: np.random.Generator) -> FuzzCase:
    """Return one Image case: usable, with a single known defect, or mangled at random."""
    encoding = str(rng.choice(RAW_ENCODINGS))
    height, width = _image_size(rng, encoding)
    rgb = _random_rgb(rng, height, width)
    bpp = BYTES_PER_PIXEL[encoding]
    kind = int(rng.integers(0, 12))
    pad = int(rng.integers(1, 9)) if rng.random() < 0.3 else 0
    extra = int(rng.integers(1, 64)) if rng.random() < 0.2 else 0
    bigendian = bool(rng.random() < 0.5) and encoding.endswith('16')
    msg, expected = make_image(encoding, rgb, rng, pad=pad, extra=extra,
                               is_bigendian=bigendian)
    _stamp(rng, msg, odd=rng.random() < 0.2)
    if kind <= 3:
        return FuzzCase('image', msg, None, f'good {encoding} {width}x{height} pad {pad} '
                        f'extra {extra}', expected)
    if kind == 4:
        msg.encoding = str(rng.choice(BOGUS_ENCODINGS))
        return FuzzCase('image', msg, 'unknown_encoding', f'bogus encoding {msg.encoding!r}')
    if kind == 5:
        if rng.random() < 0.5:
            if rng.random() < 0.5:
                msg.width = 0
            else:
                msg.height = 0
            return FuzzCase('image', msg, 'empty', 'zero width or height')
        msg.data = array.array('B')
        return FuzzCase('image', msg, 'empty', 'no data')
    if kind == 6:
        needed = msg.step * height
        keep = int(rng.integers(1, needed)) if needed > 1 else 0
        if keep == 0:
            msg.data = array.array('B')
            return FuzzCase('image', msg, 'empty', 'no data')
        msg.data = msg.data[:keep]
        return FuzzCase('image', msg, 'truncated', f'{keep} of {needed} bytes')
    if kind == 7:
        msg.step = int(rng.integers(0, width * bpp))
        return FuzzCase('image', msg, 'bad_step', f'step {msg.step} < {width * bpp}')
    if kind == 8:
        # Odd width for YUV 4:2:2 (two pixels share a chroma pair).
        msg2, _ = make_image('yuv422', _random_rgb(rng, height, 3), rng)
        msg2.encoding = str(rng.choice(['yuv422', 'yuv422_yuy2', 'uyvy', 'yuyv']))
        msg2.width = 3
        msg2.step = 3 * 2
        _stamp(rng, msg2)
        return FuzzCase('image', msg2, 'bad_size', 'odd width yuv')
    if kind == 9:
        # Huge claimed size with a small buffer: must fail fast, not allocate.
        msg.width = int(rng.choice([65_535, 1_000_000, 2**31, 2**32 - 1]))
        msg.height = int(rng.choice([1, 65_535, 2**32 - 1]))
        msg.step = min(msg.width * bpp, 2**32 - 1)
        if msg.step < msg.width * bpp or (encoding.startswith('yuv422') and msg.width % 2):
            return FuzzCase('image', msg, ANY_REASON, 'huge size, step overflow')
        if encoding.startswith('bayer_') and msg.height < MIN_BAYER_SIDE:
            return FuzzCase('image', msg, 'bad_size', f'bayer mosaic {msg.height} row high')
        return FuzzCase('image', msg, 'truncated', f'claims {msg.width}x{msg.height}')
    if kind == 10:
        # Alias names of the same layouts are accepted.
        aliases = {'yuv422': 'uyvy', 'yuv422_yuy2': 'yuyv'}
        if encoding in aliases:
            msg.encoding = aliases[encoding]
        else:
            msg.encoding = encoding.upper()
        return FuzzCase('image', msg, None, f'alias {msg.encoding}', expected)
    return chaos_image(rng)


def chaos_image(rng: np.random.Generator) -> FuzzCase:
    """Return an Image with every field drawn at random (any documented outcome)."""
    msg = Image()
    msg.encoding = str(rng.choice(RAW_ENCODINGS + BOGUS_ENCODINGS[:6]))
    msg.width = int(rng.choice([0, 1, 2, 3, int(rng.integers(0, 100)), 2**32 - 1]))
    msg.height = int(rng.choice([0, 1, int(rng.integers(0, 100)), 2**32 - 1]))
    # step is a uint32: a wider value would wrap on the wire and differ from the reference.
    msg.step = min(int(rng.choice([0, 1, msg.width, msg.width * 3,
                                   int(rng.integers(0, 400)), 2**32 - 1])), 2**32 - 1)
    msg.is_bigendian = int(rng.integers(0, 256))
    size = int(rng.choice([0, 1, int(rng.integers(0, 5000))]))
    msg.data = _payload(rng.integers(0, 256, size, dtype=np.uint8))
    _stamp(rng, msg, odd=True)
    return FuzzCase('image', msg, ANY_REASON, 'chaos')


def encode_compressed(rgb: np.ndarray, codec: str, rng: np.random.Generator,
                      variant: str = 'colour') -> bytes:
    """Return ``rgb`` as JPEG or PNG bytes (colour, grey, rgba or 16-bit)."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if variant == 'grey':
        image = np.ascontiguousarray(rgb[:, :, 0])
    elif variant == 'rgba' and codec == 'png':
        alpha = rng.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
        image = np.concatenate([bgr, alpha], axis=2)
    elif variant == 'wide' and codec == 'png':
        image = bgr.astype(np.uint16) * np.uint16(257)
    else:
        image = bgr
    extension = '.jpg' if codec == 'jpeg' else '.png'
    ok, encoded = cv2.imencode(extension, image)
    assert ok
    return encoded.tobytes()


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """Return a valid tiny JPEG whose frame header claims ``width``×``height``.

    A decoder that trusts the header allocates (and libjpeg then fills) the whole image.
    """
    ok, encoded = cv2.imencode('.jpg', np.full((16, 16, 3), 100, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.find(b'\xff\xc0')
    data[sof + 5:sof + 7] = int(height).to_bytes(2, 'big')
    data[sof + 7:sof + 9] = int(width).to_bytes(2, 'big')
    return bytes(data)


def png_claiming_size(width: int, height: int) -> bytes:
    """Return a PNG whose header claims ``width``×``height`` with almost no pixel data."""
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', header)
            + png_chunk(b'IDAT', zlib.compress(b'\x00' * 64)) + png_chunk(b'IEND', b''))


def compressed_from_bytes(data: bytes, fmt: str) -> CompressedImage:
    """Return a CompressedImage with ``data`` and ``format``."""
    msg = CompressedImage()
    msg.format = fmt
    msg.data = _payload(data)
    return msg


def compressed_case(rng: np.random.Generator) -> FuzzCase:
    """Return one CompressedImage case: good, with one known defect, or corrupt."""
    height, width = int(rng.integers(1, 48)), int(rng.integers(1, 48))
    rgb = _random_rgb(rng, height, width)
    codec = 'jpeg' if rng.random() < 0.5 else 'png'
    variant = str(rng.choice(['colour', 'colour', 'grey', 'rgba', 'wide']))
    data = encode_compressed(rgb, codec, rng, variant)
    fmt = str(rng.choice(JPEG_FORMATS if codec == 'jpeg' else PNG_FORMATS))
    kind = int(rng.integers(0, 10))
    case: FuzzCase
    if kind <= 2:
        expected_rgb = None
        if codec == 'png' and variant in ('colour', 'rgba', 'wide'):
            expected_rgb = rgb
        case = FuzzCase('compressed', compressed_from_bytes(data, fmt), None,
                        f'good {codec} {variant} {width}x{height} {fmt!r}', expected_rgb)
    elif kind == 3:
        case = FuzzCase('compressed', compressed_from_bytes(b'', fmt), 'empty', 'no data')
    elif kind == 4:
        fmt = str(rng.choice(UNSUPPORTED_FORMATS))
        case = FuzzCase('compressed', compressed_from_bytes(data, fmt), 'unsupported_format',
                        f'format {fmt!r}')
    elif kind == 5:
        # Truncated before the end: JPEG (no EOI after the scan) or PNG (no IEND/IDAT end).
        cut = int(rng.integers(1, max(2, len(data) - 12)))
        case = FuzzCase('compressed', compressed_from_bytes(data[:cut], fmt), 'decode_failed',
                        f'{codec} truncated to {cut} of {len(data)} bytes')
    elif kind == 6:
        garbage = rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
        # Two zero bytes in front: no image signature OpenCV knows starts that way.
        garbage = b'\x00\x00' + garbage
        case = FuzzCase('compressed', compressed_from_bytes(garbage, fmt), 'decode_failed',
                        'random bytes')
    elif kind == 7:
        # Bytes flipped in the body: decodes to a damaged picture or fails cleanly.
        corrupt = bytearray(data)
        for _ in range(int(rng.integers(1, 20))):
            position = int(rng.integers(min(len(corrupt) - 1, 20), len(corrupt)))
            corrupt[position] = int(rng.integers(0, 256))
        case = FuzzCase('compressed', compressed_from_bytes(bytes(corrupt), fmt), ANY_REASON,
                        f'{codec} with flipped bytes')
    elif kind == 8:
        # The format names the other codec; the decoder may trust the bytes.
        other = str(rng.choice(PNG_FORMATS[:2] if codec == 'jpeg' else JPEG_FORMATS[:2]))
        case = FuzzCase('compressed', compressed_from_bytes(data, other), ANY_REASON,
                        f'{codec} data labelled {other!r}')
    else:
        # Oversized: trailing garbage after a good image.
        tail = rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
        case = FuzzCase('compressed', compressed_from_bytes(data + tail, fmt), ANY_REASON,
                        f'{codec} with {len(tail)} trailing bytes')
    _stamp(rng, case.msg, odd=rng.random() < 0.2)
    return case


_GOOD_LATITUDES = (-89.9, -33.86, 0.0, 47.3769, 51.5, 89.9)
_NON_FINITE = (math.nan, math.inf, -math.inf)
_OUT_OF_RANGE = (90.0001, -91.0, 180.5, -181.0, 1e9, 1e308, -1e308)
# Per field (latitude, longitude, altitude): values just or far outside the valid range.
_OUT_OF_RANGE_BY_FIELD = ((90.0001, -91.0, 1e9, 1e308, -1e308),
                          (180.0001, -181.0, 360.0, 1e9, -1e308),
                          (1e5 + 1.0, -2e5, 1e308))


def fix_case(rng: np.random.Generator) -> FuzzCase:
    """Return one NavSatFix case: good, no fix, non-finite or out of range, odd stamps."""
    latitude = float(rng.choice(_GOOD_LATITUDES)) + float(rng.normal(0, 1e-3))
    longitude = float(rng.uniform(-179.99, 179.99))
    altitude = float(rng.uniform(-400.0, 9000.0))
    # Negative, zero, huge and out-of-order stamps: all legal for a fix message.
    stamp_s = float(rng.choice([1.7e9 + float(rng.uniform(-100, 100)), 0.0,
                                float(rng.uniform(0, 10)), 2.0**31 - 1.0,
                                -float(rng.uniform(0, 1e6))]))
    covariance = rng.choice([None, 4.0, 0.0, -1.0, math.nan, math.inf, 1e308])
    status = int(rng.choice([NavSatStatus.STATUS_FIX, NavSatStatus.STATUS_SBAS_FIX,
                             NavSatStatus.STATUS_GBAS_FIX, 3, 100]))
    kind = int(rng.integers(0, 6))
    expected: str | None = None
    note = 'good'
    if kind == 1:
        status = int(rng.choice([NavSatStatus.STATUS_NO_FIX, -2, -128]))
        expected, note = 'no_fix', f'status {status}'
    elif kind == 2:
        which = int(rng.integers(0, 3))
        value = float(rng.choice(_NON_FINITE))
        latitude, longitude, altitude = [value if i == which else v for i, v in
                                         enumerate((latitude, longitude, altitude))]
        expected, note = 'non_finite', f'field {which} = {value}'
        if which == 2 and math.isnan(value):
            # NavSatFix's 'no altitude available': a usable 2-D fix.
            expected, note = None, 'no altitude (NaN): a 2-D fix'
    elif kind == 3:
        which = int(rng.integers(0, 3))
        value = float(rng.choice(_OUT_OF_RANGE_BY_FIELD[which]))
        latitude, longitude, altitude = [value if i == which else v for i, v in
                                         enumerate((latitude, longitude, altitude))]
        expected, note = 'out_of_range', f'field {which} = {value}'
    elif kind == 4:
        # Several defects at once: any of their reasons.
        status = int(rng.choice([status, -1]))
        latitude = float(rng.choice(_NON_FINITE + _OUT_OF_RANGE + (latitude,)))
        longitude = float(rng.choice(_NON_FINITE + _OUT_OF_RANGE + (longitude,)))
        expected, note = ANY_REASON, 'mixed'
    if expected is None and covariance is not None and math.isinf(covariance):
        # A variance of inf: the fix may be anywhere, refused whatever the limit.
        expected, note = 'inaccurate', f'{note}, covariance inf'
    msg = make_fix(latitude, longitude, altitude, stamp_s=stamp_s, status=status,
                   accuracy_m=None,
                   variance_m2=None if covariance is None else float(covariance),
                   covariance_type=NavSatFix.COVARIANCE_TYPE_APPROXIMATED)
    if rng.random() < 0.05:
        msg.header.stamp.nanosec = 4_000_000_000  # not normalised: still a number
    return FuzzCase('fix', msg, expected, note)


def generate_cases(seed: int, count: int) -> Iterator[FuzzCase]:
    """Yield ``count`` cases, about 40 % Image, 35 % CompressedImage and 25 % NavSatFix."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        draw = rng.random()
        if draw < 0.40:
            yield image_case(rng)
        elif draw < 0.75:
            yield compressed_case(rng)
        else:
            yield fix_case(rng)
