"""Photos shown as camera frames and put through the nodes' crop, gate and resize."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from plant_disease_ros.core.motion_blur import smear
from plant_disease_ros.core.preprocessing import center_crop, resize_to_input
from plant_disease_ros.core.vegetation import check_frame
from plant_disease_ros.training.camera_frames import (
    CameraFraming,
    frames_as_node_inputs,
    node_input,
    node_inputs,
    parse_frame_size,
    photo_as_frame,
    photo_frames,
)

LEAVES = sorted((Path(__file__).resolve().parents[1] / 'data' / 'leaves').glob('*.jpg'))


def leaf(number: int = 0) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(LEAVES[number])), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize(('text', 'size'), [
    ('640x480', (640, 480)), (' 1920 X 1080 ', (1920, 1080)), ('64×48', (64, 48))])
def test_parse_frame_size(text: str, size: tuple[int, int]) -> None:
    assert parse_frame_size(text) == size


@pytest.mark.parametrize('text', ['640', '640x', 'x480', '0x480', '640x0', '-640x480', 'axb'])
def test_parse_frame_size_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
        parse_frame_size(text)


@pytest.mark.parametrize(('options', 'message'), [
    ({'width': 0}, 'positive'), ({'framing': 'crop'}, 'framing'),
    ({'center_crop_fraction': 0.0}, 'fraction'), ({'center_crop_fraction': 1.5}, 'fraction'),
    ({'motion_blur_px': -1}, 'motion blur'), ({'motion_blur_px': 641}, 'motion blur')])
def test_framing_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CameraFraming(**options)


def test_fit_centres_a_square_photo_where_the_node_crops() -> None:
    photo = leaf()
    frame = photo_as_frame(photo, 640, 480, 'fit')
    assert frame.shape == (480, 640, 3)
    assert not frame[:, :80].any() and not frame[:, 560:].any()  # black sides
    enlarged = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(center_crop(frame, 1.0), enlarged)


def test_fit_keeps_a_wide_photo_whole() -> None:
    photo = np.full((100, 400, 3), 200, np.uint8)
    frame = photo_as_frame(photo, 640, 480, 'fit')
    # 400x100 fits as 640x160, centred: black bands above and below.
    assert frame[160:320].min() == 200
    assert not frame[:160].any() and not frame[320:].any()


def test_stretch_fills_the_frame() -> None:
    photo = leaf(1)
    frame = photo_as_frame(photo, 640, 480, 'stretch')
    np.testing.assert_array_equal(
        frame, cv2.resize(photo, (640, 480), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(ValueError, match='framing'):
        photo_as_frame(photo, 640, 480, 'zoom')


def test_node_input_is_the_nodes_default_path() -> None:
    photo = leaf(2)
    camera = CameraFraming(640, 480, 'stretch')
    image, passed = node_input(photo, 144, camera)
    frame = photo_as_frame(photo, 640, 480, 'stretch')
    crop = center_crop(frame, 1.0)
    np.testing.assert_array_equal(image, resize_to_input(crop, 144, 144))
    assert passed is check_frame(crop).passed is True


def test_the_gate_stops_a_black_frame_unless_it_is_off() -> None:
    black = np.zeros((224, 224, 3), np.uint8)
    assert node_input(black, 48, CameraFraming())[1] is False
    assert node_input(black, 48, CameraFraming(vegetation_gate=False))[1] is True
    assert node_input(leaf(3), 48, CameraFraming())[1] is True


def test_node_inputs_lists_unreadable_files_and_keeps_order(tmp_path: Path) -> None:
    for number in range(2):
        cv2.imwrite(str(tmp_path / f'{number}.png'), cv2.imread(str(LEAVES[number])))
    (tmp_path / 'broken.jpg').write_bytes(b'\xff\xd8 not a jpeg')
    cv2.imwrite(str(tmp_path / 'dark.png'), np.zeros((50, 60, 3), np.uint8))
    done = []
    images, labels, unreadable, passed = node_inputs(
        tmp_path, [('0.png', 2), ('broken.jpg', 0), ('1.png', 1), ('dark.png', 3)], 48,
        CameraFraming(), progress=lambda number, total: done.append((number, total)))
    assert unreadable == ['broken.jpg']
    assert images.shape == (3, 48, 48, 3) and labels.tolist() == [2, 1, 3]
    assert passed.tolist() == [True, True, False]
    np.testing.assert_array_equal(images[0], node_input(leaf(0), 48, CameraFraming())[0])
    assert done[-1] == (4, 4)


def test_frames_as_node_inputs() -> None:
    frames = np.stack([np.zeros((48, 48, 3), np.uint8), cv2.resize(leaf(4), (48, 48))])
    images, passed = frames_as_node_inputs(frames, 32, CameraFraming())
    assert images.shape == (2, 32, 32, 3) and passed.tolist() == [False, True]
    empty, none = frames_as_node_inputs(frames[:0], 32, CameraFraming())
    assert empty.shape == (0, 32, 32, 3) and none.shape == (0,)


def test_a_moving_camera_blurs_its_frames_and_says_so() -> None:
    photo = leaf()
    sharp, moving = CameraFraming(), CameraFraming(motion_blur_px=17)
    assert 'motion blur' not in sharp.describe()
    assert moving.describe().endswith(', motion blur 17 px')
    np.testing.assert_array_equal(sharp.frame(photo), photo_as_frame(photo, 640, 480))
    np.testing.assert_array_equal(moving.frame(photo), smear(sharp.frame(photo), 17))
    image, passed = node_input(photo, 64, moving)
    expected = resize_to_input(center_crop(moving.frame(photo), 1.0), 64, 64)
    np.testing.assert_array_equal(image, expected)
    assert passed


def test_frames_sent_to_the_nodes_are_blurred_too() -> None:
    """The through-the-nodes path (photo_frames) gives the same blurred frame."""
    moving = CameraFraming(motion_blur_px=25)
    root, name = LEAVES[1].parent, LEAVES[1].name
    (sent,) = list(photo_frames(root, [name], moving))
    np.testing.assert_array_equal(sent, moving.frame(leaf(1)))
    assert not np.array_equal(sent, CameraFraming().frame(leaf(1)))
