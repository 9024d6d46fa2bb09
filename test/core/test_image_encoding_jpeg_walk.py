"""A JPEG's header walk finds its frame header past any junk, in a bounded number of steps.

libjpeg skips the bytes between segments that are no marker ("extraneous bytes"), so the
size check walks past them too. It once stepped through them one Python step a byte: a
frame padded with 5 MB of zeros held the camera callback for seconds. The bytes between
segments are now searched in C, so the walk's Python-level steps do not grow with them.
(No test here times the host: the steps are counted.)
"""

from __future__ import annotations

from collections.abc import Callable
import sys
from types import FrameType
from typing import Any

import cv2
from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest

from plant_disease_ros.core import image_encoding
from plant_disease_ros.core.image_encoding import (
    claimed_image,
    ClaimedImage,
    compressed_grey_kind,
    compressed_to_rgb,
    compressed_to_rgb_and_grey_kind,
    ImageConversionError,
)

JUNK = {
    'zeros': b'\x00',
    'fill bytes': b'\xff',
    'stuffed 0xFF00': b'\xff\x00',
    'text': b'extraneous ',
}


def padded_jpeg(junk: bytes, *, grey: bool = False) -> bytes:
    """Return a real 16×8 JPEG with ``junk`` between its APP0 segment and the next one."""
    image = np.full((8, 16), 90, np.uint8) if grey else np.full((8, 16, 3), 90, np.uint8)
    ok, encoded = cv2.imencode('.jpg', image)
    assert ok
    data = encoded.tobytes()
    assert data[2:4] == b'\xff\xe0'  # APP0 (JFIF) right after SOI
    after_app0 = 4 + int.from_bytes(data[4:6], 'big')
    return data[:after_app0] + junk + data[after_app0:]


def python_lines(function: Callable[..., Any], *args: Any,
                 refused: type[BaseException] | None = None) -> tuple[Any, int]:
    """Call ``function``; return its result and how many of its lines Python ran.

    With ``refused``, the call must raise it, and the error is returned as the result.
    """
    code = function.__code__
    lines = 0

    def count(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        nonlocal lines
        lines += event == 'line'
        return count

    def calls(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        return count if frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        result = function(*args)
    except BaseException as error:
        if refused is None or not isinstance(error, refused):
            raise
        result = error
    else:
        assert refused is None, f'{function.__name__} did not raise {refused.__name__}'
    finally:
        sys.settrace(previous)
    return result, lines


def reference_frame(raw: bytes) -> ClaimedImage | None:
    """Walk a JPEG byte by byte as libjpeg's marker reader does (the walk's specification)."""
    position = 2
    while position + 2 <= len(raw):
        if raw[position] != 0xFF:
            position += 1
            continue
        marker = raw[position + 1]
        if marker in (0xFF, 0x00):
            position += 1 if marker == 0xFF else 2
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 10 > len(raw):
                return None
            precision, components = raw[position + 4], raw[position + 9]
            return ClaimedImage(int.from_bytes(raw[position + 7:position + 9], 'big'),
                                int.from_bytes(raw[position + 5:position + 7], 'big'),
                                1 if components == 1 else 3, 2 if precision > 8 else 1,
                                grey=components == 1)
        if marker in (0xDA, 0xD9):
            return None
        if position + 4 > len(raw):
            return None
        position += 2 + int.from_bytes(raw[position + 2:position + 4], 'big')
    return None


@pytest.mark.parametrize('kind', JUNK)
def test_the_frame_header_is_found_past_a_megabyte_of_junk(kind: str) -> None:
    data = padded_jpeg(JUNK[kind] * (1_000_000 // len(JUNK[kind])))
    assert claimed_image(data) == ClaimedImage(16, 8, 3, 1)
    assert compressed_to_rgb(data, 'jpeg').shape == (8, 16, 3)
    grey = padded_jpeg(JUNK[kind] * (1_000_000 // len(JUNK[kind])), grey=True)
    assert compressed_grey_kind(grey) == 'grey JPEG'
    rgb, grey_kind = compressed_to_rgb_and_grey_kind(np.frombuffer(grey, np.uint8), 'jpeg')
    assert (rgb.shape, grey_kind) == ((8, 16, 3), 'grey JPEG')


@pytest.mark.parametrize('kind', JUNK)
def test_the_walk_takes_as_many_python_steps_whatever_the_junk(kind: str) -> None:
    """The junk is searched in C: 100 kB of it add no Python-level step to the walk."""
    walk = image_encoding._jpeg_frame
    without, steps_without = python_lines(walk, padded_jpeg(b''))
    with_junk, steps_with = python_lines(walk, padded_jpeg(JUNK[kind] * 100_000))
    assert without == with_junk == ClaimedImage(16, 8, 3, 1)
    assert 0 < steps_with == steps_without, (steps_with, steps_without)


@pytest.mark.parametrize('kind', JUNK)
def test_a_jpeg_of_only_junk_is_refused(kind: str) -> None:
    empty_comment = b'\xff\xfe\x00\x02'
    data = (b'\xff\xd8' + empty_comment + JUNK[kind] * (1_000_000 // len(JUNK[kind]))
            + b'\xff\xd9')
    with pytest.raises(ImageConversionError, match='no frame header') as info:
        compressed_to_rgb(data, 'jpeg')
    assert info.value.reason == 'decode_failed'
    assert compressed_grey_kind(data) == ''


@given(st.lists(st.sampled_from([
    b'\x00', b'\x17', b'\xff', b'\xff\x00', b'\xff\xd0', b'\xff\x01', b'\xff\xe1\x00\x04ab',
    b'\xff\xfe\x00\x00', b'\xff\xc0\x00\x11\x08\x00\x10\x00\x20\x03', b'\xff\xc4\x00\x02',
    b'\xff\xc2\x00\x11\x0c\x00\x07\x00\x05\x01', b'\xff\xda', b'\xff\xd9', b'\xc0']),
    max_size=12))
def test_the_walk_reads_every_stream_as_libjpeg_steps_through_it(
        parts: list[bytes]) -> None:
    """Fill bytes, stuffed zeros, markers without a length, cut-off segments: the same."""
    raw = b'\xff\xd8' + b''.join(parts)
    assert image_encoding._jpeg_frame(raw) == reference_frame(raw)


def test_a_million_tiny_segments_before_the_frame_are_refused_unwalked() -> None:
    """5 MB of empty comments would be a Python step each: the walk stops at its cap."""
    cap = image_encoding.MAX_JPEG_SEGMENTS_BEFORE_FRAME
    comment = b'\xff\xfe\x00\x02'
    data = padded_jpeg(comment * 1_250_000)
    with pytest.raises(ImageConversionError, match=f'more than {cap} segments') as info:
        compressed_to_rgb(data, 'jpeg')
    assert info.value.reason == 'decode_failed'
    # The refused walk runs no more Python lines than the walk of a JPEG just under the cap.
    claim, steps_under_cap = python_lines(image_encoding._jpeg_frame,
                                          padded_jpeg(comment * (cap - 10)))
    assert claim == ClaimedImage(16, 8, 3, 1)
    _, steps_refused = python_lines(image_encoding._jpeg_frame, data,
                                    refused=ImageConversionError)
    assert 0 < steps_refused < steps_under_cap + 100, (steps_refused, steps_under_cap)


def test_an_icc_profile_in_255_segments_still_decodes() -> None:
    """The most segments a real camera writes (an ICC profile split over APP2) pass."""
    app2 = b'\xff\xe2\x00\x10ICC_PROFILE\x00\x01\x01'
    data = padded_jpeg(app2 * 255)
    assert claimed_image(data) == ClaimedImage(16, 8, 3, 1)
    assert compressed_to_rgb(data, 'jpeg').shape == (8, 16, 3)
