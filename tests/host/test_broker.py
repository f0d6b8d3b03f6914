"""The local broker: real Mosquitto, mutual TLS, per-thing ACLs, paho-mqtt clients.

Negative checks ("A never sees B's message") do not wait a fixed time: after the message that must
not arrive, a permitted marker is sent over the same path and awaited. Mosquitto handles one packet
at a time and delivers to a client in order, so once the marker is in, the forbidden message would
already have been there.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from _broker_fixtures import MqttProbe, local_broker  # noqa: F401  (fixture)
from host_tools.cloud import certs
from host_tools.cli import main as cli_main
from host_tools.cloud.broker import ADMIN_CN, MONITOR_CN, Broker, find_state, local_stack, read_state
from host_tools.errors import EdgeshadowError

ROOT = Path(__file__).resolve().parents[2]
A, B = "grid-a", "grid-b"


def test_device_cannot_publish_to_another_things_topics(local_broker):
    with local_broker.probe(MONITOR_CN) as monitor, local_broker.probe(A) as dev_a:
        monitor.subscribe("dt/+/#", "$aws/things/+/shadow/#")
        dev_a.publish(f"dt/{B}/telemetry", b'{"forged": 1}')
        dev_a.publish(f"dt/{B}/alerts", b'{"forged": 2}')
        dev_a.publish(f"$aws/things/{B}/shadow/update", {"state": {"reported": {"forged": 3}}})
        dev_a.publish(f"dt/{A}/telemetry", b'{"marker": 1}')  # allowed: its own topic
        monitor.wait_for(lambda m: m.topic == f"dt/{A}/telemetry")
        assert [t for t in monitor.topics() if B in t] == []
    # the shadow service never saw the forged update either
    assert local_broker.service.store.snapshot(B) is None


def test_device_cannot_read_another_things_topics(local_broker):
    with local_broker.probe(A) as dev_a, local_broker.probe(B) as dev_b:
        dev_a.subscribe(f"dt/{B}/#", f"$aws/things/{B}/shadow/#", "dt/+/telemetry", "#", f"dt/{A}/#")
        dev_b.subscribe(f"$aws/things/{B}/shadow/update/accepted")
        dev_b.publish(f"dt/{B}/telemetry", b'{"secret": 1}')
        dev_b.publish(f"$aws/things/{B}/shadow/update", {"state": {"reported": {"secret": 2}}})
        dev_b.wait_for(lambda m: m.topic.endswith("/update/accepted"))  # the service answered B
        dev_a.publish(f"dt/{A}/marker", b"{}")
        dev_a.wait_for(lambda m: m.topic == f"dt/{A}/marker")
        assert [m for m in dev_a.messages if B in m.topic] == []


def test_monitor_reads_everything_but_cannot_publish(local_broker):
    with local_broker.probe(MONITOR_CN) as monitor, local_broker.probe(A) as dev_a:
        monitor.subscribe("dt/+/#")
        dev_a.subscribe(f"dt/{A}/#")
        monitor.publish(f"dt/{A}/commands", b'{"from": "monitor"}')
        dev_a.publish(f"dt/{A}/telemetry", b'{"seq": 1}')
        got = monitor.wait_for(lambda m: m.topic == f"dt/{A}/telemetry")
        assert json.loads(got.payload) == {"seq": 1}
        dev_a.wait_for(lambda m: m.topic == f"dt/{A}/telemetry")
        assert f"dt/{A}/commands" not in dev_a.topics()


CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])  # MQTT 3.1.1, clean, no id


def _mqtt_over_tls(port, ca, cert=None, key=None):
    """True if the broker answers a CONNECT over TLS with a CONNACK; False if it drops us."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                # TLS 1.3 checks the client certificate after the handshake: the refusal comes here
                tls.sendall(CONNECT)
                return tls.recv(4)[:1] == b"\x20"
    except ssl.SSLCertVerificationError:
        raise  # the client's own verification: a different failure, let the test see it
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False


def test_device_certificate_is_accepted(local_broker):
    assert _mqtt_over_tls(local_broker.port, local_broker.broker.ca_cert, *local_broker.device_cert(A))


def test_client_without_certificate_is_refused(local_broker):
    assert not _mqtt_over_tls(local_broker.port, local_broker.broker.ca_cert)
    probe = MqttProbe(local_broker.host, local_broker.port, local_broker.broker.ca_cert, client_id=A)
    with pytest.raises(OSError):
        probe.connect()
    probe.close()


def test_client_certificate_from_another_ca_is_refused(local_broker, tmp_path):
    certs.init_ca(tmp_path / "rogue-ca", cn="rogue CA")
    crt = certs.issue_device(A, tmp_path / "rogue", tmp_path / "rogue-ca")  # same CN, wrong CA
    key = tmp_path / "rogue" / certs.DEVICE_KEY
    assert not _mqtt_over_tls(local_broker.port, local_broker.broker.ca_cert, crt, key)
    probe = MqttProbe(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key, client_id=A)
    with pytest.raises(OSError):
        probe.connect()
    probe.close()


def test_client_refuses_a_broker_it_cannot_verify(local_broker, tmp_path):
    certs.init_ca(tmp_path / "other-ca", cn="other CA")
    crt, key = local_broker.device_cert(A)
    with pytest.raises(ssl.SSLCertVerificationError):
        _mqtt_over_tls(local_broker.port, tmp_path / "other-ca" / "ca.crt", crt, key)


def test_plain_mqtt_is_not_served(local_broker):
    with socket.create_connection(("127.0.0.1", local_broker.port), timeout=5) as s:
        s.sendall(CONNECT)
        s.settimeout(5)
        try:
            reply = s.recv(4)
        except ConnectionResetError:
            reply = b""
        assert reply[:1] != b"\x20"  # never a CONNACK over clear text


def test_generated_config(local_broker):
    conf = local_broker.broker.conf_path.read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                 "use_username_as_clientid true", "message_size_limit 131072",
                 "tls_version tlsv1.2", f"listener {local_broker.port} 127.0.0.1"):
        assert line in conf.splitlines(), line
    acl = local_broker.broker.acl_path.read_text()
    assert "pattern read $aws/things/%u/shadow/#" in acl and "pattern readwrite dt/%u/#" in acl
    assert "pattern write $aws/things/%u/shadow/update" in acl and "readwrite $aws/things/%u/#" not in acl
    assert local_broker.port != 1883


def test_two_brokers_stop_cleanly_and_free_their_ports(tmp_path):
    certs.init_ca(tmp_path / "ca")
    b1, b2 = Broker(tmp_path / "w1", tmp_path / "ca"), Broker(tmp_path / "w2", tmp_path / "ca")
    try:
        b1.start()
        b2.start()
        assert b1.port != b2.port and 1883 not in (b1.port, b2.port)
        pids = [b1.proc.pid, b2.proc.pid]
        port = b1.port
        # a restart comes back on the same port, where clients reconnect
        b1.stop()
        b1.start()
        assert b1.port == port
    finally:
        b1.stop()
        b2.stop()
    assert not b1.running and not b2.running
    out = subprocess.run(["ps", "-o", "pid=", "-p", ",".join(map(str, pids))], capture_output=True, text=True)
    assert out.stdout.strip() == ""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # freed


def test_start_reports_a_missing_ca_and_a_taken_port(tmp_path):
    with pytest.raises(EdgeshadowError, match="no local CA"):
        Broker(tmp_path / "w", tmp_path / "nothing").start()
    certs.init_ca(tmp_path / "ca")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        b = Broker(tmp_path / "w", tmp_path / "ca", port=taken)
        with pytest.raises(EdgeshadowError, match="did not start") as e:
            b.start()
        assert "Address already in use" in str(e.value)
        assert not b.running


def test_local_stack_writes_and_removes_its_state_file(tmp_path):
    with local_stack(tmp_path / "w", tmp_path / "ca") as (broker, service, state_path):
        assert (tmp_path / "ca" / "ca.crt").exists()  # made on demand
        state = read_state(tmp_path / "w")
        assert state["port"] == broker.port and state["ca"] == str(broker.ca_cert)
        assert find_state(tmp_path / "w") == state_path
        admin = MqttProbe(state["host"], state["port"], state["ca"], state["admin_cert"], state["admin_key"],
                          client_id=ADMIN_CN).connect()
        admin.close()
    assert not state_path.exists()
    with pytest.raises(EdgeshadowError, match="no local broker is running"):
        read_state(tmp_path / "w")


def _answered(thing, host, port, ca, crt, key, deadline_s=10.0):
    """Poll a shadow GET until the service answers (it reconnects on its own after a restart)."""
    deadline = time.monotonic() + deadline_s
    with MqttProbe(host, port, ca, crt, key, client_id=thing) as dev:
        dev.connect()
        dev.subscribe(f"$aws/things/{thing}/shadow/get/+")
        while time.monotonic() < deadline:
            dev.publish(f"$aws/things/{thing}/shadow/get", b"{}")
            try:
                return dev.wait_for(lambda m: m.topic.startswith(f"$aws/things/{thing}/shadow/get/"),
                                    timeout=0.5).json()
            except AssertionError:
                continue
    raise AssertionError("the shadow service did not answer after the broker restart")


def test_shadow_service_comes_back_after_a_broker_restart(tmp_path):
    with local_stack(tmp_path / "w", tmp_path / "ca") as (broker, service, _):
        out = tmp_path / "dev"
        crt = certs.issue_device("restart-1", out, tmp_path / "ca")
        key = out / certs.DEVICE_KEY
        with MqttProbe(broker.host, broker.port, broker.ca_cert, crt, key, client_id="restart-1") as dev:
            dev.connect()
            dev.subscribe("$aws/things/restart-1/shadow/update/accepted")
            dev.publish("$aws/things/restart-1/shadow/update", {"state": {"reported": {"v": 1}}})
            dev.wait_for(lambda m: m.topic.endswith("/accepted"))
        port = broker.port
        broker.stop()
        broker.start()
        assert broker.port == port
        doc = _answered("restart-1", broker.host, broker.port, broker.ca_cert, crt, key)
        assert doc["state"]["reported"] == {"v": 1} and doc["version"] == 1  # persisted, same version


def test_broker_command_runs_until_interrupted(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "edgeshadow"), "broker", "--workdir", str(tmp_path / "w"),
                             "--ca-dir", str(tmp_path / "ca")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("running"):
                break
        info = dict(line.split(None, 1) for line in lines if line.split(None, 1)[0] in ("host", "port", "CA"))
        state = read_state(tmp_path / "w")
        assert int(info["port"]) == state["port"] and info["CA"].strip() == str(tmp_path / "ca" / "ca.crt")
        assert cli_main(["shadow", "set", "cmd-1", "interval_s=7", "--no-wait", "--workdir", str(tmp_path / "w")]) == 0
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=15)[0]
        assert proc.returncode == 0 and "stopped" in rest
        assert not (tmp_path / "w" / "broker.json").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(state["pid"], 0)  # Mosquitto went with it
        assert json.loads((tmp_path / "w" / "shadows" / "cmd-1.json").read_text())["state"]["desired"] == \
            {"interval_s": 7}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_stale_state_file_is_reported(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "broker.json").write_text(json.dumps({
        "host": "127.0.0.1", "port": 1, "ca": "ca.crt", "admin_cert": "a.crt", "admin_key": "a.key",
        "pid": os.getpid(), "owner_pid": dead.pid}))
    with pytest.raises(EdgeshadowError, match=f"shadow service .* \\(pid {dead.pid}\\) is no longer running"):
        read_state(tmp_path)
    (tmp_path / "broker.json").write_text('{"host": "127.0.0.1"}')
    with pytest.raises(EdgeshadowError, match="lacks port, ca, admin_cert, admin_key"):
        read_state(tmp_path)
