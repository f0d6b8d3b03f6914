"""Seconds to create 1,000 local device certificates (EC P-256 key, signed by the local CA, files
written mode 0600 like `edgeshadow certs device`), plus one certificate check and DER conversion."""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from host_tools.cloud import certs  # noqa: E402

N = 1000


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        certs.init_ca(tmp / "ca")
        t0 = time.perf_counter()
        for i in range(N):
            certs.issue_device(f"bench-{i:04d}", tmp / f"bench-{i:04d}", tmp / "ca")
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(100):
            certs.check(f"bench-{i:04d}", tmp / f"bench-{i:04d}")
        checked = (time.perf_counter() - t0) / 100
        t0 = time.perf_counter()
        for i in range(100):
            d = tmp / f"bench-{i:04d}"
            for name in ("device.crt", "device.key", "root-ca.crt"):
                certs.to_der(d / name)
        der = (time.perf_counter() - t0) / 100
    print(f"create {N} device certificates (EC P-256): {made:.2f} s")
    print(f"per device certificate: {made / N * 1000:.2f} ms")
    print(f"certs check per thing: {checked * 1000:.2f} ms")
    print(f"DER conversion per thing (3 files): {der * 1000:.2f} ms")


if __name__ == "__main__":
    main()
