"""The virtual board as real tools see it: mpremote and ampy (their CLIs, as users run them)
against a VirtualBoard, resets (soft, machine.reset, watchdog), Ctrl-C, and clean shutdown."""
import hashlib
import subprocess
import time

import pytest

from host_tools.errors import EdgeshadowError
from host_tools.device.link import BoardLink
from host_tools.sim import runtimes
from host_tools.sim.board import VirtualBoard
from tests.host.conftest import AMPY, MPREMOTE, firmware_without_app, processes_of

TICKER = """\
import time, machine
print('reset_cause=%d' % machine.reset_cause())
n = 0
while True:
    n += 1
    print('tick', n)
    time.sleep(0.05)
"""


def run(*args, timeout=60):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def mpremote(port, *args):
    return run(MPREMOTE, "connect", port, *args)


@pytest.fixture
def ticker_board(tmp_path):
    """A board whose main.py loops forever printing ticks (as a firmware's main loop does)."""
    flash = tmp_path / "tick-001" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(TICKER)
    vb = VirtualBoard(tmp_path / "tick-001", thing="tick-001", firmware=False)
    try:
        vb.start()
        yield vb
    finally:
        vb.stop()
        assert processes_of(vb.sim_dir) == []


def test_mpremote_without_resume_exec_cp_ls_cat_sha256_and_soft_reset(virtual_board, tmp_path):
    vb = virtual_board("sim-001")
    src = tmp_path / "payload.py"
    src.write_text("".join(f"line_{i} = {i * i}\n" for i in range(400)))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = mpremote(vb.port, "exec", "print('sum', 40 + 2)")
    assert "sum 42" in out
    out = mpremote(vb.port, "fs", "mkdir", ":lib", "+", "fs", "cp", str(src), ":lib/payload.py",
                   "+", "fs", "ls", ":lib", "+", "fs", "sha256sum", ":lib/payload.py",
                   "+", "fs", "cat", ":lib/payload.py")
    assert f"{src.stat().st_size} payload.py" in out
    assert digest in out
    assert "line_399 = 159201" in out
    assert (vb.flash_dir / "lib" / "payload.py").read_bytes() == src.read_bytes()
    boots = vb.boots
    out = mpremote(vb.port, "soft-reset", "+", "exec", "import payload; print(payload.line_12)")
    assert "144" in out
    assert vb.boots > boots  # the firmware process was restarted, as a soft reset does
    back = tmp_path / "back.py"
    mpremote(vb.port, "fs", "cp", ":lib/payload.py", str(back), "+", "fs", "rm", ":lib/payload.py")
    assert back.read_bytes() == src.read_bytes()
    assert not (vb.flash_dir / "lib" / "payload.py").exists()


def test_mpremote_resume_keeps_the_running_session(virtual_board):
    vb = virtual_board("sim-002")
    mpremote(vb.port, "exec", "marker = 'kept'")
    boots = vb.boots
    assert "kept" in mpremote(vb.port, "resume", "eval", "marker")
    assert "6" in mpremote(vb.port, "resume", "run", str(_script(vb, "print(2 * 3)")))
    assert vb.boots == boots  # resume: no soft reset on connect
    # Without resume mpremote soft-resets first: the variable is gone, as on a board.
    out = subprocess.run([MPREMOTE, "connect", vb.port, "eval", "marker"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "NameError" in out.stdout + out.stderr
    assert vb.boots == boots + 1


def _script(vb, code):
    path = vb.workdir / "script.py"
    path.write_text(code + "\n")
    return path


def test_ampy_ls_put_get(virtual_board, tmp_path):
    vb = virtual_board("sim-003", firmware=False)
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from ampy\n" * 50)
    run(AMPY, "--port", vb.port, "put", str(src), "/hello.txt")
    assert (vb.flash_dir / "hello.txt").read_bytes() == src.read_bytes()
    assert "/hello.txt" in run(AMPY, "--port", vb.port, "ls").split()
    got = run(AMPY, "--port", vb.port, "get", "/hello.txt").replace("\r\n", "\n")
    assert got.rstrip("\n") == src.read_text().rstrip("\n")


def test_firmware_banner_after_soft_reset(virtual_board, tmp_path):
    firmware_without_app(tmp_path / "grid-007")
    vb = virtual_board("grid-007")
    vb.wait_for_log("no /app.py on this board yet")
    with BoardLink(vb.port) as link:
        out = link.soft_reset()
    assert "MPY: soft reboot" in out
    assert link.banner["thing"] == "grid-007"
    import edge
    assert link.banner["version"] == edge.VERSION


def test_ctrl_c_interrupts_main_and_tools_still_work(ticker_board):
    vb = ticker_board
    vb.wait_for_log("tick 3")
    assert "ok" in mpremote(vb.port, "resume", "exec", "print('ok')")
    assert "KeyboardInterrupt" in vb.log()
    # At the friendly REPL, Ctrl-D soft-reboots and main.py runs again.
    mark = len(vb.log())
    with BoardLink(vb.port) as link:
        link.interrupt()
        link.transport.exit_raw_repl()
        link.transport.serial.write(b"\x04")
    end = vb.wait_for_log("MPY: soft reboot", start=mark)
    vb.wait_for_log("tick 2", start=end)


def test_machine_reset_restarts_with_soft_reset_cause(ticker_board):
    vb = ticker_board
    mark = vb.wait_for_log("reset_cause=1")  # power-on: printed by main.py once the board is up
    with BoardLink(vb.port) as link:
        try:
            link.exec("import machine; machine.reset()", timeout=3)
        except EdgeshadowError:
            pass  # a board may reset before it acknowledges; either way it must come back
    end = vb.wait_for_log("SW_CPU_RESET", start=mark)
    vb.wait_for_log("reset_cause=5", start=end)


def test_watchdog_not_fed_resets_the_board(virtual_board, tmp_path):
    flash = tmp_path / "wdt-001" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        "import machine, time\nprint('reset_cause=%d' % machine.reset_cause())\n"
        "if machine.reset_cause() != machine.WDT_RESET:\n"
        "    wdt = machine.WDT(timeout=400)\n    wdt.feed()\n    print('hung')\n"
        "    while True:\n        time.sleep(0.05)\n")
    vb = virtual_board("wdt-001", firmware=False)
    vb.wait_for_log("hung")
    end = vb.wait_for_log("TG0WDT_SYS_RESET", timeout=20)
    vb.wait_for_log("reset_cause=3", start=end)
    assert vb.state()["state"] == "ready"


def test_fed_watchdog_does_not_reset(virtual_board, tmp_path):
    flash = tmp_path / "wdt-002" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        "import machine, time\nwdt = machine.WDT(timeout=300)\n"
        "for i in range(30):\n    wdt.feed()\n    time.sleep(0.05)\nprint('fed-done')\n"
        "while True:\n    wdt.feed()\n    time.sleep(0.05)\n")
    vb = virtual_board("wdt-002", firmware=False)
    vb.wait_for_log("fed-done")
    assert "WDT" not in vb.log() and vb.boots == 1


def test_stop_leaves_no_process(tmp_path):
    vb = VirtualBoard(tmp_path / "b", thing="stop-001", firmware=False)
    vb.start()
    try:
        pids = processes_of(vb.sim_dir)
        assert len(pids) == 2  # supervisor + MicroPython
        child = vb.state()["child_pid"]
        assert child in pids
    finally:
        vb.stop()
    assert processes_of(vb.sim_dir) == []
    assert not (tmp_path / "b" / "tty").exists()


def test_supervisor_killed_takes_micropython_with_it(tmp_path):
    vb = VirtualBoard(tmp_path / "b", thing="kill-001", firmware=False)
    vb.start()
    try:
        vb.proc.kill()
        vb.proc.wait()
        deadline = time.monotonic() + 10
        while processes_of(vb.sim_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of(vb.sim_dir) == []
    finally:
        vb.stop()


def test_deadlock_detector_tells_a_parked_process_from_a_sleeping_one():
    from host_tools.sim.supervisor import _deadlocked
    import sys
    code = {"parked": "import threading\nl = threading.Lock()\nl.acquire()\nprint('x', flush=True)\nl.acquire()",
            "sleeping": "import time\nprint('x', flush=True)\ntime.sleep(60)"}
    procs = {k: subprocess.Popen([sys.executable, "-c", c], stdout=subprocess.PIPE) for k, c in code.items()}
    try:
        for p in procs.values():
            p.stdout.readline()
        deadline = time.monotonic() + 10
        while not _deadlocked(procs["parked"].pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _deadlocked(procs["parked"].pid)
        assert not _deadlocked(procs["sleeping"].pid)
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def _takeovers(virtual_board, tmp_path, thing, runtime, limit):
    """mpremote-style takeovers (soft reset, then a command) of a main.py that compiles without
    pause, so that Ctrl-C often lands inside a compile; returns the board's log."""
    flash = tmp_path / thing / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        f"print('edgeshadow firmware v0 thing={thing}')\nn = 0\nwhile True:\n    n += 1\n"
        "    exec(compile('\\n'.join('v%d_%d = 1' % (n, i) for i in range(50)), 's', 'exec'), {})\n")
    vb = virtual_board(thing, firmware=False, runtime=runtime)
    rnd = __import__("random").Random(7)
    takeovers = 0
    with BoardLink(vb.port) as link:
        while vb.log().count("Guru Meditation") < 2 and takeovers < limit:
            link.soft_reset()
            time.sleep(rnd.random() * 0.05)
            assert link.exec("print(6 * 7)").strip() == "42", f"takeover {takeovers + 1}"
            takeovers += 1
    return vb.log()


def test_a_ctrl_c_that_leaves_the_qstr_lock_taken_costs_a_reset_not_a_command(virtual_board, tmp_path):
    """On the unix port a Ctrl-C longjmps out of whatever runs, and a main.py that compiles without
    pause holds the qstr lock often, so it is left taken about one time in three: the board must
    then reset before its REPL answers (the bootstrap's compile after main.py), and the host's
    command still runs. Without that compile about a third of these commands failed mid-paste."""
    log = _takeovers(virtual_board, tmp_path, "qstr-001", "unix", 60)
    assert "the firmware process is deadlocked" in log  # the path was taken, and absorbed


@pytest.mark.skipif(not runtimes.available("esp32like"), reason="the ESP32-like runtime is not built")
def test_on_the_esp32like_runtime_a_ctrl_c_never_leaves_a_lock_taken(virtual_board, tmp_path):
    """The ESP32-like runtime raises KeyboardInterrupt between bytecodes, as a board does: the same
    takeovers never find the firmware process deadlocked, nor its heap locked."""
    log = _takeovers(virtual_board, tmp_path, "qstr-002", "esp32like", 20)
    assert "Guru Meditation" not in log and "heap is locked" not in log, log[-2000:]


def test_deepsleep_wakes_up_with_deepsleep_reset_cause(virtual_board, tmp_path):
    flash = tmp_path / "sleep-001" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        "import machine\nprint('reset_cause=%d' % machine.reset_cause())\n"
        "if machine.reset_cause() != machine.DEEPSLEEP_RESET:\n    machine.deepsleep(300)\n")
    vb = virtual_board("sleep-001", firmware=False)
    end = vb.wait_for_log("DEEPSLEEP_RESET")
    vb.wait_for_log("reset_cause=4", start=end)


def test_sys_exit_and_machine_reset_in_main(virtual_board, tmp_path):
    flash = tmp_path / "exit-001" / "flash"
    flash.mkdir(parents=True)
    (flash / "main.py").write_text(
        "import machine, sys\nc = machine.reset_cause()\nprint('reset_cause=%d' % c)\n"
        "if c == machine.PWRON_RESET:\n    machine.reset()\n")
    vb = virtual_board("exit-001", firmware=False)
    end = vb.wait_for_log("SW_CPU_RESET")
    end = vb.wait_for_log("reset_cause=5", start=end)
    (vb.flash_dir / "main.py").write_text(
        "import os, sys\ntry:\n    os.stat('/ran')\n    print('second run')\nexcept OSError:\n"
        "    open('/ran', 'w').close()\n    print('main ran')\n    sys.exit()\n")
    with BoardLink(vb.port) as link:
        link.exec("import machine\nmachine.soft_reset()", timeout=3)
        link.interrupt()  # back in the raw REPL once the board has restarted
        link.transport.exit_raw_repl()  # to the friendly REPL: the next soft reset runs main.py
        link.transport.serial.write(b"\x04")
    end = vb.wait_for_log("main ran", start=end)
    end = vb.wait_for_log("MPY: soft reboot", start=end)  # sys.exit() in main.py: a soft reboot
    vb.wait_for_log("second run", start=end)


def test_a_crashing_app_leaves_the_repl_reachable(virtual_board, tmp_path):
    flash = firmware_without_app(tmp_path / "crash-001")
    (flash / "app.py").write_text("def main():\n    raise ValueError('sensor table is empty')\n")
    vb = virtual_board("crash-001")
    vb.wait_for_log("ValueError: sensor table is empty")
    assert "edgeshadow firmware v" in vb.log()
    with BoardLink(vb.port) as link:
        assert link.eval("1 + 1") == 2
