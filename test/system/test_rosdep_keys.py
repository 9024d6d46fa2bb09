"""rosdep resolves every key of package.xml: rosdistro's keys plus the shipped source file.

``rosdep install`` stops at the first key no source defines. The keys rosdistro has are
kept in ``rosdep/upstream_keys.yaml`` (checked upstream, so that this test needs no
network); the others must be in ``rosdep/plant_disease_ros.yaml``, which the README adds
as a rosdep source before ``rosdep install``.
"""

from __future__ import annotations

from pathlib import Path
import re
import xml.etree.ElementTree as ElementTree

import pytest

yaml = pytest.importorskip('yaml')

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_XML = REPO_ROOT / 'package.xml'
ROSDEP_FILE = REPO_ROOT / 'rosdep' / 'plant_disease_ros.yaml'
UPSTREAM_KEYS = REPO_ROOT / 'rosdep' / 'upstream_keys.yaml'
README = REPO_ROOT / 'README.md'
PLATFORMS = ('debian', 'ubuntu')


def package_keys() -> set[str]:
    """Return every dependency key of package.xml (all *depend tags)."""
    root = ElementTree.parse(PACKAGE_XML).getroot()
    return {element.text.strip() for element in root
            if element.tag.endswith('depend') and element.text}


def shipped() -> dict:
    """Return the shipped rosdep definitions."""
    return yaml.safe_load(ROSDEP_FILE.read_text(encoding='utf-8'))


def upstream() -> set[str]:
    """Return the keys rosdistro resolves, as kept in the repository."""
    kept = yaml.safe_load(UPSTREAM_KEYS.read_text(encoding='utf-8'))
    return set(kept['ros_packages']) | set(kept['rosdep_python'])


def test_every_package_key_resolves() -> None:
    """Each key is defined by the shipped file or is a key rosdistro has."""
    missing = package_keys() - set(shipped()) - upstream()
    assert not missing, f'no rosdep definition for {sorted(missing)}'


def test_the_interfaces_and_litert_keys_are_there() -> None:
    """The typed outputs' packages are dependencies; LiteRT comes from the shipped file."""
    keys = package_keys()
    assert {'vision_msgs', 'foxglove_msgs', 'python3-ai-edge-litert-pip'} <= keys
    assert 'python3-ai-edge-litert-pip' in shipped()
    assert 'python3-tflite-runtime-pip' in shipped()  # the documented alternative


def test_shipped_definitions_are_pip_installs_for_debian_and_ubuntu() -> None:
    """Each shipped key names its pip package for Debian and Ubuntu; none shadows upstream."""
    definitions = shipped()
    assert definitions
    for key, platforms in definitions.items():
        assert key.endswith('-pip'), f'{key}: pip keys end with -pip (rosdistro convention)'
        for platform in PLATFORMS:
            packages = platforms[platform]['pip']['packages']
            assert packages and all(isinstance(name, str) and name for name in packages), key
    assert not set(definitions) & upstream() - {'python3-rosbags-pip'}


def test_litert_pip_name_matches_setup_py() -> None:
    """rosdep installs the same LiteRT distribution that setup.py requires."""
    setup_py = (REPO_ROOT / 'setup.py').read_text(encoding='utf-8')
    (name,) = shipped()['python3-ai-edge-litert-pip']['ubuntu']['pip']['packages']
    assert re.search(rf"'{re.escape(name)}[;' ]", setup_py), name


def test_readme_adds_the_source_before_rosdep_install() -> None:
    """The README's one-line sources.list.d set-up comes before the first rosdep install."""
    text = README.read_text(encoding='utf-8')
    source = re.search(r'rosdep/plant_disease_ros\.yaml.*sources\.list\.d', text)
    install = text.find('rosdep install')
    assert source is not None, 'README: no sources.list.d line for the shipped rosdep file'
    assert 0 <= source.start() < install, 'README: the source set-up must come first'
