"""Train a new crop by transfer, export it, and classify through the node unchanged.

A user's path from photos to the robot: ``plant-disease train`` (default ``--init
shipped``: the shipped backbone, a new head) on a label set the shipped model does not
have (three PlantVillage tomato classes under new names, six photos each), ``export``
to int8, then the ``disease_classifier`` executable with ``model_path`` and
``labels_path`` pointing at the export. The model is far too small to be right; the test
checks that the node loads it and speaks its labels. About 40 s on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
import time

from conftest import DATA_DIR
import pytest

pytest.importorskip('tensorflow')
rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from helpers.images import load_rgb, make_image  # noqa: E402
from helpers.photo_folders import copy_photos  # noqa: E402
from helpers.processes import node_processes  # noqa: E402
from helpers.ros import Collector, Harness, latest_diagnostics  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

# New label -> the PlantVillage folder its photos come from.
NEW_CLASSES = {'leaf_blight_early': 'Tomato___Early_blight',
               'leaf_blight_late': 'Tomato___Late_blight',
               'leaf_clean': 'Tomato___healthy'}
PER_CLASS = 6
START_TIMEOUT_S = 60.0


@pytest.fixture(scope='module')
def new_crop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copy a few photos of each class into folders named after the new labels."""
    root = tmp_path_factory.mktemp('new_crop')
    for label, folder in NEW_CLASSES.items():
        source = DATA_DIR / folder
        if not source.is_dir():
            pytest.skip(f'leaf photos not found at {source}')
        copy_photos(source, root / label, PER_CLASS)
    return root


@pytest.fixture(scope='module')
def exported(new_crop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a tiny transfer run (one head, one fine-tune epoch) and export it to int8."""
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.training.transfer import shipped_float_model_path

    if not shipped_float_model_path().is_file():
        pytest.skip('shipped float model not present')
    run = tmp_path_factory.mktemp('run')
    assert main(['train', '--data', str(new_crop), '--out', str(run), '--input-size', '64',
                 '--head-epochs', '1', '--epochs', '1', '--batch-size', '8',
                 '--cache-dir', '', '--quiet']) == 0
    summary = json.loads((run / 'train_summary.json').read_text())
    assert summary['init'] == 'shipped'
    assert [stage['stage'] for stage in summary['stages']] == ['head', 'fine-tune']
    model = run / 'int8' / 'model_int8.tflite'
    assert main(['export', '--run', str(run), '--out', str(model), '--calibration-count', '9',
                 '--cache-dir', '']) == 0
    return model


def test_the_node_classifies_with_the_new_labels(exported: Path, new_crop: Path,
                                                 ros_context, tmp_path: Path) -> None:
    labels_path = exported.with_name('labels.txt')
    assert labels_path.read_text().split() == sorted(NEW_CLASSES)
    photo = load_rgb(sorted((new_crop / 'leaf_clean').iterdir())[0])
    harness = Harness(ros_context, name='transfer_node_tester')
    try:
        with node_processes(tmp_path) as processes:
            processes.start('disease_classifier', '-p', f'model_path:={exported}',
                            '-p', f'labels_path:={labels_path}', '-p', 'num_threads:=1',
                            '-p', 'score_threshold:=0.0', '-p', 'qos_reliability:=reliable',
                            '-p', 'diagnostics_period_s:=0.2')
            node = harness.node
            results = Collector(node, [('/classification', String), ('/label', String),
                                       ('/diagnostics', DiagnosticArray)])
            frames = node.create_publisher(Image, 'frames', 10)
            harness.wait_for_subscribers(frames, timeout_s=START_TIMEOUT_S)
            # Sent again until a result comes: the node's result writers may match this
            # node's readers after the first frame (volatile: a result then is lost).
            deadline = time.monotonic() + START_TIMEOUT_S
            published = 0
            while not results.count('/classification') and time.monotonic() < deadline:
                frames.publish(make_image(photo, 'rgb8', frame_id='new_crop'))
                published += 1
                harness.wait(lambda: results.count('/classification') > 0, 1.0)
            assert harness.wait(lambda: results.count('/classification') > 0
                                and results.count('/label') > 0, 20.0), processes.logs()
            # Every frame sent was classified (a result may have gone before the match).
            assert harness.wait(lambda: (latest_diagnostics(results, 'disease_classifier')
                                         or {}).get('processed') == str(published), 10.0)
            diagnostics = latest_diagnostics(results, 'disease_classifier')
    finally:
        harness.close()
    classification = results.json('/classification')[0]
    assert classification['frame_id'] == 'new_crop'
    assert classification['label'] in NEW_CLASSES
    assert results.messages['/label'][0].data in NEW_CLASSES
    # top_k holds min(3, labels) categories: here the whole new label set.
    assert sorted(entry['label'] for entry in classification['top_k']) == sorted(NEW_CLASSES)
    assert diagnostics['model'] == exported.name
