"""Simulated sensor and scanner firmware for demos and tests."""
