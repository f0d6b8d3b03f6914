# edgeshadow: `make demo` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The ESP32-like runtime (issue: the firmware fits on a real ESP32) is built from a MicroPython source:
# an archive or a checkout. Default: the archive beside the checkout in ../shared/micropython/.
MICROPYTHON_SRC ?= $(firstword $(wildcard ../shared/micropython/micropython-*-src.tar.*))
ESP32LIKE := $(BIN)/micropython-esp32like

.PHONY: setup demo demo-ota test test-hw perf fuzz soak flash deploy sim broker clean help esp32like

help:
	@echo "make setup   create .venv with pinned tools (and install Mosquitto if absent)"
	@echo "make demo    three virtual boards, local broker, shadow service, historian, dashboard, live monitor"
	@echo "make demo-ota  the demo, headless, with a signed update rolled across the three boards"
	@echo "make test    every test: firmware on CPython and MicroPython, host tools, broker (prints its duration)"
	@echo "make test-hw PORT=/dev/ttyUSB0 [CONNECT=1]   acceptance checks of one board on the bench"
	@echo "make perf    benchmarks (figures for the issues' closing notes; also written to perf.json)"
	@echo "make fuzz [FUZZ_SCALE=5] [FUZZ_SEED=n]   fuzz what boards and host tools parse (seeded; 25 times the cases make test runs)"
	@echo "make soak [SOAK_S=600] [BOARDS=5]   virtual boards against the local stack under a chaos schedule, and a real 60 s broker outage"
	@echo "make esp32like [MICROPYTHON_SRC=archive-or-checkout]   build .venv/bin/micropython-esp32like"
	@echo "make flash BOARD=esp32-devkitc PORT=/dev/ttyUSB0 FIRMWARE=ESP32_GENERIC.bin"
	@echo "make deploy PORT=/dev/ttyUSB0 [CONFIG=device.json]"
	@echo "make sim [DEVICES=N]    virtual boards until Ctrl-C"
	@echo "make broker  local Mosquitto (mutual TLS) and shadow service until Ctrl-C"

setup: $(STAMP) mosquitto mosquitto-plugin chromium esp32like-if-source

# Re-run pip only when the pins or the package definition change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

.PHONY: mosquitto
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  echo "Installing Mosquitto from the system's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients; }

# The broker's SUBSCRIBE check (host_tools/cloud/mosquitto_plugin/edgeshadow_acl.c): Mosquitto 2.0's
# acl_file grants every SUBSCRIBE; AWS IoT refuses a filter its policy does not allow. Built against
# the installed Mosquitto's plugin headers (Debian's mosquitto-dev, installed when missing); without
# them setup says so in one line, the broker grants such SUBSCRIBEs and the tests of it are skipped.
ACL_PLUGIN := $(VENV)/lib/mosquitto_edgeshadow_acl.so
.PHONY: mosquitto-plugin
mosquitto-plugin: $(ACL_PLUGIN)
$(ACL_PLUGIN): host_tools/cloud/mosquitto_plugin/edgeshadow_acl.c
	@test -f /usr/include/mosquitto_plugin.h || { \
	  echo "Installing Mosquitto's plugin headers from the system's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-dev libmosquitto-dev; } || true
	@if test -f /usr/include/mosquitto_plugin.h; then \
	  mkdir -p $(@D) && echo "cc -shared -fPIC -O2 -Wall -Wextra -o $@ $<" && cc -shared -fPIC -O2 -Wall -Wextra -o $@ $<; \
	else echo "No Mosquitto plugin headers (mosquitto-dev): the local broker will grant SUBSCRIBE requests its ACL denies"; fi

# Headless Chromium for the dashboard's browser test (tests/host/test_demo.py), driven over the
# DevTools protocol; Debian's package, never a browser download.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
	  echo "Installing Chromium from the system's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# `make esp32like`: the MicroPython unix port built as an ESP32 runs Python (-m32, float32, mbedTLS).
esp32like: $(STAMP) gcc-multilib
	@test -n "$(MICROPYTHON_SRC)" || { echo "make esp32like needs MICROPYTHON_SRC=<a MicroPython 1.2x source archive or checkout>"; exit 2; }
	host_tools/sim/esp32like/build.sh "$(MICROPYTHON_SRC)" $(ESP32LIKE)

$(ESP32LIKE): host_tools/sim/esp32like/build.sh host_tools/sim/esp32like/manifest.py $(wildcard host_tools/sim/esp32like/*.c) $(wildcard host_tools/sim/esp32like/variant/*) $(MICROPYTHON_SRC)
	@$(MAKE) --no-print-directory gcc-multilib
	host_tools/sim/esp32like/build.sh "$(MICROPYTHON_SRC)" $@

# setup builds it when a source is found, and says in one line why not otherwise.
.PHONY: esp32like-if-source gcc-multilib
esp32like-if-source: $(STAMP)
ifeq ($(MICROPYTHON_SRC),)
	@test -x $(ESP32LIKE) || echo "setup: no MicroPython source (../shared/micropython/ or MICROPYTHON_SRC=...): the ESP32-like runtime is not built, and the tests that need it are skipped"
else
	@$(MAKE) --no-print-directory $(ESP32LIKE)
endif

gcc-multilib:
	@printf 'int main(void){return 0;}\n' | gcc -m32 -x c - -o /dev/null 2>/dev/null || { \
	  echo "Installing gcc-multilib from the system's packages (the ESP32-like runtime is a 32-bit build)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib; }

demo: setup
	$(BIN)/edgeshadow demo

demo-ota: setup
	$(BIN)/edgeshadow demo --headless --ota-after 15 --seconds 75

# `make test` runs every tier on pytest-xdist workers: TEST_WORKERS, default two more than the
# cores (much of the suite waits on boards, brokers and schedules: on 2 cores, 3 workers took 288 s
# where 2 took 458 s, at the same load; on 653 of its tests 2, 3 and 4 workers took 147, 122 and
# 119 s, the last at a higher load), each test file on one worker (--dist loadfile: a module's
# broker and boards start once), files in the order tests/conftest.py gives them, the longest first
# (xdist would otherwise start the files with the most tests first: --no-loadscope-reorder). The
# short versions run here, the long ones have their own targets: FUZZ_SCALE=0.2 here (make fuzz: 5),
# a 60 s soak of 5 boards here (make soak: 600 s of 5 boards), the broker outage on a compressed
# clock here (make soak: the real 60 s one). The last line says how long it took, wall and CPU.
# Python writes its bytecode caches here even where PYTHONDONTWRITEBYTECODE is set: without them each
# worker rewrites every test module's asserts again (its collection took 9 s of CPU, 3 s with them)
# and each command a test starts compiles host_tools again. CPU_REPORT=DIR: CPU per test file (tests/_cpu_report.py DIR prints it).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 2 )))
test: setup
	@TIMEFORMAT='make test: %0R s (CPU %0U s user + %0S s sys)'; unset PYTHONDONTWRITEBYTECODE; \
	$(if $(CPU_REPORT),mkdir -p $(CPU_REPORT) && export CPU_REPORT_DIR=$(abspath $(CPU_REPORT));) \
	time FUZZ_SCALE=$(or $(FUZZ_SCALE),0.2) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

test-hw: setup
	@test -n "$(PORT)" || { echo "make test-hw needs PORT=/dev/ttyUSB0 (or a virtual board's port)"; exit 2; }
	$(BIN)/python -m pytest -v tests/hardware --port $(PORT) $(if $(CONNECT),--connect,)

perf: setup
	$(BIN)/python tests/perf/run.py

fuzz: setup
	FUZZ_SCALE=$(or $(FUZZ_SCALE),5) $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

# The long runs make test leaves out: the broker outage at the board's real 1 s interval (60 s down;
# make test runs it at 0.1 s), Mosquitto's 95 s sweep of idle connections, and the chaos soak.
soak: setup
	OUTAGE_INTERVAL_S=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/host/test_net_outage.py
	EDGESHADOW_LONG=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/host/test_broker_hostile.py -k idle_connections
	$(BIN)/edgeshadow soak --seconds $(or $(SOAK_S),600) --boards $(or $(BOARDS),5) $(if $(SOAK_JSON),--json $(SOAK_JSON),)

flash: setup
	$(BIN)/edgeshadow flash --board $(BOARD) --port $(PORT) --firmware $(FIRMWARE)

deploy: setup
	$(BIN)/edgeshadow deploy --port $(PORT) $(if $(CONFIG),--config $(CONFIG),)

sim: setup
	$(BIN)/edgeshadow sim --devices $(or $(DEVICES),1)

broker: setup
	$(BIN)/edgeshadow broker

clean:
	rm -rf $(VENV) run out
