"""The in-process sections: bare invoke, ``classify()``, the message conversions, one map.

No DDS here: these are the costs every rig pays inside a node, timed in the bench process.
"""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.tools.bench.config import BenchConfig, EXPLAIN_GRID, SIZES
from plant_disease_ros.tools.bench.frames import bench_frame, jpeg_bytes
from plant_disease_ros.tools.bench.stats import summarize, time_calls


def bench_model(config: BenchConfig) -> dict[str, Any]:
    """Time bare invoke (1 and 2 threads), classify() and the per-frame conversions."""
    from plant_disease_ros.core.classifier import (
        ClassifierOptions,
        default_model_path,
        DiseaseClassifier,
        labels_beside,
    )
    from plant_disease_ros.core.interpreter_loader import load_interpreter
    from plant_disease_ros.core.preprocessing import center_crop

    model_path = Path(config.model_path) if config.model_path else default_model_path()
    labels_path = Path(config.labels_path) if config.labels_path else labels_beside(model_path)
    iterations = config.model_iterations
    result: dict[str, Any] = {'model_path': str(model_path), 'invoke': {}, 'classify': {},
                              'conversions': {}}
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        model = load_interpreter(model_path, num_threads=threads)
        dtype = np.dtype(model.input.dtype)
        if dtype.kind in 'iu':
            info = np.iinfo(dtype)
            tensor = rng.integers(info.min, info.max + 1, model.input.shape,
                                  dtype=np.int64).astype(dtype)
        else:
            tensor = rng.uniform(0, 255, model.input.shape).astype(dtype)
        model.interpreter.set_tensor(model.input_index, tensor)
        times = time_calls(model.interpreter.invoke, iterations, warmup=20)
        result['invoke'][str(threads)] = summarize(times)
        result['backend'] = model.backend
        result['input'] = f'{model.input_size[0]}x{model.input_size[1]}x3 {dtype.name}'
        del model
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(model_path), labels_path=str(labels_path),
        num_threads=config.num_threads))
    for size, (width, height) in SIZES.items():
        rgb = cv2.cvtColor(bench_frame(width, height), cv2.COLOR_BGR2RGB)
        times = time_calls(lambda image=rgb: classifier.classify(image), iterations)
        result['classify'][size] = summarize(times)
        if size == '640x480':  # what the nodes hand over by default (crop_mode center)
            crop = center_crop(rgb, 1.0)
            times = time_calls(lambda image=crop: classifier.classify(image), iterations)
            result['classify'][f'{size} centre crop'] = summarize(times)
    result['classify_threads'] = config.num_threads
    result['conversions'] = bench_conversions(max(20, iterations // 5))
    return result


def bench_conversions(iterations: int) -> dict[str, Any]:
    """Time the message conversions the nodes do on every frame."""
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from plant_disease_ros.ros.conversions import (
        compressed_image_to_rgb,
        image_to_rgb,
        rgb_to_image,
    )

    result: dict[str, Any] = {}
    for size, (width, height) in SIZES.items():
        bgr = bench_frame(width, height)
        raw = Image(height=height, width=width, encoding='bgr8', step=width * 3)
        raw.data = array.array('B', bgr.tobytes())
        compressed = CompressedImage(format='bgr8; jpeg compressed bgr8')
        compressed.data = array.array('B', jpeg_bytes(bgr))
        rgb = image_to_rgb(raw)
        result[f'image_to_rgb bgr8 {size}'] = summarize(
            time_calls(lambda msg=raw: image_to_rgb(msg), iterations))
        result[f'compressed_image_to_rgb jpeg {size}'] = summarize(
            time_calls(lambda msg=compressed: compressed_image_to_rgb(msg), iterations))
        result[f'rgb_to_image rgb8 {size}'] = summarize(
            time_calls(lambda image=rgb: rgb_to_image(image, Header()), iterations))
        result[f'jpeg bytes {size}'] = len(compressed.data)
    return result


def bench_explanation(config: BenchConfig) -> dict[str, Any]:
    """Time one explanation image (the node's: occlusion map, overlay, caption) on a
    640x480 frame, in-process."""
    from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
    from plant_disease_ros.core.explanation import explanation_image
    from plant_disease_ros.core.outcome import frame_outcome

    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=config.model_path, labels_path=config.labels_path,
        num_threads=config.num_threads))
    rgb = cv2.cvtColor(bench_frame(*SIZES['640x480']), cv2.COLOR_BGR2RGB)
    classification = classifier.classify(rgb)
    outcome = frame_outcome(classification, 0.5)
    first = explanation_image(classifier, rgb, classification, outcome, grid=EXPLAIN_GRID)

    def explain() -> None:
        explanation_image(classifier, rgb, classification, outcome, grid=EXPLAIN_GRID)

    iterations = 10 if config.quick else 30
    return {'heatmap_and_overlay_ms': summarize(time_calls(explain, iterations, warmup=2)),
            'invocations_per_map': first.invokes, 'map': first.state}
