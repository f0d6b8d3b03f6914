# Network layer: MQTT 3.1.1 (mqtt), TLS context (tls), reconnection policy (backoff, connection),
# store-and-forward (the forwarder sends what store/spool.py holds) and the AWS IoT Device Shadow protocol (shadow_client).
# Mechanism and policy apart: mqtt speaks the protocol and raises; connection owns reconnection.
