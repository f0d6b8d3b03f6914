"""Device certificates: a local CA, device/server/client certificates, checks, DER for the board.

Layout (PEM on the host): `<certs>/ca/ca.crt, ca.key`; `<certs>/<thing>/device.crt, device.key,
root-ca.crt`. Private keys are written mode 0600 through a temporary file and a rename, so a crash
never leaves half a key. Keys are EC P-256 by default (about 1 s TLS handshake on an ESP32) or
RSA-2048 (1.2 to 2.5 s); nothing else suits the board.

`inspect()` returns every problem of a thing's files; `check()` raises them as one EdgeshadowError.
"""
import datetime
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from host_tools.errors import EdgeshadowError

THING_RE = re.compile(r"^[A-Za-z0-9_:-]{1,128}$")
WARN_DAYS = 30
# AWS IoT signs device certificates (console "create certificate" and CreateCertificateFromCsr)
# with an issuer whose one OU value reads like a whole name; the board verifies the *server* with
# an Amazon root CA instead, so such certificates do not chain to root-ca.crt.
AWS_DEVICE_ISSUER_OU = "Amazon Web Services O=Amazon.com Inc. L=Seattle ST=Washington C=US"
AWS_CONSOLE_CN = "AWS IoT Certificate"
# SHA-256 of the public AmazonRootCA1 certificate (https://www.amazontrust.com/repository/).
AMAZON_ROOT_CA1_SHA256 = "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e"
_TRUST_STORES = ("/etc/ssl/certs/Amazon_Root_CA_1.pem", "/etc/ssl/certs/ca-certificates.crt")

DEVICE_CRT, DEVICE_KEY, ROOT_CA = "device.crt", "device.key", "root-ca.crt"


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def validate_thing(thing):
    if not isinstance(thing, str) or not THING_RE.match(thing):
        raise EdgeshadowError(f"thing name {thing!r} is not valid: use 1 to 128 characters from "
                              "A-Z a-z 0-9 _ : - (it is also the MQTT client id)")
    return thing


# -- files --------------------------------------------------------------------------------------

def _write(path, data, mode):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or the file may have existed
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def write_key(path, key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    return _write(path, pem, 0o600)


def write_cert(path, cert):
    return _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def write_pem(path, pem_bytes, private=False):
    return _write(path, pem_bytes, 0o600 if private else 0o644)


def new_key(key_type="ec"):
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise EdgeshadowError(f"key type {key_type!r} is not supported: use 'ec' (P-256) or 'rsa' (2048)")


def _pem_problem(path, data, what):
    """A sentence for PEM text that does not parse, or None to let the parser explain."""
    kind = "CERTIFICATE" if what == "certificate" else "PRIVATE KEY"
    if b"-----BEGIN" not in data:
        return f"{path} is not a PEM {what} (no -----BEGIN line)"
    if b"-----END" not in data:
        return f"{path} is a truncated PEM {what} (it has no -----END {kind}----- line)"
    return None


def _read(path):
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EdgeshadowError(f"{path} is missing") from None


def load_cert(path):
    path = Path(path)
    data = _read(path)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise EdgeshadowError(_pem_problem(path, data, "certificate")
                              or f"{path} is a damaged PEM certificate ({e})") from None


def load_key(path):
    path = Path(path)
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise EdgeshadowError(f"{path} is encrypted with a passphrase; the board needs an unencrypted "
                              f"key (decrypt it with `openssl pkey -in {path.name} -out device.key`)") from None
    except (ValueError, Exception) as e:  # cryptography raises ValueError or UnsupportedAlgorithm
        raise EdgeshadowError(_pem_problem(path, data, "private key")
                              or f"{path} is a damaged PEM private key ({e})") from None


def to_der(pem_path):
    """DER bytes of a PEM certificate or private key, as MicroPython's mbedTLS takes them.

    Keys become SEC1 ("EC PRIVATE KEY") or PKCS#1 DER, which `load_cert_chain` accepts on the
    unix port and the ESP32 (checked in tests/host/test_certs.py with the real micropython).
    """
    pem_path = Path(pem_path)
    data = pem_path.read_bytes() if pem_path.exists() else b""
    if b"PRIVATE KEY-----" in data:
        return load_key(pem_path).private_bytes(serialization.Encoding.DER,
                                                serialization.PrivateFormat.TraditionalOpenSSL,
                                                serialization.NoEncryption())
    return load_cert(pem_path).public_bytes(serialization.Encoding.DER)


# -- issuing ------------------------------------------------------------------------------------

def _name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def check_days(days, what="--days"):
    """A validity of at least one whole day (0 or less would issue a certificate already expired)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise EdgeshadowError(f"{what} {days}: a certificate must be valid for at least 1 day")
    return days


def init_ca(ca_dir, cn="edgeshadow local CA", days=3650, force=False):
    ca_dir = Path(ca_dir)
    check_days(days)
    crt, key_path = ca_dir / "ca.crt", ca_dir / "ca.key"
    if (crt.exists() or key_path.exists()) and not force:
        raise EdgeshadowError(f"a CA already exists in {ca_dir}; every certificate it signed depends on "
                              "it, so it is kept (pass --force to replace it and reissue every certificate)")
    key = new_key("ec")
    now = _utcnow()
    name = _name(cn, "edgeshadow")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    write_key(key_path, key)
    write_cert(crt, cert)
    return crt


def load_ca(ca_dir):
    ca_dir = Path(ca_dir)
    if not (ca_dir / "ca.crt").exists() or not (ca_dir / "ca.key").exists():
        raise EdgeshadowError(f"no local CA in {ca_dir}; run `edgeshadow certs ca init` first")
    return load_cert(ca_dir / "ca.crt"), load_key(ca_dir / "ca.key")


def _sign(ca_dir, subject_key, cn, eku, days=365, not_before=None, not_after=None, sans=()):
    if not_after is None:
        check_days(days)
    ca_cert, ca_key = load_ca(ca_dir)
    now = _utcnow()
    nb = not_before or now - datetime.timedelta(minutes=5)
    na = not_after or now + datetime.timedelta(days=days)
    is_ec = isinstance(subject_key, ec.EllipticCurvePrivateKey)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                      key_encipherment=not is_ec, data_encipherment=False,
                                      key_agreement=is_ec, key_cert_sign=False, crl_sign=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return b.sign(ca_key, hashes.SHA256()), ca_cert


def issue_device(thing, out_dir, ca_dir, key_type="ec", days=365, not_before=None, not_after=None):
    """Key + certificate (CN = thing) signed by the local CA; returns out_dir/device.crt."""
    validate_thing(thing)
    out_dir = Path(out_dir)
    key = new_key(key_type)
    cert, ca_cert = _sign(ca_dir, key, thing, ExtendedKeyUsageOID.CLIENT_AUTH, days, not_before, not_after)
    write_key(out_dir / DEVICE_KEY, key)
    write_cert(out_dir / ROOT_CA, ca_cert)
    return write_cert(out_dir / DEVICE_CRT, cert)


def ensure_ca(ca_dir, days=3650, force=False):
    """The local CA, made if missing: -> (ca.crt, made). An existing CA is kept (every certificate
    it signed depends on it) when it loads; a damaged or half-made one is an error naming the fix."""
    check_days(days)
    ca_dir = Path(ca_dir)
    if force or not ((ca_dir / "ca.crt").exists() or (ca_dir / "ca.key").exists()):
        return init_ca(ca_dir, days=days, force=force), True
    load_ca(ca_dir)
    return ca_dir / "ca.crt", False


def ensure_device(thing, out_dir, ca_dir, key_type="ec", days=365, force=False):
    """A thing's key and certificate, issued if missing: -> (device.crt, made). Existing files are
    kept when they pass the checks against this CA with the key type asked for; otherwise they are
    replaced only with force (the board holding the old key would then need a new injection)."""
    validate_thing(thing)
    check_days(days)
    out_dir, ca_dir = Path(out_dir), Path(ca_dir)
    if force or not ((out_dir / DEVICE_CRT).exists() or (out_dir / DEVICE_KEY).exists()):
        return issue_device(thing, out_dir, ca_dir, key_type=key_type, days=days), True
    load_ca(ca_dir)
    from host_tools.cloud.certs_check import inspect, renew_hint
    r = inspect(thing, out_dir, root_ca=ca_dir / "ca.crt")
    fix = renew_hint(thing, out_dir)
    r.problems = [p.replace(f"; {fix}", "").replace(f" ({fix})", "").replace(f" or {fix}", "")
                  for p in r.problems]
    wanted = "EC P-256" if key_type == "ec" else "RSA-2048"
    problems = r.problems + ([f"it holds an {r.key_type} key, not {wanted}"]
                             if r.key_type and r.key_type != wanted else [])
    if problems:
        raise EdgeshadowError(f"{out_dir} already holds a certificate for {thing} that cannot be kept: "
                              + " | ".join(problems) + "; pass --force to replace its key and certificate "
                              "(then inject the board again)")
    return out_dir / DEVICE_CRT, False


def issue_client(out_dir, ca_dir, cn):
    """A client certificate for a host service (same files as a device); returns (crt, key)."""
    crt = issue_device(cn, out_dir, ca_dir)
    return crt, Path(out_dir) / DEVICE_KEY


def issue_server(out_dir, ca_dir, hostnames=("localhost", "127.0.0.1"), cn="localhost"):
    """A server certificate (serverAuth, DNS/IP SANs) for a local broker; returns (crt, key)."""
    sans = []
    for h in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = new_key("ec")
    cert, ca_cert = _sign(ca_dir, key, cn, ExtendedKeyUsageOID.SERVER_AUTH, days=825, sans=sans)
    out_dir = Path(out_dir)
    write_cert(out_dir / ROOT_CA, ca_cert)
    return write_cert(out_dir / "server.crt", cert), write_key(out_dir / "server.key", key)


def amazon_root_ca1_pem(stores=_TRUST_STORES):
    """The public AmazonRootCA1 certificate from this machine's trust stores (pinned by SHA-256)."""
    candidates = list(stores)
    try:
        import certifi
        candidates.append(certifi.where())
    except ImportError:
        pass
    for store in candidates:
        try:
            bundle = Path(store).read_bytes()
        except OSError:
            continue
        try:
            certs = x509.load_pem_x509_certificates(bundle)
        except ValueError:
            continue
        for c in certs:
            if c.fingerprint(hashes.SHA256()).hex() == AMAZON_ROOT_CA1_SHA256:
                return c.public_bytes(serialization.Encoding.PEM)
    raise EdgeshadowError("AmazonRootCA1 was not found in this machine's trust stores; download it from "
                          "https://www.amazontrust.com/repository/AmazonRootCA1.pem and pass --root-ca FILE")


# The checks live in certs_check.py (which imports this module); one API here.
_CHECKS = ("CheckReport", "aws_device_issuer", "check", "import_files", "inspect", "is_aws_issued", "renew_hint")


def __getattr__(name):
    if name in _CHECKS:
        from host_tools.cloud import certs_check
        return getattr(certs_check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
