"""Detect message stamps that jump back in time (bag loop, simulator restart, GNSS fix).

``ros2 bag play --loop``, a restarted simulator or a corrected GNSS clock sends stamps
that go backwards. Fixes of the old timeline must then not locate frames of the new one,
so the classifier forgets them when a stream's stamp falls further back than a threshold
behind the newest stamp that stream has had. Each stream (frames, fixes) is watched on
its own: frames legitimately lag behind fixes by the processing time.

Messages of the old timeline still in flight at the jump (a frame queued before a bag
loop, the last fixes of a driver's buffer) arrive within moments of it, by the wall
clock: for a window after a jump (:meth:`window_s`) such a stamp is recognised (it goes
on from where its stream was, far ahead of the new timeline), is no second jump, and the
caller can drop it.

A stray stamp (one frame of a driver stamped wrong) looks like a jump too, but its own
stream goes on from where it was: a DDS stream keeps its order, so two stamps of the
jumping stream that continue the old timeline, before any stamp of any stream that can
only be on the new one, mean there was no new timeline. The jump is then undone
(:attr:`glitches`, :attr:`undone`): the streams go on from their stamps before it, and the
caller restores what it dropped. Those two stamps must come within the jumping stream's
window (:meth:`window_s`): ``late_window_s``, or three of the stream's periods (its median
step between stamps) for a slower stream, up to :data:`MAX_WINDOW_S`: a 1 Hz receiver's
stray stamp is undone within 3 s. A stamp of another stream meanwhile that goes on from
where that stream was (no further back than ``threshold_s``) but is within ``threshold_s``
of the new timeline too fits both (a stray stamp just beyond the threshold, frames lagging
the fixes): it decides nothing. In a real loop every stream goes back by the loop's
length, so its stamps on the new timeline are further back than that from its own.

A stray stamp far ahead (a bogus future stamp) would make the next good stamp look like a
jump back. So a stamp far ahead (more than ``threshold_s`` beyond the newest stamp of every
stream and beyond its own stream's next expected stamp, its newest plus its period) is not
taken as its stream's newest at once: it starts a run of stamps ahead, undecided
(:meth:`pending_ahead`), which the stream's next stamps join while they go on from it (no
more than ``threshold_s`` before its first). The timeline stepped forward (a data gap, a
paused bag, a GNSS time correction) and the run is taken (:attr:`confirmed`) once its
stamps span :data:`CONFIRM_RUN_S` or it holds :data:`CONFIRM_RUN_STAMPS` stamps; at once
when another stream steps to the same time (a gap of every stream); and at its second
stamp for a stream that had no stamp of its own before it (since the start or the last
jump: a camera starting after the receiver), as there is nothing it could go back to. If a
stamp of the stream goes on from where it was before the run instead, the run was stray
(:attr:`strays`, one glitch in :attr:`glitches`): nothing else changes, and the caller
drops what it held of it. Stamps of other streams that merely catch up with it decide
nothing: the wall clock brings any stream there in time. The limit: a run of stray stamps
that spans :data:`CONFIRM_RUN_S` (or has :data:`CONFIRM_RUN_STAMPS` stamps) is taken as a
step forward, and the stream going on from before it is then a jump back; so is a slow
stream's (one stamp in :data:`CONFIRM_RUN_S` or more) second stray stamp in a row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
import statistics
import time


@dataclass(frozen=True)
class TimeJump:
    """A jump back: the stream, the newest stamp before it and the stamp after it (s)."""

    stream: str
    newest_s: float
    stamp_s: float

    @property
    def size_s(self) -> float:
        """Return how far back the stamp jumped, in seconds (positive)."""
        return self.newest_s - self.stamp_s


@dataclass(frozen=True)
class StampAhead:
    """A run of stamps far ahead of every stream, not yet known to be a step forward or stray.

    ``stamp_s`` is its first stamp; ``reference_s`` the stamp that one is ahead of: the
    newest of every stream, or its own stream's next expected stamp when later. ``stamps``
    are the run's stamps in the order they came (``(stamp_s,)`` when left empty).
    """

    stream: str
    stamp_s: float
    reference_s: float
    stamps: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.stamps:
            object.__setattr__(self, 'stamps', (self.stamp_s,))

    @property
    def ahead_s(self) -> float:
        """Return how far ahead of ``reference_s`` the first stamp lies, in seconds."""
        return self.stamp_s - self.reference_s

    @property
    def span_s(self) -> float:
        """Return the stamp time the run covers, in seconds (0 for one stamp)."""
        return max(self.stamps) - min(self.stamps)

    def holds(self, stamp_s: float) -> bool:
        """Return whether ``stamp_s`` is one of the run's stamps."""
        return stamp_s in self.stamps


# How long after a jump (wall clock, s) a stamp of the old timeline may still arrive, at
# least: a stream slower than one stamp every late_window_s / 3 gets three of its periods.
DEFAULT_LATE_WINDOW_S = 2.0
# ... at most (unless late_window_s is longer): a detection waits this long for its fix
# while a jump may still be undone, so a stream slower than one stamp in 2.5 s cannot have
# its stray stamp undone (it needs two within the window).
MAX_WINDOW_S = 5.0
# Stamps of the jumping stream on the old timeline, before any on the new one, that undo
# the jump. One may be a message in flight from a second publisher of the stream; two in a
# row from it are the stream going on.
UNDO_AFTER_STAMPS = 2
# A run of stamps far ahead of a stream that had stamps of its own is a step forward once
# it spans this much stamp time (s) or has this many stamps: a shorter run followed by the
# stream going on from before it is stray. A 1 Hz receiver's correction is taken at its
# next fix; two stray frames of a 30 Hz camera in a row are stray, and so are 15 (they
# span 14/30 s); 16 (which span 0.5 s) are a step.
CONFIRM_RUN_S = 0.5
CONFIRM_RUN_STAMPS = 16
# How many of the last stray runs far ahead are kept (:attr:`recent_strays_ahead`).
RECENT_STRAYS = 8
# A stream's period is the median of its last this many steps forward between stamps:
# a gap or a burst among them does not change it.
PERIOD_STEPS = 9


class TimeJumpDetector:
    """Watch the stamps of named streams; report a stamp more than ``threshold_s`` back."""

    def __init__(self, threshold_s: float, late_window_s: float = DEFAULT_LATE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Report jumps back larger than ``threshold_s`` seconds (> 0).

        ``late_window_s``: how long after a jump (by ``clock``, seconds) a stamp of the old
        timeline is recognised as late (see :meth:`is_late`) and the jump may be undone, at
        least: a slow jumping stream gets longer (:meth:`window_s`).
        """
        self.threshold_s = threshold_s
        self.late_window_s = float(late_window_s)
        self._clock = clock
        self.jumps = 0                # jumps back that stood (undone ones are glitches)
        self.late_stamps = 0          # stamps of the previous timeline that came after a jump
        self.undos = 0                # jumps undone: a stray stamp back, its stream went on
        self.undone: TimeJump | None = None   # the last jump undone
        self.strays_ahead = 0         # stray runs of stamps far ahead
        # The last few of them, oldest first (bounded: a second publisher whose clock is
        # off sends one with every message).
        self.recent_strays_ahead: deque[StampAhead] = deque(maxlen=RECENT_STRAYS)
        # What the last check() decided of the stamps far ahead: taken as a step forward
        # of the timeline, or found stray.
        self.confirmed: list[StampAhead] = []
        self.strays: list[StampAhead] = []
        self._ahead: dict[str, StampAhead] = {}   # the undecided run of each stream
        # The streams whose undecided run came after stamps of their own (see the module).
        self._ahead_own: set[str] = set()
        # The run the stamp of the last check() joined or started, held undecided.
        self.held: StampAhead | None = None
        self._steps: dict[str, deque[float]] = {}
        self._window_s = self.late_window_s   # the last jump's window
        # The stream of the last jump while it may still be undone (None: it stands), its
        # stamps on the old timeline since, and whether any stream has been on the new one.
        self._jump_stream: str | None = None
        self._jump: TimeJump | None = None
        self._continued = 0
        # The newest stamp of each other stream since the jump that could be of either
        # timeline (see :meth:`_either_timeline`), taken as its newest if the jump is undone.
        self._either_s: dict[str, float] = {}
        self._newest_s: dict[str, float] = {}
        # The newest stamp of each stream before the last jump, and when (clock) it was.
        self._previous_s: dict[str, float] = {}
        self._jumped_at = -float('inf')

    @property
    def threshold_s(self) -> float:
        """Return the smallest jump back, in seconds, that is reported."""
        return self._threshold_s

    @threshold_s.setter
    def threshold_s(self, value: float) -> None:
        if not value > 0.0:
            raise ValueError(f'threshold_s must be > 0, got {value}')
        self._threshold_s = float(value)

    def check(self, stream: str, stamp_s: float) -> TimeJump | None:
        """Note ``stamp_s`` of ``stream``; return the jump when it went back too far.

        After a jump every stream starts over from the stamps that come next. A stamp of
        the previous timeline still in flight is not taken as the newest of its stream, so
        it is not followed by a second, false jump; :meth:`is_late` tells the caller to
        drop it. A stamp far ahead is left undecided (:meth:`pending_ahead`); this stamp
        or another stream's may decide one (:attr:`confirmed`, :attr:`strays`).
        """
        self.confirmed, self.strays, self.held = [], [], None
        ahead = self._ahead.pop(stream, None)
        if ahead is not None:
            own = stream in self._ahead_own
            self._ahead_own.discard(stream)
            if stamp_s >= ahead.stamp_s - self._threshold_s:
                # The stream goes on from the run: a step forward once the run is long
                # enough (this stamp is then taken as any); until then it joins the run.
                grown = replace(ahead, stamps=(*ahead.stamps, stamp_s))
                if own and (grown.span_s < CONFIRM_RUN_S
                            and len(grown.stamps) < CONFIRM_RUN_STAMPS):
                    self._ahead[stream] = self.held = grown
                    self._ahead_own.add(stream)
                    return None
                self._confirm(ahead)
            else:
                self.strays.append(ahead)   # back where it was: the run was stray
                self.strays_ahead += 1
                self.recent_strays_ahead.append(ahead)
        if self.is_late(stamp_s, stream):
            if stream == self._jump_stream:
                self._continued += 1
                if self._continued >= UNDO_AFTER_STAMPS:
                    self._undo(stream, stamp_s)
                    return None
            self.late_stamps += 1
            return None
        if self._either_timeline(stream, stamp_s):
            # Decides nothing: the jump may still be undone, and the stamp is no newest yet.
            self._either_s[stream] = max(stamp_s, self._either_s.get(stream, stamp_s))
            return None
        newest = self._newest_s.get(stream)
        if newest is not None and newest - stamp_s > self._threshold_s:
            self.jumps += 1
            self._previous_s = dict(self._newest_s)
            self._jumped_at = self._clock()
            self._window_s = self.window_s(stream)
            self._newest_s = {stream: stamp_s}
            jump = TimeJump(stream, newest, stamp_s)
            self._jump_stream, self._jump, self._continued = stream, jump, 0
            self._either_s = {}
            return jump
        # A stamp on the new timeline (or any, once the late window closed): the jump stands.
        self._jump_stream = None
        reference = self._expected_s(stream)
        if reference is not None and stamp_s - reference > self._threshold_s:
            partners = [other for other in self._ahead.values()
                        if min(other.stamps) - self._threshold_s <= stamp_s
                        <= max(other.stamps) + self._threshold_s]
            if not partners:
                self._ahead[stream] = self.held = StampAhead(stream, stamp_s, reference)
                if stream in self._newest_s:
                    self._ahead_own.add(stream)
                return None
            for other in partners:    # another stream stepped to the same time
                del self._ahead[other.stream]
                self._ahead_own.discard(other.stream)
                self._confirm(other)
        self._go_on(stream, stamp_s)
        if self._previous_s and max(self._newest_s.values()) >= max(self._previous_s.values()):
            self._previous_s = {}   # the new timeline has caught up with the old one
        return None

    def pending_ahead(self, stream: str) -> StampAhead | None:
        """Return the run of stamps far ahead of ``stream`` not decided yet, if any.

        The caller holds back what came with its stamps (fixes), or does not locate them
        yet (frames), until a later :meth:`check` lists it in :attr:`confirmed` or
        :attr:`strays`. :attr:`held` is the run the last checked stamp joined, if any.
        """
        return self._ahead.get(stream)

    @property
    def glitches(self) -> int:
        """Return how many stray stamps there were: jumps back undone, runs far ahead."""
        return self.undos + self.strays_ahead

    def period_s(self, stream: str) -> float | None:
        """Return the median step between the recent stamps of ``stream`` (s), if known."""
        steps = self._steps.get(stream)
        return statistics.median(steps) if steps else None

    def window_s(self, stream: str) -> float:
        """Return how long (clock, s) a jump of ``stream`` may be undone and stamps be late.

        ``late_window_s``, or :data:`UNDO_AFTER_STAMPS` + 1 periods of the stream when
        longer (time for the two stamps that undo it, and one period of delay), at most
        :data:`MAX_WINDOW_S` (unless ``late_window_s`` is longer).
        """
        period = self.period_s(stream)
        if period is None:
            return self.late_window_s
        return max(self.late_window_s, min((UNDO_AFTER_STAMPS + 1) * period, MAX_WINDOW_S))

    @property
    def jump_window_s(self) -> float:
        """Return the window (s) of the last jump: :meth:`window_s` of its stream then."""
        return self._window_s

    def _expected_s(self, stream: str) -> float | None:
        """Return the stamp a stamp of ``stream`` is far ahead of when beyond it by more than
        ``threshold_s``: the newest of every stream, or its own next expected one if later.
        """
        if not self._newest_s:
            return None
        reference = max(self._newest_s.values())
        own = self._newest_s.get(stream)
        if own is not None:
            reference = max(reference, own + (self.period_s(stream) or 0.0))
        return reference

    def _go_on(self, stream: str, stamp_s: float) -> None:
        """Take ``stamp_s`` as the newest of ``stream`` when it is; note the step forward."""
        newest = self._newest_s.get(stream)
        if newest is not None and stamp_s <= newest:
            return
        if newest is not None:
            steps = self._steps.setdefault(stream, deque(maxlen=PERIOD_STEPS))
            steps.append(stamp_s - newest)
        self._newest_s[stream] = stamp_s

    def _confirm(self, ahead: StampAhead) -> None:
        """Take the run ``ahead`` as a step forward of its stream's timeline."""
        self.confirmed.append(ahead)
        for stamp_s in ahead.stamps:
            self._go_on(ahead.stream, stamp_s)

    @property
    def undo_possible(self) -> bool:
        """Return whether the last jump may still be undone (a stray stamp, see above).

        True from the jump until a stamp of any stream comes that can only be on the new
        timeline (see :meth:`_either_timeline`) or the jump's window
        (:attr:`jump_window_s`) closes: a detection of that time should wait that long for
        its fix.
        """
        return (self._jump_stream is not None
                and self._clock() - self._jumped_at <= self._window_s)

    def _either_timeline(self, stream: str, stamp_s: float) -> bool:
        """Return whether ``stamp_s``, not late, may be of the old timeline all the same.

        While the last jump may be undone, a stamp of another stream that goes on from where
        that stream was (no further back than ``threshold_s`` from its newest before the
        jump) fits both timelines when it is also within ``threshold_s`` of the new one: a
        stray stamp only just beyond the threshold, and a stream lagging the jumping one
        (frames behind the fixes by their processing time). It must not make the jump
        stand. In a real loop each stream goes back by the loop's length: its stamps on
        the new timeline are further back than that from its own newest.
        """
        previous = self._previous_s.get(stream)
        return (stream != self._jump_stream and previous is not None
                and stamp_s >= previous - self._threshold_s and self.undo_possible)

    def _undo(self, stream: str, stamp_s: float) -> None:
        """Undo the last jump: its stamp was a stray one, ``stream`` went on at ``stamp_s``."""
        self.jumps -= 1
        self.undos += 1
        self.undone = self._jump
        self._newest_s = dict(self._previous_s)
        for other, either_s in self._either_s.items():   # they were of the old one
            self._newest_s[other] = max(either_s, self._newest_s.get(other, either_s))
        self._either_s = {}
        self._newest_s[stream] = max(stamp_s, self._newest_s.get(stream, stamp_s))
        self._previous_s = {}
        self._jumped_at = -float('inf')
        self._jump_stream, self._jump, self._continued = None, None, 0

    def is_late(self, stamp_s: float, stream: str | None = None) -> bool:
        """Return whether ``stamp_s`` (of ``stream``) belongs to the timeline before the jump.

        That is, within the jump's window of it, a stamp that goes on from where its
        stream was before it (no further back than ``threshold_s`` from that stream's
        newest stamp then; a stream not seen then: any stream's) and lies more than
        ``threshold_s`` ahead of every stream since the jump. After the window every
        stamp is taken as it comes, so a wrong call cannot last.
        """
        if not self._previous_s or not self._newest_s:
            return False
        if self._clock() - self._jumped_at > self._window_s:
            self._previous_s = {}
            return False
        previous = self._previous_s.get(stream) if stream else None
        if previous is None:
            previous = max(self._previous_s.values())
        return (stamp_s >= previous - self._threshold_s
                and stamp_s - max(self._newest_s.values()) > self._threshold_s)
