"""The cap on a compressed image's decoded size counts bytes, not pixels alone.

A 16-bit RGBA PNG decodes to 8 bytes a pixel: 7000×7000 of it claimed by a 380 KB
payload passed a cap of 50 Mpx and cost ~1 GB. Headers are read as OpenCV decodes them
(checked against cv2.imdecode on real images of every kind), and the payloads here are
real JPEG, PNG and BMP images whose headers claim other sizes, so nothing large is built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import struct
import zlib

import cv2
from helpers import encoded_images
from helpers.encoded_images import encoded, png_chunk, varied_pixels
import numpy as np
import pytest

from plant_disease_ros.core import image_encoding
from plant_disease_ros.core.image_encoding import (
    check_compressed_payload,
    claimed_image,
    compressed_to_rgb,
    ImageConversionError,
    MAX_COMPRESSED_PIXELS,
    MAX_DECODED_BYTES,
)

LEAF_PHOTO = Path(__file__).resolve().parents[1] / 'data' / 'leaves' / 'Tomato___Early_blight.jpg'
WIDTH, HEIGHT = 5, 3


def handmade_png(depth: int, colour: int, extra: bytes = b'') -> bytes:
    """Return a real WIDTH×HEIGHT PNG of any bit depth and colour type (OpenCV writes few)."""
    return encoded_images.handmade_png(WIDTH, HEIGHT, depth, colour, extra)


def pixels(channels: int, dtype: type = np.uint8) -> np.ndarray:
    """Return a WIDTH×HEIGHT image of ``channels`` with varied values."""
    return varied_pixels(WIDTH, HEIGHT, channels, dtype)


PALETTE = png_chunk(b'PLTE', bytes(range(48)))
RGB_KEY = png_chunk(b'tRNS', bytes(6))

# Real payloads of every kind the module decodes, with (channels, bytes a sample) as
# OpenCV decodes them (IMREAD_UNCHANGED).
KINDS: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    'png grey 8': (lambda: encoded('.png', pixels(1)), (1, 1)),
    'png grey 16': (lambda: encoded('.png', pixels(1, np.uint16)), (1, 2)),
    'png grey 1 bit': (lambda: handmade_png(1, 0), (1, 1)),
    'png rgb 8': (lambda: encoded('.png', pixels(3)), (3, 1)),
    'png rgb 16': (lambda: encoded('.png', pixels(3, np.uint16)), (3, 2)),
    'png rgba 8': (lambda: encoded('.png', pixels(4)), (4, 1)),
    'png rgba 16': (lambda: encoded('.png', pixels(4, np.uint16)), (4, 2)),
    'png grey alpha 8': (lambda: handmade_png(8, 4), (4, 1)),
    'png grey alpha 16': (lambda: handmade_png(16, 4), (4, 2)),
    'png palette': (lambda: handmade_png(8, 3, PALETTE), (3, 1)),
    'png palette tRNS': (lambda: handmade_png(8, 3, PALETTE + png_chunk(b'tRNS', b'\x00')),
                         (4, 1)),
    'png rgb 8 tRNS': (lambda: handmade_png(8, 2, RGB_KEY), (4, 1)),
    'png rgb 16 tRNS': (lambda: handmade_png(16, 2, RGB_KEY), (4, 2)),
    'jpeg grey': (lambda: encoded('.jpg', pixels(1)), (1, 1)),
    'jpeg colour': (lambda: encoded('.jpg', pixels(3)), (3, 1)),
    'bmp 24 bit': (lambda: encoded('.bmp', pixels(3)), (3, 1)),
    'bmp 32 bit': (lambda: encoded('.bmp', pixels(4)), (4, 1)),
}
# Kinds of more than 3 bytes a pixel, which the pixel cap alone let through to 50 Mpx.
WIDE_KINDS = [name for name, (_, (channels, sample)) in KINDS.items() if channels * sample > 3]


def claiming(data: bytes, width: int, height: int) -> bytes:
    """Return a real JPEG, PNG or BMP with its header changed to claim ``width``×``height``."""
    out = bytearray(data)
    if data.startswith(b'\x89PNG'):
        out[16:24] = struct.pack('>II', width, height)  # IHDR body starts at 16
        out[29:33] = struct.pack('>I', zlib.crc32(bytes(out[12:29])))
    elif data.startswith(b'\xff\xd8'):
        frame = data.find(b'\xff\xc0')
        out[frame + 5:frame + 9] = struct.pack('>HH', height, width)
    else:
        out[18:26] = struct.pack('<ii', width, height)
    return bytes(out)


@pytest.mark.parametrize('kind', list(KINDS))
def test_the_header_claims_what_opencv_decodes(kind: str) -> None:
    make, (channels, sample_bytes) = KINDS[kind]
    data = make()
    claim = claimed_image(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert (claim.width, claim.height) == (WIDTH, HEIGHT) == decoded.shape[1::-1]
    assert (claim.channels, claim.sample_bytes) == (channels, sample_bytes)
    assert claim.decoded_bytes == WIDTH * HEIGHT * channels * sample_bytes
    if kind == 'bmp 32 bit' and decoded.shape[2:] == (3,):
        # OpenCV 4.6 (Ubuntu 24.04's, Debian 12's) reads a 32-bit BMP without its alpha:
        # less than the claim, which bounds what a decode may need.
        assert decoded.nbytes == WIDTH * HEIGHT * 3 < claim.decoded_bytes
    else:
        assert decoded.nbytes == claim.decoded_bytes


def test_a_small_png_claiming_7000x7000_16bit_rgba_is_refused_before_decoding() -> None:
    """The reviewer's case: 392 MB decoded from a few hundred bytes, within 50 Mpx."""
    data = claiming(encoded('.png', pixels(4, np.uint16)), 7000, 7000)
    assert 7000 * 7000 <= MAX_COMPRESSED_PIXELS
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(data, 'png')
    assert info.value.reason == 'bad_size'
    assert ('claims 7000x7000 pixels of 4 x 16-bit samples, 392 MB decoded, more than '
            '150 MB') in str(info.value)


@pytest.mark.parametrize('kind', WIDE_KINDS)
def test_the_byte_cap_refuses_what_the_pixel_cap_let_through(kind: str) -> None:
    """The largest claim within MAX_DECODED_BYTES passes; one more row is refused."""
    make, (channels, sample_bytes) = KINDS[kind]
    data = make()
    width = 5000
    rows = MAX_DECODED_BYTES // (width * channels * sample_bytes)
    check_compressed_payload(claiming(data, width, rows))
    assert width * (rows + 1) <= MAX_COMPRESSED_PIXELS  # the pixel cap lets it through
    with pytest.raises(ImageConversionError, match='MB decoded, more than 150 MB') as info:
        check_compressed_payload(claiming(data, width, rows + 1))
    assert info.value.reason == 'bad_size'


@pytest.mark.parametrize('kind', [name for name in KINDS if name not in WIDE_KINDS])
def test_images_of_3_bytes_a_pixel_or_less_keep_the_50_mpx_cap(kind: str) -> None:
    """8-bit grey and colour (and 16-bit grey) are accepted up to 50 Mpx, as before."""
    data = KINDS[kind][0]()
    check_compressed_payload(claiming(data, 10_000, MAX_COMPRESSED_PIXELS // 10_000))
    with pytest.raises(ImageConversionError, match=r'claims 10000x5001 pixels, more than') \
            as info:
        check_compressed_payload(claiming(data, 10_000, MAX_COMPRESSED_PIXELS // 10_000 + 1))
    assert info.value.reason == 'bad_size'


def test_an_8bit_4000x3000_jpeg_is_decoded() -> None:
    bgr = cv2.resize(cv2.imread(str(LEAF_PHOTO)), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    data = encoded('.jpg', bgr)
    assert claimed_image(data).decoded_bytes == 36_000_000
    rgb = compressed_to_rgb(data, 'jpeg')
    assert rgb.shape == (3000, 4000, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, cv2.imdecode(np.frombuffer(data, np.uint8),
                                                    cv2.IMREAD_COLOR)[..., ::-1])


@pytest.mark.parametrize('channels', [1, 3, 4])
def test_16bit_pngs_keep_the_high_byte_of_each_sample(channels: int) -> None:
    """Grey, BGR and BGRA 16-bit samples become their high byte, in RGB order."""
    rng = np.random.default_rng(channels)
    shape = (23, 37) if channels == 1 else (23, 37, channels)
    stored = rng.integers(0, 65536, shape, dtype=np.uint16)
    out = compressed_to_rgb(encoded('.png', stored), 'png')
    high = (stored >> 8).astype(np.uint8)
    expected = np.repeat(high[..., None], 3, axis=2) if channels == 1 else high[..., 2::-1]
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_alpha_is_blended_in_bands_with_the_values_of_the_whole(
        dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few pixels (many bands, a last short one) give the whole image's values."""
    rng = np.random.default_rng(7)
    top = np.iinfo(dtype).max
    bgra = rng.integers(0, top + 1, (13, 11, 4), dtype=dtype)
    background = (10, 200, 30)
    full = float(top)
    colour = bgra[..., 2::-1].astype(np.float32) / full
    alpha = bgra[..., 3:].astype(np.float32) / full
    below = np.asarray(background, np.float32).reshape(1, 1, 3) / 255.0
    expected = np.clip(np.rint((colour * alpha + below * (1.0 - alpha)) * 255.0), 0, 255)
    monkeypatch.setattr(image_encoding, '_BLEND_PIXELS', 25)  # 2 rows of 11 a band
    out = compressed_to_rgb(encoded('.png', bgra), 'png', alpha_background=background)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
