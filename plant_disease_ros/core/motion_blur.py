"""How far the camera's motion smears its frames, estimated from the frames alone.

A camera that moves while its shutter is open smears each point of the scene into a
streak of ``L`` pixels along the motion. The grey-level derivative along that axis then
holds, for every edge, a pair of steps ``L`` pixels apart with opposite signs, so the
autocorrelation of the derivative dips below zero at a lag of ``L`` (the classic blind
estimate of uniform motion blur). A sharp frame's derivative is anticorrelated only at a
lag of one to a few pixels, so its estimate stays small. Along the other axis the
derivative has no such pair: beyond those first pixels its autocorrelation stays near
zero, so the streak of a frame is taken along the axis whose autocorrelation dips deeper
there.

One frame's estimate can be fooled by a scene with a repeating pattern; the median of
several frames is steady. :class:`MotionBlurMonitor` keeps the estimates of every
``every``-th frame and says when their median passes a share of the frame side, which is
when the classifier starts to lose (``benchmarks/results/2026-12-06-motion-blur.md``:
at about 5 % of the classified image's side, lab top-1 falls from 98 % to 96 % and wrong
detections double). No ROS.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import statistics
import time

import cv2
import numpy as np

ESTIMATE_SIDE = 256  # px: frames are shrunk by a whole factor to at most this longer side
LINE_STEP = 8  # every 8th row (column) is used: the estimate averages over many lines
MAX_LAG = 48  # px of the shrunk frame: the longest streak found, 19 % of its longer side
MIN_LAG = 2  # lag 1 is the derivative's own anticorrelation in every frame
AXIS_MIN_LAG = 4  # the axis is chosen by the dip beyond a sharp frame's own (lags 1-3)
MIN_SAMPLES = 5  # estimates before the monitor may warn: one odd frame says little
MIN_LINES = 16  # the shrunk frame keeps at least this many pixels on its shorter side
MAX_AGE_S = 30.0  # estimates older than this are forgotten (frames stopped, or no leaves)
WINDOW = 15  # estimates the monitor's median is over
WARN_PERCENT = 5.0  # the median streak, % of the frame side, above which the monitor warns


@dataclass(frozen=True)
class MotionBlur:
    """The streak length along each axis of one frame (or the median of several), in px."""

    horizontal_px: float  # along the rows (camera moving sideways)
    vertical_px: float  # along the columns (camera moving up or down the image)
    width: int  # size of the frame the lengths are measured in
    height: int
    axis: str = 'horizontal'  # the streak's axis: the one whose dip was deeper

    def to_dict(self) -> dict[str, float | str]:
        """Return the streak for a JSON record: ``px``, ``axis`` and ``percent``."""
        return {'px': round(self.length_px, 1), 'axis': self.axis,
                'percent': round(self.percent, 2)}

    @property
    def length_px(self) -> float:
        """Return the streak along its axis, px."""
        return self.horizontal_px if self.axis == 'horizontal' else self.vertical_px

    @property
    def percent(self) -> float:
        """Return the streak as a percentage of the frame side along its axis."""
        side = self.width if self.axis == 'horizontal' else self.height
        return 100.0 * self.length_px / side


AXES = ('horizontal', 'vertical')


def smear(image: np.ndarray, length: int, axis: str = 'horizontal') -> np.ndarray:
    """Return ``image`` as a camera moving ``length`` px during the exposure records it.

    A uniform motion along ``axis`` (``horizontal``: along the rows) averages each pixel
    with its ``length - 1`` neighbours, a box of ``length`` px; the edges are mirrored. A
    ``length`` of 0 or 1 returns ``image`` itself. Used to smear evaluation frames and
    training images, and by the tests of :func:`estimate_motion_blur`.
    """
    if axis not in AXES:
        raise ValueError(f'axis must be one of {AXES}, not {axis!r}')
    if length < 0:
        raise ValueError(f'a streak length is at least 0 px, not {length}')
    if length <= 1:
        return image
    size = (int(length), 1) if axis == 'horizontal' else (1, int(length))
    return cv2.blur(image, size, borderType=cv2.BORDER_REFLECT)


def _dip(derivative: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Return the lag (≥ MIN_LAG) where the lines' derivative autocorrelation is lowest,
    and its lowest value from AXIS_MIN_LAG on, as a share of the zero-lag value."""
    lines = derivative - derivative.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(lines.shape[1] + max_lag + 1)))
    spectrum = np.fft.rfft(lines, size, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=0)
    autocorrelation = np.fft.irfft(power, size)[:max_lag + 1]
    lag = int(np.argmin(autocorrelation[MIN_LAG:])) + MIN_LAG
    beyond = autocorrelation[AXIS_MIN_LAG:]
    depth = float(beyond.min()) if beyond.size else 0.0
    return lag, depth / max(float(autocorrelation[0]), 1e-9)


def estimate_motion_blur(rgb: np.ndarray) -> MotionBlur:
    """Estimate the motion streak of an RGB uint8 frame (H×W×3) along each axis.

    Lengths are in pixels of ``rgb``; a sharp frame gives a few pixels (the shrink
    factor's resolution: ``ceil(longer side / 256)`` px). Raises ValueError for an image
    that is not H×W×3 uint8 or is smaller than 16 px on a side.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'expected an H×W×3 uint8 RGB image, got shape {rgb.shape} '
                         f'{rgb.dtype}')
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_LINES:
        raise ValueError(f'a frame of {width}×{height} px is too small to estimate blur '
                         f'(at least {MIN_LINES} px a side)')
    # A whole factor: OpenCV's area shrink is then a plain block mean, several times
    # faster than a fractional one. A long thin frame is shrunk less, so that its short
    # side keeps MIN_LINES pixels.
    factor = max(1, min(int(np.ceil(max(height, width) / ESTIMATE_SIDE)),
                        min(height, width) // MIN_LINES))
    small_w, small_h = width // factor, height // factor
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if factor > 1:
        grey = cv2.resize(grey[:small_h * factor, :small_w * factor], (small_w, small_h),
                          interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32)
    along_rows = np.diff(grey[::LINE_STEP], axis=1)
    along_columns = np.diff(grey[:, ::LINE_STEP], axis=0).T
    horizontal, horizontal_depth = _dip(along_rows, min(MAX_LAG, small_w - 2))
    vertical, vertical_depth = _dip(along_columns, min(MAX_LAG, small_h - 2))
    return MotionBlur(horizontal_px=float(horizontal * factor),
                      vertical_px=float(vertical * factor), width=width, height=height,
                      axis='horizontal' if horizontal_depth <= vertical_depth else 'vertical')


@dataclass(frozen=True)
class MotionBlurStatus:
    """What the monitor says now: the recent median, how many estimates, any warning."""

    median: MotionBlur | None  # None without a recent estimate
    samples: int
    warning: str  # '' when the frames are sharp enough (or too few estimates to tell)


class MotionBlurMonitor:
    """Estimate the blur of every ``every``-th frame; warn when the recent median is long.

    ``every`` 0 turns the monitor off. The median is over the last ``window`` estimates
    made within ``max_age_s`` (by ``clock``, in seconds): when frames stop, or no leaf
    comes into view, the old estimates and their warning go. ``warn_percent`` is the
    streak, in percent of the frame side along it, above which :attr:`warning` says so,
    once there are five estimates (or ``window``, if fewer).
    """

    def __init__(self, every: int = 5, window: int = WINDOW,
                 warn_percent: float = WARN_PERCENT,
                 max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Create an empty monitor."""
        if every < 0:
            raise ValueError(f'every must be 0 (off) or more, got {every}')
        if window < 1:
            raise ValueError(f'window must be 1 or more, got {window}')
        if not warn_percent > 0.0:
            raise ValueError(f'warn_percent must be above 0, got {warn_percent}')
        self.every = every
        self.warn_percent = warn_percent
        self.max_age_s = max_age_s
        self._clock = clock
        self._estimates: deque[MotionBlur] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._frames = 0

    def offer(self, rgb: np.ndarray) -> MotionBlur | None:
        """Count a frame; estimate its blur (and return it) when it is the ``every``-th.

        A frame under MIN_LINES px a side cannot be measured: its turn passes, with no
        estimate.
        """
        if self.every == 0:
            return None
        self._frames += 1
        if self._frames % self.every != 0 or min(rgb.shape[:2]) < MIN_LINES:
            return None
        estimate = estimate_motion_blur(rgb)
        self.add(estimate)
        return estimate

    def add(self, estimate: MotionBlur) -> None:
        """Keep an estimate made now (by :meth:`offer`, or elsewhere: a benchmark)."""
        self._estimates.append(estimate)
        self._times.append(self._clock())

    def _forget_old(self) -> None:
        """Drop the estimates made more than ``max_age_s`` ago."""
        oldest = self._clock() - self.max_age_s
        while self._times and self._times[0] < oldest:
            self._times.popleft()
            self._estimates.popleft()

    def reset(self) -> None:
        """Forget the estimates (the camera or its settings changed)."""
        self._estimates.clear()
        self._times.clear()
        self._frames = 0

    @property
    def samples(self) -> int:
        """Return how many estimates the median is over."""
        self._forget_old()
        return len(self._estimates)

    def median(self) -> MotionBlur | None:
        """Return the median streak of the recent estimates, or None without any."""
        self._forget_old()
        return self._median()

    def _median(self) -> MotionBlur | None:
        """Return the median of the estimates kept (old ones already dropped)."""
        if not self._estimates:
            return None
        # Medians of each axis's share of its side, in pixels of the newest frame: a
        # change of frame size (a new crop) does not mix pixels of two sizes. The axis is
        # the one most frames' streaks lie along (the newest frame's on a tie).
        last = self._estimates[-1]
        across = statistics.median(e.horizontal_px / e.width for e in self._estimates)
        down = statistics.median(e.vertical_px / e.height for e in self._estimates)
        along_rows = sum(e.axis == 'horizontal' for e in self._estimates)
        along_columns = len(self._estimates) - along_rows
        axis = (last.axis if along_rows == along_columns
                else 'horizontal' if along_rows > along_columns else 'vertical')
        return MotionBlur(horizontal_px=across * last.width, vertical_px=down * last.height,
                          width=last.width, height=last.height, axis=axis)

    def status(self) -> MotionBlurStatus:
        """Return the median, the number of estimates and the warning, computed once."""
        self._forget_old()
        median, samples = self._median(), len(self._estimates)
        if (median is None or samples < min(MIN_SAMPLES, self._estimates.maxlen or 1)
                or median.percent <= self.warn_percent):
            return MotionBlurStatus(median, samples, '')
        return MotionBlurStatus(median, samples, (
            f'motion blur: frames smeared about {median.length_px:.0f} px {median.axis}ly '
            f'({median.percent:.1f} % of the frame, median of the last {samples}); '
            'shorten the exposure or slow down'))

    @property
    def warning(self) -> str:
        """Return why the recent frames are too smeared, or '' when they are not."""
        return self.status().warning


def highest_window_median(percents: Sequence[float], window: int = WINDOW,
                          min_samples: int = MIN_SAMPLES) -> float | None:
    """Return the highest median of up to ``window`` consecutive streaks (percent), taken
    as they come from ``min_samples`` on; None with fewer than ``min_samples``.

    What a replayed bag's estimates say about the whole run. It approximates the
    classifier's warning: the node takes the median of each axis and reads it along the
    axis most frames chose, and forgets estimates after ``MAX_AGE_S``; this takes the
    median of each frame's own percentage. On a steady smear along one axis both agree.
    """
    need = min(min_samples, window)
    if len(percents) < need:
        return None
    return max(statistics.median(percents[max(0, end - window):end])
               for end in range(need, len(percents) + 1))
