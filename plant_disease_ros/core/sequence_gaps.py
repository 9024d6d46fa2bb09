"""Count the messages each publisher sent that never reached the node, by sequence number.

A DDS writer numbers its samples 1, 2, 3, ... and the subscriber is told the number of
each sample it takes. A gap between two numbers taken from one publisher is a message
that was sent but not handed to the node: lost on the way, or, with a keep-last depth 1
queue, replaced by a newer message before the node took it (by design: the node always
works on the newest frame). Which of the two is told apart by what the middleware
reports lost (see ``AdaptiveSubscription``'s ``on_message_lost``).

Only the span from the first to the newest message taken is counted: what a publisher
sent before this node subscribed was never meant for it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field

# Publishers listed one by one (the oldest seen go first; totals keep them).
MAX_PUBLISHERS = 16
# Gaps remembered per publisher, so that a late message fills the gap it belongs to; a
# number of an older gap, forgotten beyond this many, is taken as late all the same (a
# repeat of a number taken is then not told apart: DDS does not repeat samples).
MAX_GAPS = 256


@dataclass
class PublisherSequence:
    """What one publisher sent and what reached the node, by sequence number."""

    first: int
    newest: int
    received: int = 1
    missed: int = 0
    # The missing numbers, as sorted, disjoint, inclusive ranges (lowest first).
    gaps: list[tuple[int, int]] = field(default_factory=list)
    # Numbers below this one may be in a gap forgotten beyond MAX_GAPS.
    forgotten_below: int = 0

    @property
    def sent(self) -> int:
        """Return the messages the publisher sent from the first one taken to the newest."""
        return self.newest - self.first + 1

    def fill(self, sequence: int) -> bool:
        """Take ``sequence`` out of the gaps; return whether it was missing."""
        index = bisect_right(self.gaps, (sequence, float('inf'))) - 1
        if index < 0 or not self.gaps[index][0] <= sequence <= self.gaps[index][1]:
            return False
        low, high = self.gaps.pop(index)
        self.gaps[index:index] = [(a, b) for a, b in ((low, sequence - 1),
                                                      (sequence + 1, high)) if a <= b]
        return True


class SequenceGaps:
    """Per publisher (its GID), count messages received and missed in its sequence."""

    def __init__(self, max_publishers: int = MAX_PUBLISHERS) -> None:
        """Keep the counts of at most ``max_publishers`` publishers one by one."""
        self.max_publishers = int(max_publishers)
        self.publishers: OrderedDict[bytes, PublisherSequence] = OrderedDict()
        self.received = 0
        self.missed = 0
        self.sent = 0
        self.duplicates = 0

    def add(self, publisher: bytes, sequence: int) -> int:
        """Note a message ``sequence`` of ``publisher``; return the change of ``missed``.

        A number past the newest leaves a gap of the numbers in between; a late one inside
        the span fills the gap it was counted in (-1). A number taken before is a
        duplicate: counted in ``duplicates``, not as received.
        """
        state = self.publishers.get(publisher)
        if state is None:
            self.received += 1
            self.publishers[publisher] = PublisherSequence(sequence, sequence)
            self.sent += 1
            if len(self.publishers) > self.max_publishers:
                self.publishers.popitem(last=False)
            return 0
        if sequence > state.newest:
            gap = sequence - state.newest - 1
            if gap:
                state.gaps.append((state.newest + 1, sequence - 1))
            self.sent += sequence - state.newest
            state.newest = sequence
        elif sequence < state.first:
            # Older than any taken before: the span grows back to it.
            gap = state.first - sequence - 1
            if gap:
                state.gaps.insert(0, (sequence + 1, state.first - 1))
            self.sent += state.first - sequence
            state.first = sequence
        elif state.fill(sequence):
            gap = -1
        elif sequence < state.forgotten_below and state.missed > 0:
            gap = -1   # most likely late for a gap too old to be remembered
        else:
            self.duplicates += 1
            return 0
        if len(state.gaps) > MAX_GAPS:
            state.forgotten_below = state.gaps.pop(0)[1] + 1
        state.received += 1
        self.received += 1
        state.missed += gap
        self.missed += gap
        return gap
