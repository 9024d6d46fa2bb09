"""Small encoded images for the compressed-image tests: OpenCV's, and PNGs made by hand.

OpenCV writes only a few PNG kinds; the others (1-bit grey, grey + alpha, palette, tRNS)
are built here chunk by chunk, so that header parsing can be checked on every kind.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# Samples a pixel of each PNG colour type: grey, RGB, palette, grey + alpha, RGBA.
PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """Return one PNG chunk: length, type, body and CRC."""
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def handmade_png(width: int, height: int, depth: int, colour: int,
                 extra: bytes = b'') -> bytes:
    """Return a real ``width``×``height`` PNG of any bit depth and colour type, all zero.

    ``extra`` chunks (PLTE, tRNS) go between the header and the image data.
    """
    row = bytes((width * PNG_SAMPLES[colour] * depth + 7) // 8)
    pixels = b''.join(b'\x00' + row for _ in range(height))  # filter 0, then the row
    header = struct.pack('>IIBBBBB', width, height, depth, colour, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', header) + extra
            + png_chunk(b'IDAT', zlib.compress(pixels)) + png_chunk(b'IEND', b''))


def encoded(extension: str, image: np.ndarray) -> bytes:
    """Return ``image`` encoded by OpenCV (``extension``: '.png', '.jpg', '.bmp')."""
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


def varied_pixels(width: int, height: int, channels: int,
                  dtype: type = np.uint8) -> np.ndarray:
    """Return a ``width``×``height`` image of ``channels`` with varied values."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return (np.arange(np.prod(shape)).reshape(shape) * 997 % np.iinfo(dtype).max).astype(dtype)
