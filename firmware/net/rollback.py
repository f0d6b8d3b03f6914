# Connection settings (mqtt, wifi, ntp) changed by a delta that cannot connect are rolled back to
# the last ones that did, and not taken again from the shadow: a delta with `mqtt.port: 1` would
# otherwise leave the board retrying for good, with no way to reach it. Imported by app.py only
# at boot, on the first connect, for deltas of a connection section and when the link does not
# come up: each time for one call (app.App._rollback), then it is dropped from the heap again.
#
# /config.ok.json: {"good": sections that connected, "trial": sections a delta set, or null,
#                   "refused": sections rolled back, or null, "problems": [...], "version": n}
import json

from store import write_atomic

PATH = "/config.ok.json"
SECTIONS = ("mqtt", "wifi", "ntp")


def sections(cfg):
    out = {}
    for k in SECTIONS:
        out[k] = cfg.get(k)
    return out


def merge(base, over):
    """edge.config.merge's rule (dicts merge key by key), without importing the validator."""
    out = dict(base)
    for k in over:
        v = over[k]
        out[k] = merge(out[k], v) if type(v) is dict and type(out.get(k)) is dict else v
    return out


def _changed(a, b, path=""):
    """Paths ("mqtt.port") where the dicts a and b differ."""
    out = []
    for k in sorted(set(list(a) + list(b))):
        x, y = a.get(k), b.get(k)
        if type(x) is dict and type(y) is dict:
            out += _changed(x, y, path + k + ".")
        elif x != y:
            out.append(path + k)
    return out


class Rollback:
    def __init__(self, path=PATH):
        self.path = path
        try:
            with open(path) as f:
                st = json.loads(f.read())
        except (OSError, ValueError):
            st = None
        if type(st) is not dict or type(st.get("good")) is not dict:
            st = {"good": None, "trial": None, "refused": None}
        self.state = st

    def _save(self):
        write_atomic(self.path, json.dumps(self.state))

    def connected(self, cfg):
        """The link came up with cfg: its sections are the good ones now."""
        s = sections(cfg)
        st = self.state
        if st.get("good") != s or st.get("trial") == s:
            st["good"] = s
            if st.get("trial") == s:
                st["trial"] = None  # the trial connected: nothing to roll back
            self._save()

    def refuses(self, new):
        """Problems when `new` sets the connection sections that were rolled back before."""
        st = self.state
        bad = st.get("refused")
        if not bad or sections(new) != bad:
            return []
        return ["%s: could not connect with it (rolled back at config version %s); set another value"
                % (f, st.get("version")) for f in _changed(bad, st.get("good") or {})] or \
               ["mqtt: could not connect with these settings before"]

    def trying(self, old, new):
        """A delta changes the connection sections from `old` (connected) to `new`."""
        st = self.state
        s_old, s_new = sections(old), sections(new)
        if s_old == s_new:
            return
        st["good"] = st.get("good") or s_old
        st["trial"] = s_new
        self._save()

    def trial(self, cfg):
        """True when cfg's connection sections are a delta's, not yet connected once."""
        st = self.state
        return st.get("trial") is not None and st.get("good") is not None and sections(cfg) == st["trial"]

    def at_boot(self, cfg):
        """(config_error, settings to report, trial pending, refused sections) in one reading."""
        err = self.error_after_boot(cfg)
        return err, (self.restored(cfg) if err else None), self.trial(cfg), self.state.get("refused")

    def roll_back(self, cfg):
        """(config with the good sections, problems): the caller persists it and restarts."""
        st = self.state
        fields = _changed(st["trial"], st["good"])
        new = merge(cfg, st["good"])
        new["version"] = cfg.get("version", 0) + 1
        problems = ["%s: could not connect with %s; rolled back to the last settings that connected"
                    % (f, _show(st["trial"], f)) for f in fields]
        st["refused"], st["trial"] = st["trial"], None
        st["problems"], st["version"] = problems, new["version"]
        self._save()
        return new, problems

    def error_after_boot(self, cfg):
        """The config_error to report when cfg is the rolled-back config, else None."""
        st = self.state
        if st.get("refused") and st.get("version") == cfg.get("version"):
            return {"version": st["version"], "problems": st.get("problems") or []}
        return None

    def restored(self, cfg):
        """The rolled-back fields with the values in force ({"mqtt": {"port": 8883}}): reported
        so that the shadow's reported state stops echoing the refused ones (the delta returns)."""
        st = self.state
        out = {}
        for f in _changed(st.get("refused") or {}, st.get("good") or {}):
            if f.endswith("password"):
                continue
            sec, _, key = f.partition(".")
            if key and type(cfg.get(sec)) is dict:
                out.setdefault(sec, {})[key] = cfg[sec].get(key)
        return out


def _show(secs, path):
    d = secs
    for k in path.split("."):
        d = d.get(k) if type(d) is dict else None
    if path.endswith("password"):
        return "the new password"
    return json.dumps(d)
