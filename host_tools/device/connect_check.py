"""`inject --check-connect`: the board opens a TLS connection to its endpoint with its new files.

The check runs on the board (a script sent with exec: it must work on a board whatever firmware it
has), and its outcome, an mbedTLS or socket error as MicroPython raises it, is put into words here.
"""


_CONNECT = """import json, socket, ssl, time
def _rd(p):
    f = open(p, 'rb'); d = f.read(); f.close(); return d
def _check():
    cfg = json.loads(_rd('/config.json'))
    m = cfg.get('mqtt') or {}
    host, port = m.get('endpoint'), m.get('port') or 8883
    if not host:
        return 'no-endpoint'
    try:
        import network
        w = network.WLAN(network.STA_IF)
        if not w.isconnected():
            wifi = cfg.get('wifi') or {}
            w.active(True)
            w.connect(wifi.get('ssid') or '', wifi.get('password') or '')
            t0 = time.ticks_ms()
            while not w.isconnected():
                if time.ticks_diff(time.ticks_ms(), t0) > 15000:
                    return 'no-network'
                time.sleep_ms(100)
    except ImportError:
        pass
    if time.gmtime()[0] < 2024:
        try:
            import ntptime
            ntptime.settime()
        except Exception:
            return 'no-clock'
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # the unix port's default is CERT_NONE despite the name
    ctx.load_cert_chain(_rd(m.get('cert', '/certs/device.der')), _rd(m.get('key', '/certs/device.key.der')))
    ctx.load_verify_locations(cadata=_rd(m.get('ca', '/certs/root-ca.der')))
    s = socket.socket()
    try:
        s.settimeout({timeout})
        s.connect(socket.getaddrinfo(host, port)[0][-1])
        t0 = time.ticks_ms()
        t = ctx.wrap_socket(s, server_hostname=host)
        ms = time.ticks_diff(time.ticks_ms(), t0)
        t.close()
        return 'ok %d' % ms
    finally:
        s.close()
try:
    print('CHECK', _check())
except Exception as e:
    print('CHECK error', repr(e))
"""

# mbedTLS and socket errors as MicroPython raises them, in words.
_TLS_WORDS = [
    ("not correctly signed by the trusted CA", "the server's certificate is not signed by "
                                               "/certs/root-ca.der (wrong root CA for this endpoint?)"),
    ("CN mismatch", "the server's certificate is not for this host name (check mqtt.endpoint)"),
    ("has expired", "a certificate in the chain has expired (or the board's clock is wrong)"),
    ("future validity", "a certificate is not valid yet (is the board's clock set?)"),
    ("X509_CERT_VERIFY_FAILED", "the server's certificate is not trusted by /certs/root-ca.der or is "
                                "not for this host name (wrong root CA for this endpoint?)"),
    ("-9984", "the server's certificate is not trusted by /certs/root-ca.der or is not for this host name"),
    ("FATAL_ALERT", "the server refused the handshake: it does not accept this device certificate "
                    "(not registered, not active, or from another CA)"),
    ("-30592", "the server refused the handshake: it does not accept this device certificate"),
    ("CONN_EOF", "the server closed the connection during the handshake (device certificate refused?)"),
    ("-29312", "the server closed the connection during the handshake (device certificate refused?)"),
    ("ALLOC_FAILED", "the board ran out of memory for TLS (free heap before connecting; prefer EC keys)"),
    ("-32512", "the board ran out of memory for TLS"),
    ("-17040", "the board ran out of memory for the RSA key (use an EC P-256 key)"),
    ("-17168", "the board ran out of memory for the RSA key (use an EC P-256 key)"),
    ("-2880", "the board ran out of memory parsing a certificate"),
    ("PK_KEY_INVALID", "the board's TLS rejected /certs/device.key.der (damaged key file)"),
    ("X509_INVALID", "the board's TLS rejected a certificate file as damaged"),
    ("EPIPE", "the server closed the connection during the handshake (device certificate refused?)"),
    ("(32,", "the server closed the connection during the handshake (device certificate refused?)"),
    ("ECONNRESET", "the server reset the connection during the handshake (device certificate refused?)"),
    ("(104,", "the server reset the connection during the handshake (device certificate refused?)"),
    ("ECONNREFUSED", "nothing listens there (connection refused)"),
    ("(111,", "nothing listens there (connection refused)"),
    ("ETIMEDOUT", "no answer (timed out); is the endpoint reachable from the board's network?"),
    ("(110,", "no answer (timed out); is the endpoint reachable from the board's network?"),
    ("(116,", "no answer (timed out)"),
    ("EHOSTUNREACH", "the host is unreachable from the board's network"),
    ("(113,", "the host is unreachable from the board's network"),
    ("(-2,", "the endpoint's name does not resolve (check mqtt.endpoint and the board's DNS)"),
    ("(-202,", "the endpoint's name does not resolve (check mqtt.endpoint and the board's DNS)"),
]
_STATUS_WORDS = {
    "no-endpoint": "the config has no mqtt.endpoint; provision the thing or pass --config with one",
    "no-network": "the board did not get onto Wi-Fi within 15 s with the config's wifi.ssid/password",
    "no-clock": "the board's clock is not set and NTP failed; TLS would reject the certificate dates",
}


def tls_error_words(raw):
    for needle, words in _TLS_WORDS:
        if needle in raw:
            return words
    return "the TLS connection failed"


def check_connect(link, config, timeout_s=15):
    """(ok, one line) for a TLS connection from the board to its endpoint with its new files."""
    m = config.get("mqtt") or {}
    where = f"{m.get('endpoint')}:{m.get('port') or 8883}"
    out = link.exec(_CONNECT.replace("{timeout}", str(int(timeout_s))))
    line = next((ln for ln in out.splitlines() if ln.startswith("CHECK ")), "CHECK error no answer")
    status = line[len("CHECK "):].strip()
    if status.startswith("ok"):
        ms = status.split()[1] if len(status.split()) > 1 else "?"
        return True, f"TLS to {where}: ok (handshake {ms} ms)"
    if status in _STATUS_WORDS:
        return False, f"TLS to {where}: not tried: {_STATUS_WORDS[status]}"
    raw = " ".join(status.removeprefix("error").replace("\\n", " ").split())
    return False, f"TLS to {where} failed: {tls_error_words(raw)} [{raw}]"
