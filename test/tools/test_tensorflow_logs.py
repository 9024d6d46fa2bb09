"""``plant-disease`` keeps TensorFlow's routine warnings out, and every error in."""

from __future__ import annotations

import logging
import os
from pathlib import Path
import subprocess
import sys
import warnings

from conftest import TEST_IMAGES_DIR
from helpers.shipped_model import require_shipped_model
import pytest

from plant_disease_ros.cli.tensorflow_logs import quiet_tensorflow


def test_a_tensorflow_command_ends_with_its_error(tmp_path: Path) -> None:
    """`explain --keras` of a broken file imports TensorFlow (Keras says the file is bad):
    the command's one-line error is the last line, whatever TensorFlow printed before."""
    pytest.importorskip('tensorflow')
    require_shipped_model()
    broken = tmp_path / 'broken.keras'
    broken.write_text('not a Keras model\n')
    env = {name: value for name, value in os.environ.items()
           if name not in ('TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLE_ONEDNN_OPTS')}
    result = subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'explain',
         str(TEST_IMAGES_DIR / 'leaves' / 'Apple___healthy.jpg'), '--keras', str(broken),
         '--out', str(tmp_path / 'out'), '--grid', '2'],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('plant-disease explain: error: ') and '.keras' in last


def test_python_warnings_of_tensorflow_are_filtered_not_others() -> None:
    quiet_tensorflow()
    logger = logging.getLogger('tensorflow')
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        logger.warning('5 out of the last 5 calls to <f> triggered tf.function retracing.')
        logger.warning('a real warning')
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == ['a real warning']
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings('default')
        quiet_tensorflow()
        warnings.warn('Statistics for quantized inputs were expected, but not specified; '
                      'continuing anyway.', UserWarning, stacklevel=1)
        warnings.warn('another warning', UserWarning, stacklevel=1)
    assert [str(item.message) for item in caught] == ['another warning']
