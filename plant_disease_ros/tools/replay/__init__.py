"""Replay a rosbag2 bag through the plant disease pipeline and record what comes out.

The bag's camera topic (sensor_msgs/Image or CompressedImage) and GNSS topic
(sensor_msgs/NavSatFix) are found by type unless named, and published with rclpy exactly
as recorded (the CDR bytes, header stamps unchanged), with ``/clock`` for nodes on
``use_sim_time``: at the recorded speed, ``rate`` times it, or ``fast`` (each frame once
the previous one is classified). The pipeline is the launch's node set, started here in
``namespace``, or a running one (``attach``). Its ``label``, ``classification``,
``detections`` and ``markers`` go to a new MCAP bag; at the end the recorder's ``~/save``
service writes the GeoJSON and the map is rendered as PNG.

Modules: ``bag`` (reading, topic choice), ``player`` (the replay's node), ``recorder``
(output bag and counts), ``received`` (the detections received, kept in a temporary file
for the map, not in memory), ``playback`` (pacing), ``progress``, ``outputs`` (output
names, map save and PNG), ``overrides`` (did the nodes take the ``-p`` overrides),
``summary``, ``run`` (the whole replay).
"""

from plant_disease_ros.tools.replay.bag import (
    BagSelection,
    inspect_bag,
    open_bag,
    select_topics,
    TopicChoice,
)
from plant_disease_ros.tools.replay.options import (
    DEFAULT_NAMESPACE,
    FIX_LEAD_S,
    FRAME_TIMEOUT_S,
    ReplayError,
    ReplayOptions,
    STARTUP_TIMEOUT_S,
)
from plant_disease_ros.tools.replay.outputs import (
    output_paths,
    ReplayOutputs,
    save_when_complete,
)
from plant_disease_ros.tools.replay.received import ReceivedDetections
from plant_disease_ros.tools.replay.recorder import OutputCounts, OutputRecorder
from plant_disease_ros.tools.replay.run import pipeline_commands, pipeline_options, replay
from plant_disease_ros.tools.replay.summary import ReplaySummary

__all__ = [
    'BagSelection', 'DEFAULT_NAMESPACE', 'FIX_LEAD_S', 'FRAME_TIMEOUT_S', 'inspect_bag',
    'open_bag', 'output_paths', 'OutputCounts', 'OutputRecorder', 'pipeline_commands',
    'pipeline_options', 'ReceivedDetections', 'replay', 'ReplayError', 'ReplayOptions',
    'ReplayOutputs', 'ReplaySummary', 'save_when_complete', 'select_topics',
    'STARTUP_TIMEOUT_S', 'TopicChoice',
]
