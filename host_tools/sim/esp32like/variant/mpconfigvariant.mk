# The ESP32-like runtime (host_tools/sim/esp32like/build.sh passes FROZEN_MANIFEST).
FROZEN_MANIFEST ?= $(VARIANT_DIR)/../manifest.py
