"""Spool cost per acknowledgement on the MicroPython unix port (issue 10's part owned by issue 13):
meta.json is saved once per `meta_every` acknowledgements instead of on every PUBACK.

For meta_every 1 (every PUBACK, the old behaviour) and the default 20: microseconds per ack()
(one PUBACK at a time), meta.json saves per 1000 acknowledgements, and the documented bound on
records sent again after a power loss (meta_every - 1).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
N = 1000

MP_SCRIPT = r"""
import os, sys, time
from store.spool import Spool, KIND_READING
base = sys.argv[1]
for every in (1, 20):
    d = "%s/spool-%d" % (base, every)
    s = Spool(d, 262144, meta_every=every, meta_s=3600)
    for i in range(N_RECORDS):
        s.append(KIND_READING, b'{"ts":1700000000,"v":{"voltage":24000.0,"current":300.0}}')
    saves = s.meta_saves
    t0 = time.ticks_us()
    for seq in range(1, N_RECORDS + 1):
        s.ack_all((seq,))
    dt = time.ticks_diff(time.ticks_us(), t0)
    print("%d %.1f %d" % (every, dt / N_RECORDS, (s.meta_saves - saves) * 1000 // N_RECORDS))
    s.close()
""".replace("N_RECORDS", str(N))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.py").write_text(MP_SCRIPT)
        env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
        proc = subprocess.run([str(MICROPYTHON), str(Path(tmp) / "bench.py"), tmp], env=env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        for line in proc.stdout.splitlines():
            every, us, saves = line.split()
            print(f"spool ack time (meta_every {every}, micropython unix): {us} us/ack")
            print(f"spool meta saves per 1000 acks (meta_every {every}, micropython unix): {saves} saves")
            print(f"spool re-send bound after power loss (meta_every {every}): {int(every) - 1} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
