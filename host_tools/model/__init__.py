"""The learned model of a device's normal behaviour: generated streams, training, evaluation."""
