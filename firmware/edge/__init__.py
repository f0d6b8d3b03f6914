# The edge pipeline: config, calibration, detection rules, alerts, diagnosis, shadow documents.
# Runs unchanged on an ESP32 (MicroPython 1.2x), the MicroPython unix port and CPython.
VERSION = "0.1.0"
