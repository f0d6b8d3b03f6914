"""Bench work over serial before a board leaves the bench: the sensor check and calibration."""
