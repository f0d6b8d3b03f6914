"""VirtualBoard: an ESP32 stand-in on a pseudo-terminal that mpremote, ampy and BoardLink use as a
board on USB.

    with VirtualBoard(tmp / "b1", thing="sim-001") as vb:
        subprocess.run(["mpremote", "connect", vb.port, "exec", "print(1)"])

A board is a folder: flash/ is its filesystem (boot.py, main.py, firmware folders, config.json,
board.json, certs/, spool/), sim/ the host-side state (scenario.json, uid, reset_cause, flags,
console.log, supervisor.json). Starting it runs host_tools/sim/supervisor.py, which runs the real
MicroPython unix port behind the port and restarts it on soft and hard resets.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from host_tools import DATA_DIR, FIRMWARE_DIR, ROOT
from host_tools.sim import runtimes
from host_tools.device.boards import load_board
from host_tools.errors import EdgeshadowError
from host_tools.locks import folder_lock

BUNDLED_CONFIG = DATA_DIR / "configs" / "grid-sensor-sim.json"  # the grid sensor with the sim wiring's ratios
START_TIMEOUT_S = 30.0  # generous: CI runs this on 2 busy cores
ESPRESSIF_OUI = "240ac4"
ROMFS_DEFAULT = 256 * 1024  # a ROMFS partition's size when the board definition states none


class VirtualBoard:
    def __init__(self, workdir, thing="sim-001", board="sim", scenario="smartgrid", seed=0,
                 firmware=True, runtime=None, heap=None, mpy=True, ota_partitions=None, romfs=None):
        self.workdir = Path(workdir).resolve()
        self.flash_dir = self.workdir / "flash"
        self.sim_dir = self.workdir / "sim"
        self.thing = thing
        self.board = board
        self.scenario = scenario
        self.seed = seed
        self.firmware = firmware
        # The MicroPython it runs on (default: the ESP32-like runtime where it is built) and the
        # GC heap the firmware gets (default: the board definition's gc_heap).
        self.runtime = runtime or runtimes.default()
        self.heap = heap
        self.mpy = mpy  # the firmware as `edgeshadow deploy` sends it: .mpy (or .py with mpy=False)
        self.ota_partitions = ota_partitions  # bytes per app partition (ota_0, ota_1), or None
        # A ROMFS partition (ESP32-like runtime only: vfs.rom_ioctl over sim/romfs.bin): its size in
        # bytes, default the board definition's romfs_size (0: none, as in the stock ESP32 image).
        # romfs="firmware" also lays the firmware's modules into it, as `deploy --romfs` would.
        self.romfs = romfs
        if romfs is None and self.runtime == "esp32like" and load_board(board).get("romfs_size"):
            self.romfs = "firmware"  # the board has the partition: the firmware is laid into it
        self.proc = None
        self._port = None
        self._lock = folder_lock(self.workdir, "board folder")  # one running board per folder

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=START_TIMEOUT_S):
        """Prepare the folder, power the board on; returns once the firmware has booted and the
        REPL is reachable (main.py may still be running)."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def prepare(self):
        """Lay the board's folder out (firmware, config, board.json) without powering it on, so
        the host can put files in its flash first, as a factory provisions a board."""
        self._lock.acquire()
        try:
            self._prepare()
        finally:
            self._lock.release()

    def launch(self):
        if self.proc is not None:
            raise EdgeshadowError(f"virtual board {self.thing} is already running on {self.port}")
        micropython = runtimes.path(self.runtime)
        heap = self.heap
        if heap is None and self.runtime == "esp32like":
            heap = runtimes.board_heap(load_board(self.board))
        self._lock.acquire()   # before _prepare: it clears the state a running board would be using
        try:
            self._prepare()
            self._spawn(micropython, heap)
        except BaseException:
            self._lock.release()
            raise

    def _spawn(self, micropython, heap):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        args = [sys.executable, "-m", "host_tools.sim.supervisor", str(self.flash_dir),
                str(self.sim_dir), "--link", str(self.workdir / "tty"), "--micropython", str(micropython)]
        if heap:  # the firmware gets `heap`; the stand-ins for the ESP32's C modules get their own
            args += ["--heapsize", str(heap + runtimes.STANDIN_HEAP), "--board-heap", str(heap)]
        romfs_size = self._romfs_size()
        if romfs_size and self.runtime == "esp32like":
            env["EDGESHADOW_ROMFS"] = str(self.sim_dir / "romfs.bin")
            env["EDGESHADOW_ROMFS_SIZE"] = str(romfs_size)
        self._stderr = open(self.sim_dir / "supervisor.err", "wb")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                         stderr=self._stderr, env=env, cwd=str(ROOT))
        except OSError as e:
            self._stderr.close()
            raise EdgeshadowError(f"virtual board {self.thing}: cannot start {sys.executable}: {e.strerror}")

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state.get("pid") == self.proc.pid and state.get("state") == "ready":
                self._port = state["port"]
                return
            if self.proc.poll() is not None:
                err = (self.sim_dir / "supervisor.err").read_text(errors="replace").strip()
                self.stop()
                raise EdgeshadowError(f"virtual board {self.thing} failed to start: "
                                      f"{err.splitlines()[-1] if err else 'no error output'}")
            if time.monotonic() > deadline:
                tail = self.log()[-300:]
                self.stop()
                raise EdgeshadowError(f"virtual board {self.thing} did not reach its REPL within "
                                      f"{timeout:.0f} s; its console ended with: {tail!r}")
            time.sleep(0.02)

    def stop(self):
        """Stop the supervisor and the firmware process; nothing is left running."""
        proc, self.proc = self.proc, None
        if proc is None:
            self._lock.release()
            return
        child = self.state().get("child_pid")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if child:  # normally gone already (the supervisor kills it, and it dies with it)
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._stderr.close()
        self._port = None
        self._lock.release()

    # -- what tests and tools read --------------------------------------------------------------
    @property
    def port(self):
        """The serial device (/dev/pts/N) to give mpremote, ampy or BoardLink."""
        if self._port is None:
            raise EdgeshadowError(f"virtual board {self.thing} is not running")
        return self._port

    @property
    def link(self):
        """A stable path to the port: <workdir>/tty."""
        return str(self.workdir / "tty")

    def state(self):
        try:
            return json.loads((self.sim_dir / "supervisor.json").read_text())
        except (OSError, ValueError):
            return {}

    @property
    def boots(self):
        return self.state().get("boots", 0)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """Everything the board printed since its folder was made."""
        try:
            return (self.sim_dir / "console.log").read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_log(self, text, timeout=20.0, start=0):
        """Wait until `text` appears in the console output after offset `start`; returns the
        offset just past it."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.log()
            i = out.find(text, start)
            if i >= 0:
                return i + len(text)
            if time.monotonic() > deadline:
                raise EdgeshadowError(f"virtual board {self.thing} did not print {text!r} within "
                                      f"{timeout:.0f} s; its console ended with: {out[-300:]!r}")
            time.sleep(0.02)

    def set_flags(self, *flags):
        """Test switches read by the stand-ins at the next boot: ntp_fail, wifi_down."""
        (self.sim_dir / "flags").write_text("".join(f + "\n" for f in flags))

    # -- the folder -------------------------------------------------------------------------
    def _romfs_size(self):
        if self.romfs in (None, "firmware"):
            size = load_board(self.board).get("romfs_size", 0) if self.runtime == "esp32like" else 0
            return size or (ROMFS_DEFAULT if self.romfs == "firmware" else 0)
        return int(self.romfs)

    def _lay_romfs(self, files):
        """Put the firmware's modules in the ROMFS partition, as a factory (or `deploy --romfs`)
        would: the image at the start of an erased partition; boot.py, main.py stay in flash."""
        from host_tools.device import romfs
        rom, on_fs = romfs.split(files)
        image = romfs.build_image(rom)
        size = self._romfs_size()
        if len(image) > size:
            raise EdgeshadowError(f"the firmware's ROMFS image ({len(image)} B) exceeds the partition ({size} B)")
        (self.sim_dir / "romfs.bin").write_bytes(image + b"\xff" * (size - len(image)))
        return on_fs

    def _prepare(self):
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.sim_dir.mkdir(parents=True, exist_ok=True)
        fresh = not any(self.flash_dir.iterdir())
        if self.firmware and fresh:
            from host_tools.device.deploy import local_files
            board = load_board(self.board)
            files, _ = local_files(FIRMWARE_DIR, board["mpy_arch"] if self.mpy else None)
            if self.romfs == "firmware":
                self.sim_dir.mkdir(parents=True, exist_ok=True)
                files = self._lay_romfs(files)
            for path, data in files.items():
                dest = self.flash_dir / path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        config = self.flash_dir / "config.json"
        if not config.exists():
            data = json.loads(BUNDLED_CONFIG.read_text())
            data["thing"] = self.thing
            data["board"] = self.board
            config.write_text(json.dumps(data, indent=1) + "\n")
        board_json = self.flash_dir / "board.json"
        if not board_json.exists():
            board_json.write_text(json.dumps(load_board(self.board), indent=1) + "\n")
        uid = self.sim_dir / "uid"
        if not uid.exists():
            uid.write_text(ESPRESSIF_OUI + hashlib.sha256(self.thing.encode()).hexdigest()[:6])
        if self.scenario:
            try:
                from host_tools.sim import scenarios
            except ImportError:
                scenarios = None
            if scenarios is not None:
                scenarios.prepare(self.scenario, self.thing, self.seed, self.sim_dir, board=self.board)
        if self.ota_partitions and not (self.sim_dir / "partitions.json").exists():
            # an OTA partition table: two app partitions (sparse files) and otadata, erased
            for label in ("ota_0", "ota_1"):
                with open(self.sim_dir / f"{label}.bin", "wb") as f:
                    f.truncate(self.ota_partitions)
            (self.sim_dir / "otadata.bin").write_bytes(b"\xff" * 512)
            (self.sim_dir / "partitions.json").write_text(json.dumps(
                {"ota_0": self.ota_partitions, "ota_1": self.ota_partitions}))
        for stale in ("supervisor.json", "reset_cause"):
            try:
                (self.sim_dir / stale).unlink()
            except FileNotFoundError:
                pass


def start_boards(n, workdir, thing_prefix="sim", board="sim", scenario="smartgrid", seed=0,
                 firmware=True, timeout=START_TIMEOUT_S, runtime=None, heap=None):
    """Start n boards in workdir/<thing> (things <prefix>-001...), all booting at once; stops
    those already started if one fails."""
    if n < 1:
        raise EdgeshadowError(f"the number of boards must be at least 1, got {n}")
    boards = [VirtualBoard(Path(workdir) / f"{thing_prefix}-{i:03d}", f"{thing_prefix}-{i:03d}",
                           board, scenario, seed + i, firmware, runtime, heap)
              for i in range(1, n + 1)]
    try:
        for b in boards:
            b.launch()
        for b in boards:
            b.wait_ready(timeout)
    except BaseException:
        stop_boards(boards)
        raise
    return boards


def stop_boards(boards):
    for b in boards:
        b.stop()
