# TLS for the MQTT link: a verifying client context from the DER files on the board, the device
# certificate's dates checked (net/clock.py sets the clock first), and TLS failures turned into
# sentences. There is no code path that builds an unverified context.
import ssl
import time

from compat import EPOCH_OFFSET, unix_time

_CPYTHON = not hasattr(ssl, "MBEDTLS_VERSION") and hasattr(ssl, "create_default_context")


class TLSError(Exception):
    pass


def read_der(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise TLSError("%s %s is missing: provision the device (edgeshadow certs device THING, then deploy)" % (what, path))
    if not data:
        raise TLSError("%s %s is empty" % (what, path))
    if data[:5] == b"-----":
        raise TLSError("%s %s is PEM: the board needs DER (edgeshadow certs device converts it)" % (what, path))
    return data


# --- certificate dates (a few lines of DER, so an expired certificate is named before connecting) --
def _tlv(b, i):
    tag = b[i]
    n = b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(bytes(b[i:i + k]), "big")
        i += k
    return tag, i, i + n  # tag, start of value, end of value


def _days(y, m, d):
    # days since 1970-01-01 of a civil date (Howard Hinnant's algorithm)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _asn1_time(tag, s):
    s = str(s, "ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        y = int(s[0:2])
        s = ("19" if y >= 50 else "20") + s
    y, mo, d = int(s[0:4]), int(s[4:6]), int(s[6:8])
    return _days(y, mo, d) * 86400 + int(s[8:10]) * 3600 + int(s[10:12]) * 60 + int(s[12:14])


def validity(cert_der):
    """(not_before, not_after) of a DER certificate, unix seconds."""
    b = memoryview(cert_der)
    _, i, _ = _tlv(b, 0)              # Certificate
    _, i, _ = _tlv(b, i)              # tbsCertificate
    if b[i] == 0xA0:                  # [0] version
        i = _tlv(b, i)[2]
    for _ in range(3):                # serial, signature algorithm, issuer
        i = _tlv(b, i)[2]
    _, i, _ = _tlv(b, i)              # validity
    t1, s1, e1 = _tlv(b, i)
    t2, s2, e2 = _tlv(b, e1)
    return _asn1_time(t1, b[s1:e1]), _asn1_time(t2, b[s2:e2])


def _date(t):
    g = time.gmtime(t - EPOCH_OFFSET)
    return "%04d-%02d-%02d %02d:%02d UTC" % (g[0], g[1], g[2], g[3], g[4])


_CLOCK_SET_AFTER = 1704067200  # 2024-01-01: an earlier clock has not been set yet (boot, no NTP)


def check_dates(cert_der, path, now=None):
    """Refuse an expired or not-yet-valid device certificate, naming the date; skipped while the
    clock is unset (the server's check and the handshake still apply)."""
    now = unix_time() if now is None else now
    if now < _CLOCK_SET_AFTER:
        return
    try:
        nb, na = validity(cert_der)
    except (IndexError, ValueError):
        raise TLSError("device certificate %s is not a DER certificate" % path)
    if now > na:
        raise TLSError("device certificate %s expired on %s: renew it (edgeshadow certs device THING)" % (path, _date(na)))
    if now < nb:
        raise TLSError("device certificate %s is not valid before %s: is the clock set?" % (path, _date(nb)))


# --- context ------------------------------------------------------------------------------------
def context(ca_der, cert_der, key_der):
    """A client context that verifies the server against ca_der and presents cert_der/key_der."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if _CPYTHON:
        ctx.check_hostname = True
        return _cpython_chain(ctx, ca_der, cert_der, key_der)
    try:
        ctx.load_verify_locations(cadata=ca_der)
    except ValueError:
        raise TLSError("root CA is not a valid DER certificate")
    try:
        ctx.load_cert_chain(cert_der, key_der)
    except ValueError as e:
        raise TLSError("device certificate or key is not valid DER (%s)" % e)
    return ctx


def _cpython_chain(ctx, ca_der, cert_der, key_der):
    # CPython's load_cert_chain takes PEM files only: write them to a private temp folder.
    import base64, os, tempfile
    ctx.load_verify_locations(cadata=ca_der)
    key_type = "EC PRIVATE KEY" if key_der[4:5] == b"\x01" or key_der[2:3] == b"\x01" else "RSA PRIVATE KEY"
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, der, label in (("c.pem", cert_der, "CERTIFICATE"), ("k.pem", key_der, key_type)):
            p = os.path.join(d, name)
            with open(p, "w") as f:
                f.write("-----BEGIN %s-----\n%s-----END %s-----\n" % (label, base64.encodebytes(der).decode(), label))
            paths.append(p)
        ctx.load_cert_chain(paths[0], paths[1])
    return ctx


def load_context(ca_path, cert_path, key_path, now=None):
    """Read the three DER files, check the device certificate's dates, build the context."""
    ca = read_der(ca_path, "root CA")
    cert = read_der(cert_path, "device certificate")
    key = read_der(key_path, "device key")
    check_dates(cert, cert_path, now)
    return context(ca, cert, key)


# --- failures into words ------------------------------------------------------------------------
_MBEDTLS = {
    -0x7F00: "out of memory for TLS (MBEDTLS_ERR_SSL_ALLOC_FAILED): free heap before connecting",
    -17040: "out of memory during the RSA operation: use an EC P-256 device key",
    -17168: "out of memory during the RSA operation: use an EC P-256 device key",
    -2880: "out of memory parsing a certificate",
    -0x2880: "out of memory parsing a certificate",
    -0x2700: "the server certificate failed verification",
    -0x7780: "the broker sent a fatal TLS alert: it refused our device certificate or key",
    -0x7280: "the broker closed the connection during the TLS handshake",
    -0x0050: "the connection was reset during the TLS handshake",
    -0x3D00: "the device key is not a valid key",
}
_VERIFY = (
    ("not correctly signed", "the server certificate is not signed by our root CA (unknown CA): wrong broker or wrong root-ca.der"),
    ("common name", "hostname mismatch: the server certificate does not name %s"),
    ("cn)", "hostname mismatch: the server certificate does not name %s"),
    ("hostname mismatch", "hostname mismatch: the server certificate does not name %s"),
    ("unable to get local issuer", "the server certificate is not signed by our root CA (unknown CA): wrong broker or wrong root-ca.der"),
    ("self-signed certificate", "the server certificate is not signed by our root CA (unknown CA): wrong broker or wrong root-ca.der"),
    ("validity has expired", "the server certificate has expired (or the device clock is wrong)"),
    ("certificate has expired", "the server certificate has expired (or the device clock is wrong)"),
    ("not yet valid", "the server certificate is not yet valid: is the device clock set?"),
)


def explain(exc, host="the broker"):
    """One sentence for a failure during the TLS connection to `host`."""
    from net.clock import ClockError
    if isinstance(exc, (TLSError, ClockError)):
        return str(exc)
    text = " ".join(str(a) for a in getattr(exc, "args", ())).lower()
    vm = getattr(exc, "verify_message", None)
    if vm:
        text += " " + vm.lower()
    for needle, words in _VERIFY:
        if needle in text:
            return "TLS refused: " + (words % host if "%s" in words else words)
    code = exc.args[0] if getattr(exc, "args", None) and isinstance(exc.args[0], int) else None
    if code in _MBEDTLS:
        return "TLS refused: %s (%d)" % (_MBEDTLS[code], code)
    if code in (32, 104) or isinstance(exc, EOFError) or "eof" in text or "reset" in text:
        return ("TLS refused: %s closed the connection during the handshake: it refused our device "
                "certificate (expired, revoked or from another CA) or the key does not match" % host)
    return "connection to %s failed: %r" % (host, exc)
