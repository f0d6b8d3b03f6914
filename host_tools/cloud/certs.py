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


def init_ca(ca_dir, cn="edgeshadow local CA", days=3650, force=False):
    ca_dir = Path(ca_dir)
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


# -- checks -------------------------------------------------------------------------------------

@dataclass
class CheckReport:
    thing: str
    thing_dir: Path
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    key_type: str = None
    not_after: datetime.datetime = None
    days_left: int = None
    issuer: str = None

    @property
    def ok(self):
        return not self.problems


def _key_desc(key):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        name = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(key.curve.name,
                                                                                   key.curve.name)
        return f"EC {name}", key.curve.name == "secp256r1"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}", key.key_size == 2048
    return type(key).__name__, False


def _attr(name, oid):
    vals = name.get_attributes_for_oid(oid)
    return vals[0].value if vals else None


def aws_device_issuer():
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, AWS_DEVICE_ISSUER_OU)])


def is_aws_issued(cert):
    values = " ".join(str(a.value) for a in cert.issuer)
    return values.startswith("Amazon Web Services") and "Amazon.com Inc." in values


def renew_hint(thing, thing_dir):
    if (Path(thing_dir) / "aws.json").exists():
        return (f"run `edgeshadow deprovision aws {thing}` then `edgeshadow provision aws {thing}` "
                "to get a new one")
    return f"run `edgeshadow certs device {thing}` to renew it"


def inspect(thing, thing_dir, root_ca=None, now=None):
    """Every problem with a thing's certificate files, without raising."""
    thing_dir = Path(thing_dir)
    r = CheckReport(thing, thing_dir)
    now = now or _utcnow()
    fix = renew_hint(thing, thing_dir)
    crt_p, key_p = thing_dir / DEVICE_CRT, thing_dir / DEVICE_KEY
    root_p = Path(root_ca) if root_ca else thing_dir / ROOT_CA
    if not crt_p.exists() and not key_p.exists():
        r.problems.append(f"there is no certificate for {thing} in {thing_dir}; run `edgeshadow certs "
                          f"device {thing}` (local broker), `edgeshadow provision aws {thing}` or "
                          f"`edgeshadow certs import {thing}`")
        return r
    cert = key = root = None
    for what, path, loader in (("cert", crt_p, load_cert), ("key", key_p, load_key),
                               ("root", root_p, load_cert)):
        try:
            obj = loader(path)
        except EdgeshadowError as e:
            r.problems.append(f"{e}; {fix}" if what != "root" else
                              f"{e}; pass --root-ca FILE or copy the CA certificate there")
            continue
        if what == "cert":
            cert = obj
        elif what == "key":
            key = obj
        else:
            root = obj
    if key_p.exists():
        mode = key_p.stat().st_mode & 0o777
        if mode & 0o077:
            r.problems.append(f"{key_p} is readable by others (mode {mode:04o}); run `chmod 600 {key_p}`")
    if key is not None:
        r.key_type, suits = _key_desc(key)
        if not suits:
            r.problems.append(f"the key for {thing} is {r.key_type}, which the ESP32's TLS does not "
                              f"handle well; use EC P-256 or RSA-2048 ({fix})")
    if cert is None:
        return r
    r.issuer = cert.issuer.rfc4514_string()
    r.not_after = cert.not_valid_after_utc
    r.days_left = (r.not_after - now).days
    if key is not None:
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            r.problems.append(f"{key_p} does not match the certificate {crt_p} (a key from another "
                              f"certificate); put the key that belongs to it there or {fix}")
    if now > r.not_after:
        r.problems.append(f"the certificate for {thing} expired on {r.not_after:%Y-%m-%d}; {fix}")
    elif now < cert.not_valid_before_utc:
        r.problems.append(f"the certificate for {thing} is not valid before "
                          f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock or {fix}")
    elif r.days_left < WARN_DAYS:
        r.warnings.append(f"the certificate for {thing} expires in {r.days_left} days "
                          f"(on {r.not_after:%Y-%m-%d}); {fix} soon")
    cn = _attr(cert.subject, NameOID.COMMON_NAME)
    if cn != thing:
        if cn == AWS_CONSOLE_CN and is_aws_issued(cert):
            r.notes.append("AWS console certificate: the thing binding is the AWS attachment, not the CN")
        else:
            r.problems.append(f"the certificate in {crt_p} is for {cn!r}, not {thing!r}; "
                              f"the files belong to another thing, or {fix}")
    if root is not None:
        _check_chain(r, cert, root, root_p, fix)
    return r


def _check_chain(r, cert, root, root_p, fix):
    thing = r.thing
    if cert.issuer == root.subject:
        try:
            cert.verify_directly_issued_by(root)
            return
        except (InvalidSignature, ValueError, TypeError):
            r.problems.append(f"the certificate for {thing} names {r.issuer!r} as issuer but is not signed "
                              f"by the root CA in {root_p} (another CA with the same name); {fix}")
            return
    if is_aws_issued(cert) and _attr(root.subject, NameOID.ORGANIZATION_NAME) == "Amazon":
        r.notes.append("signed by AWS IoT (AWS checks it at connect); the board checks the server "
                       f"with {_attr(root.subject, NameOID.COMMON_NAME)}")
        return
    r.problems.append(f"the certificate for {thing} was issued by {r.issuer!r} and does not chain to the "
                      f"root CA {root.subject.rfc4514_string()!r} in {root_p}; {fix} from that CA, or "
                      "give the matching root CA with --root-ca")


def check(thing, thing_dir, root_ca=None, now=None):
    """Raise EdgeshadowError naming every problem (one sentence each); return the report if fine."""
    r = inspect(thing, thing_dir, root_ca=root_ca, now=now)
    if r.problems:
        raise EdgeshadowError("; ".join(r.problems) if len(r.problems) == 1 else
                              f"{len(r.problems)} problems with the certificates of {thing}: "
                              + " | ".join(r.problems))
    return r


def import_files(thing, thing_dir, cert_file, key_file, root_ca_file=None, now=None):
    """Take AWS's downloaded files into thing_dir under our names; nothing is written if they fail
    the checks (mismatched key, other thing's certificate, unsuitable key, damaged PEM)."""
    import shutil
    import tempfile
    validate_thing(thing)
    thing_dir = Path(thing_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".import-{thing}-", dir=thing_dir.parent
                                    if thing_dir.parent.exists() else None))
    try:
        cert = load_cert(cert_file)
        key = load_key(key_file)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise EdgeshadowError(f"not imported: the key {key_file} does not belong to the certificate "
                                  f"{cert_file}; take both files from the same AWS download")
        write_cert(staging / DEVICE_CRT, cert)
        write_key(staging / DEVICE_KEY, key)
        if root_ca_file:
            write_cert(staging / ROOT_CA, load_cert(root_ca_file))
        elif (thing_dir / ROOT_CA).exists():
            shutil.copyfile(thing_dir / ROOT_CA, staging / ROOT_CA)
        elif is_aws_issued(cert):
            write_pem(staging / ROOT_CA, amazon_root_ca1_pem())
        else:
            raise EdgeshadowError(f"no root CA for {thing}: pass --root-ca FILE (for AWS IoT, AmazonRootCA1.pem)")
        report = inspect(thing, staging, now=now)
        sources = {DEVICE_CRT: cert_file, DEVICE_KEY: key_file, ROOT_CA: root_ca_file or thing_dir / ROOT_CA}
        for name, src in sources.items():
            report.problems = [p.replace(str(staging / name), str(src)) for p in report.problems]
        if report.problems:
            raise EdgeshadowError(f"not imported ({thing_dir} unchanged): " + " | ".join(report.problems))
        for name in (DEVICE_KEY, DEVICE_CRT, ROOT_CA):
            data = (staging / name).read_bytes()
            write_pem(thing_dir / name, data, private=(name == DEVICE_KEY))
        report.thing_dir = thing_dir
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
