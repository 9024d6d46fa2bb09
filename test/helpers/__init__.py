"""Shared test helpers: ROS rigs, message builders, tiny models."""
