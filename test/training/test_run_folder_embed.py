"""``embed`` uses a split manifest only for the folder it splits, and says which photos."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from conftest import DATA_DIR, MODELS_DIR
import pytest

from plant_disease_ros.training.embed import is_split_root, select_photos

SHIPPED_SPLIT = MODELS_DIR / 'split.json'
CLASSES = ('Apple___Cedar_apple_rust', 'Potato___Late_blight', 'Tomato___healthy')


def fake_photos(root: Path, names: dict[str, list[str]]) -> Path:
    """Make ``root/<class>/<name>`` files (scanning reads only the names)."""
    for label, files in names.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for name in files:
            (root / label / name).write_bytes(b'not decoded here')
    return root


def own_manifest(path: Path, root: str) -> Path:
    """Write a split manifest of two classes whose test part is ``<class>/1.jpg``."""
    classes = ['A___x', 'B___y']
    path.write_text(json.dumps({
        'version': 1, 'root': root, 'seed': 42, 'fractions': {'val': 0.25, 'test': 0.25},
        'classes': classes,
        'splits': {'train': [[f'{name}/2.jpg', i] for i, name in enumerate(classes)],
                   'val': [[f'{name}/3.jpg', i] for i, name in enumerate(classes)],
                   'test': [[f'{name}/1.jpg', i] for i, name in enumerate(classes)]}}))
    return path


@pytest.fixture
def three_class_folder(tmp_path: Path) -> Path:
    """A user's folder of 3 PlantVillage classes: 4 photos each, 2 of them shipped test ones.

    The shipped split's test photos are in it, as in any folder copied from the same
    source; it is still not the folder that split splits.
    """
    if not (DATA_DIR.is_dir() and SHIPPED_SPLIT.is_file()):
        pytest.skip('needs the PlantVillage photos and models/split.json')
    test_part = json.loads(SHIPPED_SPLIT.read_text())['splits']['test']
    root = tmp_path / 'photos'
    for label in CLASSES:
        (root / label).mkdir(parents=True)
        in_test = [path for path, _ in test_part if path.startswith(label + '/')]
        tests = in_test[:2]
        others = [f'{label}/{p.name}' for p in sorted((DATA_DIR / label).iterdir())
                  if f'{label}/{p.name}' not in in_test][:2]
        for name in tests + others:
            shutil.copyfile(DATA_DIR / name, root / name)
    return root


def test_the_shipped_split_is_not_applied_to_another_folder(three_class_folder: Path) -> None:
    chosen = select_photos(three_class_folder, SHIPPED_SPLIT, 'test', only_if_root=True)
    assert chosen.classes == list(CLASSES) and len(chosen.files) == 12
    assert not chosen.split_applied
    assert chosen.description.startswith(f'all 12 photos of {three_class_folder}')
    # Named explicitly (--split-manifest), the manifest is applied, and it says so.
    named = select_photos(three_class_folder, SHIPPED_SPLIT, 'test')
    assert named.split_applied and len(named.files) == 6 and len(named.classes) == 21
    assert named.description == (f'using the test part of {SHIPPED_SPLIT}: 6 of 12 photos '
                                 f'of {three_class_folder}')


def test_the_split_applies_to_its_own_folder_or_a_moved_copy(tmp_path: Path) -> None:
    photos = {'A___x': ['1.jpg', '2.jpg', '3.jpg', '4.jpg'],
              'B___y': ['1.jpg', '2.jpg', '3.jpg']}
    here = fake_photos(tmp_path / 'here', photos)
    manifest = own_manifest(tmp_path / 'split.json', str(here))
    assert is_split_root(here, json.loads(manifest.read_text()), 'test')
    chosen = select_photos(here, manifest, 'test', only_if_root=True)
    assert chosen.split_applied and [path for path, _ in chosen.files] == ['A___x/1.jpg',
                                                                          'B___y/1.jpg']
    assert chosen.description == f'using the test part of {manifest}: 2 of 7 photos of {here}'
    moved = shutil.copytree(here, tmp_path / 'moved')
    assert select_photos(moved, manifest, 'test', only_if_root=True).split_applied
    # Another folder: other classes, or a test photo missing.
    (Path(moved) / 'B___y' / '1.jpg').unlink()
    assert not select_photos(moved, manifest, 'test', only_if_root=True).split_applied
    other = fake_photos(tmp_path / 'other', {'A___x': ['1.jpg'], 'C___z': ['1.jpg']})
    chosen = select_photos(other, manifest, 'test', per_class=1, only_if_root=True)
    assert chosen.classes == ['A___x', 'C___z'] and not chosen.split_applied
    assert chosen.description.startswith(f'all 2 photos of {other} ({manifest} splits '
                                         f'{here}, not this folder)')


def test_embed_cli_uses_every_photo_of_a_users_folder(
        three_class_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip('tensorflow')
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.training.model import build_model, ModelConfig

    keras_path = tmp_path / 'tiny.keras'
    build_model(ModelConfig(num_classes=3, input_size=32, width=0.25)).save(keras_path)
    assert main(['embed', str(three_class_folder), '--no-tsne', '--keras', str(keras_path),
                 '--out', str(tmp_path / 'embedding'), '--k', '3']) == 0
    out, err = capsys.readouterr()
    assert '12 photos, 3 classes;' in out
    assert f'all 12 photos of {three_class_folder}' in err
