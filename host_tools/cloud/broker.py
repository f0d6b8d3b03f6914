"""A local Mosquitto broker with mutual TLS and per-thing ACLs, the embedded stand-in for AWS IoT.

`Broker(workdir, ca_dir)` writes mosquitto.conf and acl into workdir, makes the server certificate
(SANs localhost and 127.0.0.1) from the local CA when missing, starts /usr/sbin/mosquitto on a free
port of 127.0.0.1 and returns once a TLS handshake succeeds. Every client needs a certificate from
that CA; its CN is its MQTT user name and its client id (whatever id it connects with: nobody can
take over another's session). A device (CN = thing name) may use only its own
`$aws/things/<thing>/shadow/...` request topics (reading the responses) and `dt/<thing>/#`;
messages are at most 128 KB (AWS IoT's limit); other SUBSCRIBEs get SUBACK 0x80 (the plugin and idle
connections: host_tools/cloud/mosquitto_plugin/). The host services have named ACL entries:

  edgeshadow-shadow-service  readwrite $aws/things/+/shadow/#   (answers every thing's requests)
  edgeshadow-jobs-service    readwrite $aws/things/+/jobs/#, $aws/things/+/streams/#, edgeshadow/jobs/#
  edgeshadow-admin           readwrite $aws/things/+/shadow/#   (`edgeshadow shadow get/set`),
                             edgeshadow/jobs/#   (`edgeshadow ota push/status`: the jobs control plane)
  edgeshadow-monitor         read      $aws/things/+/shadow/#, dt/+/#
  edgeshadow-historian       read      the same (its own CN: the CN is the client id, so the
                             historian and a running `edgeshadow monitor` would take each
                             other's session, again and again)

Privileges: Mosquitto started as root switches to the `mosquitto` user, which cannot read key files
in a 0700 workdir or pytest tmp dir (certs.py writes keys 0600). Handing the server key to another
user would widen who can read it, so a root-started instance keeps `user root`; it listens on
127.0.0.1 only. Started as any other user, Mosquitto does not switch and the option is not written.

`local_stack()` runs the broker, the shadow service and the jobs/streams service together and
writes workdir/broker.json, which `read_state()` finds for later commands (`edgeshadow shadow`,
`edgeshadow monitor`, `edgeshadow ota`).
"""
import contextlib
import datetime
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

from host_tools import CERTS_DIR, ROOT

from host_tools.cloud import certs
from host_tools.cloud.mosquitto_plugin import ACL_PLUGIN, config_lines
from host_tools.errors import EdgeshadowError

MOSQUITTO = "/usr/sbin/mosquitto"
SERVICE_CN = "edgeshadow-shadow-service"
JOBS_CN = "edgeshadow-jobs-service"
MONITOR_CN = "edgeshadow-monitor"
HISTORIAN_CN = "edgeshadow-historian"
ADMIN_CN = "edgeshadow-admin"
RUN_DIR = ROOT / "run"
DEFAULT_WORKDIR = RUN_DIR / "broker"
DEFAULT_CA_DIR = CERTS_DIR / "ca"
STATE_FILE = "broker.json"
MAX_PAYLOAD = 128 * 1024

ACL = f"""\
# Devices (certificate CN = thing name = MQTT user name = client id): their own topics only. As on
# AWS IoT, a device publishes shadow requests (update, get, delete) but never a response topic
# (accepted, rejected, delta, documents): only the shadow service answers.
pattern read $aws/things/%u/shadow/#
pattern write $aws/things/%u/shadow/update
pattern write $aws/things/%u/shadow/get
pattern write $aws/things/%u/shadow/delete
pattern write $aws/things/%u/shadow/name/+/update
pattern write $aws/things/%u/shadow/name/+/get
pattern write $aws/things/%u/shadow/name/+/delete
pattern readwrite dt/%u/#
# AWS IoT Jobs and MQTT file delivery, likewise: requests out, responses and data in
pattern read $aws/things/%u/jobs/#
pattern write $aws/things/%u/jobs/+/get
pattern write $aws/things/%u/jobs/+/update
pattern write $aws/things/%u/jobs/start-next
pattern read $aws/things/%u/streams/#
pattern write $aws/things/%u/streams/+/describe/json
pattern write $aws/things/%u/streams/+/get/json

user {SERVICE_CN}
topic readwrite $aws/things/+/shadow/#

user {JOBS_CN}
topic readwrite $aws/things/+/jobs/#
topic readwrite $aws/things/+/streams/#
topic readwrite edgeshadow/jobs/#

user {ADMIN_CN}
topic readwrite $aws/things/+/shadow/#
topic readwrite edgeshadow/jobs/#

user {MONITOR_CN}
topic read $aws/things/+/shadow/#
topic read dt/+/#

user {HISTORIAN_CN}
topic read $aws/things/+/shadow/#
topic read dt/+/#
"""


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _usable(crt_path, ca_dir, min_days=1):
    """True if crt_path exists, was signed by the CA in ca_dir and is valid for min_days more."""
    try:
        cert = certs.load_cert(crt_path)
        ca = certs.load_cert(Path(ca_dir) / "ca.crt")
        cert.verify_directly_issued_by(ca)
    except Exception:
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left > datetime.timedelta(days=min_days)


class Broker:
    """One Mosquitto process; a context manager. `.port`, `.ca_cert`, `.log_path`."""

    def __init__(self, workdir, ca_dir, port=None, host="127.0.0.1", mosquitto=MOSQUITTO, acl_plugin=ACL_PLUGIN):
        self.workdir = Path(workdir).resolve()
        self.ca_dir = Path(ca_dir).resolve()
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.mosquitto = mosquitto
        self.acl_plugin = Path(acl_plugin) if acl_plugin else None
        self.proc = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.acl_path = self.workdir / "acl"
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def ca_cert(self):
        return self.ca_dir / "ca.crt"

    def client_cert(self, cn):
        """(crt, key) of a host client (or device) certificate, made from the CA when missing."""
        out = self.workdir / "clients" / cn
        crt, key = out / certs.DEVICE_CRT, out / certs.DEVICE_KEY
        if not (_usable(crt, self.ca_dir) and key.exists()):
            crt, key = certs.issue_client(out, self.ca_dir, cn)
        return crt, key

    def _server_cert(self):
        out = self.workdir / "server"
        crt, key = out / "server.crt", out / "server.key"
        if not (_usable(crt, self.ca_dir) and key.exists()):
            crt, key = certs.issue_server(out, self.ca_dir)
        return crt, key

    def _write_config(self, crt, key):
        lines = [
            "# Generated by edgeshadow (host_tools/cloud/broker.py); rewritten on every start.",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            f"acl_file {self.acl_path}",
            *config_lines(self.acl_plugin, self.acl_path),
            "log_dest stderr",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",  # Nagle + delayed ACKs otherwise add ~40 ms per small message
            # the historian's persistent session: what arrives while it restarts is queued for it
            # (the default keeps only 1000 messages). max_inflight_messages stays at its 20: it is
            # per client, devices included, and a board's heap is tight.
            "max_queued_messages 200000",
            f"listener {self.port} {self.host}",
            f"cafile {self.ca_cert}",
            f"certfile {crt}",
            f"keyfile {key}",
            "require_certificate true",
            "use_identity_as_username true",
            # the client id is the certificate's CN, whatever the client asked for (AWS IoT's
            # policy: client/${iot:Connection.Thing.ThingName}): nobody can take over another's
            # session by connecting with its id
            "use_username_as_clientid true",
            f"message_size_limit {MAX_PAYLOAD}",  # AWS IoT: 128 KB per message
            "tls_version tlsv1.2",  # the minimum: the board's mbedTLS speaks 1.2, host clients may use 1.3
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # see the module docstring
        self.acl_path.write_text(ACL)
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        if self.proc is not None:
            return self
        if not os.access(self.mosquitto, os.X_OK):
            raise EdgeshadowError(f"Mosquitto is not installed ({self.mosquitto} is missing)",
                                  hint="run `make setup`, which installs the system package")
        if not self.ca_cert.exists():
            raise EdgeshadowError(f"no local CA in {self.ca_dir}", hint="run `edgeshadow certs ca init`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        crt, key = self._server_cert()
        self.probe_cert = self.client_cert(MONITOR_CN)
        attempts = 1 if self.port is not None else 5
        for attempt in range(attempts):
            if self.port is None:
                self.port = free_port(self.host)
            self._write_config(crt, key)
            if self._launch(timeout):
                # the port is kept: a restart comes back where clients reconnect
                self._fixed_port = True
                return self
            if self._fixed_port or "Address already in use" not in self.log_tail():
                break
            self.port = None  # another process took the port between our probe and the bind
        raise EdgeshadowError(f"Mosquitto did not start on {self.host}:{self.port}: {self.log_tail()}")

    def _launch(self, timeout):
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([self.mosquitto, "-c", str(self.conf_path)], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.ca_cert))
        ctx.load_cert_chain(*map(str, self.probe_cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as raw:
                    with ctx.wrap_socket(raw, server_hostname=self.host):
                        return True
            except (OSError, ssl.SSLError):
                time.sleep(0.02)  # poll interval, the condition is the handshake above
        self.stop()
        return False

    def log_tail(self, lines=5):
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout=5.0):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# -- the broker plus the shadow service, with a state file for other commands ------------------

def write_state(broker, path=None):
    path = Path(path or broker.workdir / STATE_FILE)
    admin_crt, admin_key = broker.client_cert(ADMIN_CN)
    monitor_crt, monitor_key = broker.client_cert(MONITOR_CN)
    historian_crt, historian_key = broker.client_cert(HISTORIAN_CN)
    state = {"host": broker.host, "port": broker.port, "ca": str(broker.ca_cert),
             "admin_cert": str(admin_crt), "admin_key": str(admin_key),
             "monitor_cert": str(monitor_crt), "monitor_key": str(monitor_key),
             "historian_cert": str(historian_crt), "historian_key": str(historian_key),
             "pid": broker.proc.pid if broker.proc else None, "owner_pid": os.getpid(),
             "log": str(broker.log_path)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def find_state(workdir=None):
    """workdir/broker.json; without workdir run/broker/broker.json, else the newest run/**/broker.json."""
    if workdir is not None:
        return Path(workdir) / STATE_FILE
    default = DEFAULT_WORKDIR / STATE_FILE
    if default.exists() or not RUN_DIR.is_dir():
        return default
    found = sorted(RUN_DIR.glob(f"**/{STATE_FILE}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else default


def read_state(workdir=None):
    """The running local broker's broker.json as a dict; EdgeshadowError if none is running."""
    path = find_state(workdir)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeshadowError(f"no local broker is running ({path} does not exist)",
                              hint="start one with `edgeshadow broker`, or pass --aws")
    except ValueError as e:
        raise EdgeshadowError(f"{path} is not valid JSON ({e})")
    missing = [k for k in ("host", "port", "ca", "admin_cert", "admin_key") if k not in state]
    if missing:
        raise EdgeshadowError(f"{path} lacks {', '.join(missing)}")
    check_running(state, path)
    return state


def check_running(state, path):
    """EdgeshadowError if Mosquitto (pid) or the process running the shadow service beside it
    (owner_pid), as recorded in the state file at path, is gone."""
    for what, pid in (("broker", state.get("pid")), ("shadow service", state.get("owner_pid"))):
        if not isinstance(pid, int):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise EdgeshadowError(f"the local {what} recorded in {path} (pid {pid}) is no longer running",
                                  hint="start it again with `edgeshadow broker` (or `edgeshadow demo`)")
        except PermissionError:
            pass


@contextlib.contextmanager
def local_stack(workdir=None, ca_dir=None, port=None, host="127.0.0.1"):
    """Broker + shadow service (state in workdir/shadows) + jobs/streams service (workdir/jobs);
    yields (broker, service, state_path)."""
    from host_tools.cloud.jobs_service import JobsService
    from host_tools.cloud.shadow_service import ShadowService
    workdir = Path(workdir or DEFAULT_WORKDIR)
    ca_dir = Path(ca_dir or DEFAULT_CA_DIR)
    if not (ca_dir / "ca.crt").exists():
        certs.init_ca(ca_dir)
    broker = Broker(workdir, ca_dir, port=port, host=host)
    state_path = None
    with broker:
        crt, key = broker.client_cert(SERVICE_CN)
        service = ShadowService(host, broker.port, broker.ca_cert, crt, key, workdir / "shadows")
        jcrt, jkey = broker.client_cert(JOBS_CN)
        jobs = JobsService(host, broker.port, broker.ca_cert, jcrt, jkey, workdir / "jobs")
        with service, jobs:
            service.jobs = jobs
            state_path = write_state(broker)
            try:
                yield broker, service, state_path
            finally:
                state_path.unlink(missing_ok=True)
