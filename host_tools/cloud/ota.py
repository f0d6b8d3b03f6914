"""Over-the-air updates, host side: signing keys, signed bundles, jobs on the local jobs service.

    pub = keygen(dir)                                   # ota-signing.key (0600) + ota-signing.pub
    b = build(FIRMWARE_DIR, dir / KEY_NAME, "fw.ota")   # every app file, one blob, signed manifest
    with LocalJobs.from_state() as jobs:
        push_local(jobs, b, ["grid-001", ...], rollout=2, abort_after=1)
        jobs.list_jobs()

A bundle file is one JSON line {"format", "manifest", "signature"} followed by the blob: the app
files end to end, in the manifest's order. The manifest (JSON text, signed as bytes) names each
file's path, offset, size and SHA-256; the signature is ECDSA P-256 over SHA-256(manifest), as
raw r || s in hex, checked on the board by firmware/ota/ecdsa.py against /certs/ota.pub. A push
makes a stream of two files (0: the blob, 1: the manifest) and a job whose document carries the
signature only: the board fetches the manifest and checks it before it writes anything. The
root-only files (boot.py, main.py, otaboot.py) are never in a bundle: they choose and roll back
the slot, so an update cannot break them.

`build(..., romfs=True)` (`ota build --romfs`, for boards with a ROMFS partition) signs the app as
one ROMFS image instead (mpremote's writer, as `deploy --romfs` lays it; .mpy inside): a "romfs"
manifest naming one file, romfs.img. The board downloads it into the inactive slot and, at boot,
copies it into its ROMFS partition, from which the app runs in place (firmware/otaboot.py).
"""
import base64
import hashlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from host_tools import CERTS_DIR

from host_tools.cloud import certs
from host_tools.cloud.mqtt_clients import AdminClient
from host_tools.errors import EdgeshadowError

FORMAT = "edgeshadow-ota/1"
OPERATION = "edgeshadow-ota"
BOARD_PUBKEY = "/certs/ota.pub"
KEY_DIR = CERTS_DIR / "ota"
KEY_NAME, PUB_NAME = "ota-signing.key", "ota-signing.pub"
ROOT_ONLY = ("/boot.py", "/main.py", "/otaboot.py", "/otaboot.mpy", "/otaboot_rom.py", "/otaboot_rom.mpy")
ROMFS_FILE = "romfs.img"  # a "romfs" bundle's one file


# -- keys ---------------------------------------------------------------------------------------

def keygen(out_dir=KEY_DIR, force=False):
    """A new P-256 signing key (private 0600, never leaves the host) and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    out = Path(out_dir)
    key_path, pub_path = out / KEY_NAME, out / PUB_NAME
    if key_path.exists() and not force:
        raise EdgeshadowError(f"{key_path} already exists; boards trust its public key",
                              hint="pass --force to replace it (then inject the new key into every board)")
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    certs.write_key(key_path, key)
    certs.write_pem(pub_path, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def _load(path, private):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise EdgeshadowError(f"cannot read {path}: {e.strerror}", hint="make a key with `edgeshadow ota keygen`")
    try:
        if private or b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, None)
            key = key if private else key.public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise EdgeshadowError(f"{path} is not a PEM {'private' if private else 'public'} key ({e})")
    want = ec.EllipticCurvePrivateKey if private else ec.EllipticCurvePublicKey
    if not isinstance(key, want) or key.curve.name != "secp256r1":
        raise EdgeshadowError(f"{path} is not a P-256 (secp256r1) key")
    return key


def board_pubkey(path):
    """The 65 bytes the board reads from /certs/ota.pub (uncompressed point)."""
    from cryptography.hazmat.primitives import serialization
    return _load(path, False).public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)


def sign(key, text):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    r, s = utils.decode_dss_signature(key.sign(text.encode(), ec.ECDSA(hashes.SHA256())))
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def verify(pub_path, text, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    raw = bytes.fromhex(signature)
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        _load(pub_path, False).verify(der, text.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise EdgeshadowError(f"the bundle's signature does not verify with {pub_path}")


# -- bundles ------------------------------------------------------------------------------------

@dataclass
class Bundle:
    manifest_text: str
    signature: str
    blob: bytes

    @property
    def manifest(self):
        return json.loads(self.manifest_text)

    @property
    def kind(self):
        return self.manifest.get("kind", "app")

    @property
    def version(self):
        return self.manifest["version"]

    def to_bytes(self):
        head = json.dumps({"format": FORMAT, "manifest": self.manifest_text, "signature": self.signature})
        return head.encode() + b"\n" + self.blob

    def job_document(self, stream_id, file_id=0, manifest_file_id=1):
        """Small on purpose (the board parses it whole): the manifest is a file of the stream."""
        return {"operation": OPERATION, "streamId": stream_id, "fileId": file_id,
                "manifestFileId": manifest_file_id, "version": self.version, "signature": self.signature}

    def stream_files(self):
        """[(fileId, bytes)]: 0 the files (or image), 1 the signed manifest."""
        return [(0, self.blob), (1, self.manifest_text.encode())]


def make_manifest(files, version, seq, mpy_arch=None, trial_s=None, kind="app"):
    """(manifest text, blob) for {relative path: bytes}."""
    entries, blob, off = [], bytearray(), 0
    for path, data in files.items():
        entries.append({"path": path, "offset": off, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
        blob += data
        off += len(data)
    m = {"kind": kind, "version": version, "seq": seq, "mpy_arch": mpy_arch, "size": off, "files": entries}
    if trial_s is not None:
        if not 3 <= trial_s <= 3600:
            raise EdgeshadowError(f"--trial-s {trial_s}: give 3 to 3600 seconds")
        m["trial_s"] = trial_s
    return manifest_text(m), bytes(blob)


def manifest_text(m):
    """An app manifest's signed text, one file per line after a header line (JSON all the same):
    the board checks and reads it from flash entry by entry instead of holding it whole."""
    dump = lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"))  # noqa: E731
    head = dump({k: v for k, v in m.items() if k != "files"})[:-1] + ',"files":['
    lines = [head] + [dump(f) + "," for f in m["files"]]
    if len(lines) > 1:
        lines[-1] = lines[-1][:-1]
    return "\n".join(lines) + "]}"


def build(firmware_dir, key_path, out_path=None, mpy_arch=None, version=None, seq=None, trial_s=None,
          romfs=False):
    """Sign every app file of firmware_dir (compiled for mpy_arch if given) into a Bundle; romfs:
    the app files as one ROMFS image (kind "romfs")."""
    from host_tools.device.deploy import firmware_version, local_files
    key = _load(key_path, True)
    files, _ = local_files(firmware_dir, mpy_arch)
    app = {p.lstrip("/"): data for p, data in files.items() if p not in ROOT_ONLY}
    if romfs:
        from host_tools.device import romfs as rom
        app = {ROMFS_FILE: rom.build_image({"/" + p: data for p, data in app.items()})}
    text, blob = make_manifest(app, version or firmware_version(firmware_dir),
                               int(time.time()) if seq is None else seq, mpy_arch, trial_s,
                               "romfs" if romfs else "app")
    if len(text) > 24000:
        raise EdgeshadowError(f"the manifest is {len(text)} bytes: a job document holds at most 32 KB")
    return _written(Bundle(text, sign(key, text), blob), out_path)


def build_image(image_path, key_path, out_path=None, board=None, version=None, seq=None):
    """Sign a MicroPython image (checked first: ESP header, chip, size for the board) into a Bundle."""
    from host_tools.device import images
    from host_tools.device.boards import load_board
    try:
        data = Path(image_path).read_bytes()
    except OSError as e:
        raise EdgeshadowError(f"cannot read image {image_path}: {e.strerror}")
    key = _load(key_path, True)
    if board is not None:
        info = images.check_image_for_board(data, load_board(board) if isinstance(board, str) else board,
                                            str(image_path))
    else:
        info = images.inspect_image(data, str(image_path))
    m = {"kind": "image", "version": version or Path(image_path).stem,
         "seq": int(time.time()) if seq is None else seq, "chip": info.chip, "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(m, sort_keys=True, separators=(",", ":"))
    return _written(Bundle(text, sign(key, text), data), out_path)


def _written(bundle, out_path):
    """The bundle, written to out_path whole (a temporary file renamed) when one is given."""
    if out_path:
        tmp = Path(str(out_path) + ".tmp")
        tmp.write_bytes(bundle.to_bytes())
        tmp.replace(out_path)
    return bundle


def read_bundle(path):
    """A Bundle, with its blob checked against the manifest (size and every file's SHA-256)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise EdgeshadowError(f"cannot read bundle {path}: {e.strerror}")
    head, sep, blob = raw.partition(b"\n")
    try:
        h = json.loads(head)
        b = Bundle(h["manifest"], h["signature"], blob)
        m = b.manifest
        assert h.get("format") == FORMAT
    except (ValueError, KeyError, TypeError, AssertionError):
        raise EdgeshadowError(f"{path} is not an edgeshadow OTA bundle (make one with `edgeshadow ota build`)")
    if len(blob) != m["size"]:
        raise EdgeshadowError(f"bundle {path} is truncated or damaged: {len(blob)} bytes of files, "
                              f"the manifest says {m['size']}")
    if m.get("kind") == "image":
        if hashlib.sha256(blob).hexdigest() != m["sha256"]:
            raise EdgeshadowError(f"bundle {path} is damaged: the image does not match its SHA-256")
        return b
    for f in m["files"]:
        if hashlib.sha256(blob[f["offset"]:f["offset"] + f["size"]]).hexdigest() != f["sha256"]:
            raise EdgeshadowError(f"bundle {path} is damaged: {f['path']} does not match its SHA-256")
    return b


# -- the local jobs service (control plane over MQTT, admin certificate) ----------------------

INLINE_MAX = 64 * 1024  # file bytes sent inside the create-stream message (base64: 4/3 of it)


class LocalJobs(AdminClient):
    """The jobs service's control plane (edgeshadow/jobs/<op>) with the admin certificate."""

    def __init__(self, host, port, ca, cert, key, timeout=30.0):
        super().__init__(host, port, ca, cert, key, timeout,
                         subscriptions=["edgeshadow/jobs/+/accepted", "edgeshadow/jobs/+/rejected"])

    @classmethod
    def from_state(cls, workdir=None, timeout=30.0):
        return super().from_state(workdir, timeout)

    def request(self, op, body):
        ok, doc = super().request(f"edgeshadow/jobs/{op}", body, "the jobs service",
                                  hint="is `edgeshadow broker` running?")
        if not ok:
            raise EdgeshadowError(f"the jobs service rejected {op}: {doc.get('code')}: {doc.get('message')}")
        return doc

    def create_stream(self, stream_id, files, description=""):
        """files: [(fileId, bytes)] or one bytes object (file 0). A file too big for one MQTT
        message (the broker refuses over 128 KB, as AWS does) goes as a file the local service
        reads, as AWS takes a stream's files from S3."""
        if isinstance(files, (bytes, bytearray)):
            files = [(0, files)]
        out = []
        with tempfile.TemporaryDirectory(prefix="edgeshadow-stream-") as tmp:
            for fid, data in files:
                if len(data) <= INLINE_MAX:
                    out.append({"fileId": fid, "data": base64.b64encode(data).decode()})
                else:
                    path = Path(tmp) / f"{fid}.bin"
                    path.write_bytes(data)
                    out.append({"fileId": fid, "path": str(path)})
            return self.request("create-stream", {"streamId": stream_id, "description": description,
                                                  "files": out})

    def create_job(self, job_id, targets, document, rollout=None, abort_after=None):
        return self.request("create-job", {"jobId": job_id, "targets": list(targets), "document": document,
                                           "rollout": rollout, "abortAfter": abort_after})

    def cancel_job(self, job_id, force=False):
        return self.request("cancel-job", {"jobId": job_id, "force": force})

    def list_jobs(self):
        return self.request("list-jobs", {})["jobs"]


def rollout_count(targets, rollout):
    """--rollout N% (a share of the targets, at least 1) or N (executions at once) -> int or None."""
    if rollout is None:
        return None
    text = str(rollout).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return max(1, int(len(targets) * pct / 100))
        n = int(text)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise EdgeshadowError(f"--rollout {rollout!r}: give a percentage (25%) or a count of boards at once (2)")


def push_local(jobs, bundle, targets, job_id=None, rollout=None, abort_after=None):
    """Stream + job on the local service; returns the job id."""
    job_id = job_id or f"ota-{bundle.version.replace('.', '_')}-{uuid.uuid4().hex[:8]}"
    stream_id = f"{job_id}-stream"
    jobs.create_stream(stream_id, bundle.stream_files(), description=f"edgeshadow {bundle.kind} {bundle.version}")
    jobs.create_job(job_id, targets, bundle.job_document(stream_id), rollout_count(targets, rollout), abort_after)
    return job_id
