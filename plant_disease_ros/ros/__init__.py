"""ROS glue every node shares: message conversions, QoS, diagnostics and start-up."""
