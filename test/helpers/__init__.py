"""Shared test helpers.

- ``ros``: waiting on conditions (``wait_for``), the in-process ``Harness``, result and
  diagnostics collectors, a classifier node on the shipped model.
- ``images``: the leaf photos of the test data and the camera messages built from them.
- ``shipped_model``: the shipped model's paths and the one loader of its classifier.
- ``processes``: the nodes as processes (``ros.node_set`` command lines started by
  ``tools.process``) in the run's ROS environment, which test/conftest.py sets.
- ``gps``: ``make_fix``, the one builder of NavSatFix messages.
- ``fuzz_messages``: seeded good and bad Image, CompressedImage and NavSatFix messages.
- ``tiny_model``: tiny TFLite models of the model contract; ``stream_publisher``: a
  camera-driver stand-in run as its own process.
- ``filesystems``: a small tmpfs (or loop-mounted ext4) to fill up or mount read-only.
"""
