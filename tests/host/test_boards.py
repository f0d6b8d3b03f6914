"""Board definitions, host-side validation of configs against boards, the boards command, and
scenario preparation for the virtual board."""
import json
import subprocess

import pytest

from host_tools import cli

from host_tools.device import board_check
from host_tools.device.boards import list_boards, load_board
from host_tools.errors import EdgeshadowError
from host_tools.sim import scenarios

ISSUE2_CONFIG = {"thing": "grid-sensor-001", "metrics": {
    "voltage": {"unit": "V", "calibration": []}, "current": {"unit": "A", "calibration": []},
    "temperature": {"unit": "C", "calibration": []}, "humidity": {"unit": "%", "calibration": []}}}


def _cfg(**metrics):
    return {"thing": "t", "metrics": {k: {"sensor": v} for k, v in metrics.items()}}


@pytest.mark.parametrize("board", ["esp32-devkitc", "esp32-s3-devkitc-1", "esp32-c3-devkitm-1", "sim"])
def test_issue2_config_fits_every_board_through_its_default_wiring(board):
    assert board_check.check_config(ISSUE2_CONFIG, board) == []
    b = load_board(board)
    assert b["chip"] in ("esp32", "esp32s3", "esp32c3")
    assert b["image_offset"] == (0x1000 if b["chip"] == "esp32" else 0)


def test_adc2_pin_on_esp32_is_refused_naming_the_adc1_pins():
    problems = board_check.check_config(_cfg(voltage={"driver": "ac_rms", "pin": 4}), "esp32-devkitc")
    assert problems == [
        "metrics.voltage.sensor.pin: GPIO4 is an ADC2 pin, and on the ESP32 ADC2 cannot be read "
        "while Wi-Fi is on; use an ADC1 pin (ADC1 pins on esp32-devkitc: GPIO32 to GPIO39)"]
    with pytest.raises(EdgeshadowError, match="GPIO32 to GPIO39"):
        board_check.validate(_cfg(voltage={"driver": "ac_rms", "pin": 4}), "esp32-devkitc")


def test_pin_without_adc_is_refused_naming_the_pins_that_can():
    (p,) = board_check.check_config(_cfg(current={"driver": "adc", "pin": 5}), "esp32-devkitc")
    assert p == ("metrics.current.sensor.pin: GPIO5 cannot do ADC on esp32-devkitc; use one of the "
                 "ADC1 pins on esp32-devkitc: GPIO32 to GPIO39")
    (p,) = board_check.check_config(_cfg(current={"driver": "ac_rms", "pin": 34}), "esp32-c3-devkitm-1")
    assert "GPIO0 to GPIO4" in p


def test_i2c_and_parameter_checks_report_every_problem():
    cfg = _cfg(temperature={"driver": "sht3x", "address": 0x40},
               humidity={"driver": "bme280", "address": 0x76, "quantity": "dew_point"},
               voltage={"driver": "ac_rms", "pin": 34, "mains_hz": 400, "samples_per_cycle": "40",
                        "gain": 2},
               pressure={"driver": "nope"})
    problems = board_check.check_config(cfg, "sim")
    assert "metrics.temperature.sensor.address: 0x40 (64) is not an address a sht3x answers on; " \
           "it answers on 0x44 or 0x45" in problems
    assert "metrics.humidity.sensor.quantity: bme280 reads temperature, humidity, pressure, not " \
           "'dew_point'" in problems
    assert "metrics.voltage.sensor.samples_per_cycle: must be an integer" in problems
    assert any(p.startswith("metrics.voltage.sensor.gain: not a parameter of ac_rms") for p in problems)
    assert any(p.startswith("metrics.voltage.sensor.mains_hz: 400 Hz") for p in problems)
    assert any(p.startswith("metrics.pressure.sensor.driver: unknown driver 'nope'") for p in problems)
    assert len(problems) == 6, problems


def test_two_drivers_on_one_device_and_unwired_metric():
    cfg = _cfg(voltage={"driver": "ac_rms", "pin": 34}, level={"driver": "adc", "pin": 34})
    cfg["metrics"]["pressure"] = {}
    problems = board_check.check_config(cfg, "sim")
    assert any("GPIO34 is already used by metric" in p for p in problems)
    assert any(p.startswith("metrics.pressure: no sensor given") for p in problems)


def test_boards_command(capsys):
    assert cli.main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in list_boards():
        assert name in out
    assert cli.main(["boards", "show", "esp32-devkitc"]) == 0
    out = capsys.readouterr().out
    assert "0x1000" in out and "GPIO32 to GPIO39" in out
    assert cli.main(["boards", "show", "esp32-s3-devkitc-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_offset"] == 0
    assert cli.main(["boards", "show", "nope"]) == 1
    assert "unknown board 'nope'" in capsys.readouterr().err


def test_boards_check_command(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(dict(ISSUE2_CONFIG, board="esp32-devkitc")))
    assert cli.main(["boards", "check", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_cfg(voltage={"driver": "ac_rms", "pin": 25})))
    assert cli.main(["boards", "check", str(bad), "--board", "esp32-devkitc"]) == 1
    captured = capsys.readouterr()
    assert "GPIO25 is an ADC2 pin" in captured.out and "1 problem(s)" in captured.err


def test_every_scenario_prepares(tmp_path):
    for name in scenarios.list_scenarios():
        path = scenarios.prepare(name, "grid-sensor-007", 3, tmp_path / name)
        data = json.loads(path.read_text())
        assert data["hardware"]["adc"]["34"]["ratio"] == 30000.0
        assert len(data["timeline"]["signals"]["voltage"]) >= 2
    assert {"smartgrid", "sag", "swell", "overload", "stuck", "disconnected", "i2c_crc",
            "wifi_outage", "nominal", "noisy"} <= set(scenarios.list_scenarios())
    assert scenarios.ratios() == {"voltage": 30000.0, "current": 1000.0}


def test_scenario_shapes():
    sag = scenarios.build("sag")["timeline"]
    v = sag["signals"]["voltage"]
    i = int(90 / sag["interval_s"])
    assert v[i] < 23000 < v[0]
    overload = scenarios.build("overload")["timeline"]["signals"]
    assert overload["current"][-1] == 780 and overload["temperature"][-1] > 100
    grid = scenarios.build("smartgrid", seed=1)["timeline"]["signals"]
    assert any(x == 100000.0 or x == 0.0 for x in grid["voltage"])    # the anomaly generator ran


def test_unknown_scenario_and_bad_scenario_data():
    with pytest.raises(EdgeshadowError, match="unknown scenario 'nope'"):
        scenarios.prepare("nope", "t", 0, "/tmp/unused")
    problems = scenarios.validate({"source": "x", "events": [{"signal": "volts", "type": "scale"}],
                                   "faults": [{"kind": "crc"}], "wifi_outages": [[5, 1]]})
    assert problems == ["source: must be profile, smartgrid or streams",
                        "events[0].signal: must be one of voltage, current, temperature, humidity, pressure",
                        "events[0].from_s: must be a number", "events[0].factor: must be a number",
                        "faults[0].address: must be an I2C address (integer)",
                        "wifi_outages[0]: must be [from_s, until_s] with from_s < until_s"]


def test_simhw_replays_a_prepared_scenario_in_micropython(tmp_path):
    """simhw.init() reads the prepared file inside the real MicroPython; faults follow the timeline."""
    from tests.conftest import MICROPYTHON, ROOT
    scenarios.prepare("disconnected", "grid-sensor-001", 0, tmp_path, time_scale=20.0)
    code = (f"import sys; sys.path.append('{ROOT}/host_tools/sim/mpy'); sys.path.insert(0, '{ROOT}/firmware')\n"
            "import simhw, time\n"
            f"simhw.init('{tmp_path}')\n"
            "from drivers.sht3x import SHT3x\n"
            "s = SHT3x(simhw.i2c_bus(0), 0x44)\n"
            "print(s.read()[1], simhw.wifi_up())\n"
            "while simhw.elapsed() < 31: time.sleep_ms(20)\n"
            "print(s.read()[1])\n")
    out = subprocess.run([str(MICROPYTHON), "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "True", "disconnected"]


# -- the one validator (issue 12): firmware checks + size + board check, every problem by path --

def _sim_config():
    from host_tools import DATA_DIR
    return json.loads((DATA_DIR / "configs" / "grid-sensor-sim.json").read_text())


def test_validate_config_names_every_problem_with_its_key_path():
    cfg = _sim_config()
    assert board_check.validate_config(cfg)["name"] == "sim"          # the config's own board
    bad = dict(cfg, interval_s="ten", metrics=dict(cfg["metrics"], voltage={
        "unit": "V", "sensor": {"driver": "ac_rms", "pin": 4}}))
    with pytest.raises(EdgeshadowError) as e:
        board_check.validate_config(bad, "esp32-devkitc", where="dev.json")
    msg = str(e.value)
    assert msg.startswith("dev.json: 3 problems: ")
    assert "interval_s: must be a number >= 1" in msg                 # the firmware's own check
    assert "board: the config is for board 'sim', not 'esp32-devkitc'" in msg
    assert "metrics.voltage.sensor.pin: GPIO4 is an ADC2 pin" in msg  # the board check
    with pytest.raises(EdgeshadowError, match=r"board: unknown board 'nope'"):
        board_check.validate_config(dict(cfg, board="nope"))
    with pytest.raises(EdgeshadowError, match=r"\(config\): must be a JSON object"):
        board_check.validate_config([1])


def test_validate_config_refuses_a_config_bigger_than_a_board_takes():
    cfg = _sim_config()
    cfg["sku"] = {"name": "x" * board_check.CONFIG_MAX_BYTES}
    with pytest.raises(EdgeshadowError, match=rf"\(config\): \d+ bytes of JSON; a board takes at most "
                                              rf"{board_check.CONFIG_MAX_BYTES}"):
        board_check.validate_config(cfg)


@pytest.mark.parametrize("make, needle", [
    (lambda d: d, "is a folder; give a JSON file"),
    (lambda d: d / "missing.json", "does not exist"),
    (lambda d: (d / "big.json").write_bytes(b" " * (board_check.CONFIG_FILE_MAX_BYTES + 1)) and d / "big.json",
     "is 64 KB; a device config is at most 8192 bytes"),
    (lambda d: (d / "bin.json").write_bytes(b"\xff\xfe{") and d / "bin.json", "is not UTF-8 text"),
    (lambda d: (d / "bad.json").write_text("{bad") and d / "bad.json", "is not valid JSON"),
])
def test_config_files_that_cannot_be_read_are_one_line(tmp_path, make, needle):
    with pytest.raises(EdgeshadowError) as e:
        board_check.load_config_file(make(tmp_path))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_boards_json_documents_for_list_show_and_check(tmp_path, capsys):
    """Issue 12: `--json [FILE]` on boards list, show and check; stdout holds the document only."""
    assert cli.main(["boards", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in doc["boards"]] == list_boards()
    assert cli.main(["boards", "list", "--json", str(tmp_path / "boards.json")]) == 0
    assert json.loads((tmp_path / "boards.json").read_text()) == doc
    assert "IMAGE AT" in capsys.readouterr().out            # with --json FILE the table is printed too
    assert cli.main(["boards", "show", "sim", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "sim"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(_cfg(voltage={"driver": "ac_rms", "pin": 25}), interval_s="ten")))
    assert cli.main(["boards", "check", str(bad), "--board", "esp32-devkitc", "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and doc["board"] == "esp32-devkitc"
    assert doc["problems"][0] == "interval_s: must be a number >= 1"   # the firmware's validator too
    assert doc["problems"][1].startswith("metrics.voltage.sensor.pin: GPIO25 is an ADC2 pin")
    assert "2 problem(s)" in err
    assert cli.main(["boards", "check", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"edgeshadow: error: config {tmp_path} is a folder; give a JSON file"
