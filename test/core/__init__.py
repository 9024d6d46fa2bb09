"""Tests of plant_disease_ros.core (plain pytest, no rclpy)."""
