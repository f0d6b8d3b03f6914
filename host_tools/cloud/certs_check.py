"""Checks of a thing's certificate files (host_tools.cloud.certs re-exports them).

`inspect()` returns every problem of a thing's files (a CheckReport); `check()` raises them as one
EdgeshadowError; `import_files()` takes AWS's downloaded files in only if they pass.
"""
import datetime
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from host_tools.cloud.certs import (AWS_CONSOLE_CN, AWS_DEVICE_ISSUER_OU, DEVICE_CRT, DEVICE_KEY, ROOT_CA,
                                    WARN_DAYS, _utcnow, amazon_root_ca1_pem, load_cert, load_key,
                                    validate_thing, write_cert, write_key, write_pem)
from host_tools.errors import EdgeshadowError

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
    fix = renew_hint(thing, thing_dir)
    crt_p, key_p = thing_dir / DEVICE_CRT, thing_dir / DEVICE_KEY
    root_p = Path(root_ca) if root_ca else thing_dir / ROOT_CA
    if not crt_p.exists() and not key_p.exists():
        r.problems.append(f"there is no certificate for {thing} in {thing_dir}; run `edgeshadow certs "
                          f"device {thing}` (local broker), `edgeshadow provision aws {thing}` or "
                          f"`edgeshadow certs import {thing}`")
        return r
    cert, key, root = (_load(r, path, loader, hint) for path, loader, hint in (
        (crt_p, load_cert, fix), (key_p, load_key, fix),
        (root_p, load_cert, "pass --root-ca FILE or copy the CA certificate there")))
    _check_key(r, key_p, key, fix)
    if cert is None:
        return r
    r.issuer = cert.issuer.rfc4514_string()
    r.not_after = cert.not_valid_after_utc
    r.days_left = (r.not_after - (now or _utcnow())).days
    if key is not None:
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            r.problems.append(f"{key_p} does not match the certificate {crt_p} (a key from another "
                              f"certificate); put the key that belongs to it there or {fix}")
    _check_dates(r, cert, now or _utcnow(), fix)
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


def _load(r, path, loader, hint):
    try:
        return loader(path)
    except EdgeshadowError as e:
        r.problems.append(f"{e}; {hint}")
        return None


def _check_key(r, key_p, key, fix):
    if key_p.exists():
        mode = key_p.stat().st_mode & 0o777
        if mode & 0o077:
            r.problems.append(f"{key_p} is readable by others (mode {mode:04o}); run `chmod 600 {key_p}`")
    if key is not None:
        r.key_type, suits = _key_desc(key)
        if not suits:
            r.problems.append(f"the key for {r.thing} is {r.key_type}, which the ESP32's TLS does not "
                              f"handle well; use EC P-256 or RSA-2048 ({fix})")


def _check_dates(r, cert, now, fix):
    if now > r.not_after:
        r.problems.append(f"the certificate for {r.thing} expired on {r.not_after:%Y-%m-%d}; {fix}")
    elif now < cert.not_valid_before_utc:
        r.problems.append(f"the certificate for {r.thing} is not valid before "
                          f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock or {fix}")
    elif r.days_left < WARN_DAYS:
        r.warnings.append(f"the certificate for {r.thing} expires in {r.days_left} days "
                          f"(on {r.not_after:%Y-%m-%d}); {fix} soon")


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
