"""plant_disease_pipeline: camera_subscriber and disease_classifier in one process.

Both nodes keep their names, parameters and topics, and spin in one single-threaded
executor. rclpy has no intra-process transport, so the pipeline does the next best
thing: the camera node hands each RGB frame straight to the classifier (no
serialisation, no copy, no RGB -> message -> RGB round trip) and publishes ``frames``
only while something else subscribes to it. On a Raspberry Pi every copy counts.
"""

from __future__ import annotations

import sys
from typing import Any

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode
from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode
from plant_disease_ros.ros.startup import release_failed_node, run_nodes

LOGGER_NAME = 'plant_disease_pipeline'


def create_pipeline(**node_kwargs: Any) -> tuple[CameraSubscriberNode, DiseaseClassifierNode]:
    """Create both nodes with the camera's frames handed to the classifier in-process.

    ``node_kwargs`` (context, parameter_overrides, ...) go to both node constructors.
    """
    classifier = DiseaseClassifierNode(subscribe_frames=False, **node_kwargs)
    try:
        camera = CameraSubscriberNode(**node_kwargs)
    except Exception:
        # The classifier started: released like a node that failed to start (in a node
        # process that is about to exit, destroying it could crash before the error line).
        release_failed_node(classifier)
        raise
    camera.add_frame_listener(classifier.process_frame)
    return camera, classifier


def main(args: list[str] | None = None) -> int:
    """Run both nodes in one executor until shutdown; return the exit code."""
    return run_nodes(LOGGER_NAME, create_pipeline, args)


if __name__ == '__main__':
    sys.exit(main())
