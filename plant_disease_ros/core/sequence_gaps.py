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

from collections import OrderedDict
from dataclasses import dataclass

# Publishers listed one by one (the oldest seen go first; totals keep them).
MAX_PUBLISHERS = 16


@dataclass
class PublisherSequence:
    """What one publisher sent and what reached the node, by sequence number."""

    first: int
    newest: int
    received: int = 1
    missed: int = 0

    @property
    def sent(self) -> int:
        """Return the messages the publisher sent from the first one taken to the newest."""
        return self.newest - self.first + 1


class SequenceGaps:
    """Per publisher (its GID), count messages received and missed in its sequence."""

    def __init__(self, max_publishers: int = MAX_PUBLISHERS) -> None:
        """Keep the counts of at most ``max_publishers`` publishers one by one."""
        self.max_publishers = int(max_publishers)
        self.publishers: OrderedDict[bytes, PublisherSequence] = OrderedDict()
        self.received = 0
        self.missed = 0
        self.sent = 0

    def add(self, publisher: bytes, sequence: int) -> int:
        """Note a message ``sequence`` of ``publisher``; return the change of ``missed``.

        A number past the newest leaves a gap of the numbers in between; a late one inside
        the span fills a gap counted before (-1).
        """
        state = self.publishers.get(publisher)
        if state is not None and sequence in (state.first, state.newest):
            return 0  # the same message again
        self.received += 1
        if state is None:
            self.publishers[publisher] = PublisherSequence(sequence, sequence)
            self.sent += 1
            if len(self.publishers) > self.max_publishers:
                self.publishers.popitem(last=False)
            return 0
        state.received += 1
        if sequence > state.newest:
            gap = sequence - state.newest - 1
            self.sent += sequence - state.newest
            state.newest = sequence
        elif sequence < state.first:
            # Older than any taken before: the span grows back to it.
            gap = state.first - sequence - 1
            self.sent += state.first - sequence
            state.first = sequence
        else:
            gap = -1 if state.missed > 0 else 0
        state.missed += gap
        self.missed += gap
        return gap
