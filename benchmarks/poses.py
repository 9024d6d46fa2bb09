"""What averaging right-angle poses of each frame (``test_time_poses``) costs per frame.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    .venv/bin/python benchmarks/poses.py [--rounds 300] [--threads 2]

Classifies one 640×480 frame with 1, 2, 4 and 8 poses, alternating in one run (so a
busy machine slows every count alike), and prints the p50 invoke and classify times of
each and their ratio to one pass. What the poses buy is measured on the test photos with
``plant-disease evaluate --poses N`` (see the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.preprocessing import POSE_COUNTS

REPO = Path(__file__).resolve().parents[1]


def cost(rounds: int, threads: int) -> None:
    """Print the invoke and classify p50 of every pose count, and ratios to one pose."""
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(num_threads=threads))
    photo = cv2.imread(str(REPO / 'test' / 'data' / 'leaves' / 'Tomato___Late_blight.jpg'))
    frame = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), (640, 480))
    times: dict[int, list[tuple[float, float]]] = {count: [] for count in POSE_COUNTS}
    for _ in range(30):
        classifier.classify(frame)
    for _ in range(rounds):
        for count in POSE_COUNTS:
            classifier.set_poses(count)
            result = classifier.classify(frame)
            times[count].append((result.invoke_ms, result.total_ms))
    medians = {count: np.median(np.array(rows), axis=0) for count, rows in times.items()}
    base = medians[1]
    for count, (invoke, total) in medians.items():
        print(f'{count} pose{"s" if count > 1 else " "}: invoke p50 {invoke:.3f} ms, classify '
              f'p50 {total:.3f} ms (x{invoke / base[0]:.2f} / x{total / base[1]:.2f})')
    print(f'{rounds} frames per count, alternating, {threads} threads, '
          f'{classifier.model.backend}')


def main() -> None:
    """Parse the arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=300)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    cost(args.rounds, args.threads)


if __name__ == '__main__':
    main()
