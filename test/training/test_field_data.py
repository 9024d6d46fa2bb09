"""The field split manifest: seeded, stratified, disjoint, labels mapped (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.photo_folders import touch_tree
import pytest

from plant_disease_ros.training.dataset import DatasetError, split_files, write_manifest
from plant_disease_ros.training.field_data import (
    default_sources,
    domain_files,
    DomainSource,
    lab_files,
    make_field_split,
    model_labels,
    NO_LEAF,
    read_field_split,
    resolve_lab_split,
    write_field_split,
)

LAB_CLASSES = ('Apple___healthy', 'Tomato___Leaf_Mold', 'Tomato___healthy')


@pytest.fixture()
def world(tmp_path: Path) -> dict:
    lab = touch_tree(tmp_path / 'lab', {name: 10 for name in LAB_CLASSES})
    files = [(f'{name}/{i:03d}.jpg', c) for c, name in enumerate(LAB_CLASSES) for i in range(10)]
    split = split_files(files, LAB_CLASSES, seed=42)
    write_manifest(tmp_path / 'split.json', split, lab)
    touch_tree(tmp_path / 'field' / 'plantdoc', {'Apple___healthy': 20, 'Tomato___healthy': 8})
    touch_tree(tmp_path / 'field' / 'pp2021_apple', {'Apple___healthy': 12})
    touch_tree(tmp_path / 'negatives', {'sky': 12, 'soil': 7})
    return {'root': tmp_path, 'labels': model_labels(LAB_CLASSES)}


def make(world: dict, seed: int = 42) -> dict:
    root = world['root']
    return make_field_split(default_sources(root / 'field', root / 'negatives'),
                            world['labels'], root / 'split.json', seed=seed)


def test_manifest_is_seeded_stratified_and_disjoint(world: dict) -> None:
    manifest = make(world)
    assert manifest == make(world)
    assert list(manifest['domains']) == ['plantdoc', 'pp2021_apple', 'negatives']
    assert manifest['labels'][-1] == NO_LEAF
    assert manifest['lab_split']['path'] == 'split.json'
    plantdoc = manifest['domains']['plantdoc']
    parts = {name: {path for path, _ in plantdoc['splits'][name]}
             for name in ('train', 'val', 'test')}
    assert not parts['train'] & parts['test'] and not parts['val'] & parts['test']
    assert not parts['train'] & parts['val']
    assert sum(map(len, parts.values())) == 28
    per_class_test = {c: sum(1 for _, i in plantdoc['splits']['test'] if i == c)
                      for c in range(2)}
    assert per_class_test == {0: 5, 1: 2}  # 25 % of 20 and of 8
    assert make(world, seed=7)['domains']['plantdoc']['splits'] != plantdoc['splits']


def test_negatives_map_to_no_leaf_and_field_to_their_class(world: dict) -> None:
    manifest = make(world)
    root, files, labels = domain_files(manifest, 'negatives', 'train')
    assert root == world['root'] / 'negatives'
    assert {labels[index] for _, index in files} == {NO_LEAF}
    assert {path.split('/')[0] for path, _ in files} == {'sky', 'soil'}
    _, files, labels = domain_files(manifest, 'plantdoc', 'test')
    assert {labels[index] for _, index in files} == {'Apple___healthy', 'Tomato___healthy'}
    with pytest.raises(DatasetError, match='not in the field split'):
        domain_files(manifest, 'elsewhere', 'test')


def test_unknown_field_class_is_refused(world: dict) -> None:
    touch_tree(world['root'] / 'odd', {'Grape___healthy': 4, 'Apple___healthy': 4})
    with pytest.raises(DatasetError, match='not model labels: Grape___healthy'):
        make_field_split([DomainSource('odd', world['root'] / 'odd')], world['labels'],
                         world['root'] / 'split.json')


def test_round_trip_and_lab_split_beside_the_manifest(world: dict, tmp_path: Path) -> None:
    manifest = make(world)
    shipped = tmp_path / 'models'
    path = write_field_split(shipped / 'field_split.json', manifest)
    (shipped / 'split.json').write_text((world['root'] / 'split.json').read_text())
    assert read_field_split(path) == json.loads(path.read_text())
    assert resolve_lab_split(manifest, path) == shipped / 'split.json'
    with pytest.raises(DatasetError, match='not a field split manifest'):
        read_field_split(world['root'] / 'split.json')


def test_lab_files_use_model_label_indices(world: dict) -> None:
    lab_manifest = json.loads((world['root'] / 'split.json').read_text())
    root, files = lab_files(lab_manifest, world['labels'], 'test')
    assert root == world['root'] / 'lab'
    assert {index for _, index in files} == {0, 1, 2}
    with pytest.raises(DatasetError, match='missing from the model labels'):
        lab_files(lab_manifest, ['Apple___healthy', NO_LEAF], 'test')


def test_every_field_set_is_a_domain_the_shared_ones_first(world: dict) -> None:
    root = world['root']
    touch_tree(root / 'field' / 'a_farm', {'Tomato___healthy': 8})
    touch_tree(root / 'field' / 'zz_orchard', {'Apple___healthy': 8})
    (root / 'field' / 'manifest.csv').write_text('path,label\n')
    (root / 'field' / '.cache').mkdir()
    names = [source.name for source in default_sources(root / 'field', root / 'negatives')]
    assert names == ['plantdoc', 'pp2021_apple', 'a_farm', 'zz_orchard', 'negatives']
    manifest = make(world)
    assert list(manifest['domains']) == names
    assert manifest['domains']['a_farm']['label_map'] == {'Tomato___healthy':
                                                           'Tomato___healthy'}


def test_a_custom_set_alone_is_a_domain(tmp_path: Path) -> None:
    touch_tree(tmp_path / 'field' / 'my_farm', {'Apple___healthy': 4})
    sources = default_sources(tmp_path / 'field', tmp_path / 'negatives')
    assert [(source.name, source.root) for source in sources] == [
        ('my_farm', tmp_path / 'field' / 'my_farm'),
        ('negatives', tmp_path / 'negatives')]


@pytest.mark.parametrize('case', ['missing', 'empty', 'files only', 'reserved'])
def test_a_field_folder_without_usable_sets_is_refused(tmp_path: Path, case: str) -> None:
    field = tmp_path / 'field'
    if case != 'missing':
        field.mkdir()
    if case == 'files only':
        (field / 'photo.jpg').write_bytes(b'x')
    if case == 'reserved':
        touch_tree(field / 'negatives', {'sky': 3})
    with pytest.raises(DatasetError) as error:
        default_sources(field, tmp_path / 'negatives')
    assert str(field) in str(error.value) and '\n' not in str(error.value)


def test_the_shared_field_folder_keeps_the_shipped_domains() -> None:
    shared = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'
    if not (shared / 'field').is_dir():
        pytest.skip('no shared data beside the checkout')
    shipped = read_field_split(Path(__file__).resolve().parents[2] / 'models'
                               / 'field_split.json')
    names = [source.name for source in default_sources(shared / 'field', shared / 'negatives')]
    assert names == list(shipped['domains'])
