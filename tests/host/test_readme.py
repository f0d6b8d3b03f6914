"""The README walked verbatim: every ```sh block of README.md runs, in order, as written, in a fresh
copy of the checkout, against virtual boards, the local broker and moto (for AWS).

What the walk does beyond running each line with bash (the README says the same to its readers):
- a line ending in `&` runs in the background, as in a shell (broker, sim, monitor, logs: they run
  until Ctrl-C); the walk goes on once it has printed its first line; at the end each gets Ctrl-C
  and must exit 0 or 130.
- `/dev/ttyUSB0` (the README's board on USB) is the port the virtual board printed; on a `flash`
  line, the port of the virtual ESP32 in download mode (`edgeshadow sim --bootloader`), as a real
  board is put in download mode to be flashed.
- `make test` is this suite: not run again from inside itself.
- AWS is moto, in this process, over HTTP (AWS_ENDPOINT_URL), signing CSRs as AWS IoT does.
"""
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
PTS = re.compile(r"/dev/pts/\d+")
NOT_RUN = {"make test": "the suite this test is part of"}
LINE_TIMEOUT_S = 240
# What a background command (`... &`) prints once it is ready (by command prefix; longest first).
READY = {"edgeshadow broker": "running; Ctrl-C stops",
         "edgeshadow sim --bootloader": "download",
         "edgeshadow sim": "running; Ctrl-C stops"}
# Commands that run in the foreground until Ctrl-C, and what they print once they are up (None:
# any line).
UNTIL_CTRL_C = {"make demo": "grid-sensor-003: running on", "edgeshadow logs": None}


def commands(text):
    """The README's shell lines in order: (command, background) with comments dropped."""
    out = []
    for block in BLOCK.findall(text):
        for raw in block.splitlines():
            line = _strip_comment(raw).strip()
            if not line:
                continue
            background = line.endswith("&") and not line.endswith("&&")
            out.append((line[:-1].strip() if background else line, background))
    return out


def _strip_comment(line):
    """The line without a trailing `# comment` (a # inside quotes stays)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def test_the_readme_has_runnable_blocks_and_each_line_parses():
    cmds = commands(README.read_text())
    assert len(cmds) >= 10, "README.md has too few ```sh blocks to walk"
    for cmd, _ in cmds:
        shlex.split(cmd)  # a line a shell could not read fails here, naming it


def _fresh_copy(dest):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        src = ROOT / rel
        if src.is_file() and not rel.startswith("certs/") or rel == "certs/README.md":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


@pytest.fixture
def moto_endpoint(monkeypatch, tmp_path):
    """moto as an HTTP server in this process, with AWS IoT's CSR signing (see test_provision)."""
    pytest.importorskip("flask", reason="moto's server needs flask (requirements.txt: moto[server])")
    from moto.server import ThreadedMotoServer
    from tests.host._aws import sign_csrs_as_aws_does
    sign_csrs_as_aws_does(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _children_cpu():
    """CPU seconds of the finished processes this test waited for (a line's cost in the transcript)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Walk:
    def __init__(self, home, env):
        self.home, self.env = home, env
        self.background = []  # (command, Popen, log path)
        self.board_port = self.rom_port = None
        self.transcript = []

    def port_for(self, cmd):
        if "/dev/ttyUSB0" not in cmd:
            return cmd
        port = self.rom_port if re.match(r"(edgeshadow|make) flash\b", cmd) else self.board_port
        assert port, f"{cmd!r} needs a board, but no virtual board was started before it in the README"
        return cmd.replace("/dev/ttyUSB0", port)

    def run(self, cmd):
        real = self.port_for(cmd)
        t0, cpu0 = time.monotonic(), _children_cpu()
        p = subprocess.Popen(["bash", "-c", real], cwd=self.home, env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=LINE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the line and everything it started
            out, err = p.communicate()
            raise AssertionError(f"README line {cmd!r} did not finish within {LINE_TIMEOUT_S} s: {err[-2000:]}")
        self.transcript.append(f"$ {cmd}  ({time.monotonic() - t0:.1f} s, CPU {_children_cpu() - cpu0:.1f} s, "
                               f"exit {p.returncode})")
        assert p.returncode == 0, (f"README line failed: {cmd!r} (ran {real!r}), exit {p.returncode}\n"
                                   f"stdout: {out[-2000:]}\nstderr: {err[-3000:]}")

    def _spawn(self, cmd):
        real = self.port_for(cmd)
        log = self.home / f".walk-{len(self.background)}.log"
        f = open(log, "wb")
        p = subprocess.Popen(["bash", "-c", f"exec {real}"], cwd=self.home, env=self.env, stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return p, log, f

    def _wait_for(self, cmd, p, log, marker, timeout=180):
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            if (marker in text) if marker else ("\n" in text):
                return text
            assert p.poll() is None, f"{cmd!r} stopped (exit {p.returncode}) before it was up: {text[-2000:]}"
            assert time.monotonic() < deadline, f"{cmd!r}: no {marker!r} within {timeout} s: {text[-2000:]}"
            time.sleep(0.1)

    def start(self, cmd):
        """`cmd &`: started, and left running once it says it is ready."""
        p, log, f = self._spawn(cmd)
        self.background.append((cmd, p, log, f))
        marker = next((m for k, m in sorted(READY.items(), key=lambda kv: -len(kv[0])) if cmd.startswith(k)), None)
        text = self._wait_for(cmd, p, log, marker)
        if cmd.startswith("edgeshadow sim"):
            ports = PTS.findall(text)
            assert ports, f"{cmd!r} printed no port: {text[-1000:]}"
            if "--bootloader" in cmd:
                self.rom_port = ports[0]
            else:
                self.board_port = ports[0]
        self.transcript.append(f"$ {cmd} &")

    def until_ctrl_c(self, cmd, marker):
        """A foreground command that runs until Ctrl-C: once it is up, Ctrl-C; it must stop cleanly."""
        t0, cpu0 = time.monotonic(), _children_cpu()
        p, log, f = self._spawn(cmd)
        try:
            self._wait_for(cmd, p, log, marker)
            os.killpg(p.pid, signal.SIGINT)
            p.wait(timeout=90)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            f.close()
        self.transcript.append(f"$ {cmd}  (Ctrl-C after {time.monotonic() - t0:.1f} s, CPU "
                               f"{_children_cpu() - cpu0:.1f} s, exit {p.returncode})")
        assert p.returncode in (0, 130, -signal.SIGINT, 2 if cmd.startswith("make ") else 0), \
            f"{cmd!r} exited {p.returncode} on Ctrl-C: {log.read_text(errors='replace')[-2000:]}"

    def stop_all(self):
        problems = []
        cpu0 = _children_cpu()
        for cmd, p, log, f in reversed(self.background):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    problems.append(f"{cmd!r} did not stop on Ctrl-C within 60 s")
            f.close()
            if p.returncode not in (0, 130, -signal.SIGINT):
                problems.append(f"{cmd!r} exited {p.returncode} on Ctrl-C: "
                                f"{log.read_text(errors='replace')[-1500:]}")
        self.transcript.append(f"(the background commands: CPU {_children_cpu() - cpu0:.1f} s)")
        return problems


@pytest.mark.skipif(not __import__("host_tools.sim.runtimes", fromlist=["available"]).available("esp32like"),
                    reason="the README's virtual boards are the ESP32-like runtime's (an ESP32's heap, a ROMFS "
                           "partition): `make esp32like` builds it")
def test_every_readme_command_runs_as_written(tmp_path, moto_endpoint):
    home = _fresh_copy(tmp_path / "edgeshadow")
    env = dict(os.environ)
    env.update(PATH=f"{home / '.venv' / 'bin'}{os.pathsep}{env['PATH']}", PYTHONPATH=str(home),
               AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-west-1",
               AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"))
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    walk = Walk(home, env)
    try:
        for cmd, background in commands(README.read_text()):
            if cmd in NOT_RUN:
                walk.transcript.append(f"$ {cmd}  (not run: {NOT_RUN[cmd]})")
                continue
            if cmd.startswith((". .venv/bin/activate", "source .venv/bin/activate")):
                continue  # PATH above is what it does
            fg = next((k for k in UNTIL_CTRL_C if cmd.startswith(k)), None)
            if background:
                walk.start(cmd)
            elif fg:
                walk.until_ctrl_c(cmd, UNTIL_CTRL_C[fg])
            else:
                walk.run(cmd)
    finally:
        problems = walk.stop_all()
        print("\n".join(walk.transcript), file=sys.stderr)
    assert not problems, problems
