"""``plant-disease train`` options reach the right recipe (no training here)."""

from __future__ import annotations

import pytest

from plant_disease_ros.cli import train as train_cli
from plant_disease_ros.cli.main import main
from plant_disease_ros.training.train import TrainResult


def test_lab_defaults_are_left_to_the_plan(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path) -> None:
    seen = []

    def fake_train(options):
        seen.append(options)
        return TrainResult(tmp_path / 'model.keras', 0.5, 1, 1.0)

    monkeypatch.setattr(train_cli, 'train', fake_train)
    assert main(['train', '--data', 'photos', '--out', str(tmp_path)]) == 0
    options = seen[0]
    assert options.init == 'shipped' and options.init_weights is None
    for name in ('epochs', 'batch_size', 'learning_rate', 'patience', 'val_fraction',
                 'input_size', 'width', 'architecture', 'head_epochs', 'unfreeze'):
        assert getattr(options, name) is None, name
    assert main(['train', '--data', 'photos', '--out', str(tmp_path), '--init', 'scratch',
                 '--unfreeze', '2', '--quiet']) == 0
    assert (seen[1].init, seen[1].unfreeze, seen[1].verbose) == ('scratch', 2, 0)
    assert (seen[0].seed, seen[0].split_seed) == (42, 42)
    assert main(['train', '--data', 'photos', '--out', str(tmp_path), '--seed', '7']) == 0
    assert (seen[2].seed, seen[2].split_seed) == (7, 42)


def test_field_recipe_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from plant_disease_ros.training import field_train

    seen = []

    def fake_train_field(options):
        seen.append(options)
        return {'best_val_score': 0.9, 'best_epoch': 3, 'temperature': 1.2}

    monkeypatch.setattr(field_train, 'train_field', fake_train_field)
    assert main(['train', '--recipe', 'field', '--data', 'lab', '--out', str(tmp_path),
                 '--init-weights', 'lab.keras', '--lab-split', 'split.json',
                 '--field-data', 'field', '--negatives', 'negatives']) == 0
    options = seen[0]
    assert (options.batch_size, options.epochs, options.input_size) == (64, 30, 128)
    assert (options.learning_rate, options.val_fraction, options.test_fraction) == \
        (8e-4, 0.15, 0.25)
    assert options.init_weights == 'lab.keras'
    assert (options.seed, options.split_seed) == (42, 42)
    assert options.calibration_objective == 'adaptive'
    assert main(['train', '--recipe', 'field', '--data', 'lab', '--out', str(tmp_path),
                 '--init-weights', 'lab.keras', '--lab-split', 'split.json',
                 '--field-data', 'field', '--negatives', 'negatives', '--seed', '43',
                 '--split-seed', '5', '--calibrate-by', 'domain-ece']) == 0
    assert (seen[1].seed, seen[1].split_seed) == (43, 5)
    assert seen[1].calibration_objective == 'domain-ece'
    # Motion blur streaks: off unless asked; asked, they ride on the scaled augmentation.
    assert options.augment.motion_blur_probability == 0.0
    assert main(['train', '--recipe', 'field', '--data', 'lab', '--out', str(tmp_path),
                 '--init-weights', 'lab.keras', '--lab-split', 'split.json',
                 '--field-data', 'field', '--negatives', 'negatives', '--field-augment', '0.4',
                 '--motion-blur', '0.25', '--motion-blur-max', '12']) == 0
    augment = seen[2].augment
    assert (augment.motion_blur_probability, augment.motion_blur_max_px) == (0.25, 12)
    assert augment.blur_probability == pytest.approx(0.15 * 0.4)


FIELD_ARGS = ['train', '--recipe', 'field', '--data', 'lab', '--init-weights', 'lab.keras',
              '--lab-split', 'split.json', '--field-data', 'field', '--negatives', 'negatives']


def test_the_field_recipe_refuses_lab_only_options(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Given with --recipe field they would be ignored: named in one line, exit 2."""
    from plant_disease_ros.training import field_train

    monkeypatch.setattr(field_train, 'train_field', lambda options: pytest.fail('trained'))
    lab_only = ['--per-class', '5', '--init', 'scratch', '--unfreeze', '2',
                '--augment-strength', '0', '--patience', '3', '--head-epochs', '1',
                '--batch-norm', 'source', '--width', '0.5']
    assert main([*FIELD_ARGS, '--out', str(tmp_path / 'run'), *lab_only]) == 2
    err = capsys.readouterr().err
    assert ('--recipe field does not use --init, --width, --head-epochs, --unfreeze, '
            '--batch-norm, --patience, --per-class, --augment-strength (lab recipe options)'
            in err)
    assert len(err.strip().splitlines()) == 1
    # The lab defaults given explicitly are lab options too.
    for flag, value in (('--init', 'shipped'), ('--augment-strength', '1')):
        assert main([*FIELD_ARGS, '--out', str(tmp_path / 'run'), flag, value]) == 2
        assert f'does not use {flag} (lab recipe' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_the_lab_recipe_keeps_its_defaults_of_the_lab_only_options(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    seen = []
    monkeypatch.setattr(train_cli, 'train', lambda options: seen.append(options) or
                        TrainResult(tmp_path / 'model.keras', 0.5, 1, 1.0))
    assert main(['train', '--data', 'photos', '--out', str(tmp_path)]) == 0
    assert (seen[0].init, seen[0].batch_norm, seen[0].augment_strength) == \
        ('shipped', 'adapt', 1.0)
    assert main(['train', '--data', 'photos', '--out', str(tmp_path), '--augment-strength', '0',
                 '--batch-norm', 'source', '--per-class', '4', '--patience', '2']) == 0
    assert (seen[1].augment_strength, seen[1].batch_norm, seen[1].per_class,
            seen[1].patience) == (0.0, 'source', 4, 2)


def test_a_motion_blur_share_outside_0_to_1_is_refused(tmp_path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert main(['train', '--recipe', 'field', '--data', 'lab', '--out', str(tmp_path),
                 '--init-weights', 'lab.keras', '--lab-split', 'split.json',
                 '--field-data', 'field', '--negatives', 'negatives',
                 '--motion-blur', '1.5']) == 2
    assert '--motion-blur must be in 0..1, got 1.5' in capsys.readouterr().err


@pytest.mark.parametrize('flag, value, minimum', [
    ('--batch-size', '0', 1), ('--batch-size', '-4', 1), ('--epochs', '0', 1),
    ('--head-epochs', '-1', 0), ('--patience', '-1', 0), ('--input-size', '0', 1),
    ('--per-class', '0', 1), ('--threads', '0', 1), ('--unfreeze', '-2', 0),
    ('--steps-per-epoch', '0', 1), ('--cache-size', '0', 1), ('--motion-blur-max', '2', 3),
])
def test_integer_options_below_their_minimum_are_refused(
        flag: str, value: str, minimum: int, monkeypatch: pytest.MonkeyPatch, tmp_path,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(train_cli, 'train', lambda options: pytest.fail('trained'))
    with pytest.raises(SystemExit) as exit_info:
        main(['train', '--data', 'photos', '--out', str(tmp_path), flag, value])
    assert exit_info.value.code == 2
    assert f'plant-disease train: error: argument {flag}: must be >= {minimum}, got {value}' \
        in capsys.readouterr().err


def test_train_options_below_their_minimum_are_refused() -> None:
    from plant_disease_ros.training.train import check_options, TrainOptions

    check_options(TrainOptions(data_dir='d', out_dir='o', batch_size=1, head_epochs=0))
    with pytest.raises(ValueError, match='^batch size must be >= 1, got 0$'):
        check_options(TrainOptions(data_dir='d', out_dir='o', batch_size=0))
    with pytest.raises(ValueError, match='^epochs must be >= 1, got -2$'):
        check_options(TrainOptions(data_dir='d', out_dir='o', epochs=-2))


@pytest.mark.parametrize('name, value, message', [
    ('learning_rate', -1.0, 'learning rate must be > 0 and <= 1, got -1'),
    ('learning_rate', float('nan'), 'learning rate must be > 0 and <= 1, got nan'),
    ('augment_strength', -2.0, 'augment strength must be >= 0 and <= 1, got -2'),
    ('time_budget_min', float('nan'), 'time budget min must be > 0'),
    ('time_budget_min', 0.0, 'time budget min must be > 0'),
    ('width', -1.0, 'width must be > 0'),
    ('label_smoothing', 0.9, 'label smoothing must be >= 0 and <= 0.5, got 0.9'),
    ('val_fraction', 0.0, 'val fraction must be > 0'),
])
def test_decimal_options_outside_their_range_are_refused(name: str, value: float,
                                                         message: str) -> None:
    from plant_disease_ros.training.train import check_options, TrainOptions

    with pytest.raises(ValueError, match=message):
        check_options(TrainOptions(data_dir='d', out_dir='o', **{name: value}))
    check_options(TrainOptions(data_dir='d', out_dir='o', time_budget_min=float('inf'),
                               augment_strength=0.0, label_smoothing=0.0))


@pytest.mark.parametrize('recipe', ['lab', 'field'])
def test_an_out_that_is_a_file_is_refused_before_any_work(
        monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture,
        recipe: str) -> None:
    """Not a bare "[Errno 17] File exists" once the photos are decoded."""
    from plant_disease_ros.training import field_train

    monkeypatch.setattr(train_cli, 'train', lambda options: pytest.fail('trained'))
    monkeypatch.setattr(field_train, 'train_field', lambda options: pytest.fail('trained'))
    notes = tmp_path / 'notes.txt'
    notes.write_text('mine')
    for out in (notes, notes / 'run'):
        assert main(['train', '--recipe', recipe, '--data', 'photos', '--out', str(out)]) == 2
        error = capsys.readouterr().err
        assert error == (f'plant-disease train: error: --out {out}: {notes} is not a '
                         'directory; give a folder for the run (a new one is created)\n')
    assert notes.read_text() == 'mine'
