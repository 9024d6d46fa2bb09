"""Plant disease classification for field robots: ROS 2 nodes and offline tools."""
