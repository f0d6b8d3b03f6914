"""The conventions every `edgeshadow` command keeps (issue 12), checked across commands:
--version; exit codes listed in --help and kept (0 ok, 1 failed, 2 usage, 3 cannot test,
130 interrupted); --help on every command and subcommand; `<cmd> --json` prints one JSON document
and nothing else on stdout; progress never on stdout; bad input as one line naming the file.

Cases whose command is changed on another helper's branch are xfail(strict=True) with the branch
named: they flip (and fail as XPASS) when it is merged, and the marker goes.
"""
import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _broker_fixtures import local_broker  # noqa: F401  (fixture)
from host_tools import cli
from host_tools.cloud import certs
from test_provision import aws, faithful_csr  # noqa: F401  (fixtures: moto, a CSR signed as AWS does)

ROOT = Path(__file__).resolve().parents[2]
HOST_TOOLS = ROOT / "host_tools"
NO_PORT = "/dev/ttyEDGESHADOW-NONE0"  # a port that does not exist
CONFIG = HOST_TOOLS / "data" / "configs" / "grid-sensor.json"
SAMPLE = HOST_TOOLS / "data" / "samples" / "grid-21x60.jsonl"


def lands_with(branch):
    return pytest.mark.xfail(strict=True, reason=f"lands with branch {branch}")


def run(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "host_tools", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def no_traceback(r):
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def one_line_error(r, *names):
    """stderr ends with the one `edgeshadow: error:` line, naming each of `names` (progress lines
    may come before it)."""
    no_traceback(r)
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("edgeshadow: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    for name in names:
        assert str(name) in errors[0], (name, errors[0])
    return errors[0]


def json_doc(r):
    """The one JSON document that is the whole of stdout (json.loads refuses anything after it)."""
    no_traceback(r)
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------- version, help, exit codes

def test_version():
    from importlib import metadata
    r = run("--version")
    assert r.returncode == 0 and r.stdout == f"edgeshadow {metadata.version('edgeshadow')}\n"


def test_help_lists_the_exit_codes():
    r = run("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for code in ("0 ok", "1 failed", "2 usage error", "3 cannot test", "130 interrupted"):
        assert code in text, code


def command_paths(parser, prefix=()):
    """Every command and subcommand of the parser, as argv prefixes."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from command_paths(sub, prefix + (name,))


PATHS = list(command_paths(cli.build_parser()))


def test_the_walk_finds_every_command():
    tops = {p[0] for p in PATHS}
    assert tops == set(cli.command_names()) and len(tops) > 20
    assert ("certs", "check") in PATHS and ("shadow", "get") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_help_works_on_every_command_and_subcommand(path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*path, "--help"])
    out, err = capsys.readouterr()
    assert e.value.code == 0 and err == ""
    assert out.startswith("usage: edgeshadow " + " ".join(path)), out[:200]


def test_a_run_imports_only_its_own_command():
    code = ("import sys; from host_tools import cli\n"
            "try:\n    cli.main(['replay', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('host_tools.commands.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "['host_tools.commands.replay']", out.stdout + out.stderr


@pytest.mark.parametrize("argv", [
    [], ["nosuch"], ["deploy"], ["replay", "--config", CONFIG], ["replay", "--runtime", "jython"],
    ["soak", "--seconds", "5"], ["soak", "--boards", "0"], ["soak", "--heap", "1k"],
    ["replay", "--config", CONFIG, "--input", SAMPLE, "--json"],       # --json on stdout beside JSONL
    ["replay", "--config", CONFIG, "--input", SAMPLE, "--json", "/"],  # --json into a folder
    ["train", "--config", CONFIG, "--input", SAMPLE, "--output", "/tmp/x.json", "--json", "/nonexistent/x.json"],
], ids=lambda a: " ".join(map(str, a)) or "(nothing)")
def test_usage_errors_exit_2(argv):
    r = run(*argv)
    no_traceback(r)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("argv", [
    ["bench", "--port", NO_PORT],
    ["calibrate", "--port", NO_PORT, "--metric", "voltage", "--ref", "1", "2", "--yes"],
    ["deploy", "--port", NO_PORT],
    ["logs", "--port", NO_PORT],
], ids=lambda a: a[0])
def test_a_port_that_does_not_exist_exits_3(argv):
    r = run(*argv)
    one_line_error(r, NO_PORT)
    assert r.returncode == 3


def big_input(tmp_path, things=21, samples=1000):
    from host_tools.sim import reference
    path = tmp_path / "big.jsonl"
    reference.write_jsonl(reference.generate(things, samples, seed=3), path)
    return path


def processes_reading(path):
    """pids of live processes with `path` on their command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(path).encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_ctrl_c_exits_130_and_leaves_no_partial_output(tmp_path, runtime):
    """A replay long enough to still be running when the first progress line shows; Ctrl-C goes to
    the whole process group, as a terminal sends it."""
    inp, out = big_input(tmp_path), tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "host_tools", "replay", "--config", str(CONFIG),
                             "--input", str(inp), "--output", str(out), "--runtime", runtime],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith(f"replaying {inp}"), first
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout.read() == ""
    assert "Traceback" not in rest and rest.strip().splitlines()[-1] == "edgeshadow: interrupted"
    assert list(tmp_path.iterdir()) == [inp]   # no output, no temporary file
    assert processes_reading(inp) == []         # the MicroPython child went with it


def test_dashboard_on_a_missing_database_says_so_and_stops_on_ctrl_c(tmp_path):
    """The URL on stdout; on stderr a warning naming the file that is not there yet."""
    db = tmp_path / "nope" / "historian.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "host_tools", "dashboard", "--db", str(db)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        warning = proc.stderr.readline()
        assert warning.startswith("dashboard: warning: no historian database at") and str(db) in warning
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not db.exists()   # read-only: it made nothing


def test_a_closed_stdout_stops_quietly_with_141():
    """`edgeshadow replay ... | head -1`: no traceback, no message, exit 141 (128 + SIGPIPE)."""
    for runtime in ("cpython", "micropython"):
        proc = subprocess.Popen([sys.executable, "-m", "host_tools", "replay", "--config", str(CONFIG),
                                 "--input", str(SAMPLE), "--runtime", runtime],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().startswith(b'{"alerts"')
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 141 and err == b"", (runtime, err)


# ---------------------------------------------------------------- --json: one document on stdout

def test_json_boards():
    doc = json_doc(run("boards", "--json"))
    assert "esp32-devkitc" in json.dumps(doc)


def test_json_boards_show():
    doc = json_doc(run("boards", "show", "esp32-devkitc", "--json"))
    assert doc["name"] == "esp32-devkitc"


@pytest.fixture
def certs_dir(tmp_path):
    d = tmp_path / "certs"
    certs.init_ca(d / "ca")
    certs.issue_device("grid-001", d / "grid-001", d / "ca")
    return d


def test_json_certs_check(certs_dir):
    r = run("certs", "check", "grid-001", "--certs-dir", certs_dir, "--json")
    assert r.returncode == 0, r.stderr
    assert "grid-001" in json.dumps(json_doc(r))


def test_json_deploy(virtual_board):
    vb = virtual_board("json-001")
    r = run("deploy", "--port", vb.port, "--json")
    assert r.returncode == 0, r.stderr
    assert isinstance(json_doc(r), dict)


def test_json_inject(virtual_board, certs_dir):
    vb = virtual_board("grid-001")
    r = run("inject", "--port", vb.port, "--thing", "grid-001", "--certs-dir", certs_dir, "--json")
    assert r.returncode == 0, r.stderr
    assert "grid-001" in json.dumps(json_doc(r))


def test_json_flash(tmp_path):
    from host_tools.sim.rom import VirtualROM, build_image
    image = tmp_path / "fw.bin"
    image.write_bytes(build_image("esp32", bytes(range(256)) * 100, "4MB"))
    with VirtualROM("esp32") as rom:
        r = run("flash", "--board", "esp32-devkitc", "--port", rom.port, "--firmware", image, "--json")
    assert r.returncode == 0, r.stderr
    assert rom.port in json.dumps(json_doc(r))


@pytest.fixture
def bench_board(tmp_path):
    from test_bench import start_board
    vb = start_board(tmp_path / "board", "nominal", thing="json-bench")
    try:
        yield vb
    finally:
        vb.stop()


def test_json_bench(bench_board):
    r = run("bench", "--port", bench_board.port, "--samples", "5", "--json")
    assert r.returncode == 0, r.stderr
    assert json_doc(r)["result"] == "PASS"


def test_json_calibrate(bench_board):
    r = run("calibrate", "--port", bench_board.port, "--metric", "voltage", "--ref", "12000", "18000", "24000",
            "--samples", "5", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert "voltage" in json.dumps(json_doc(r))


def test_json_monitor(local_broker):
    """One device publishing its reported state; `monitor --once --json` prints the snapshot."""
    import threading
    state = local_broker.state_file()
    stop = threading.Event()
    with local_broker.probe("json-mon-1") as dev:
        def publish():
            while not stop.is_set():
                dev.publish("$aws/things/json-mon-1/shadow/update",
                            {"state": {"reported": {"voltage": 230.0, "alerts": [], "diagnoses": []}}})
                stop.wait(0.3)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        try:
            r = run("monitor", "--local", "--broker-state", state, "--once", "--json", "--expect", "1",
                    "--seconds", "30")
        finally:
            stop.set()
            t.join()
    assert r.returncode == 0, r.stderr
    assert "json-mon-1" in json_doc(r)["devices"]


def test_json_shadow_get(local_broker):
    state = local_broker.state_file()
    with local_broker.probe("json-sh-1") as dev:
        dev.subscribe("$aws/things/json-sh-1/shadow/update/accepted")
        dev.publish("$aws/things/json-sh-1/shadow/update", {"state": {"reported": {"interval_s": 10}}})
        dev.wait_for(lambda m: m.topic.endswith("/accepted"))
    r = run("shadow", "get", "json-sh-1", "--broker-state", state, "--json")
    assert r.returncode == 0, r.stderr
    assert json_doc(r)["state"]["reported"]["interval_s"] == 10


def test_json_provision(aws, faithful_csr, tmp_path, capsys):
    """In-process: moto stands in for AWS only inside this process (tests/host/test_provision.py)."""
    code = cli.main(["provision", "aws", "grid-001", "--certs-dir", str(tmp_path / "certs"), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert "grid-001" in json.dumps(json.loads(out))


def test_json_replay_summary(tmp_path):
    bad = tmp_path / "in.jsonl"
    bad.write_text(SAMPLE.read_text() + "not json\n")
    r = run("replay", "--config", CONFIG, "--input", bad, "--output", tmp_path / "out.jsonl", "--json")
    assert r.returncode == 1
    doc = json_doc(r)
    assert (doc["lines"], doc["records"], doc["bad"]) == (1261, 1260, 1)
    assert doc["problems"] == ["line 1261: not valid JSON"] and r.stderr == "line 1261: not valid JSON\n"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1260


def test_json_file_is_written_whole_and_stdout_keeps_the_results(tmp_path):
    r = run("replay", "--config", CONFIG, "--input", SAMPLE, "--json", tmp_path / "summary.json")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1260
    assert json.loads((tmp_path / "summary.json").read_text())["records"] == 1260
    assert r.stderr == f"wrote {tmp_path / 'summary.json'}\n"


# ---------------------------------------------------------------- progress never on stdout

def _calls_to_stdout(tree):
    """(line, what) of each print() without file= and each sys.stdout.write in `tree`."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "print" and not any(k.arg == "file" for k in node.keywords):
            yield node.lineno, "print"
        if (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
                and f.value.attr == "stdout"):
            yield node.lineno, "sys.stdout.write"


def _library_modules():
    for path in sorted(HOST_TOOLS.rglob("*.py")):
        rel = path.relative_to(HOST_TOOLS)
        if rel.parts[0] in ("commands",) or rel.name in ("cli.py", "output.py", "__main__.py") \
                or rel.parts[:2] == ("sim", "mpy"):  # sim/mpy: the board's own modules
            continue
        yield path


def test_library_modules_never_print_to_stdout():
    """Progress and diagnostics go to stderr (output.say, output.Progress, a callback); stdout is
    the commands' results. A `python -m` tool's main() may print its results."""
    offenders = []
    for path in _library_modules():
        tree = ast.parse(path.read_text())
        mains = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "main"]
        for line, what in _calls_to_stdout(tree):
            if not any(m.lineno <= line <= m.end_lineno for m in mains):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert offenders == [], offenders


JSON_COMMANDS = {  # command module -> the branch giving it --json through output.emit
    "boards": None, "certs": None, "deploy": None, "flash": None, "inject": None,
    "bench": None, "calibrate": None, "monitor": None, "shadow": None, "provision": None,
    "replay": None, "train": None, "soak": None, "ports": None,
}


def _stdout_prints_outside_emit(path):
    """Lines of stdout prints that are not in a function or lambda handed to emit() as its text."""
    tree = ast.parse(path.read_text())
    renderers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "emit":
            text = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "text"), None)
            if isinstance(text, ast.Name):
                renderers.add(text.id)
            elif isinstance(text, ast.Lambda):
                renderers.add(("lambda", text.lineno))
    allowed = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in renderers:
            allowed.append((node.lineno, node.end_lineno))
        if isinstance(node, ast.Lambda) and ("lambda", node.lineno) in renderers:
            allowed.append((node.lineno, node.end_lineno))
    uses_json = "add_json_arg" in path.read_text()
    bad = [line for line, _ in _calls_to_stdout(tree) if not any(a <= line <= b for a, b in allowed)]
    return uses_json, bad


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=lands_with(b)) if b else n for n, b in sorted(JSON_COMMANDS.items())])
def test_json_commands_print_results_only_through_emit(name):
    """A command with --json prints to stdout only in the text renderer it hands to emit(): so with
    --json on stdout nothing but the document is printed, and progress goes to stderr (say)."""
    uses_json, bad = _stdout_prints_outside_emit(HOST_TOOLS / "commands" / f"{name}.py")
    assert uses_json, f"commands/{name}.py has no add_json_arg"
    assert bad == [], f"commands/{name}.py prints to stdout outside emit() at lines {bad}"


# ---------------------------------------------------------------- bad input: one line, naming it

def test_bench_json_into_a_folder_is_refused_before_the_run():
    r = run("bench", "--port", NO_PORT, "--json", "/tmp")
    assert r.returncode == 2 and "/tmp" in r.stderr and NO_PORT not in r.stderr
    no_traceback(r)


def test_bench_plot_to_a_non_image_name_is_refused_before_the_run():
    r = run("bench", "--port", NO_PORT, "--plot", "x.txt")
    assert r.returncode == 2 and "x.txt" in r.stderr and NO_PORT not in r.stderr
    no_traceback(r)


def test_deploy_config_that_is_a_folder_is_named_before_the_port_is_opened():
    r = run("deploy", "--port", NO_PORT, "--config", "/tmp")
    assert r.returncode in (1, 2)
    one_line_error(r, "/tmp")


def test_soak_refuses_a_folder_it_did_not_make(tmp_path):
    """A soak empties its --workdir first: a folder holding anything else is a usage error."""
    (tmp_path / "notes.txt").write_text("mine")
    r = run("soak", "--seconds", "10", "--workdir", tmp_path)
    assert r.returncode == 2
    assert "holds files no soak made" in one_line_error(r, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_os_error_no_command_worded_is_still_one_line_naming_the_file(monkeypatch, capsys):
    from host_tools import replay

    def broken(*a, **kw):
        raise IsADirectoryError(21, "Is a directory", "/some/where")
    monkeypatch.setattr(replay, "run", broken)
    argv = ["replay", "--config", str(CONFIG), "--input", str(SAMPLE)]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == "edgeshadow: error: Is a directory: /some/where\n"
    monkeypatch.setenv("EDGESHADOW_TRACEBACK", "1")
    with pytest.raises(IsADirectoryError):
        cli.main(argv)
