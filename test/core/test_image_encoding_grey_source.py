"""Whether a camera is grey is read from its message, never from the pixels.

A raw encoding of one grey sample a pixel (mono8, mono16, 8UC1), a JPEG of one component
and a PNG of colour type 0 or 4 are a grey camera's; Bayer mosaics, every other raw
encoding, colour JPEGs and PNGs (palette included) and BMPs are not. A colour camera's
JPEG of grey gravel decodes with no colour, yet is a colour picture: only the header can
say so. The payloads are real images (OpenCV's, or handmade PNGs of the types OpenCV
does not write).
"""

from __future__ import annotations

import cv2
from helpers import encoded_images
from helpers.encoded_images import encoded, png_chunk, varied_pixels
import numpy as np
import pytest

from plant_disease_ros.core.image_encoding import (
    BAYER_ENCODINGS,
    claimed_image,
    compressed_grey_kind,
    compressed_to_rgb,
    ENCODING_ALIASES,
    GREY_ENCODINGS,
    is_grey_encoding,
    SUPPORTED_ENCODINGS,
)
from plant_disease_ros.core.vegetation import check_frame, NO_COLOUR

WIDTH, HEIGHT = 6, 4


def handmade_png(colour: int, extra: bytes = b'') -> bytes:
    """Return a real 8-bit WIDTH×HEIGHT PNG of colour type ``colour`` (``extra``: PLTE)."""
    return encoded_images.handmade_png(WIDTH, HEIGHT, 8, colour, extra)


def pixels(channels: int, dtype: type = np.uint8) -> np.ndarray:
    """Return a WIDTH×HEIGHT image of ``channels`` with varied values."""
    return varied_pixels(WIDTH, HEIGHT, channels, dtype)


PALETTE = png_chunk(b'PLTE', bytes(range(48)))
# Real payloads, with what compressed_grey_kind must say of each.
PAYLOADS = {
    'jpeg grey': (lambda: encoded('.jpg', pixels(1)), 'grey JPEG'),
    'jpeg colour': (lambda: encoded('.jpg', pixels(3)), ''),
    # A colour JPEG of a grey picture (its three channels equal): still a colour camera.
    'jpeg colour of a grey picture': (
        lambda: encoded('.jpg', cv2.cvtColor(pixels(1), cv2.COLOR_GRAY2BGR)), ''),
    'png grey 8': (lambda: encoded('.png', pixels(1)), 'grey PNG'),
    'png grey 16': (lambda: encoded('.png', pixels(1, np.uint16)), 'grey PNG'),
    'png grey alpha': (lambda: handmade_png(4), 'grey PNG'),
    'png rgb': (lambda: encoded('.png', pixels(3)), ''),
    'png rgba': (lambda: encoded('.png', pixels(4)), ''),
    'png rgb of a grey picture': (
        lambda: encoded('.png', cv2.cvtColor(pixels(1), cv2.COLOR_GRAY2BGR)), ''),
    # A palette may hold colours: never taken for grey.
    'png palette': (lambda: handmade_png(3, PALETTE), ''),
    # OpenCV writes a grey image as an 8-bit palette BMP: its palette is not read.
    'bmp 8 bit palette': (lambda: encoded('.bmp', pixels(1)), ''),
    'bmp 24 bit': (lambda: encoded('.bmp', pixels(3)), ''),
}


@pytest.mark.parametrize('name', list(PAYLOADS))
def test_a_compressed_image_is_grey_by_its_header(name: str) -> None:
    make, kind = PAYLOADS[name]
    data = make()
    assert compressed_grey_kind(data) == kind
    assert compressed_grey_kind(np.frombuffer(data, np.uint8)) == kind
    assert claimed_image(data).grey is bool(kind)
    compressed_to_rgb(data)  # a real image the node decodes


def test_a_payload_whose_header_cannot_be_read_is_not_called_grey() -> None:
    """The decoder says what is wrong with such a payload; no grey camera is claimed."""
    jpeg = encoded('.jpg', pixels(1))
    for data in (b'', b'not an image', jpeg[:2], handmade_png(0)[:8]):
        assert compressed_grey_kind(data) == ''


def test_a_raw_image_is_grey_by_its_encoding() -> None:
    """mono8, mono16 and 8UC1 (any case); not Bayer, colour, YUV, depth or unknown ones."""
    assert set(GREY_ENCODINGS) == {'mono8', 'mono16'}
    grey = {'mono8', 'mono16', '8uc1'}
    for encoding in [*SUPPORTED_ENCODINGS, *ENCODING_ALIASES]:
        assert is_grey_encoding(encoding) is (encoding in grey), encoding
        assert is_grey_encoding(encoding.upper()) is (encoding in grey), encoding
    assert BAYER_ENCODINGS and not any(map(is_grey_encoding, BAYER_ENCODINGS))
    for encoding in ('16UC1', '32FC1', 'mono12', ''):
        assert is_grey_encoding(encoding) is False, encoding


def test_a_colour_jpeg_of_grey_gravel_is_no_grey_source_though_it_has_no_colour() -> None:
    """The false alarm's frame: the gate finds no colour; the header says colour camera."""
    rng = np.random.default_rng(1)
    gravel = np.clip(128 + rng.normal(0, 20, (96, 96, 1)) + rng.normal(0, 3, (96, 96, 3)),
                     0, 255).astype(np.uint8)
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(gravel, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    assert check_frame(compressed_to_rgb(data.tobytes())).reason == NO_COLOUR
    assert compressed_grey_kind(data.tobytes()) == ''
    assert claimed_image(data.tobytes()).grey is False
