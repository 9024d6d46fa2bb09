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


def test_a_repeated_number_inside_the_span_is_a_duplicate_not_a_late_arrival() -> None:
    """Only a number of a gap fills it; a repeat of one taken before leaves the counts."""
    gaps = SequenceGaps()
    for sequence in (1, 3, 4):
        gaps.add(b'camera', sequence)
    assert [gaps.add(b'camera', 3) for _ in range(3)] == [0, 0, 0]
    state = gaps.publishers[b'camera']
    assert (state.sent, state.received, state.missed) == (4, 3, 1)
    assert gaps.duplicates == 3
    assert gaps.add(b'camera', 2) == -1        # the lost one, late
    assert gaps.add(b'camera', 2) == 0         # and again: a duplicate
    assert (state.received, state.missed, state.gaps) == (4, 0, [])
    assert gaps.sent == gaps.received + gaps.missed


def test_late_numbers_fill_the_middle_of_a_long_gap_and_a_gap_before_the_first() -> None:
    gaps = SequenceGaps()
    gaps.add(b'p', 10)
    gaps.add(b'p', 20)                          # 11..19 missing
    assert gaps.add(b'p', 15) == -1
    assert gaps.publishers[b'p'].gaps == [(11, 14), (16, 19)]
    assert gaps.add(b'p', 5) == 4               # the span grows back: 6..9 missing
    assert gaps.add(b'p', 7) == -1 and gaps.add(b'p', 11) == -1 and gaps.add(b'p', 19) == -1
    assert gaps.publishers[b'p'].gaps == [(6, 6), (8, 9), (12, 14), (16, 18)]
    assert (gaps.sent, gaps.received, gaps.missed) == (16, 7, 9)


def test_a_late_number_of_a_forgotten_gap_still_fills_it() -> None:
    """Beyond MAX_GAPS gaps the oldest is forgotten; a late number of it is late, not a
    duplicate, so received and missed still add up to what was sent."""
    from plant_disease_ros.core.sequence_gaps import MAX_GAPS

    gaps = SequenceGaps()
    for sequence in range(1, 2 * (MAX_GAPS + 2) + 2, 2):   # every other number lost
        gaps.add(b'p', sequence)
    state = gaps.publishers[b'p']
    assert len(state.gaps) == MAX_GAPS and state.missed == MAX_GAPS + 2
    assert gaps.add(b'p', 2) == -1 and gaps.duplicates == 0
    assert gaps.sent == gaps.received + gaps.missed
