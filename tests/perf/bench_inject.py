"""Seconds to inject one virtual board: certificate check, DER conversion, one BoardLink connection,
three certificate files and the config staged, committed and read back by SHA-256."""
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from host_tools.cloud import certs  # noqa: E402
from host_tools.device import inject
from host_tools.sim.board import VirtualBoard  # noqa: E402

RUNS = 5


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        certs.init_ca(tmp / "certs" / "ca")
        certs.issue_device("bench-001", tmp / "certs" / "bench-001", tmp / "certs" / "ca")
        with VirtualBoard(tmp / "vb", thing="bench-001") as vb:
            times = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                results = inject.inject_boards([(vb.port, "bench-001")], tmp / "certs")
                times.append(time.perf_counter() - t0)
                if not results[0].ok:
                    raise SystemExit(f"inject failed: {results[0].detail}")
    print(f"inject one virtual board (median of {RUNS}): {statistics.median(times):.2f} s")
    print(f"inject one virtual board (first run): {times[0]:.2f} s")


if __name__ == "__main__":
    main()
