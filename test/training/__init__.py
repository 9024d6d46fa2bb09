"""Tests of the explanation, embedding and report tools (plant_disease_ros.training)."""
