"""Flashing a 1.6 MB image: bytes on the wire, protocol round trips, and the wire time they mean.

Flashes an ESP32 board definition through edgeshadow's flash library onto a virtual ROM
bootloader, which counts every byte in both directions and every request it answers. Two ways:
the ROM's plain FLASH_DATA (what esptool uses against a ROM without the stub, the pty default)
and FLASH_DEFL_DATA (deflate, what esptool uses whenever it can). Wire time = bytes x 10 bits
(8N1) / 460800 baud. The image payload is the MicroPython unix port's own machine code, so it
compresses roughly like real firmware.
"""
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host_tools.device.boards import load_board  # noqa: E402
from host_tools.device.flash import flash_boards  # noqa: E402
from host_tools.sim.rom import VirtualROM, build_image  # noqa: E402

SIZE = 1_600_000
BAUD = 460800


def payload():
    candidates = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/micropython_run*.so"))
    code = Path(candidates[0]).read_bytes() if candidates else os.urandom(65536)
    return (code * (SIZE // len(code) + 1))[:SIZE]


def main():
    board = load_board("esp32-devkitc")
    image = build_image("esp32", payload())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "firmware.bin"
        path.write_bytes(image)
        print(f"image size: {len(image)} bytes")
        for label, options in (("rom_plain", {"compress": False}), ("rom_deflate", {"compress": True})):
            with VirtualROM("esp32") as rom:
                t0 = time.monotonic()
                [result] = flash_boards(board, [rom.port], path, esptool_options=options)
                elapsed = time.monotonic() - t0
                if not result.ok:
                    print(f"{label} failed: {result.detail}")
                    return 1
                assert bytes(rom.flash[0x1000:0x1000 + len(image)]) == image
                s = rom.stats
                print(f"{label} bytes on the wire (host to chip): {s.bytes_in} bytes")
                print(f"{label} bytes on the wire (chip to host): {s.bytes_out} bytes")
                print(f"{label} protocol round trips: {s.requests} requests")
                data_cmd = "FLASH_DEFL_DATA" if options["compress"] else "FLASH_DATA"
                print(f"{label} {data_cmd} packets: {s.commands[data_cmd]} requests")
                print(f"{label} wire time at {BAUD} baud: {s.bytes_total * 10 / BAUD:.1f} s")
                print(f"{label} measured time over the pty: {elapsed:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
