"""Enough of the AWS IoT rules SQL (version 2016-03-23) to check our rules against sample messages.

`evaluate(sql, topic, payload)` -> the rule's output object, or None when the FROM filter does
not match the topic or the WHERE clause is false, as the rules engine would decide. Supported:
SELECT of `expr [AS name]` items (an undefined attribute is left out of the output, as AWS does),
FROM with MQTT wildcards, WHERE with = <> AND OR NOT and parentheses; expressions are attribute
paths (a.b.c), 'strings', numbers and the functions topic(n), timestamp(), encode(*, 'base64'),
isUndefined(x), floor(x). `substitute("${topic(2)}", ...)` fills an action's substitution template.
Anything else is a SqlError naming it: the checker must not pass SQL it does not understand.
"""
import base64
import json
import math
import re
import time

_TOKEN = re.compile(r"\s*(?:(?P<str>'[^']*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><>|[=(),.*])|"
                    r"(?P<name>[A-Za-z_$][A-Za-z0-9_]*))")
UNDEFINED = object()


class SqlError(ValueError):
    pass


def topic_matches(pattern, topic):
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


def _tokens(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SqlError(f"cannot read the SQL at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        out.append((kind, value.upper() if kind == "name" and value.upper() in _KEYWORDS else value))
        pos = m.end()
    return out


_KEYWORDS = {"SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"}


class _Parser:
    def __init__(self, tokens, topic, payload):
        self.t, self.i = tokens, 0
        self.topic, self.payload = topic, payload

    def peek(self, value=None):
        tok = self.t[self.i] if self.i < len(self.t) else (None, None)
        return tok if value is None else tok[1] == value

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise SqlError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    # expressions
    def expr(self):
        kind, value = self.take()
        if kind == "str":
            return value[1:-1]
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "op" and value == "*":
            return self.payload
        if kind == "op" and value == "(":
            v = self.cond()
            self.take(")")
            return v
        if kind != "name":
            raise SqlError(f"unexpected {value!r}")
        if self.peek("("):
            return self.call(value)
        node = self.payload.get(value, UNDEFINED) if isinstance(self.payload, dict) else UNDEFINED
        self.path_name = value
        while self.peek("."):
            self.take(".")
            key = self.path_name = self.take()[1]
            node = node.get(key, UNDEFINED) if isinstance(node, dict) else UNDEFINED
        return node

    def call(self, name):
        self.take("(")
        args = []
        while not self.peek(")"):
            args.append(self.expr())
            if self.peek(","):
                self.take(",")
        self.take(")")
        fn = name.lower()
        if fn == "topic":
            parts = self.topic.split("/")
            return self.topic if not args else (parts[args[0] - 1] if 0 < args[0] <= len(parts) else UNDEFINED)
        if fn == "timestamp":
            return int(time.time() * 1000)
        if fn == "encode" and len(args) == 2 and args[1] == "base64":
            raw = self.payload_bytes
            return base64.b64encode(raw).decode()
        if fn == "isundefined":
            return args[0] is UNDEFINED
        if fn == "floor":
            return UNDEFINED if not isinstance(args[0], (int, float)) else int(math.floor(args[0]))
        raise SqlError(f"function {name}() is not supported by this checker")

    def comparison(self):
        if self.peek("NOT"):
            self.take()
            return not self.comparison()
        left = self.expr()
        if self.peek("=") or self.peek("<>"):
            op = self.take()[1]
            right = self.expr()
            if left is UNDEFINED or right is UNDEFINED:
                return False
            return (left == right) if op == "=" else (left != right)
        return left is True

    def cond(self):
        v = self.conj()
        while self.peek("OR"):
            self.take()
            v = self.conj() or v
        return v

    def conj(self):
        v = self.comparison()
        while self.peek("AND"):
            self.take()
            v = self.comparison() and v
        return v


def evaluate(sql, topic, payload):
    """The output of the rule `sql` for one message (payload bytes), or None if it does not fire."""
    toks = _tokens(sql)
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    p = _Parser(toks, topic, body)
    p.payload_bytes = payload
    p.take("SELECT")
    start = p.i
    depth, i = 0, p.i
    while i < len(toks) and not (depth == 0 and toks[i][1] == "FROM"):  # find FROM first: it decides
        depth += {"(": 1, ")": -1}.get(toks[i][1], 0)
        i += 1
    if i >= len(toks) or toks[i + 1][0] != "str":
        raise SqlError("SELECT ... FROM 'topic/filter' expected")
    if not topic_matches(toks[i + 1][1][1:-1], topic):
        return None
    if i + 2 < len(toks):
        p.i = i + 2
        p.take("WHERE")
        if not p.cond():
            return None
        if p.i != len(toks):
            raise SqlError(f"unexpected {toks[p.i][1]!r} after the WHERE clause")
    p.i, out = start, {}
    while p.i < i:
        if p.peek("*") and p.t[p.i + 1][1] in (",", "FROM"):
            p.take()
            if isinstance(body, dict):
                out.update(body)
        else:
            p.path_name = None
            value = p.expr()
            bare = p.path_name if p.peek(",") or p.peek("FROM") else None  # `SELECT a.b` names it b
            name = p.take()[1] if p.peek("AS") and p.take() else bare
            if name is None:
                raise SqlError("give every selected expression that is not an attribute a name with AS")
            if value is not UNDEFINED:
                out[name] = value
        if p.peek(","):
            p.take()
    return out


def substitute(template, topic, payload):
    """An action parameter with its ${expression} parts filled in for one message."""
    def one(m):
        v = evaluate(f"SELECT {m.group(1)} AS x FROM '#'", topic, payload).get("x", "")
        return v if isinstance(v, str) else json.dumps(v)
    return re.sub(r"\$\{([^}]*)\}", one, template)
