"""The JSON algebra of shadow documents (host_tools.cloud.shadow_store applies it): equality as
JSON has it, nesting depth, merges with metadata, and the delta between desired and reported.
Pure functions on dicts; AWS's rules where its documentation states them."""


def same(a, b):
    # JSON equality: true is not 1 (Python's == says it is).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def depth(value):
    """Levels of nesting (a scalar 0, {} 1), without recursion: a hostile document may be deep."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            d += 1
            deepest = max(deepest, d)
            todo.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def strip_nulls(value):
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def meta_of(value, ts):
    """Metadata mirrors the state: a timestamp per leaf, lists element by element."""
    if isinstance(value, dict):
        return {k: meta_of(v, ts) for k, v in value.items()}
    if isinstance(value, list):
        return [meta_of(v, ts) for v in value]
    return {"timestamp": ts}


def merge(state, meta, patch, ts):
    """Apply an update section in place: null removes a key, objects merge, the rest replaces."""
    for key, value in patch.items():
        if value is None:
            state.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict) and isinstance(state.get(key), dict):
            if not isinstance(meta.get(key), dict):
                meta[key] = {}
            merge(state[key], meta[key], value, ts)
        else:
            state[key] = strip_nulls(value)
            meta[key] = meta_of(state[key], ts)


def delta_of(desired, reported):
    """Fields of desired that reported lacks or holds differently; objects compared field by field."""
    out = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
            continue
        have = reported[key]
        if same(want, have):
            continue
        if isinstance(want, dict) and isinstance(have, dict):
            sub = delta_of(want, have)
            if sub:  # moto keeps an empty {} here; AWS lists only fields that differ
                out[key] = sub
        else:
            out[key] = want
    return out


def restrict(delta, touched):
    """The part of `delta` under the keys an update touched."""
    out = {}
    for key, value in touched.items():
        if key not in delta:
            continue
        if isinstance(value, dict) and isinstance(delta[key], dict):
            sub = restrict(delta[key], value)
            if sub:
                out[key] = sub
        else:
            out[key] = delta[key]
    return out


def meta_subset(meta, shape):
    if not isinstance(shape, dict) or not isinstance(meta, dict):
        return meta
    return {k: meta_subset(meta.get(k, {}), v) for k, v in shape.items()}
