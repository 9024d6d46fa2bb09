"""SequenceGaps: messages a publisher sent that never reached the node."""

from __future__ import annotations

from plant_disease_ros.core.sequence_gaps import SequenceGaps


def test_gaps_per_publisher_add_up_to_what_was_sent() -> None:
    gaps = SequenceGaps()
    camera, other = b'camera', b'other'
    # Subscribed late: the first number taken starts the span, nothing before counts.
    for sequence in (100, 101, 104, 105, 109):
        gaps.add(camera, sequence)
    assert gaps.add(other, 1) == 0
    assert gaps.add(other, 3) == 1
    state = gaps.publishers[camera]
    assert (state.sent, state.received, state.missed) == (10, 5, 5)
    assert (gaps.sent, gaps.received, gaps.missed) == (13, 7, 6)
    # A late message fills a gap; the same number again changes nothing.
    assert gaps.add(camera, 107) == -1
    assert gaps.add(camera, 109) == 0
    assert (state.received, state.missed, gaps.missed) == (6, 4, 5)
    assert gaps.sent == gaps.received + gaps.missed


def test_publishers_beyond_the_limit_keep_the_totals() -> None:
    gaps = SequenceGaps(max_publishers=2)
    for index in range(4):
        gaps.add(bytes([index]), 1)
        gaps.add(bytes([index]), 3)
    assert list(gaps.publishers) == [bytes([2]), bytes([3])]
    assert (gaps.sent, gaps.received, gaps.missed) == (12, 8, 4)
