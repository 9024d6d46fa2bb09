"""Pace the bag into the pipeline: wait for it to be ready, play fast or timed, let it settle.

- Timed: every message at its recorded time, scaled by the rate, with /clock ticking.
- Fast: each frame is sent once the previous one has been classified, so nothing is
  dropped and the pipeline sets the pace. GPS fixes go up to ``fix_lead_s`` ahead of each
  frame, so a frame never waits for the fix after it.

Nodes on sim time run their timers only while /clock moves, so every wait here keeps
the clock going.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
import heapq
import itertools
import math
import os
import time
from typing import Any

from plant_disease_ros.core.fix_buffer import DEFAULT_MAX_FIX_ACCURACY_M
from plant_disease_ros.tools.replay.bag import BagMessage, BagSelection, stamp_key
from plant_disease_ros.tools.replay.options import CLOCK_PERIOD_S, ReplayError, ReplayOptions
from plant_disease_ros.tools.replay.player import ReplayPlayer
from plant_disease_ros.tools.replay.progress import ProgressLine
from plant_disease_ros.tools.replay.recorder import OutputRecorder
from plant_disease_ros.tools.replay.summary import ReplaySummary

# Fast mode: a frame unanswered this long is sent once more (lost on the way).
FRAME_RETRY_S = 4.0
# The pipeline has settled when no output came for this long.
SETTLE_QUIET_S = 1.5
# After the pipeline is ready: a short settle, and the longest wait for the 'auto'
# frames subscription to switch to reliable.
READY_SETTLE_S = 0.5
RELIABLE_MATCH_S = 5.0
CHECK_ALIVE_PERIOD_S = 0.5
# Fast mode: this many frames in a row without an answer stop the replay (the pipeline
# takes none of them: an encoding it cannot read, a wrong topic).
MAX_UNANSWERED_IN_A_ROW = 5
# Before the replay starts its nodes: how long it looks for a pipeline already in its
# namespace (discovery on loopback takes about a second). One found later, while its own
# nodes start, shows as a node listed twice.
NAMESPACE_CHECK_S = 1.5
# Frame and fix stamps further apart than this are worth a warning (a driver's time
# base that is not the GPS's): far beyond any fix age the classifier takes.
STAMP_GAP_WARN_S = 60.0
# Fast DDS lists a participant killed outright until its lease ends (its default).
DDS_LEASE_S = 20.0
# At the end, the longest wait for a /diagnostics status newer than the last frame (the
# nodes publish one a second by default), so the rejections are all counted.
FINAL_DIAGNOSTICS_S = 2.5
# At the end, the longest wait for the detections the classifier still holds (for the fix
# after their stamp, up to fix_wait_s, or the window of a stamp far ahead, up to 5 s) and,
# attached, for the recorder to take them: generous.
DETECTIONS_CATCH_UP_S = 30.0


def timed_start_ns(first_image: BagMessage, first_fix: BagMessage | None) -> int:
    """Return the bag time a timed replay starts at: its first frame or fix, if earlier.

    Not the bag's first message: in a `ros2 bag record -a` bag the camera may start long
    after /tf or /rosout, and the replay would sit idle for that long.
    """
    if first_fix is None:
        return first_image.log_ns
    return min(first_image.log_ns, first_fix.log_ns)


def stamp_gap_warning(frames: tuple[float, float] | None,
                      fixes: tuple[float, float] | None,
                      limit_s: float = STAMP_GAP_WARN_S) -> str:
    """Return a warning when the frames' and the fixes' header stamps are far apart, or ''.

    ``frames`` and ``fixes`` are (first, last) stamps in seconds (None: none sent). The
    classifier pairs a frame with the fix of its stamp: a camera stamping time since boot
    and a GPS stamping GPS time (1.7e9 s apart) give no frame a position.
    """
    if frames is None or fixes is None:
        return ''
    gap = max(fixes[0] - frames[1], frames[0] - fixes[1])
    if gap <= limit_s:
        return ''
    return (f'the frames are stamped {frames[0]:.3f} to {frames[1]:.3f} s and the fixes '
            f'{fixes[0]:.3f} to {fixes[1]:.3f} s, {gap:.0f} s apart: the classifier pairs '
            'a frame with the fix of its stamp, so no frame got a position (a driver '
            "stamping time since boot, or another clock than the GPS's?)")


# At least this many detections, and this share of them without a fix near their stamp
# (stale or none) though the bag has fixes, make the summary name both stamp ranges.
UNLOCATED_WARN_MIN = 5
UNLOCATED_WARN_SHARE = 0.5


def unlocated_warning(fix_status: Mapping[str, int], frames: tuple[float, float] | None,
                      fixes: tuple[float, float] | None) -> str:
    """Return a warning when most detections found no fix near their stamp, or ''.

    For stamps whose ranges overlap but are offset (a camera clock an hour off the GPS's
    on a two-hour drive): :func:`stamp_gap_warning` sees no gap, yet the classifier pairs
    each frame with fixes of another moment, or none.
    """
    total = sum(fix_status.values())
    unlocated = fix_status.get('stale', 0) + fix_status.get('none', 0)
    if (frames is None or fixes is None or total < UNLOCATED_WARN_MIN
            or unlocated < UNLOCATED_WARN_SHARE * total):
        return ''
    return (f'{unlocated} of {total} detections found no fix near their stamp (stale or '
            f'none) though the bag has fixes: frames stamped {frames[0]:.3f} to '
            f'{frames[1]:.3f} s, fixes {fixes[0]:.3f} to {fixes[1]:.3f} s (a camera and a GPS '
            'stamping different clocks, or a long GPS dropout?)')


def pipeline_running_error(player: ReplayPlayer, found: Counter[str]) -> ReplayError:
    """Return the error of a replay whose namespace already holds (part of) a pipeline, or
    whose domain has another publisher on the bag's topics or /clock."""
    namespace = player.namespace or '/'
    domain = os.environ.get('ROS_DOMAIN_ID', '0')
    listed = ', '.join(f'{what} ({count}x)' if count > 1 else what
                       for what, count in sorted(found.items()))
    return ReplayError(
        f'namespace {namespace} (domain {domain}) already has what this replay would start '
        f'or play: {listed}. Another replay, a running pipeline, a camera or GPS driver, a '
        'simulator, or nodes a killed replay left (one killed outright stays listed for '
        f'about {DDS_LEASE_S:g} s) would mix its frames and results with this '
        "replay's. A replay plays the bag's camera and GPS topics and /clock under their "
        'own names, which --namespace does not separate: replays side by side need '
        'different domains (ROS_DOMAIN_ID; a shell that sources scripts/ros_env.sh takes '
        'a free one); --attach replays through the running pipeline')


def check_namespace_free(player: ReplayPlayer, wait_s: float = NAMESPACE_CHECK_S) -> None:
    """Raise ReplayError if the player's namespace already has pipeline nodes or outputs.

    Called before the replay starts its own nodes; looks for ``wait_s`` (discovery takes
    a moment), returns at once when something is found.
    """
    deadline = time.monotonic() + wait_s
    while True:
        found = player.pipeline_in_namespace()
        if found:
            raise pipeline_running_error(player, found)
        if time.monotonic() >= deadline:
            return
        time.sleep(CLOCK_PERIOD_S * 5)


def _widened(stamps: tuple[float, float] | None, sec: int, nanosec: int
             ) -> tuple[float, float] | None:
    """Return the (first, last) range ``stamps`` with one more stamp; an unset (0) one not."""
    if sec == 0 and nanosec == 0:
        return stamps
    stamp = sec + nanosec * 1e-9
    if stamps is None:
        return stamp, stamp
    return min(stamps[0], stamp), max(stamps[1], stamp)


class Playback:
    """Plays one bag selection through ``player``; counts go into ``summary``.

    ``check_alive`` raises when a pipeline process has exited (a no-op when attached).
    ``max_fix_accuracy_m`` is the classifier's (see ``run.fix_accuracy_limit``): the fixes
    it drops are counted by its own rule.
    """

    def __init__(self, player: ReplayPlayer, recorder: OutputRecorder,
                 selection: BagSelection, options: ReplayOptions, summary: ReplaySummary,
                 progress: ProgressLine, typestore: Any,
                 check_alive: Callable[[], None],
                 max_fix_accuracy_m: float = DEFAULT_MAX_FIX_ACCURACY_M) -> None:
        self.player = player
        self.recorder = recorder
        self.selection = selection
        self.options = options
        self.summary = summary
        self.progress = progress
        self.typestore = typestore
        self.check_alive = check_alive
        self.max_fix_accuracy_m = max_fix_accuracy_m
        self.wall_start = time.monotonic()
        # When play() returned: the last frame sent and, in fast mode, answered or refused.
        self.play_end = self.wall_start
        # The nodes' frame rejections before the first frame (an attached pipeline's).
        self.rejected_before: Counter[tuple[str, str]] = Counter()
        # The detections the (attached) map recorder took before the first frame.
        self.recorder_received_before = 0
        # Fast mode: frames answered by a classification.
        self.answered_frames = 0
        # The first and last header stamps (s) of the frames and fixes sent (not 0).
        self.frame_stamps: tuple[float, float] | None = None
        self.fix_stamps: tuple[float, float] | None = None

    def wait_until_ready(self) -> None:
        """Wait until the pipeline listens to the image (and fix) topic and publishes results.

        Raises ReplayError naming what is still missing after ``startup_timeout_s``.
        """
        player, options, selection = self.player, self.options, self.selection
        started = time.monotonic()
        deadline = started + options.startup_timeout_s
        # The clock runs up to the bag's start meanwhile, at wall speed, from the start
        # minus the longest wait.
        preroll_ns = selection.start_ns - int(options.startup_timeout_s * 1e9)
        own_pipeline = not options.attach
        while True:
            player.publish_clock(preroll_ns + int((time.monotonic() - started) * 1e9))
            self.check_alive()
            if own_pipeline:
                self._check_one_pipeline()
            waiting = []
            if player.image_publisher.get_subscription_count() == 0:
                waiting.append(f'a subscriber on {selection.image.name}')
            if (player.fix_publisher is not None and selection.fix is not None
                    and player.fix_publisher.get_subscription_count() == 0):
                waiting.append(f'a subscriber on {selection.fix.name}')
            if player.output_publishers() == 0:
                waiting.append(f'a publisher on {player.output_topics["classification"]}')
            if own_pipeline and not player.save_client.service_is_ready():
                waiting.append(player.save_service)
            if own_pipeline and not options.single_process and not player.frames_linked():
                waiting.append(f'a subscriber on {player.frames_topic}')
            if not waiting:
                break
            if time.monotonic() > deadline:
                where = (' (is the pipeline running in namespace '
                         f'{player.namespace or "/"}, with the transport and topics of the '
                         'bag?)' if options.attach else '')
                raise ReplayError(f'pipeline not ready after {options.startup_timeout_s:g} s: '
                                  f'still waiting for {", ".join(waiting)}{where}')
            time.sleep(CLOCK_PERIOD_S)
        # The classifier's 'auto' frames subscription may have started before the camera's
        # publisher and fallen back to best effort; let it match reliable (large best-effort
        # frames can be lost between processes). Discovery is not symmetric either: the
        # other side may need a moment to match us.
        settle_until = time.monotonic() + READY_SETTLE_S
        matched_until = time.monotonic() + RELIABLE_MATCH_S
        while time.monotonic() < settle_until or (
                time.monotonic() < matched_until and own_pipeline
                and not options.single_process and not player.frames_reliability_matched()):
            player.publish_clock(preroll_ns + int((time.monotonic() - started) * 1e9))
            if own_pipeline:
                self._check_one_pipeline()
            time.sleep(CLOCK_PERIOD_S)

    def _check_one_pipeline(self) -> None:
        """Raise ReplayError when the namespace shows a pipeline node (or output) twice.

        Another pipeline discovered only after the replay started its own (two replays
        started together): both would take each other's frames.
        """
        found = self.player.pipeline_in_namespace()
        if any(count > 1 for count in found.values()):
            raise pipeline_running_error(self.player, found)

    def play(self, images: Iterator[BagMessage], fixes: Iterator[BagMessage]) -> None:
        """Send the bag's frames and fixes (two streams in log order), fast or timed."""
        self.player.publish_clock(self.selection.start_ns)
        self.rejected_before = self.player.frames_rejected()
        self.wall_start = time.monotonic()
        try:
            if self.options.fast:
                self._play_fast(images, fixes)
            else:
                self._play_timed(images, fixes)
        finally:
            self.play_end = time.monotonic()

    def _publish_fix(self, fix: BagMessage) -> None:
        """Publish a fix; count it, and why the classifier cannot use it, if it cannot."""
        if self.player.fix_publisher is not None:
            self.player.fix_publisher.publish(fix.data)
            self.summary.fixes_in += 1
            reason = self._fix_unusable(fix.data)
            if reason:
                self.summary.fixes_unusable[reason] += 1

    def _fix_unusable(self, data: bytes) -> str | None:
        """Return why the classifier drops this NavSatFix ('no_fix', 'unstamped', ...), or None.

        By the classifier's own rule: the CDR bytes read as its subscription reads them,
        judged by ``navsatfix_to_geofix`` with its ``max_fix_accuracy_m`` and a stamp
        required. Not the rejections that depend on what came before (a time jump).
        """
        if self.selection.fix is None:
            return None
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import NavSatFix

        from plant_disease_ros.ros.conversions import navsatfix_to_geofix

        try:
            message = deserialize_message(bytes(data), NavSatFix)
        except Exception:  # the classifier never gets what cannot be read
            return None
        self.fix_stamps = _widened(self.fix_stamps, message.header.stamp.sec,
                                   message.header.stamp.nanosec)
        return navsatfix_to_geofix(message, self.max_fix_accuracy_m, require_stamp=True)[1]

    def _rejected_total(self) -> int:
        """Return how many frames the nodes have rejected since the first one was sent."""
        return sum((self.player.frames_rejected() - self.rejected_before).values())

    def _update_progress(self, bag_ns: int) -> None:
        labelled = self.recorder.classified_count
        elapsed = time.monotonic() - self.wall_start
        self.progress.update(self.summary.frames_in, labelled, labelled / max(elapsed, 1e-9),
                             (bag_ns - self.selection.start_ns) / 1e9,
                             self.selection.duration_s)

    def _play_fast(self, images: Iterator[BagMessage], fixes: Iterator[BagMessage]) -> None:
        """Send each frame once the previous one is classified; fixes go ``fix_lead_s`` ahead.

        While a frame is being classified the clock runs on at wall speed, but never past
        the next frame's time: timers of nodes on sim time keep working, no frame is late.
        """
        player, options, recorder = self.player, self.options, self.recorder
        lead_ns = int(options.fix_lead_s * 1e9)
        next_fix = next(fixes, None)
        last_fix_ns: int | None = None

        def send_fixes(until_ns: float) -> None:
            """Publish the fixes logged up to ``until_ns``."""
            nonlocal next_fix, last_fix_ns
            while next_fix is not None and next_fix.log_ns <= until_ns:
                self._publish_fix(next_fix)
                last_fix_ns = next_fix.log_ns
                next_fix = next(fixes, None)

        in_a_row = 0
        sent_keys: set[tuple[int, int]] = set()
        upcoming = next(images, None)
        while upcoming is not None:
            image, upcoming = upcoming, next(images, None)
            limit_ns = upcoming.log_ns if upcoming is not None else image.log_ns + lead_ns
            send_fixes(image.log_ns + lead_ns)
            player.publish_clock(image.log_ns)
            key = stamp_key(self.typestore, image.data, self.selection.image.msgtype)
            self.frame_stamps = _widened(self.frame_stamps, *key)
            if key in sent_keys:
                # A stamp seen before (a driver leaving stamps at 0): its answer cannot be
                # told from the earlier one's, so the next answer of any stamp is awaited.
                self.summary.repeated_stamps += 1
                wanted = recorder.classifications + 1

                def answered(timeout_s: float, wanted: int = wanted) -> bool:
                    return recorder.wait_for_classifications(wanted, timeout_s)
            else:
                sent_keys.add(key)

                def answered(timeout_s: float, key: tuple[int, int] = key) -> bool:
                    return recorder.wait_for(key, timeout_s)
            rejected_before = self._rejected_total()
            player.image_publisher.publish(image.data)
            self.summary.frames_in += 1
            sent = time.monotonic()
            retried = rejected = False
            in_a_row += 1
            while not answered(CLOCK_PERIOD_S):
                waited = time.monotonic() - sent
                player.publish_clock(min(image.log_ns + int(waited * 1e9), limit_ns))
                if self._rejected_total() > rejected_before:
                    # A node refused it (its /diagnostics say so): no answer will come.
                    rejected = True
                    break
                if waited >= options.frame_timeout_s:
                    self.check_alive()
                    self.summary.unanswered += 1
                    break
                if not retried and waited >= min(FRAME_RETRY_S, options.frame_timeout_s / 2):
                    self.check_alive()
                    # Lost on the way (a QoS switch, a discovery race): send it once more.
                    player.image_publisher.publish(image.data)
                    retried = True
                    self.summary.resent += 1
            else:
                in_a_row = 0
                self.answered_frames += 1
            if rejected and recorder.classified_count:
                # A refused frame among classified ones (a garbled JPEG): counted, but it
                # does not say that the pipeline takes none of the stream's frames.
                in_a_row -= 1
            self._update_progress(image.log_ns)
            if in_a_row >= MAX_UNANSWERED_IN_A_ROW:
                self._count_rejected()
                reasons = ', '.join(f'{reason} {count}'
                                    for reason, count in self.summary.rejected.items())
                raise ReplayError(
                    f'{in_a_row} frames of {self.selection.image.name} in a row got no '
                    f'classification within {options.frame_timeout_s:g} s each'
                    + (f' (rejected by {" and ".join(self.summary.rejected_by)}: {reasons})'
                       if reasons else '')
                    + ': the pipeline takes none of them (its log says why: an image '
                    'encoding it cannot read, for one); give the colour camera with '
                    '--image-topic')
        send_fixes(math.inf)
        if last_fix_ns is not None:
            player.publish_clock(last_fix_ns)

    def _play_timed(self, images: Iterator[BagMessage], fixes: Iterator[BagMessage]) -> None:
        """Send every message at its recorded time (scaled by the rate), the clock ticking."""
        player, rate = self.player, self.options.rate
        first = next(images, None)
        if first is None:
            return
        first_fix = next(fixes, None)
        start_ns = timed_start_ns(first, first_fix)
        if first_fix is not None:
            fixes = itertools.chain([first_fix], fixes)
        last_check = 0.0
        sent_keys: set[tuple[int, int]] = set()
        for message in heapq.merge(fixes, itertools.chain([first], images)):
            target = self.wall_start + (message.log_ns - start_ns) / 1e9 / rate
            while True:
                now = time.monotonic()
                player.publish_clock(start_ns + int((now - self.wall_start) * rate * 1e9))
                if now - last_check > CHECK_ALIVE_PERIOD_S:
                    self.check_alive()
                    last_check = now
                if now >= target:
                    break
                time.sleep(min(CLOCK_PERIOD_S, target - now))
            player.publish_clock(message.log_ns)
            if message.kind == 'fix':
                self._publish_fix(message)
                continue
            key = stamp_key(self.typestore, message.data, self.selection.image.msgtype)
            self.frame_stamps = _widened(self.frame_stamps, *key)
            if key in sent_keys:
                # A stamp seen before: its result cannot be told from the earlier one's.
                self.summary.repeated_stamps += 1
            else:
                sent_keys.add(key)
            player.image_publisher.publish(message.data)
            self.summary.frames_in += 1
            self._update_progress(message.log_ns)

    def _wait_for_diagnostics(self) -> None:
        """Wait (briefly, the clock going) for the nodes' next /diagnostics status.

        So the rejections of the last frames are in it. Nothing to wait for when no node
        has published one (an attached pipeline elsewhere, diagnostics not reaching us).
        """
        player = self.player
        seen = player.diagnostics_statuses
        if not seen:
            return
        deadline = time.monotonic() + FINAL_DIAGNOSTICS_S
        while player.diagnostics_statuses == seen and time.monotonic() < deadline:
            player.publish_clock(player.clock_ns + int(CLOCK_PERIOD_S * 1e9))
            time.sleep(CLOCK_PERIOD_S)

    def _count_rejected(self) -> None:
        """Put the frames the nodes rejected since the first frame into the summary.

        The nodes count copies: in fast mode a frame re-sent after FRAME_RETRY_S may be
        refused twice, so there the count is at most the frames sent and not answered
        (the most frequent reasons give way first).
        """
        rejected = self.player.frames_rejected() - self.rejected_before
        reasons: Counter[str] = Counter()
        for (_, reason), count in rejected.items():
            reasons[reason] += count
        if self.options.fast:
            excess = sum(reasons.values()) - max(self.summary.frames_in - self.answered_frames,
                                                 0)
            while excess > 0:
                reason, count = reasons.most_common(1)[0]
                taken = min(excess, count - 1) or count
                reasons[reason] -= taken
                excess -= taken
            reasons = +reasons
        self.summary.rejected = reasons
        self.summary.rejected_by = sorted({node for node, _ in rejected})

    def note_recorder_start(self) -> None:
        """Note how many detections the (attached) recorder took before the first frame."""
        counts = self.player.recorder_status()[1]
        self.recorder_received_before = counts[0] if counts else 0

    def wait_for_detections(self) -> None:
        """Wait until every detection due has come and, attached, reached the recorder.

        Each leaf classification gives one detection, which the classifier may hold after
        it (for the fix after its stamp, or while a stamp far ahead may be a stray one):
        its timers run on the clock, so the clock goes on meanwhile. Attached, the
        recorder's /diagnostics must then show it took as many since the first frame, none
        held, before ~/save is called: a save before would miss the last ones. A shortfall
        is a warning naming the counts; a recorder whose status never comes here is not
        waited for.
        """
        player, recorder, summary = self.player, self.recorder, self.summary
        step_ns = int(CLOCK_PERIOD_S * 1e9 * (1.0 if self.options.fast else self.options.rate))
        deadline = time.monotonic() + DETECTIONS_CATCH_UP_S
        received, due = recorder.detections_due()
        while received < due and time.monotonic() < deadline:
            player.publish_clock(player.clock_ns + step_ns)
            time.sleep(CLOCK_PERIOD_S)
            received, due = recorder.detections_due()
        if received < due:
            summary.warnings.append(
                f'{due - received} of the {due} detection(s) of the frames classified as a '
                f'leaf did not come in {DETECTIONS_CATCH_UP_S:g} s after the last frame: the '
                'summary and the map lack them')
        if not self.options.attach:
            return
        seen, counts = player.recorder_status()
        if not seen:
            return
        before = self.recorder_received_before
        deadline = time.monotonic() + DETECTIONS_CATCH_UP_S
        while True:
            statuses, counts = player.recorder_status()
            # A status newer than the detections received here: its counts include them.
            if (statuses > seen and counts is not None
                    and counts[0] - before >= received and counts[1] == 0):
                return
            if time.monotonic() >= deadline:
                break
            player.publish_clock(player.clock_ns + step_ns)
            time.sleep(CLOCK_PERIOD_S)
        taken, held = counts if counts is not None else (before, 0)
        summary.warnings.append(
            f'the recorder {player.save_service.rsplit("/", 1)[0]} took '
            f'{taken - before} of the {received} detection(s) received here '
            f'({held} not yet written) in {DETECTIONS_CATCH_UP_S:g} s: its save may '
            'lack the last ones')

    def settle(self) -> None:
        """Let the last frames be classified and waiting detections go out; clock on.

        Ends when no output has come for SETTLE_QUIET_S (and at least that long after the
        last frame), or after ``frame_timeout_s``. Then sets the summary's wall time (first
        frame sent to the end of the playback or the last output, whichever is later: the
        waits for refused frames after the last classification count too) and, timed, the
        frames the pipeline dropped.
        """
        options, player = self.options, self.player
        start = time.monotonic()
        deadline = start + options.frame_timeout_s
        step_ns = int(CLOCK_PERIOD_S * 1e9 * (1.0 if options.fast else options.rate))
        while time.monotonic() < deadline:
            player.publish_clock(player.clock_ns + step_ns)
            quiet = time.monotonic() - max(self.recorder.last_output_s, start)
            if quiet >= SETTLE_QUIET_S and time.monotonic() - start >= SETTLE_QUIET_S:
                break
            time.sleep(CLOCK_PERIOD_S)
        self.check_alive()
        summary = self.summary
        gap = stamp_gap_warning(self.frame_stamps, self.fix_stamps)
        if gap:
            summary.warnings.append(gap)
        summary.wall_s = max(max(self.recorder.last_output_s, self.play_end) - self.wall_start,
                             1e-9)
        labelled = self.recorder.classified_count
        self._wait_for_diagnostics()
        self._count_rejected()
        rejected = sum(summary.rejected.values())
        if options.fast:
            # A frame whose rejection showed only after its timeout is a rejected one.
            summary.unanswered = min(summary.unanswered, max(
                summary.frames_in - self.answered_frames - rejected, 0))
        else:
            # Timed replay: frames the pipeline dropped (it keeps only the newest). Every
            # classification counts, a repeated stamp's too: a timed replay never re-sends.
            summary.unanswered = max(summary.frames_in - self.recorder.classifications
                                     - rejected, 0)
        selection = self.selection
        self.progress.update(summary.frames_in, labelled, labelled / max(summary.wall_s, 1e-9),
                             (min(player.clock_ns, selection.end_ns) - selection.start_ns) / 1e9,
                             selection.duration_s, force=True)
        self.progress.finish()
