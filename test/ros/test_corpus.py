"""Replay the corpus of inputs that once broke a conversion (and the regression guards).

Each entry of ``corpus/index.json`` is turned into the message the node would receive and
run through the same function the node calls; the outcome must be one the entry expects,
within its peak-memory budget (a corrupt frame must not cost gigabytes: the check must
refuse it before decoding). Entries whose bug is still open are strict expected failures.
"""

from __future__ import annotations

import array
import json
import math
from pathlib import Path

import pytest

pytest.importorskip('sensor_msgs.msg')

from helpers.gps import make_fix  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, NavSatFix  # noqa: E402

from plant_disease_ros.core.classifier import Category, Classification  # noqa: E402
from plant_disease_ros.core.detections import detection_feature  # noqa: E402
from plant_disease_ros.core.fix_buffer import FixBuffer  # noqa: E402
from plant_disease_ros.core.image_encoding import ImageConversionError  # noqa: E402
from plant_disease_ros.ros import conversions  # noqa: E402

CORPUS_DIR = Path(__file__).resolve().parent / 'corpus'
INDEX = json.loads((CORPUS_DIR / 'index.json').read_text())


def _entries() -> list:
    """Return the entries as pytest params, open bugs marked as strict expected failures."""
    params = []
    for entry in INDEX['entries']:
        marks = []
        if entry['status'] == 'open':
            marks.append(pytest.mark.xfail(strict=True, reason=f'open: {entry["broke"]}'))
        params.append(pytest.param(entry, id=entry['id'], marks=marks))
    return params


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (VmHWM); return whether it worked."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        return False
    return True


def _rss_kib(field: str) -> int:
    """Return a /proc/self/status memory field (VmRSS, VmHWM) in KiB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise KeyError(field)


def _message(entry: dict):
    """Build the message an entry describes."""
    if entry['kind'] == 'compressed':
        msg = CompressedImage()
        msg.format = entry['format']
        msg.data = array.array('B', (CORPUS_DIR / entry['file']).read_bytes())
        return msg
    if entry['kind'] == 'image':
        msg = Image()
        msg.encoding = entry['encoding']
        msg.width, msg.height, msg.step = entry['width'], entry['height'], entry['step']
        msg.is_bigendian = entry['is_bigendian']
        msg.data = array.array('B', (CORPUS_DIR / entry['file']).read_bytes())
        return msg
    return make_fix(float(entry['latitude']), float(entry['longitude']),
                    float(entry['altitude']), stamp_s=entry['stamp_s'],
                    status=entry['status_value'], accuracy_m=None,
                    variance_m2=entry['covariance'],
                    covariance_type=NavSatFix.COVARIANCE_TYPE_APPROXIMATED)


def _run(entry: dict, msg) -> str:
    """Run the node's conversion of ``msg``; return 'ok' or the reason."""
    if entry['kind'] == 'fix':
        fix, reason = conversions.navsatfix_to_geofix(msg)
        if reason is not None:
            return reason
        buffer = FixBuffer()
        buffer.add(fix)
        lookup = buffer.lookup(fix.stamp_s)
        classification = Classification((Category(0, 'Tomato___healthy', 1.0),), 0, 0, 0)
        feature = detection_feature(stamp_sec=math.floor(fix.stamp_s), stamp_nanosec=0,
                                    frame_id='camera', classification=classification,
                                    fix_lookup=lookup)
        json.loads(conversions.feature_to_string(feature).data)
        return 'ok'
    convert = (conversions.image_to_rgb if entry['kind'] == 'image'
               else conversions.compressed_image_to_rgb)
    try:
        rgb = convert(msg)
    except ImageConversionError as error:
        return error.reason
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype.name == 'uint8'
    return 'ok'


@pytest.mark.parametrize('entry', _entries())
def test_corpus_entry(entry: dict) -> None:
    """The entry gives an expected outcome without a memory spike."""
    msg = _message(entry)
    measured = _reset_peak_rss()
    rss_before = _rss_kib('VmRSS')
    outcome = _run(entry, msg)
    peak_growth_mb = (_rss_kib('VmHWM') - rss_before) / 1024 if measured else 0.0
    assert outcome in entry['expect'], f'{entry["id"]}: got {outcome}'
    assert peak_growth_mb <= entry['max_peak_rss_mb'], \
        f'{entry["id"]}: peak resident memory grew {peak_growth_mb:.0f} MB'


def test_corpus_files_are_small_and_indexed() -> None:
    """Every corpus file is indexed and small (the corpus lives in git)."""
    indexed = {entry['file'] for entry in INDEX['entries'] if 'file' in entry}
    files = {path.name for path in CORPUS_DIR.iterdir() if path.name != 'index.json'}
    assert files == indexed
    assert all((CORPUS_DIR / name).stat().st_size <= 16_384 for name in files)
    assert len({entry['id'] for entry in INDEX['entries']}) == len(INDEX['entries'])
