"""Certificates: issuing, every bad input of issue 5 with its sentence, DER that real MicroPython
TLS takes (load_cert_chain and a mutual-TLS handshake), and the `edgeshadow certs` command."""
import datetime
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools import VENV_BIN
from host_tools.cloud import certs
from host_tools.cli import main as cli
from host_tools.errors import EdgeshadowError

MICROPYTHON = str(VENV_BIN / "micropython")
NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def ca(tmp_path):
    certs.init_ca(tmp_path / "ca")
    return tmp_path / "ca"


@pytest.fixture
def dev(tmp_path, ca):
    certs.issue_device("grid-001", tmp_path / "grid-001", ca)
    return tmp_path / "grid-001"


def raises_with(fn, *needles):
    with pytest.raises(EdgeshadowError) as e:
        fn()
    for n in needles:
        assert n in str(e.value), str(e.value)
    return str(e.value)


# -- issuing ------------------------------------------------------------------------------------

def test_init_ca_writes_private_key_0600_and_refuses_to_overwrite(tmp_path):
    crt = certs.init_ca(tmp_path / "ca")
    assert crt == tmp_path / "ca" / "ca.crt"
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    c = x509.load_pem_x509_certificate(crt.read_bytes())
    assert c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey) and c.public_key().curve.name == "secp256r1"
    before = crt.read_bytes()
    raises_with(lambda: certs.init_ca(tmp_path / "ca"), "already exists", "--force")
    assert crt.read_bytes() == before
    certs.init_ca(tmp_path / "ca", force=True)
    assert crt.read_bytes() != before


def test_device_certificate_ec_and_rsa_pass_the_check(tmp_path, ca):
    for thing, kt, desc in (("grid-001", "ec", "EC P-256"), ("grid-002", "rsa", "RSA-2048")):
        certs.issue_device(thing, tmp_path / thing, ca, key_type=kt)
        r = certs.check(thing, tmp_path / thing)
        assert r.ok and r.key_type == desc and 363 <= r.days_left <= 365 and not r.warnings
        c = x509.load_pem_x509_certificate((tmp_path / thing / "device.crt").read_bytes())
        assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == thing
        eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        assert (tmp_path / thing / "root-ca.crt").read_bytes() == (ca / "ca.crt").read_bytes()
        assert (tmp_path / thing / "device.key").stat().st_mode & 0o777 == 0o600


def test_device_without_ca_and_bad_thing_name_are_clear_errors(tmp_path):
    raises_with(lambda: certs.issue_device("grid-001", tmp_path / "x", tmp_path / "noca"),
                "no local CA", "certs ca init")
    certs.init_ca(tmp_path / "ca")
    raises_with(lambda: certs.issue_device("bad/name", tmp_path / "x", tmp_path / "ca"), "'bad/name'", "1 to 128")
    assert not (tmp_path / "x").exists()


def test_server_certificate_has_sans_and_server_auth(tmp_path, ca):
    crt, key = certs.issue_server(tmp_path / "srv", ca, hostnames=("localhost", "127.0.0.1"))
    c = x509.load_pem_x509_certificate(crt.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert key.stat().st_mode & 0o777 == 0o600


# -- every bad input ----------------------------------------------------------------------------

def test_key_not_matching_its_certificate(tmp_path, ca, dev):
    certs.issue_device("other", tmp_path / "other", ca)
    os.replace(tmp_path / "other" / "device.key", dev / "device.key")
    raises_with(lambda: certs.check("grid-001", dev), "device.key does not match the certificate",
                "edgeshadow certs device grid-001")


def test_expired_certificate_names_the_date_and_the_fix(tmp_path, ca):
    certs.issue_device("grid-001", tmp_path / "g", ca, not_before=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
                       not_after=datetime.datetime(2026, 1, 3, 12, tzinfo=datetime.timezone.utc))
    msg = raises_with(lambda: certs.check("grid-001", tmp_path / "g"))
    assert msg == ("the certificate for grid-001 expired on 2026-01-03; "
                   "run `edgeshadow certs device grid-001` to renew it")


def test_not_yet_valid_and_expiring_soon(tmp_path, ca):
    certs.issue_device("soon", tmp_path / "soon", ca, days=10)
    r = certs.check("soon", tmp_path / "soon")
    assert r.ok and r.warnings and "expires in 9 days" in r.warnings[0]
    certs.issue_device("future", tmp_path / "future", ca, not_before=NOW + datetime.timedelta(days=2))
    raises_with(lambda: certs.check("future", tmp_path / "future"), "not valid before", "clock")


def test_certificate_from_another_ca(tmp_path, ca, dev):
    certs.init_ca(tmp_path / "ca2", cn="someone else's CA")
    raises_with(lambda: certs.check("grid-001", dev, root_ca=tmp_path / "ca2" / "ca.crt"),
                "does not chain to the root CA", "someone else's CA")
    # another CA with the very same name: caught by the signature, not the name
    certs.init_ca(tmp_path / "ca3")
    raises_with(lambda: certs.check("grid-001", dev, root_ca=tmp_path / "ca3" / "ca.crt"),
                "not signed by the root CA", "same name")


@pytest.mark.parametrize("name,kind", [("device.crt", "certificate"), ("device.key", "private key"),
                                       ("root-ca.crt", "certificate")])
def test_truncated_pem(dev, name, kind):
    p = dev / name
    p.write_bytes(p.read_bytes()[:90])
    raises_with(lambda: certs.check("grid-001", dev), f"{p} is a truncated PEM {kind}", "-----END")


def test_damaged_pem_and_not_pem(dev):
    p = dev / "device.crt"
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:3] + lines[5:]))  # END line kept, body cut
    raises_with(lambda: certs.check("grid-001", dev), f"{p} is a damaged PEM certificate")
    p.write_bytes(b"\x30\x82garbage")
    raises_with(lambda: certs.check("grid-001", dev), f"{p} is not a PEM certificate")


def test_key_readable_by_others(dev):
    os.chmod(dev / "device.key", 0o644)
    raises_with(lambda: certs.check("grid-001", dev), "readable by others (mode 0644)", "chmod 600")


def test_wrong_thing_and_missing_files(tmp_path, dev):
    raises_with(lambda: certs.check("grid-002", dev), "is for 'grid-001', not 'grid-002'")
    raises_with(lambda: certs.check("ghost", tmp_path / "ghost"), "no certificate for ghost",
                "certs device ghost", "provision aws ghost")


def test_key_unsuitable_for_the_esp32(tmp_path, ca):
    key = ec.generate_private_key(ec.SECP384R1())
    cert, _ = certs._sign(ca, key, "big", ExtendedKeyUsageOID.CLIENT_AUTH)
    certs.write_key(tmp_path / "big" / "device.key", key)
    certs.write_cert(tmp_path / "big" / "device.crt", cert)
    certs.write_pem(tmp_path / "big" / "root-ca.crt", (ca / "ca.crt").read_bytes())
    raises_with(lambda: certs.check("big", tmp_path / "big"), "EC P-384", "EC P-256 or RSA-2048")


def test_several_problems_are_all_reported(dev):
    os.chmod(dev / "device.key", 0o640)
    r = certs.inspect("grid-009", dev, now=NOW + datetime.timedelta(days=400))
    assert len(r.problems) == 3 and not r.ok
    msg = raises_with(lambda: certs.check("grid-009", dev, now=NOW + datetime.timedelta(days=400)), "3 problems")
    assert "expired" in msg and "readable by others" in msg and "not 'grid-009'" in msg


# -- AWS-shaped files ---------------------------------------------------------------------------

def _aws_like(tmp_path, cn):
    """A certificate shaped like AWS IoT's (issuer OU=Amazon Web Services), for import tests."""
    issuer = certs.aws_device_issuer()
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer).public_key(key.public_key()).serial_number(7)
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=999))
            .sign(ca_key, hashes.SHA256()))
    dl = tmp_path / "download"
    certs.write_cert(dl / "abc-certificate.pem.crt", cert)
    certs.write_key(dl / "abc-private.pem.key", key)
    os.chmod(dl / "abc-private.pem.key", 0o644)  # as a browser saves it: import makes it 0600
    return dl


def test_amazon_root_ca1_comes_from_the_trust_store_pinned(tmp_path, monkeypatch):
    pem = certs.amazon_root_ca1_pem()
    c = x509.load_pem_x509_certificate(pem)
    assert c.fingerprint(hashes.SHA256()).hex() == certs.AMAZON_ROOT_CA1_SHA256
    assert "Amazon Root CA 1" in c.subject.rfc4514_string()
    # a store holding other CAs only (and no certifi): a clear error pointing at --root-ca
    monkeypatch.setitem(__import__("sys").modules, "certifi", None)
    raises_with(lambda: certs.amazon_root_ca1_pem(stores=[str(tmp_path / "none")]), "AmazonRootCA1", "--root-ca")


def test_import_aws_console_files(tmp_path):
    dl = _aws_like(tmp_path, certs.AWS_CONSOLE_CN)
    r = certs.import_files("grid-001", tmp_path / "certs" / "grid-001", dl / "abc-certificate.pem.crt",
                           dl / "abc-private.pem.key")
    d = tmp_path / "certs" / "grid-001"
    assert r.ok and sorted(p.name for p in d.iterdir()) == ["device.crt", "device.key", "root-ca.crt"]
    assert (d / "device.key").stat().st_mode & 0o777 == 0o600
    assert any("AWS IoT" in n for n in r.notes)
    assert certs.check("grid-001", d).ok


def test_import_refuses_bad_files_and_changes_nothing(tmp_path, ca, dev):
    before = {p.name: p.read_bytes() for p in dev.iterdir()}
    certs.issue_device("other", tmp_path / "other", ca)
    raises_with(lambda: certs.import_files("grid-001", dev, tmp_path / "other" / "device.crt", dev / "device.key"),
                "does not belong to the certificate")
    raises_with(lambda: certs.import_files("grid-001", dev, tmp_path / "other" / "device.crt",
                                           tmp_path / "other" / "device.key"), "not imported", "is for 'other'")
    assert {p.name: p.read_bytes() for p in dev.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca", "grid-001", "other"]  # no staging left


# -- DER for MicroPython ------------------------------------------------------------------------

def test_der_files_load_in_real_micropython_tls(tmp_path, ca):
    for thing, kt in (("e", "ec"), ("r", "rsa")):
        d = certs.issue_device(thing, tmp_path / thing, ca, key_type=kt).parent
        for src, dst in (("device.crt", "c.der"), ("device.key", "k.der"), ("root-ca.crt", "ca.der")):
            (d / dst).write_bytes(certs.to_der(d / src))
        assert b"PRIVATE" not in (d / "k.der").read_bytes()
        code = ("import ssl\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
                "c.load_cert_chain(open('c.der','rb').read(),open('k.der','rb').read())\n"
                "c.load_verify_locations(cadata=open('ca.der','rb').read())\nprint('loaded')\n")
        out = subprocess.run([MICROPYTHON, "-c", code], cwd=d, capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "loaded", out.stderr


def test_micropython_mutual_tls_handshake_with_issued_certificates(tmp_path, ca):
    """The local CA's files work end to end: MicroPython (mbedTLS) verifies our server certificate
    for `localhost` and presents its device certificate, which the server verifies."""
    srv_crt, srv_key = certs.issue_server(tmp_path / "srv", ca)
    d = certs.issue_device("grid-001", tmp_path / "grid-001", ca).parent
    for src, dst in (("device.crt", "c.der"), ("device.key", "k.der"), ("root-ca.crt", "ca.der")):
        (d / dst).write_bytes(certs.to_der(d / src))
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(srv_crt, srv_key)
    sctx.load_verify_locations(ca / "ca.crt")
    sctx.verify_mode = ssl.CERT_REQUIRED
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(20)
    port = lsock.getsockname()[1]
    seen = {}

    def serve():
        try:
            conn, _ = lsock.accept()
            with sctx.wrap_socket(conn, server_side=True) as tls:
                seen["cn"] = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
                tls.sendall(b"hello " + seen["cn"].encode())
        except Exception as e:  # reported through the assertion below
            seen["error"] = repr(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    code = ("import ssl,socket\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nc.verify_mode=ssl.CERT_REQUIRED\n"
            "c.load_cert_chain(open('c.der','rb').read(),open('k.der','rb').read())\n"
            "c.load_verify_locations(cadata=open('ca.der','rb').read())\n"
            f"s=socket.socket();s.connect(socket.getaddrinfo('127.0.0.1',{port})[0][-1])\n"
            "t=c.wrap_socket(s,server_hostname='localhost')\nprint(t.read(14).decode())\nt.close()\n")
    try:
        out = subprocess.run([MICROPYTHON, "-c", code], cwd=d, capture_output=True, text=True, timeout=30)
    finally:
        t.join(10)
        lsock.close()
    assert seen.get("cn") == "grid-001", (seen, out.stderr)
    assert out.stdout.strip() == "hello grid-001", out.stderr


# -- the command --------------------------------------------------------------------------------

def test_cli_ca_device_check_and_exit_codes(tmp_path, capsys):
    cd = ["--certs-dir", str(tmp_path)]
    assert cli(["certs", "ca", "init", *cd]) == 0
    assert cli(["certs", "device", "a", "b", *cd]) == 0
    assert cli(["certs", "device", "c", "--rsa", *cd]) == 0
    assert cli(["certs", "check", "a", "b", "c", *cd]) == 0
    out = capsys.readouterr().out
    assert "RSA-2048" in out and "EC P-256" in out and "FAIL" not in out
    os.chmod(tmp_path / "b" / "device.key", 0o604)
    assert cli(["certs", "check", "a", "b", *cd]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "b: " in out and "readable by others" in out and "1 of 2 failed" in out
    assert cli(["certs", "device", "ok-1", "bad thing", *cd]) == 1
    assert not (tmp_path / "ok-1").exists()  # names are checked before anything is made


def test_cli_ca_init_and_device_are_idempotent(tmp_path, capsys):
    """README: `make demo` made the CA and the demo's things; `certs ca init && certs device ...`
    must then go on, keeping the CA and every valid key (a board holds it)."""
    cd = ["--certs-dir", str(tmp_path)]
    assert cli(["certs", "ca", "init", *cd]) == 0
    ca_before = (tmp_path / "ca" / "ca.key").read_bytes()
    assert cli(["certs", "ca", "init", *cd]) == 0
    assert "local CA kept" in capsys.readouterr().out
    assert (tmp_path / "ca" / "ca.key").read_bytes() == ca_before
    assert cli(["certs", "device", "grid-001", *cd]) == 0
    key_before = (tmp_path / "grid-001" / "device.key").read_bytes()
    assert cli(["certs", "device", "grid-001", *cd]) == 0
    assert "kept, valid" in capsys.readouterr().out
    assert (tmp_path / "grid-001" / "device.key").read_bytes() == key_before
    # a certificate that cannot be kept (here: an RSA key asked for) is refused, not replaced
    assert cli(["certs", "device", "grid-001", "--rsa", *cd]) == 1
    err = capsys.readouterr().err
    assert "cannot be kept" in err and "--force" in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "grid-001" / "device.key").read_bytes() == key_before
    assert cli(["certs", "device", "grid-001", "--rsa", "--force", *cd]) == 0
    assert (tmp_path / "grid-001" / "device.key").read_bytes() != key_before
    assert cli(["certs", "ca", "init", "--force", *cd]) == 0
    assert (tmp_path / "ca" / "ca.key").read_bytes() != ca_before
    # signed by the old CA: does not chain to the new one, so it is not kept silently
    assert cli(["certs", "device", "grid-001", "--rsa", *cd]) == 1
    assert "is not signed by the root CA" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["ca", "init", "--days", "-1"], ["ca", "init", "--days", "0"],
                                  ["device", "grid-001", "--days", "0"], ["device", "grid-001", "--days", "-3"]])
def test_cli_days_below_one_is_one_line_and_makes_nothing(tmp_path, capsys, argv):
    if argv[0] == "device":
        certs.init_ca(tmp_path / "ca")
    assert cli(["certs", *argv, "--certs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"--days {argv[-1]}: a certificate must be valid for at least 1 day" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "grid-001").exists()
    assert (tmp_path / "ca").exists() == (argv[0] == "device")


def test_cli_check_json(tmp_path, capsys):
    cd = ["--certs-dir", str(tmp_path)]
    certs.init_ca(tmp_path / "ca")
    assert cli(["certs", "device", "a", *cd]) == 0
    capsys.readouterr()
    assert cli(["certs", "check", "a", "missing", "--json", *cd]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # nothing else on stdout
    assert doc["ok"] is False
    a, missing = doc["things"]
    assert a["ok"] and a["key"] == "EC P-256" and 363 <= a["days_left"] <= 365 and a["problems"] == []
    assert not missing["ok"] and "no certificate for missing" in missing["problems"][0]
    assert "1 of 2 failed" in captured.err


def test_cli_import(tmp_path, capsys):
    dl = _aws_like(tmp_path, "grid-007")
    cd = ["--certs-dir", str(tmp_path / "certs")]
    assert cli(["certs", "import", "grid-007", "--cert", str(dl / "abc-certificate.pem.crt"),
                "--key", str(dl / "abc-private.pem.key"), *cd]) == 0
    assert "imported" in capsys.readouterr().out
    assert cli(["certs", "check", "grid-007", *cd]) == 0


def test_cli_help():
    with pytest.raises(SystemExit) as e:
        cli(["certs", "check", "--help"])
    assert e.value.code == 0
