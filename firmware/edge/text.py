# Text a delta may carry that the board cannot keep (issue 13). Imported by app.py only while a
# delta is checked, then unloaded (code on a board is in RAM).
def bad_text(o, path):
    """The path of the first key or string in o that is not valid Unicode text, or None: a lone
    surrogate escape (CPython), or the invalid UTF-8 that MicroPython's json makes of a
    \\uD83D\\uDE00 pair, which the shadow service then refuses (415)."""
    if type(o) is str:
        try:
            b = o.encode()
        except UnicodeError:
            return path
        i = b.find(b"\xed")
        while i >= 0:
            if i + 1 < len(b) and b[i + 1] >= 0xA0:  # the UTF-8 form of U+D800..U+DFFF
                return path
            i = b.find(b"\xed", i + 1)
    elif type(o) is dict:
        for k in o:
            bad = bad_text(k, path)
            if bad is None:
                bad = bad_text(o[k], "%s.%s" % (path, k))
            if bad is not None:
                return bad
    elif type(o) is list:
        for i, v in enumerate(o):
            bad = bad_text(v, "%s[%d]" % (path, i))
            if bad is not None:
                return bad
    return None
