"""What telling the classifier its field's crops costs and what it keeps off the map.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    .venv/bin/python benchmarks/crops.py cost                  # postprocess time, ratios
    .venv/bin/python benchmarks/crops.py off-crop --data ../shared/data/plantvillage

``cost`` classifies one 640×480 frame with every crop and with ``crops: Apple``,
alternating in one run, and prints the p50 postprocess and classify times and their ratio.
``off-crop`` shows each test photo of ``models/split.json`` and ``models/field_split.json``
to a classifier told Apple, Tomato and Potato in turn (those that are not its crop) and
prints how many such leaves of another plant would reach the map as a disease of the
field's crop, and how many of the field's own leaves are rejected, per weight.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.crops import CropFilter
from plant_disease_ros.core.labels import crop_of

REPO = Path(__file__).resolve().parents[1]
FIELD_CROPS = ('Apple', 'Tomato', 'Potato')


def cost(rounds: int) -> None:
    """Print the postprocess and classify p50 of every crop against ``crops: Apple``."""
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(num_threads=2))
    photo = cv2.imread(str(REPO / 'test' / 'data' / 'leaves' / 'Apple___Apple_scab.jpg'))
    frame = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (640, 480))
    times: dict[str, list[tuple[float, float]]] = {'every crop': [], 'crops Apple': []}
    for _ in range(50):
        classifier.classify(frame)
    for _ in range(rounds):
        for name in times:
            classifier.set_crops([] if name == 'every crop' else ['Apple'])
            result = classifier.classify(frame)
            times[name].append((result.postprocess_ms, result.total_ms))
    medians = {name: np.median(np.array(rows), axis=0) for name, rows in times.items()}
    for name, (post, total) in medians.items():
        print(f'{name:12s} postprocess p50 {post:.4f} ms, classify p50 {total:.3f} ms')
    base, told = medians['every crop'], medians['crops Apple']
    print(f'ratio: postprocess x{told[0] / base[0]:.2f}, classify x{told[1] / base[1]:.3f} '
          f'({rounds} frames each, alternating)')


def off_crop(data: str, weights: list[float]) -> None:
    """Print the leaves of other crops accepted, and own leaves rejected, per weight."""
    from plant_disease_ros.training.field_evaluate import domain_frames
    from plant_disease_ros.training.train import DEFAULT_CACHE_DIR

    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(num_threads=2))
    labels = classifier.labels
    no_leaf = labels.index('no_leaf')
    size = classifier.input_size[0]
    domains = domain_frames(str(REPO / 'models' / 'field_split.json'), labels, size,
                            lab_data=data, cache_dir=str(DEFAULT_CACHE_DIR),
                            synthetic_per_kind=0)
    for frames in domains:
        if frames.negative:
            continue
        raw = np.stack([classifier.probabilities(image) for image in frames.images])
        crops = np.array([crop_of(labels[index]) for index in frames.truth])
        for weight in weights:
            off_accepted = off_count = own_rejected = own_count = 0
            for crop in FIELD_CROPS:
                scores = CropFilter(labels, [crop], weight).apply(raw)
                accepted = (scores.argmax(axis=1) != no_leaf) & (scores.max(axis=1) >= 0.5)
                other = crops != crop
                off_accepted += int((accepted & other).sum())
                off_count += int(other.sum())
                own_rejected += int((~accepted & ~other).sum())
                own_count += int((~other).sum())
            print(f'{frames.name:13s} weight {weight:g}: leaves of other crops accepted '
                  f'{100 * off_accepted / off_count:5.1f} % of {off_count}; own-crop leaves '
                  f'rejected {100 * own_rejected / max(own_count, 1):5.1f} % of {own_count}')


def main(argv: list[str] | None = None) -> int:
    """Run the chosen measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    cost_parser = commands.add_parser('cost', help='postprocess time with and without crops')
    cost_parser.add_argument('--rounds', type=int, default=2000)
    off = commands.add_parser('off-crop', help='leaves of other crops reaching the map')
    off.add_argument('--data', required=True, help='the lab photo folder (plantvillage/)')
    off.add_argument('--weights', type=float, nargs='+', default=[0.0, 0.1])
    args = parser.parse_args(argv)
    if args.command == 'cost':
        cost(args.rounds)
    else:
        off_crop(args.data, args.weights)
    return 0


if __name__ == '__main__':
    sys.exit(main())
