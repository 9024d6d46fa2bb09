"""The blind motion blur estimate and its monitor, on seeded textures and real leaf photos."""

from __future__ import annotations

from pathlib import Path
import statistics

import cv2
import numpy as np
import pytest

from plant_disease_ros.core.motion_blur import (
    estimate_motion_blur,
    highest_window_median,
    MotionBlur,
    MotionBlurMonitor,
    smear,
)

LEAVES_DIR = Path(__file__).resolve().parents[1] / 'data' / 'leaves'


def texture(height: int = 480, width: int = 480, seed: int = 0) -> np.ndarray:
    """Return a seeded, finely textured RGB frame (noise softened to about 2 px grains)."""
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.normal(128, 60, (height, width)).astype(np.float32),
                            (0, 0), 1.5)
    rgb = np.stack([grey * 0.5, grey, grey * 0.4], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def leaf_frames(side: int = 480) -> list[np.ndarray]:
    """Return the test leaf photos enlarged to ``side`` px, as a 640×480 camera's crop."""
    frames = []
    for path in sorted(LEAVES_DIR.glob('*.jpg')):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (side, side),
                                 interpolation=cv2.INTER_LINEAR))
    assert len(frames) >= 10
    return frames


# A 480 px frame is shrunk by a whole factor, ceil(480 / 256) = 2: one lag is 2 px of it.
STEP_PX = 2


@pytest.mark.parametrize('length', [16, 24, 36, 60])
def test_a_horizontal_streak_is_measured_along_the_rows(length: int) -> None:
    estimate = estimate_motion_blur(smear(texture(), length))
    assert abs(estimate.horizontal_px - length) <= STEP_PX, estimate
    assert estimate.vertical_px <= 3 * STEP_PX, estimate
    assert estimate.axis == 'horizontal'
    assert estimate.percent == pytest.approx(100 * estimate.horizontal_px / 480)


def test_a_vertical_streak_is_measured_along_the_columns() -> None:
    estimate = estimate_motion_blur(smear(texture(480, 640), 30, 'vertical'))
    assert abs(estimate.vertical_px - 30) <= 3, estimate  # 640 px: a factor of 3
    assert estimate.horizontal_px <= 3 * 3, estimate
    assert estimate.axis == 'vertical'
    assert estimate.percent == pytest.approx(100 * estimate.vertical_px / 480)


def test_a_sharp_frame_gives_short_streaks() -> None:
    estimate = estimate_motion_blur(texture(seed=3))
    assert estimate.horizontal_px <= 3 * STEP_PX and estimate.vertical_px <= 3 * STEP_PX
    assert estimate.percent < 1.5


def test_lengths_are_in_pixels_of_the_frame_whatever_its_size() -> None:
    """A 1280×960 frame is shrunk 5× for the estimate; the length is still in its pixels."""
    estimate = estimate_motion_blur(smear(texture(960, 1280), 80))
    assert abs(estimate.horizontal_px - 80) <= 1280 / 256, estimate
    assert (estimate.width, estimate.height) == (1280, 960)


def test_a_small_frame_is_measured_unshrunk() -> None:
    estimate = estimate_motion_blur(smear(texture(120, 160), 12))
    assert estimate.horizontal_px == pytest.approx(12, abs=1.0)


def test_real_leaf_photos_median_follows_the_streak() -> None:
    """Ten leaf photos: sharp, their median streak is short; smeared, it is the smear."""
    frames = leaf_frames()
    sharp = statistics.median(estimate_motion_blur(rgb).percent for rgb in frames)
    assert sharp < 2.0
    for length in (24, 33, 48):
        lengths = [estimate_motion_blur(smear(rgb, length)).horizontal_px for rgb in frames]
        assert abs(statistics.median(lengths) - length) <= 2 * STEP_PX, (length, lengths)


@pytest.mark.parametrize('shape', [(480, 640), (480, 640, 4), (10, 200, 3), (200, 15, 3)])
def test_frames_it_cannot_measure_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match='H×W×3|too small'):
        estimate_motion_blur(np.zeros(shape, np.uint8))


def test_a_float_frame_is_refused() -> None:
    with pytest.raises(ValueError, match='uint8'):
        estimate_motion_blur(texture().astype(np.float64))


@pytest.mark.parametrize('width', [1100, 2100, 4200])
def test_a_long_thin_frame_keeps_enough_lines(width: int) -> None:
    """16 px high and thousands wide: shrunk only as far as 16 lines allow, then measured."""
    strip = smear(texture(16, width), 40)
    estimate = estimate_motion_blur(strip)
    assert estimate.horizontal_px == pytest.approx(40, abs=1.0)
    assert (estimate.width, estimate.height) == (width, 16)


def test_the_monitor_estimates_every_nth_frame_only() -> None:
    monitor = MotionBlurMonitor(every=3, window=4)
    frame = smear(texture(), 36)
    results = [monitor.offer(frame) for _ in range(9)]
    assert [result is not None for result in results] == [False, False, True] * 3
    assert monitor.samples == 3


def test_the_monitor_warns_on_a_smeared_stream_and_not_on_a_sharp_one() -> None:
    monitor = MotionBlurMonitor(every=1, window=5, warn_percent=5.0)
    for seed in range(5):
        monitor.offer(texture(seed=seed))
    assert monitor.warning == ''
    assert monitor.median().percent < 1.5
    for seed in range(3):  # three of five smeared by 36 px (7.5 %): the median follows
        monitor.offer(smear(texture(seed=seed), 36))
    median = monitor.median()
    assert median.percent == pytest.approx(7.5, abs=100 * STEP_PX / 480)
    assert 'motion blur' in monitor.warning and 'horizontally' in monitor.warning
    assert 'median of the last 5' in monitor.warning
    monitor.warn_percent = 9.0
    assert monitor.warning == ''


def test_one_odd_frame_does_not_move_the_median() -> None:
    monitor = MotionBlurMonitor(every=1, window=5)
    for seed in range(4):
        monitor.offer(texture(seed=seed))
    monitor.offer(smear(texture(seed=9), 60))
    assert monitor.median().percent < 1.5 and monitor.warning == ''


def test_the_median_mixes_frame_sizes_by_their_share_of_the_side() -> None:
    monitor = MotionBlurMonitor(every=1, window=3)
    for estimate in (MotionBlur(48.0, 2.0, 480, 480), MotionBlur(64.0, 2.0, 640, 480),
                     MotionBlur(32.0, 2.0, 320, 240)):
        monitor.add(estimate)
    median = monitor.median()
    assert (median.width, median.height) == (320, 240)
    assert median.horizontal_px == pytest.approx(32.0)
    assert median.percent == pytest.approx(10.0)


def test_old_estimates_are_forgotten() -> None:
    """Frames stop (or no leaf comes into view): the median and its warning go."""
    now = [100.0]
    monitor = MotionBlurMonitor(every=1, window=15, max_age_s=30.0, clock=lambda: now[0])
    for seed in range(5):
        monitor.offer(smear(texture(seed=seed), 36))
    assert monitor.warning and monitor.samples == 5
    now[0] += 20.0
    monitor.offer(smear(texture(seed=5), 36))
    now[0] += 15.0  # the first five are 35 s old, the sixth 15 s
    assert monitor.samples == 1 and monitor.warning == ''
    now[0] += 16.0
    assert monitor.samples == 0 and monitor.median() is None


def test_off_and_reset() -> None:
    monitor = MotionBlurMonitor(every=0)
    assert monitor.offer(texture()) is None and monitor.median() is None
    monitor.every = 1
    monitor.offer(smear(texture(), 36))
    assert monitor.samples == 1
    monitor.reset()
    assert monitor.samples == 0 and monitor.median() is None and monitor.warning == ''


@pytest.mark.parametrize('every, window, warn', [(-1, 15, 5.0), (1, 0, 5.0), (1, 15, 0.0)])
def test_bad_monitor_settings_are_refused(every: int, window: int, warn: float) -> None:
    with pytest.raises(ValueError):
        MotionBlurMonitor(every=every, window=window, warn_percent=warn)


def test_an_estimate_as_a_json_record() -> None:
    assert MotionBlur(30.04, 4.0, 480, 480).to_dict() == {
        'px': 30.0, 'axis': 'horizontal', 'percent': 6.26}
    assert MotionBlur(2.0, 36.0, 640, 480, axis='vertical').to_dict() == {
        'px': 36.0, 'axis': 'vertical', 'percent': 7.5}


def test_highest_window_median_is_what_the_monitor_would_have_seen() -> None:
    assert highest_window_median([9.0] * 4) is None  # under the 5 estimates it needs
    assert highest_window_median([9.0] * 5) == 9.0
    run = [1.0] * 20 + [7.0] * 8 + [1.0] * 10
    assert highest_window_median(run) == 7.0  # 8 of 15 smeared at the stretch's end
    assert highest_window_median([1.0] * 20 + [7.0] * 7 + [1.0] * 10) == 1.0
    assert highest_window_median(run, window=3, min_samples=2) == 7.0


def test_a_frame_too_small_to_measure_passes_its_turn() -> None:
    """A 10 px strip on its turn: no estimate and no error; the next turn is counted as usual."""
    monitor = MotionBlurMonitor(every=2)
    assert monitor.offer(texture()) is None
    assert monitor.offer(np.zeros((10, 200, 3), np.uint8)) is None  # its turn, unmeasurable
    assert monitor.samples == 0
    assert monitor.offer(texture()) is None and monitor.offer(texture()) is not None
    status = monitor.status()
    assert (status.samples, status.warning) == (1, '') and status.median is not None


def test_smear_averages_a_box_along_its_axis_only() -> None:
    """A single bright column spreads over 5 px along the rows, not along the columns."""
    frame = np.zeros((9, 21), np.uint8)
    frame[:, 10] = 250
    along = smear(frame, 5, 'horizontal')
    np.testing.assert_array_equal(along[4, 8:13], [50] * 5)
    assert along[4, 7] == 0 and along[4, 13] == 0
    np.testing.assert_array_equal(smear(frame, 5, 'vertical'), frame)
    assert smear(frame, 1) is frame and smear(frame, 0) is frame
    step = np.zeros((4, 60, 3), np.uint8)
    step[:, 30:] = 200  # a vertical edge: a 9 px box makes it a ramp of 8 mixed columns
    ramp = smear(step, 9)[2, 20:40, 0].astype(int)
    assert ramp[0] == 0 and ramp[-1] == 200 and (np.diff(ramp) >= 0).all()
    assert np.count_nonzero((ramp > 0) & (ramp < 200)) == 8


def test_smear_refuses_an_unknown_axis_or_a_negative_length() -> None:
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='axis'):
        smear(frame, 5, 'diagonal')
    with pytest.raises(ValueError, match='at least 0'):
        smear(frame, -3)
