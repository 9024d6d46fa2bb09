"""How well, and at what cost, the classifier node tells that its frames are smeared.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    .venv/bin/python benchmarks/motion_blur.py cost [--rounds 300] [--threads 2]
    .venv/bin/python benchmarks/motion_blur.py accuracy [--part test] [--plot FILE.png]

``cost`` times the blind motion blur estimate (``core.motion_blur``) and the classifier on
the same frames, alternating in one run (a busy machine slows both alike), at the
centred crops of a 640×480 and a 1280×960 camera, and prints the p50 of each, their
ratio, and the average per frame at the node's default of one estimate every 5 frames.

``accuracy`` shows the held-out photos of each domain (``models/field_split.json`` and
the lab split beside it) as 640×480 frames smeared along their rows by 0 to 49 px, as
``plant-disease evaluate --frames 640x480 --motion-blur PX`` does, keeps the frames the
node estimates (the shipped model at the launch defaults does not label them
``no_leaf``), and prints per domain and blur the median estimate (percent of the
classified crop's side) and how often the node's monitor (the median of 15 frames drawn
at random from the domain, seeded) is above its 5 % default and would warn.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import cv2
import numpy as np

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.motion_blur import estimate_motion_blur, MotionBlurMonitor
from plant_disease_ros.core.outcome import frame_outcome
from plant_disease_ros.core.preprocessing import center_crop
from plant_disease_ros.core.vegetation import check_frame

REPO = Path(__file__).resolve().parents[1]
BLURS_PX = (0, 9, 17, 25, 33, 49)
WINDOW = 15
DRAWS = 1000


def cost(rounds: int, threads: int) -> None:
    """Print the p50 of the estimate and of classify on the same crops, and their ratio."""
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(num_threads=threads))
    photo = cv2.imread(str(REPO / 'test' / 'data' / 'leaves' / 'Tomato___Late_blight.jpg'))
    rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    for width, height in ((640, 480), (1280, 960)):
        crop = np.ascontiguousarray(center_crop(cv2.resize(rgb, (width, height)), 1.0))
        for _ in range(20):
            classifier.classify(crop)
            estimate_motion_blur(crop)
        estimate_ms, classify_ms = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            estimate_motion_blur(crop)
            estimate_ms.append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            classifier.classify(crop)
            classify_ms.append((time.perf_counter() - start) * 1e3)
        blur, classify = float(np.median(estimate_ms)), float(np.median(classify_ms))
        print(f'{width}x{height} camera, {crop.shape[1]}x{crop.shape[0]} crop: estimate p50 '
              f'{blur:.3f} ms, classify p50 {classify:.3f} ms (estimate x{blur / classify:.2f} '
              f'of classify); one in 5 frames: +{blur / 5:.3f} ms a frame '
              f'(+{100 * blur / 5 / classify:.0f} %)')
    print(f'{rounds} rounds each, alternating, {threads} threads, {classifier.model.backend}')


def held_out_photos(part: str) -> dict[str, tuple[Path, list[tuple[str, int]]]]:
    """Return ``{domain: (root, files)}`` of the lab and field split part ``part``."""
    from plant_disease_ros.training.dataset import read_manifest
    from plant_disease_ros.training.field_data import (
        domain_files,
        lab_files,
        read_field_split,
        resolve_lab_split,
    )

    path = REPO / 'models' / 'field_split.json'
    manifest = read_field_split(path)
    labels = manifest['labels']
    lab_root, lab = lab_files(read_manifest(resolve_lab_split(manifest, path)), labels, part)
    photos = {'lab': (REPO / lab_root, lab)}
    for domain in manifest['domains']:
        root, files, _ = domain_files(manifest, domain, part)
        photos[domain] = (REPO / root, files)
    return photos


def accuracy(part: str, plot: Path | None) -> None:
    """Print the estimate's median and the monitor's warning rate per domain and blur."""
    from plant_disease_ros.training.camera_frames import CameraFraming
    from plant_disease_ros.training.dataset import read_rgb

    classifier = DiseaseClassifier.create_from_options(ClassifierOptions())
    rng = np.random.default_rng(0)
    table: dict[str, dict[int, tuple[float, float, float, float, int]]] = {}
    counts: dict[str, int] = {}
    for domain, (root, files) in held_out_photos(part).items():
        estimates: dict[int, list] = {blur: [] for blur in BLURS_PX}
        started = time.monotonic()
        for number, (name, _) in enumerate(files, start=1):
            rgb = read_rgb(root / name)
            if rgb is None:
                continue
            for blur in BLURS_PX:
                crop = center_crop(CameraFraming(motion_blur_px=blur).frame(rgb), 1.0)
                outcome = frame_outcome(classifier.classify(crop), 0.5, check_frame(crop))
                if outcome.kind != 'no_leaf':
                    estimates[blur].append(estimate_motion_blur(crop))
            if number % 200 == 0 or number == len(files):
                print(f'  {domain}: {number}/{len(files)} photos, '
                      f'{time.monotonic() - started:.0f} s', file=sys.stderr, flush=True)
        table[domain] = {}
        counts[domain] = len(estimates[0])
        for blur, found in estimates.items():
            if len(found) < WINDOW:
                continue  # too few for a window: a table cell '-'
            percents = np.array([estimate.percent for estimate in found])
            warned = 0
            for _ in range(DRAWS):
                monitor = MotionBlurMonitor(every=1, window=WINDOW)
                for index in rng.integers(0, len(found), WINDOW):
                    monitor.add(found[index])
                warned += bool(monitor.warning)
            p10, p50, p90 = np.percentile(percents, [10, 50, 90])
            table[domain][blur] = (p10, p50, p90, 100.0 * warned / DRAWS, len(found))
    side = 480  # the centred square of a 640×480 frame
    print(f'\n{part} photos as 640x480 frames, smeared along the rows; crop {side} px. '
          'Per blur: the median estimate, % of the crop side (p10-p90); share of '
          f'{WINDOW}-frame windows whose median is over 5 % (warned)')
    print('| domain (frames estimated at 0 px) | ' + ' | '.join(
        f'{blur} px = {100 * blur / side:.1f} %' for blur in BLURS_PX) + ' |')
    print('| --- |' + ' ---: |' * len(BLURS_PX))
    for domain, rows in table.items():
        cells = [f'{rows[blur][1]:.1f} ({rows[blur][0]:.1f}-{rows[blur][2]:.1f}); '
                 f'{rows[blur][3]:.0f} %' if blur in rows else '-' for blur in BLURS_PX]
        print(f'| {domain} ({counts[domain]}) | ' + ' | '.join(cells) + ' |')
    if plot is not None:
        save_plot(table, side, plot)


def save_plot(table: dict, side: int, path: Path) -> None:
    """Draw the median estimate (p10-p90 band) against the true smear, per domain."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    truth = [100 * blur / side for blur in BLURS_PX]
    axes.plot(truth, truth, color='0.6', linestyle='--', label='estimate = smear')
    axes.axhline(5.0, color='tab:red', linewidth=0.8, label='warns above (5 %)')
    for domain, rows in table.items():
        blurs = [blur for blur in BLURS_PX if blur in rows]
        if not blurs:
            continue  # too few frames estimated (non-leaf scenes): nothing to draw
        xs = [100 * blur / side for blur in blurs]
        line, = axes.plot(xs, [rows[blur][1] for blur in blurs], marker='o', label=domain)
        axes.fill_between(xs, [rows[blur][0] for blur in blurs],
                          [rows[blur][2] for blur in blurs], color=line.get_color(),
                          alpha=0.12)
    axes.set_xlabel('smear along the rows, % of the classified crop (480 px)')
    axes.set_ylabel('estimate, % (median, p10-p90 band)')
    axes.set_title('Blind motion blur estimate on held-out frames')
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    print(f'plot: {path}')


def main() -> None:
    """Parse the arguments and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    timing = commands.add_parser('cost', help='time the estimate against classify')
    timing.add_argument('--rounds', type=int, default=300)
    timing.add_argument('--threads', type=int, default=2)
    quality = commands.add_parser('accuracy', help='the estimate on held-out photos')
    quality.add_argument('--part', choices=('val', 'test'), default='test')
    quality.add_argument('--plot', type=Path, default=None)
    args = parser.parse_args()
    if args.command == 'cost':
        cost(args.rounds, args.threads)
    else:
        accuracy(args.part, args.plot)


if __name__ == '__main__':
    main()
