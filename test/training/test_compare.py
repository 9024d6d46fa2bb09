"""Paired comparison of two evaluations of the same frames (``plant-disease compare``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.compare import (
    compare_evaluations,
    ComparisonError,
    format_comparison,
    read_evaluation,
)
from plant_disease_ros.training.field_evaluate import DomainFrames, write_domain_outputs
from plant_disease_ros.training.metrics import mcnemar_exact_p, wilson_interval

LABELS = ['A', 'B', 'no_leaf']


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    # Never empty at the ends, never outside [0, 1].
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(1576, 1606)
    assert low < 1576 / 1606 < high and high - low < 0.015
    with pytest.raises(ValueError, match='successes <= trials'):
        wilson_interval(11, 10)


def test_mcnemar_exact_p_known_values() -> None:
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)  # 0.0625: five of five is luck
    assert mcnemar_exact_p(0, 5) == mcnemar_exact_p(5, 0)
    assert mcnemar_exact_p(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact_p(3, 3) == 1.0
    assert mcnemar_exact_p(520, 500) > 0.5  # 1,020 disagreements, nearly even: no evidence
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 2)


def evaluation_folder(folder: Path, right: list[bool], negative_accepted: list[bool],
                      **settings) -> Path:
    """Write a real evaluation folder: ``right[i]``: leaf frame i scored right (else wrong).

    Every leaf is accepted (score 0.9); a non-leaf frame is accepted as A (a wrong map
    point) where ``negative_accepted[i]``, else labelled no_leaf.
    """
    folder.mkdir(parents=True)
    truth = [index % 2 for index in range(len(right))]
    leaf_scores = np.array([[0.9, 0.05, 0.05] if (label == 0) == ok else [0.05, 0.9, 0.05]
                            for label, ok in zip(truth, right, strict=True)])
    leaves = DomainFrames('field', np.zeros((len(right), 4, 4, 3), np.uint8),
                          np.array(truth), False, [LABELS[i] for i in truth],
                          frame_names=[f'{LABELS[i]}/{n}.jpg' for n, i in enumerate(truth)])
    negatives = DomainFrames('negatives', np.zeros((len(negative_accepted), 4, 4, 3), np.uint8),
                             np.full(len(negative_accepted), 2), True,
                             ['soil'] * len(negative_accepted),
                             frame_names=[f'soil/{n}.jpg' for n in range(len(negative_accepted))])
    negative_scores = np.array([[0.9, 0.05, 0.05] if accepted else [0.05, 0.05, 0.9]
                                for accepted in negative_accepted])
    reports = write_domain_outputs([leaves, negatives],
                                   {'field': leaf_scores, 'negatives': negative_scores},
                                   LABELS, folder, 0.5)
    report = {'model': 'm.tflite', 'split': 'test', 'seen_as': 'photos',
              'score_threshold': 0.5, 'crops': 'all', 'poses': 1, 'domains': reports}
    report.update(settings)
    (folder / 'evaluation.json').write_text(json.dumps(report))
    return folder


def test_ten_fixed_and_none_broken_is_better(tmp_path: Path) -> None:
    base = evaluation_folder(tmp_path / 'base', [False] * 10 + [True] * 30, [True, False])
    new = evaluation_folder(tmp_path / 'new', [True] * 40, [False, False], poses=4)
    result = compare_evaluations(read_evaluation(base), read_evaluation(new))
    field = result['domains']['field']
    assert (field['frames'], field['fixed'], field['broken']) == (40, 10, 0)
    assert field['top1_p'] == pytest.approx(2 / 1024)
    assert field['top1_verdict'] == 'better'
    assert field['base_top1']['share'] == pytest.approx(0.75)
    assert field['new_top1']['interval'] == pytest.approx(list(wilson_interval(40, 40)))
    # The ten wrong leaves were accepted: ten wrong map points removed.
    assert (field['wrong_removed'], field['wrong_added']) == (10, 0)
    assert field['wrong_verdict'] == 'better'
    negatives = result['domains']['negatives']
    assert negatives['negative'] and not field['negative']
    assert (negatives['fixed'], negatives['broken']) == (1, 0)
    assert negatives['top1_verdict'] == 'no clear difference'  # one frame proves nothing
    assert negatives['base_rejected']['share'] == pytest.approx(0.5)
    assert result['differing_settings'] == {'poses': [1, 4]}


def test_node_parameters_of_through_nodes_evaluations_are_a_differing_setting(
        tmp_path: Path) -> None:
    """-p test_time_poses:=4 changes what the nodes publish, not the report's own poses."""
    def nodes(**parameters: str) -> dict:
        return {'params_file': 'config/field.yaml (the launch default)',
                'parameters': {'score_threshold': '0.5', **parameters},
                'frames_per_s': 70.0 + len(parameters), 'work_dir': f'/tmp/{len(parameters)}'}

    base = evaluation_folder(tmp_path / 'base', [True] * 4, [False], through_nodes=nodes())
    same = evaluation_folder(tmp_path / 'same', [True] * 4, [False], through_nodes=nodes())
    posed = evaluation_folder(tmp_path / 'posed', [True] * 4, [False],
                              through_nodes=nodes(test_time_poses='4'))
    # Timings and folders are not settings.
    assert compare_evaluations(read_evaluation(base),
                               read_evaluation(same))['differing_settings'] == {}
    differing = compare_evaluations(read_evaluation(base),
                                    read_evaluation(posed))['differing_settings']
    assert differing['through_nodes'][1]['parameters']['test_time_poses'] == '4'


def test_a_swap_of_equal_size_is_no_clear_difference(tmp_path: Path) -> None:
    base = evaluation_folder(tmp_path / 'base', [True] * 6 + [False] * 6, [False])
    new = evaluation_folder(tmp_path / 'new', [False] * 6 + [True] * 6, [False])
    field = compare_evaluations(read_evaluation(base), read_evaluation(new))['domains']['field']
    assert (field['fixed'], field['broken'], field['top1_p']) == (6, 6, 1.0)
    assert field['top1_verdict'] == 'no clear difference'
    assert field['base_top1']['share'] == field['new_top1']['share'] == 0.5


def test_evaluations_of_other_frames_are_refused(tmp_path: Path) -> None:
    base = evaluation_folder(tmp_path / 'base', [True] * 4, [False])
    more = evaluation_folder(tmp_path / 'more', [True] * 6, [False])
    with pytest.raises(ComparisonError, match=r'field: the evaluations scored different '
                                              r'frames \(0 only in the base, 2 only in'):
        compare_evaluations(read_evaluation(base), read_evaluation(more))
    relabelled = evaluation_folder(tmp_path / 'relabelled', [True] * 4, [False])
    text = (relabelled / 'predictions.csv').read_text()
    (relabelled / 'predictions.csv').write_text(text.replace('field,A/0.jpg,A,',
                                                             'field,A/0.jpg,B,', 1))
    with pytest.raises(ComparisonError, match='1 frames have a different truth'):
        compare_evaluations(read_evaluation(base), read_evaluation(relabelled))


def test_folders_that_are_not_comparable_say_why(tmp_path: Path) -> None:
    with pytest.raises(ComparisonError, match='no evaluation.json'):
        read_evaluation(tmp_path)
    old = evaluation_folder(tmp_path / 'old', [True] * 2, [False])
    (old / 'predictions.csv').unlink()
    with pytest.raises(ComparisonError, match='no predictions.csv .* evaluate again'):
        read_evaluation(old)
    broken = evaluation_folder(tmp_path / 'broken', [True] * 2, [False])
    text = (broken / 'predictions.csv').read_text()
    (broken / 'predictions.csv').write_text(text.replace(',right', ',maybe', 1))
    with pytest.raises(ComparisonError, match='line 2: .* got .*maybe'):
        read_evaluation(broken)


def test_compare_command_writes_table_markdown_and_picture(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture
                                                           ) -> None:
    from plant_disease_ros.cli.main import main

    base = evaluation_folder(tmp_path / 'base', [False] * 10 + [True] * 30, [True])
    new = evaluation_folder(tmp_path / 'new', [True] * 40, [False])
    out = tmp_path / 'cmp'
    assert main(['compare', str(base), str(new), '--names', 'shipped', 'candidate',
                 '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    field_line = next(line for line in printed.splitlines() if line.startswith('field '))
    assert field_line.split()[-1] == 'better' and '+25.00' in field_line
    markdown = (out / 'comparison.md').read_text()
    assert '- base: shipped' in markdown
    assert '| field | 40 | 75.00 (59.8–85.8) % | 100.00 (91.2–100.0) % | +25.00 | 10 | 0 |' \
        in markdown
    assert json.loads((out / 'comparison.json').read_text())['new_name'] == 'candidate'
    assert (out / 'comparison.png').read_bytes()[:4] == b'\x89PNG'
    assert main(['compare', str(base), str(tmp_path / 'missing'), '--out', str(out)]) == 2
    assert 'no evaluation.json' in capsys.readouterr().err


def test_two_evaluations_of_a_photo_folder_are_compared(tmp_path: Path) -> None:
    """A user's own photo folder has no domains in evaluation.json: still comparable."""
    import shutil

    from conftest import MODELS_DIR, TEST_IMAGES_DIR

    from plant_disease_ros.training.evaluate import evaluate, EvaluationOptions

    data = tmp_path / 'photos'
    for name in ('Apple___healthy', 'Tomato___Late_blight', 'Potato___Early_blight'):
        (data / name).mkdir(parents=True)
        shutil.copy(TEST_IMAGES_DIR / 'leaves' / f'{name}.jpg', data / name / 'one.jpg')
    folders = []
    for poses in (1, 2):
        folders.append(tmp_path / f'eval_{poses}')
        evaluate(EvaluationOptions(
            model_path=str(MODELS_DIR / 'plant_disease_int8.tflite'),
            labels_path=str(MODELS_DIR / 'labels.txt'), out_dir=str(folders[-1]),
            data_dir=str(data), poses=poses))
        assert 'domains' not in json.loads((folders[-1] / 'evaluation.json').read_text())
    result = compare_evaluations(read_evaluation(folders[0]), read_evaluation(folders[1]))
    assert list(result['domains']) == ['photos']
    assert result['domains']['photos']['frames'] == 3
    assert result['differing_settings'].get('poses') == [1, 2]
    # choose needs the per-domain figures of a field evaluation and says so.
    from plant_disease_ros.training.compare import read_report

    with pytest.raises(ComparisonError, match='not a field evaluation .*--field-split'):
        read_report(folders[0], need_domains=True)


def test_one_model_named_by_two_paths_is_no_differing_setting(tmp_path: Path) -> None:
    """The sha256 decides: an absolute and a relative path of one file are one model."""
    digest, other = 'a' * 64, 'b' * 64
    base = evaluation_folder(tmp_path / 'base', [True] * 4, [False],
                             model='/abs/run1/model_int8.tflite', model_sha256=digest)
    same = evaluation_folder(tmp_path / 'same', [True] * 4, [False],
                             model='run1/model_int8.tflite', model_sha256=digest)
    again = evaluation_folder(tmp_path / 'again', [True] * 4, [False],
                              model='/abs/run1/model_int8.tflite', model_sha256=other)
    result = compare_evaluations(read_evaluation(base), read_evaluation(same))
    assert result['differing_settings'] == {}
    assert 'setting model' not in format_comparison(result)
    # Exported again at the same path: two models, told apart by their sha256.
    differing = compare_evaluations(read_evaluation(base),
                                    read_evaluation(again))['differing_settings']
    assert differing == {'model': ['/abs/run1/model_int8.tflite (sha256 aaaaaaaaaaaa)',
                                   '/abs/run1/model_int8.tflite (sha256 bbbbbbbbbbbb)']}


def test_a_vegetation_gate_difference_is_a_differing_setting(tmp_path: Path) -> None:
    """Two evaluations that differed only in the gate named no differing setting."""
    gated = evaluation_folder(tmp_path / 'gated', [True] * 4, [False], vegetation_gate=True)
    ungated = evaluation_folder(tmp_path / 'ungated', [True] * 4, [False],
                                vegetation_gate=False)
    result = compare_evaluations(read_evaluation(gated), read_evaluation(ungated))
    assert result['differing_settings'] == {'vegetation_gate': [True, False]}
    assert 'setting vegetation_gate: True -> False' in format_comparison(result)
    # An evaluation written before the gate was recorded: unknown, not a difference.
    older = evaluation_folder(tmp_path / 'older', [True] * 4, [False])
    for pair in ((older, ungated), (gated, older)):
        assert compare_evaluations(*map(read_evaluation, pair))['differing_settings'] == {}
