"""Tests: ros."""
