"""plant-disease choose: the rule the shipped model was chosen by, on evaluation folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.choose import choose, model_scores, ModelScores

# The validation figures the shipped model was chosen by (2026-12-06, 640×480 frames):
# the model before it and the seed-47 stage, sharp and smeared by 33 px.
BEFORE = ({'lab': 0.985, 'plantdoc': 0.479, 'pp2021_apple': 0.942, 'negatives': 0.981,
           'synthetic': 0.993},
          {'lab': 0.919, 'plantdoc': 0.362, 'pp2021_apple': 0.840, 'negatives': 1.0,
           'synthetic': 0.990})
SEED_47 = ({'lab': 0.989, 'plantdoc': 0.497, 'pp2021_apple': 0.924, 'negatives': 0.981,
            'synthetic': 0.997},
           {'lab': 0.967, 'plantdoc': 0.429, 'pp2021_apple': 0.867, 'negatives': 1.0,
            'synthetic': 0.997})
PHOTOS = {'lab': 1076, 'plantdoc': 163, 'pp2021_apple': 225, 'negatives': 107,
          'synthetic': 300}


def write_evaluation(folder: Path, figures: dict[str, float], px: int, sha: str,
                     lab_rejected: float = 0.01, split: str = 'val',
                     field_rejected: float = 0.3, **changes: object) -> Path:
    """Write an evaluation.json of camera frames with ``figures`` per domain."""
    domains = {}
    for name, value in figures.items():
        negative = name in ('negatives', 'synthetic')
        domains[name] = {'negative': negative, 'photos': PHOTOS[name],
                         'top1': value if not negative else 0.9,
                         'rejected': value if negative else
                         (lab_rejected if name == 'lab' else field_rejected)}
    report = {'split': split, 'model_sha256': sha, 'field_split': 'models/field_split.json',
              'score_threshold': 0.5, 'crops': 'all', 'other_crops_weight': 0.1, 'poses': 1,
              'camera': {'width': 640, 'height': 480, 'framing': 'fit',
                         'center_crop_fraction': 1.0, 'vegetation_gate': True,
                         'motion_blur_px': px},
              'domains': domains, **changes}
    folder.mkdir(parents=True)
    (folder / 'evaluation.json').write_text(json.dumps(report))
    return folder


def pair(tmp_path: Path, name: str, figures: tuple[dict, dict], sha: str,
         **changes: object) -> tuple[Path, Path]:
    """Write a model's sharp and 33 px evaluations; return their folders."""
    return (write_evaluation(tmp_path / f'{name}_sharp', figures[0], 0, sha, **changes),
            write_evaluation(tmp_path / f'{name}_33', figures[1], 33, sha, **changes))


def test_the_shipped_model_passes_the_rule_it_was_chosen_by(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture
                                                            ) -> None:
    before = pair(tmp_path, 'before', BEFORE, 'a' * 64)
    seed_47 = pair(tmp_path, 'seed47', SEED_47, 'b' * 64)
    out = tmp_path / 'choice' / 'choice.json'
    assert main(['choose', '--incumbent', *map(str, before), '--candidate',
                 *map(str, seed_47), '--names', 'before', 'seed47', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'verdict: ship seed47' in printed
    assert 'pass  sharp and smeared mean 0.8648 > 0.8491' in printed
    choice = json.loads(out.read_text())
    assert choice['replace'] is True
    assert choice['candidate']['sharp_mean'] == pytest.approx(0.8776)
    # The other way round the incumbent stays: the rule is not symmetric by accident.
    assert main(['choose', '--incumbent', *map(str, seed_47), '--candidate',
                 *map(str, before), '--out', str(out)]) == 0
    assert 'verdict: keep shipped' in capsys.readouterr().out


def test_each_condition_can_keep_the_incumbent(tmp_path: Path) -> None:
    incumbent = model_scores('before', *pair(tmp_path, 'before', BEFORE, 'a' * 64))
    # Better when smeared, but 0.02 worse on sharp frames: condition 2 fails.
    worse_sharp = ({**SEED_47[0], 'lab': 0.889}, SEED_47[1])
    candidate = model_scores('c', *pair(tmp_path / 'c1', 'c', worse_sharp, 'b' * 64))
    choice = choose(incumbent, candidate)
    assert not choice.replace
    assert [passed for _, passed in choice.checks][:2] == [True, False]
    # Too many lab leaves rejected: condition 3 fails.
    rejecting = model_scores('c', *pair(tmp_path / 'c2', 'c', SEED_47, 'b' * 64,
                                         lab_rejected=0.03))
    choice = choose(incumbent, rejecting)
    assert ('lab leaves rejected 3.00 % <= 2 %', False) in choice.checks
    assert not choice.replace
    # Non-leaf scenes let through.
    leaky = ({**SEED_47[0], 'negatives': 0.93}, SEED_47[1])
    choice = choose(incumbent, model_scores('c', *pair(tmp_path / 'c3', 'c', leaky, 'b' * 64)))
    assert ('negatives rejected 93.00 % >= 95 %', False) in choice.checks
    # Field leaves turned away (top-1 counts a label below the threshold as right): the
    # same top-1, nothing from the field on the map. Kept out by the rejected-rise check.
    shy = model_scores('c', *pair(tmp_path / 'c4', 'c', SEED_47, 'b' * 64,
                                  field_rejected=1.0))
    choice = choose(incumbent, shy)
    assert ('plantdoc leaves rejected 100.00 % <= 30.00 % + 5 points', False) in choice.checks
    assert not choice.replace
    # Within the margin it passes.
    calm = model_scores('c', *pair(tmp_path / 'c5', 'c', SEED_47, 'b' * 64,
                                   field_rejected=0.34))
    assert choose(incumbent, calm).replace


def test_only_matching_validation_frames_are_taken(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    sharp, smeared = pair(tmp_path, 'before', BEFORE, 'a' * 64)
    test_split = write_evaluation(tmp_path / 'test', BEFORE[0], 0, 'a' * 64, split='test')
    with pytest.raises(ValueError, match='choose on validation frames'):
        model_scores('m', test_split, smeared)
    other_model = write_evaluation(tmp_path / 'other', BEFORE[1], 33, 'c' * 64)
    with pytest.raises(ValueError, match='two models'):
        model_scores('m', sharp, other_model)
    posed = write_evaluation(tmp_path / 'posed', BEFORE[1], 33, 'a' * 64, poses=4)
    with pytest.raises(ValueError, match='not the same photos, camera and settings'):
        model_scores('m', sharp, posed)
    with pytest.raises(ValueError, match='must be sharp frames'):
        model_scores('m', smeared, smeared)
    # The candidate scored with 4 poses against the incumbent's one: not the same frames.
    incumbent = model_scores('before', sharp, smeared)
    posed_pair = pair(tmp_path / 'posed_pair', 'seed47', SEED_47, 'b' * 64, poses=4)
    with pytest.raises(ValueError, match='not evaluated on the same frames, settings'):
        choose(incumbent, model_scores('seed47', *posed_pair))
    (tmp_path / 'empty').mkdir()
    status = main(['choose', '--incumbent', str(tmp_path / 'empty'), str(smeared),
                   '--candidate', str(sharp), str(smeared), '--out',
                   str(tmp_path / 'c.json')])
    assert status == 2 and 'no evaluation.json' in capsys.readouterr().err
    assert not (tmp_path / 'c.json').exists()
    assert main(['choose', '--incumbent', str(sharp), str(smeared), '--candidate',
                 str(sharp), str(smeared), '--max-sharp-loss', '2']) == 2


def test_the_choice_is_never_written_over_an_input(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    sharp, smeared = pair(tmp_path, 'before', BEFORE, 'a' * 64)
    evaluation = sharp / 'evaluation.json'
    before = evaluation.read_text()
    assert main(['choose', '--incumbent', str(sharp), str(smeared), '--candidate',
                 str(sharp), str(smeared), '--out', str(evaluation)]) == 2
    assert 'is one of the inputs' in capsys.readouterr().err
    assert evaluation.read_text() == before


@pytest.mark.parametrize('content', ['[1, 2]', '{}', '{"domains": {"lab": [1]}}',
                                     '{"split": "val", "domains": {"lab": {"top1": 1}}}'])
def test_an_evaluation_of_the_wrong_shape_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture, content: str) -> None:
    sharp, smeared = pair(tmp_path, 'before', BEFORE, 'a' * 64)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'evaluation.json').write_text(content)
    assert main(['choose', '--incumbent', str(broken), str(smeared), '--candidate',
                 str(sharp), str(smeared), '--out', str(tmp_path / 'c.json')]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and 'Traceback' not in err


def scores(name: str, lab: float, orchard_rejected: float) -> ModelScores:
    """Return a model's figures: lab top-1 ``lab``, 20 orchard frames, 100 non-leaf ones."""
    sharp = {'lab': lab, 'orchard': 10 / 20, 'negatives': 99 / 100}
    return ModelScores(name=name, sharp=sharp, smeared=dict(sharp),
                       non_leaf_rejected={'negatives': 99 / 100},
                       leaf_rejected={'lab': 1 / 100, 'orchard': orchard_rejected},
                       smear_px=33, frames={})


def test_a_figure_exactly_on_a_bound_passes_whatever_the_float_rounding() -> None:
    """7/20 + 0.05 < 8/20 and 0.80 + 1.49 over 3 < 0.83 + 1.49 over 3 - 0.01 in floats."""
    assert 8 / 20 > 7 / 20 + 0.05  # the rounding the rule must not trip on
    incumbent = scores('shipped', 83 / 100, 7 / 20)
    candidate = scores('candidate', 80 / 100, 8 / 20)  # each exactly on its bound
    assert candidate.sharp_mean < incumbent.sharp_mean - 0.01
    checks = dict(choose(incumbent, candidate).checks)
    assert checks['orchard leaves rejected 40.00 % <= 35.00 % + 5 points']
    assert checks['sharp mean 0.7633 >= 0.7733 - 0.01']
    # One frame or one point past the bound still fails.
    checks = dict(choose(incumbent, scores('candidate', 79 / 100, 9 / 20)).checks)
    assert not checks['orchard leaves rejected 45.00 % <= 35.00 % + 5 points']
    assert not checks['sharp mean 0.7600 >= 0.7733 - 0.01']
    # A score equal to the incumbent's is not higher.
    same = choose(incumbent, scores('candidate', 83 / 100, 7 / 20))
    assert not dict(same.checks)['sharp and smeared mean 0.7733 > 0.7733']
