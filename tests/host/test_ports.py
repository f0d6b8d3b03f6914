"""`edgeshadow ports` and `--port auto`, with pyserial's port list replaced by pyserial's own
ListPortInfo records (this machine has no USB boards); the ports they name are real ptys."""
import json
import os

import pytest
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from host_tools.cli import main
from host_tools.device.ports import bridge_name, resolve_port
from host_tools.errors import EdgeshadowError
from host_tools.sim.rom import VirtualROM, build_image


def port_info(device, vid=None, pid=None, description="n/a"):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, description
    return info


@pytest.fixture
def machine_ports(monkeypatch):
    """Set the ports pyserial reports: machine_ports(info, ...)."""
    def set_ports(*infos):
        monkeypatch.setattr(list_ports, "comports", lambda include_links=False: list(infos))
    return set_ports


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("vid, pid, name", [
    (0x10C4, 0xEA60, "CP210x"), (0x1A86, 0x7523, "CH340"), (0x1A86, 0x55D4, "CH9102"),
    (0x0403, 0x6001, "FTDI FT232R"), (0x0403, 0x6010, "FTDI FT2232"), (0x0403, 0x6015, "FTDI FT231X"),
    (0x303A, 0x1001, "Espressif USB"), (0x303A, 0x4001, "Espressif USB"),
    (0x0403, 0x6014, None), (0x2341, 0x0043, None), (None, None, None),
])
def test_esp32_bridges_are_recognised_by_usb_id(vid, pid, name):
    assert bridge_name(vid, pid) == name


def test_ports_lists_every_port_and_marks_the_esp32_bridges(machine_ports, capsys):
    machine_ports(port_info("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"),
                  port_info("/dev/ttyACM0", 0x2341, 0x0043, "Arduino Uno"),
                  port_info("/dev/ttyS0"))
    assert main(["ports"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "  /dev/ttyACM0  2341:0043  Arduino Uno",
        "  /dev/ttyS0    -",
        "* /dev/ttyUSB0  10c4:ea60  [CP210x] CP2102 USB to UART Bridge Controller",
    ]
    assert "1 ESP32 candidate(s) marked *; `--port auto` picks it" in err


def test_ports_json_is_one_document_on_stdout(machine_ports, capsys):
    machine_ports(port_info("/dev/ttyACM1", 0x303A, 0x1001, "USB JTAG/serial debug unit"),
                  port_info("/dev/ttyS0"))
    assert main(["ports", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["candidates"] == ["/dev/ttyACM1"]
    assert [(p["device"], p["usb_id"], p["bridge"], p["esp32_bridge"]) for p in doc["ports"]] == [
        ("/dev/ttyACM1", "303a:1001", "Espressif USB", True), ("/dev/ttyS0", None, None, False)]


def test_port_auto_picks_the_only_candidate_or_says_why_not(machine_ports):
    assert resolve_port("/dev/ttyUSB3") == "/dev/ttyUSB3"        # anything but auto: as given
    machine_ports(port_info("/dev/ttyS0"))
    with pytest.raises(EdgeshadowError) as e:
        resolve_port("auto")
    assert e.value.exit_code == 3 and str(e.value).startswith("--port auto: no ESP32 board found")
    machine_ports(port_info("/dev/ttyUSB0", 0x10C4, 0xEA60), port_info("/dev/ttyS0"))
    assert resolve_port("auto") == "/dev/ttyUSB0"
    machine_ports(port_info("/dev/ttyUSB0", 0x10C4, 0xEA60), port_info("/dev/ttyUSB1", 0x1A86, 0x7523))
    with pytest.raises(EdgeshadowError) as e:
        resolve_port("auto")
    assert e.value.exit_code == 2
    assert str(e.value).startswith("--port auto: 2 ESP32 boards found: /dev/ttyUSB0 (CP210x), "
                                   "/dev/ttyUSB1 (CH340)")


def test_flash_port_auto_writes_to_the_only_candidate(machine_ports, tmp_path, capsys):
    image = build_image("esp32", bytes(range(256)) * 40)
    (tmp_path / "app.bin").write_bytes(image)
    with VirtualROM("esp32") as rom:
        machine_ports(port_info(rom.port, 0x10C4, 0xEA60), port_info("/dev/ttyS0"))
        code = main(["flash", "--board", "esp32-devkitc", "--port", "auto",
                     "--firmware", str(tmp_path / "app.bin")])
        assert code == 0, capsys.readouterr().err
        assert bytes(rom.flash[0x1000:0x1000 + len(image)]) == image
    assert f"esp32-devkitc on {rom.port}: ok" in capsys.readouterr().out


def test_logs_port_auto_follows_the_only_candidate(machine_ports, pty, capsys):
    machine_ports(port_info(pty, 0x1A86, 0x55D4))
    assert main(["logs", "--port", "auto", "--seconds", "0.2"]) == 0
    capsys.readouterr()
    machine_ports()
    assert main(["logs", "--port", "auto", "--seconds", "0.2"]) == 3
    assert capsys.readouterr().err.startswith("edgeshadow: error: --port auto: no ESP32 board found")


@pytest.mark.parametrize("command", [["deploy"], ["inject", "--thing", "t-1"], ["bench"],
                                     ["calibrate", "--metric", "current"]])
def test_every_board_command_takes_port_auto(machine_ports, command, capsys):
    machine_ports(port_info("/dev/ttyUSB0", 0x10C4, 0xEA60), port_info("/dev/ttyUSB1", 0x0403, 0x6001))
    assert main(command + ["--port", "auto"]) == 2
    assert "--port auto: 2 ESP32 boards found" in capsys.readouterr().err
