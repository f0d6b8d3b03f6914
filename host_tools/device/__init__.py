"""The device side: one link to a board (USB or virtual), board definitions and config checks,
deploying the firmware, injecting certificates, flashing images."""
