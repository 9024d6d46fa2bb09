"""make-demo's truth file: who to credit for the field photos, and how to make the bag again."""

from __future__ import annotations

import json
from pathlib import Path
import shlex
import shutil

from plant_disease_ros.tools.demo_bag import (
    DEFAULT_FIELD_DIR,
    DEFAULT_OUT,
    DemoOptions,
    field_attribution,
    frames_of_drive,
    made_by,
    make_demo_bag,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LEAVES = REPO_ROOT / 'test' / 'data' / 'leaves'
SHIPPED_TRUTH = DEFAULT_OUT.with_name(f'{DEFAULT_OUT.stem}_truth.json')


def copy_leaves(root: Path, copies: int) -> Path:
    """Make a ``<class>/<n>.jpg`` folder of ``copies`` copies of each test leaf."""
    for photo in sorted(LEAVES.glob('*.jpg')):
        (root / photo.stem).mkdir(parents=True)
        for copy in range(copies):
            shutil.copy(photo, root / photo.stem / f'{copy}.jpg')
    return root


def field_split(path: Path, folder: Path) -> Path:
    """Write a field split whose ``folder.name`` domain puts every photo in the test part."""
    classes = sorted(child.name for child in folder.iterdir())
    test = [[f'{name}/{photo.name}', index] for index, name in enumerate(classes)
            for photo in sorted((folder / name).iterdir())]
    entry = {'version': 1, 'root': str(folder), 'seed': 0,
             'fractions': {'val': 0.0, 'test': 1.0}, 'classes': classes,
             'splits': {'train': [], 'val': [], 'test': test},
             'label_map': {name: name for name in classes}, 'negative': False}
    path.write_text(json.dumps({'version': 1, 'seed': 0, 'labels': classes,
                                'lab_split': {'path': 'split.json', 'sha256': ''},
                                'domains': {folder.name: entry}}))
    return path


def test_field_photos_of_another_folder_are_not_credited_to_plantdoc(tmp_path: Path) -> None:
    """--field with photos of unknown origin: the truth file says the dataset and licence
    are unknown (not PlantDoc, CC BY 4.0), and made_by names every option that made it."""
    data = copy_leaves(tmp_path / 'lab', 3)
    field = copy_leaves(tmp_path / 'elsewhere' / 'orchard', 2)
    split = field_split(tmp_path / 'orchard_split.json', field)
    out = tmp_path / 'out' / 'demo.mcap'
    options = DemoOptions(data_dir=data, out_path=out, frames=frames_of_drive(3), seed=3,
                          split_path=tmp_path / 'no_split.json', field_dir=field,
                          field_split_path=split)
    result = make_demo_bag(options)
    assert result.kinds.get('field_leaf'), result.kinds
    truth = json.loads(result.truth_path.read_text())
    credited = truth['field_photos']
    assert credited['folder'] == str(field)
    assert 'PlantDoc' not in json.dumps(credited) and 'CC BY' not in credited['licence']
    assert credited['dataset'].startswith('unknown') and "the data's README" in credited['dataset']
    assert credited['licence'].startswith('unknown')
    assert truth['photos']['folder'] == str(data)
    words = shlex.split(truth['made_by'])
    assert words[:2] == ['plant-disease', 'make-demo']
    given = dict(zip(words[2::2], words[3::2], strict=True))
    assert given == {'--frames': str(frames_of_drive(3)), '--seed': '3', '--data': str(data),
                     '--split': str(tmp_path / 'no_split.json'), '--field': str(field),
                     '--field-split': str(split), '--out': str(out)}


def test_the_shared_orchard_folder_is_credited_to_plant_pathology_2021() -> None:
    """The shared pp2021_apple folder: its own dataset and licence, not PlantDoc's."""
    credited = field_attribution(DEFAULT_FIELD_DIR.parent / 'pp2021_apple')
    assert credited['dataset'].startswith('Plant Pathology 2021')
    assert 'PlantDoc' not in json.dumps(credited) and 'CC BY' not in credited['licence']
    assert field_attribution(DEFAULT_FIELD_DIR.parent / 'other')['licence'].startswith('unknown')


def test_the_default_drive_keeps_the_shipped_truth() -> None:
    """Default options: made_by and the field credit are those of the shipped truth file,
    so the shipped bag and truth need not be made again."""
    shipped = json.loads(SHIPPED_TRUTH.read_text())
    assert made_by(DemoOptions()) == shipped['made_by']
    credited = {key: shipped['field_photos'][key] for key in ('dataset', 'licence', 'via')}
    assert field_attribution(DEFAULT_FIELD_DIR) == credited


def test_made_by_a_new_drive_into_the_shipped_path_says_replace_shipped() -> None:
    """Another seed written over the shipped bag is made again only with --replace-shipped."""
    assert made_by(DemoOptions(seed=8)).split()[-1] == '--replace-shipped'
    assert '--replace-shipped' not in made_by(DemoOptions(seed=8, out_path=Path('x.mcap')))
