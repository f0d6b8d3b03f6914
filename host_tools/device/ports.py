"""Serial ports on this machine, with the USB-to-UART bridges ESP32 boards carry marked, and
`--port auto` for every command that talks to a board.

    for p in list_ports(): print(p.device, p.bridge)
    port = resolve_port(args.port)     # "auto" -> the only ESP32 candidate; anything else as given

Ports come from pyserial (serial.tools.list_ports.comports), which reads sysfs on Linux: virtual
boards (pseudo-terminals) are not listed, so `auto` finds real boards only.
"""
from dataclasses import asdict, dataclass

from host_tools.errors import EXIT_UNTESTED, EXIT_USAGE, EdgeshadowError

# USB vendor:product ids of the bridges on ESP32 boards (None: every product of the vendor).
ESP32_BRIDGES = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6015): "FTDI FT231X",
    (0x303A, None): "Espressif USB",
}
AUTO = "auto"


@dataclass
class SerialPort:
    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    manufacturer: str | None
    bridge: str | None          # the ESP32 USB bridge it is, or None

    @property
    def usb_id(self):
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else ""

    def to_json(self):
        return {**asdict(self), "usb_id": self.usb_id or None, "esp32_bridge": self.bridge is not None}


def bridge_name(vid, pid):
    """'CP210x' for 10c4:ea60, 'Espressif USB' for any 303a:*, None for the rest."""
    if vid is None:
        return None
    return ESP32_BRIDGES.get((vid, pid)) or ESP32_BRIDGES.get((vid, None))


def list_ports():
    """Every serial port pyserial finds, sorted by device name."""
    from serial.tools import list_ports as lp
    ports = []
    for info in lp.comports():
        desc = info.description if info.description and info.description != "n/a" else ""
        ports.append(SerialPort(info.device, desc, info.vid, info.pid, info.serial_number,
                                info.manufacturer, bridge_name(info.vid, info.pid)))
    return sorted(ports, key=lambda p: p.device)


def candidates(ports=None):
    """The ports that look like an ESP32 board: a known USB bridge."""
    return [p for p in (list_ports() if ports is None else ports) if p.bridge]


def resolve_port(value):
    """`value` as given, or for "auto" the only ESP32 candidate; EdgeshadowError when there is
    none (exit 3: no board to work on) or more than one (exit 2: say which with --port)."""
    if value != AUTO:
        return value
    found = candidates()
    if len(found) == 1:
        return found[0].device
    if not found:
        raise EdgeshadowError("--port auto: no ESP32 board found (no serial port with a CP210x, "
                              "CH340, CH9102, FTDI or Espressif USB bridge)",
                              hint="connect the board, check `edgeshadow ports`, or give --port",
                              exit_code=EXIT_UNTESTED)
    listed = ", ".join(f"{p.device} ({p.bridge})" for p in found)
    raise EdgeshadowError(f"--port auto: {len(found)} ESP32 boards found: {listed}",
                          hint="choose one with --port", exit_code=EXIT_USAGE)
