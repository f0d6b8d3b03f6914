"""`edgeshadow bench` refuses arguments it cannot use before it talks to a board (exit 2)."""
import json
import subprocess
import sys


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "host_tools.cli", "bench", "--port", "/dev/null", *args],
                          capture_output=True, text=True, timeout=60)


def test_a_missing_limits_file_is_a_usage_error_naming_it(tmp_path):
    r = _bench("--limits", str(tmp_path / "nope.json"))
    assert r.returncode == 2, r.stderr
    assert "--limits: cannot read bench limits" in r.stderr and "nope.json" in r.stderr
    assert r.stdout == ""


def test_a_limits_file_with_a_bad_entry_is_a_usage_error_naming_the_entry(tmp_path):
    bad = tmp_path / "limits.json"
    bad.write_text(json.dumps({"defaults": {"voltage": {"min": "low"}}}))
    r = _bench("--limits", str(bad))
    assert r.returncode == 2, r.stderr
    assert "defaults.voltage.min: must be a number" in r.stderr
