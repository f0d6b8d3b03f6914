# Frozen into the ESP32-like runtime, as the ESP32 port's own firmware freezes them.
include("$(MPY_DIR)/extmod/asyncio")
module("ssl.py", base_path="$(MPY_LIB_DIR)/python-stdlib/ssl")
