"""The MicroPython stand-ins for machine, network, esp32 and ntptime, on a running virtual board."""
import pytest

from host_tools.errors import EdgeshadowError
from host_tools.device.link import BoardLink


@pytest.fixture
def board(virtual_board):
    vb = virtual_board("hw-001", firmware=False, scenario="nominal")
    with BoardLink(vb.port) as link:
        link.vb = vb
        yield link


def test_machine_identity_and_reset_constants(board):
    uid = (board.vb.sim_dir / "uid").read_text().strip()
    got = board.eval("__import__('machine').unique_id().hex()")
    assert got == uid and len(got) == 12
    assert board.eval("[getattr(__import__('machine'), n) for n in "
                      "('PWRON_RESET', 'HARD_RESET', 'WDT_RESET', 'DEEPSLEEP_RESET', 'SOFT_RESET')]"
                      ) == [1, 2, 3, 4, 5]
    assert board.eval("__import__('machine').reset_cause()") == 1
    assert board.eval("__import__('machine').freq()") == 160000000
    # the id survives a restart of the firmware process (a soft reset keeps the reset cause)
    boots = board.vb.boots
    board.exec("import machine\nmachine.soft_reset()", timeout=3)
    assert board.eval("__import__('machine').unique_id().hex()") == uid
    assert board.vb.boots == boots + 1
    assert board.eval("__import__('machine').reset_cause()") == 1


def test_i2c_and_adc_reach_the_simulated_hardware(board):
    board.exec("from machine import I2C, SoftI2C, ADC, Pin\ni2c = I2C(0, scl=Pin(22), sda=Pin(21))")
    found = board.eval("i2c.scan()")
    assert found, "the nominal scenario wires at least one I2C chip"
    with pytest.raises(EdgeshadowError, match="OSError: .*19|ENODEV"):
        board.exec("i2c.readfrom(0x01, 2)")  # nobody at 0x01: as on a board
    assert board.eval("SoftI2C(scl=Pin(22), sda=Pin(21)).scan()") == found
    values = board.eval("[ADC(Pin(34), atten=ADC.ATTN_11DB).read_u16() for _ in range(50)]")
    assert all(0 <= v <= 65535 for v in values) and len(set(values)) > 5  # a live signal
    assert 0 <= board.eval("ADC(Pin(34)).read_uv()") <= 3300000


def test_network_esp32_and_ntptime(board):
    board.exec("import network, esp32, ntptime\nw = network.WLAN(network.STA_IF)")
    assert board.eval("w.isconnected()") is False
    board.exec("w.active(True)\nw.connect('ssid', 'key')")
    assert board.eval("(w.isconnected(), w.status() == network.STAT_GOT_IP)") == (True, True)
    assert -100 < board.eval("w.config('rssi')") < 0
    assert board.eval("w.ifconfig()[0]") == "127.0.0.1"
    assert 0 < board.eval("esp32.mcu_temperature()") < 100
    board.exec("ntptime.settime()")
    board.vb.set_flags("ntp_fail", "wifi_down")
    board.exec("import machine\nmachine.soft_reset()", timeout=3)
    board.vb.wait_for_log("MPY: soft reboot")
    board.exec("import network, ntptime\nw = network.WLAN(0)\nw.active(True)\nw.connect('s', 'k')")
    assert board.eval("w.isconnected()") is False
    with pytest.raises(EdgeshadowError, match="OSError"):
        board.exec("ntptime.settime()")
