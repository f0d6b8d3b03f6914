# ECDSA P-256 (secp256r1) signature check, pure Python, for manifests signed on the host.
# MicroPython has no public-key crypto in Python (mbedTLS only does the TLS) and no SHA-512 in
# hashlib (so no Ed25519 without a Python SHA-512); P-256 needs only big ints, 3-argument pow and
# SHA-256. Jacobian coordinates (a = -3 doubling) and Shamir's trick: one pass of 256 doublings.
# Verification only: no secret is handled here, so timing side channels do not matter.
_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff
_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
_GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296
_GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5


def _dbl(X, Y, Z):
    if not Z or not Y:
        return (0, 1, 0)
    p = _P
    Z2 = Z * Z % p
    M = 3 * (X - Z2) * (X + Z2) % p
    Y2 = Y * Y % p
    S = 4 * X * Y2 % p
    X3 = (M * M - 2 * S) % p
    return (X3, (M * (S - X3) - 8 * Y2 * Y2) % p, 2 * Y * Z % p)


def _add(P1, P2):
    X1, Y1, Z1 = P1
    X2, Y2, Z2 = P2
    if not Z1:
        return P2
    if not Z2:
        return P1
    p = _P
    Z1s = Z1 * Z1 % p
    Z2s = Z2 * Z2 % p
    U1 = X1 * Z2s % p
    U2 = X2 * Z1s % p
    S1 = Y1 * Z2s * Z2 % p
    S2 = Y2 * Z1s * Z1 % p
    H = (U2 - U1) % p
    R = (S2 - S1) % p
    if not H:
        return _dbl(X1, Y1, Z1) if not R else (0, 1, 0)
    H2 = H * H % p
    H3 = H * H2 % p
    V = U1 * H2 % p
    X3 = (R * R - H3 - 2 * V) % p
    return (X3, (R * (V - X3) - S1 * H3) % p, H * Z1 * Z2 % p)


def on_curve(x, y):
    p = _P
    return 0 <= x < p and 0 <= y < p and (y * y - (x * x * x - 3 * x + _B)) % p == 0


def verify(pub, digest, sig):
    """True if sig (64 bytes, r || s) signs digest (32 bytes, SHA-256) under pub (64 bytes x || y,
    or 65 with the 0x04 prefix of an uncompressed point)."""
    if len(pub) == 65 and pub[0] == 4:
        pub = pub[1:]
    if len(pub) != 64 or len(sig) != 64 or len(digest) != 32:
        return False
    qx = int.from_bytes(pub[:32], "big")
    qy = int.from_bytes(pub[32:], "big")
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    n = _N
    if not (0 < r < n and 0 < s < n) or not on_curve(qx, qy):
        return False
    w = pow(s, n - 2, n)
    e = int.from_bytes(digest, "big")
    u1 = e * w % n
    u2 = r * w % n
    G = (_GX, _GY, 1)
    Q = (qx, qy, 1)
    GQ = _add(G, Q)
    table = (None, G, Q, GQ)
    acc = (0, 1, 0)
    for i in range(255, -1, -1):
        acc = _dbl(*acc)
        k = ((u1 >> i) & 1) | (((u2 >> i) & 1) << 1)
        if k:
            acc = _add(acc, table[k])
    X, Y, Z = acc
    if not Z:
        return False
    zi = pow(Z, _P - 2, _P)
    return X * zi * zi % _P % n == r
