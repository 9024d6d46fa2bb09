"""The shipped float model's calibration comes from its newest stage summary, by number."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import MODELS_DIR
import pytest

from plant_disease_ros.training.explain import float_calibration_beside


def test_stage_10_comes_after_stage_6(tmp_path: Path) -> None:
    shipped = MODELS_DIR / 'stages' / '6_field_blur.json'
    if not shipped.is_file():
        pytest.skip('shipped stage summaries not present')
    summary = json.loads(shipped.read_text(encoding='utf-8'))
    stages = tmp_path / 'stages'
    stages.mkdir()
    for number, bias in ((6, 0.25), (10, 0.5), (9, 0.75)):
        summary['score_scaling']['bias'] = bias
        (stages / f'{number}_run.json').write_text(json.dumps(summary), encoding='utf-8')
    model = tmp_path / 'plant_disease_float.keras'
    model.write_bytes(b'')
    calibration = float_calibration_beside(model)
    assert calibration is not None and calibration.source == stages / '10_run.json'
    assert calibration.scaling.bias == 0.5
