"""config/foxglove_layout.json: a Foxglove layout of the node set's default topics."""

from __future__ import annotations

import json
from pathlib import Path

from plant_disease_ros.ros import node_set

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT = REPO_ROOT / 'config' / 'foxglove_layout.json'
NAMESPACE = '/' + node_set.DEFAULT_NAMESPACE


def panels(tree: object) -> list[str]:
    """Return the panel ids of a layout tree (a panel id or a split of two trees)."""
    if isinstance(tree, str):
        return [tree]
    assert isinstance(tree, dict) and tree['direction'] in ('row', 'column')
    return panels(tree['first']) + panels(tree['second'])


def test_layout_shows_images_map_and_diagnostics() -> None:
    """Every panel of the layout is configured; the four views name the default topics."""
    layout = json.loads(LAYOUT.read_text(encoding='utf-8'))
    ids = panels(layout['layout'])
    assert sorted(ids) == sorted(layout['configById'])
    # Foxglove (and Lichtblick) take a panel's type from its id, before '!'; the types are
    # those the panels register: 'Image', 'map' (lower case), 'DiagnosticSummary'.
    kinds = {panel_id.split('!')[0] for panel_id in ids}
    assert kinds == {'Image', 'map', 'DiagnosticSummary'}
    images = {layout['configById'][panel_id]['imageMode']['imageTopic']
              for panel_id in ids if panel_id.startswith('Image!')}
    assert images == {node_set.DEFAULT_IMAGE_TOPIC, f'{NAMESPACE}/image_annotated'}
    (map_id,) = [panel_id for panel_id in ids if panel_id.startswith('map!')]
    map_topics = set(layout['configById'][map_id]['topicColors'])
    assert map_topics == {
        node_set.DEFAULT_GPS_TOPIC, f'{NAMESPACE}/detections/fix',
        f'{NAMESPACE}/detections/geojson', f'{NAMESPACE}/map/geojson'}
    (diagnostics_id,) = [panel_id for panel_id in ids if panel_id.startswith('Diagnostic')]
    assert layout['configById'][diagnostics_id]['topicToRender'] == '/diagnostics'
