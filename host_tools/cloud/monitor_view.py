"""How the monitor draws a fleet snapshot (host_tools/cloud/fleet.py `Fleet.snapshot()`).

- `CompactView`: fits 80x24. One line per device (name, state, last-seen age, the key metrics,
  alert count, diagnoses), then one line per active alert (device, severity, metric, value, the
  rule's limit as the board states it, age). Column widths only grow between refreshes, so
  columns stay put while values change.
- `render_wide`: the detailed table (every metric, alerts, diagnoses, spool and heap), `--wide`.
"""
import time

_SEV_STYLE = {"critical": "bold red", "major": "red", "warning": "yellow", "minor": "yellow"}
_SEV_SHORT = {"critical": "crit", "major": "major", "warning": "warn", "minor": "minor", "info": "info"}
_PLAUSIBLE_EPOCH = 1_000_000_000  # a board without NTP counts from 2000 or 1970: no age then


def short_value(v, unit=""):
    """A reading in at most about 7 characters: 24012V, 312.4A, 41.52°C, 55.1%RH."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)[:7]
    a = abs(v)
    text = f"{v:.0f}" if a >= 1000 or isinstance(v, int) else f"{v:.1f}" if a >= 100 else f"{v:.2f}"
    return text + (unit or "")


def _label(metric):
    return metric if len(metric) <= 8 else metric[:4] + "."


def age_text(seconds):
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    return f"{s}s" if s < 100 else f"{s // 60}m" if s < 6000 else f"{s // 3600}h"


def _diag_text(d):
    return ", ".join(str(x.get("name", x.get("id", x)) if isinstance(x, dict) else x) for x in d["diagnoses"])


def alert_line(thing, a, units, now):
    """'grid-sensor-002 crit current 262.0A (above max 250) 35s'."""
    metric = a.get("metric") or ""
    value = a.get("value")
    reason = a.get("reason") or a.get("rule") or a.get("id") or a.get("type") or "alert"
    since = a.get("since")
    age = age_text(now - since) if isinstance(since, (int, float)) and since > _PLAUSIBLE_EPOCH else "-"
    parts = [thing, _SEV_SHORT.get(a.get("severity"), str(a.get("severity", "?"))), metric]
    if value is not None:
        parts.append(short_value(value, units.get(metric, "")))
    parts += [f"({reason})", age]
    return " ".join(p for p in parts if p)


class CompactView:
    """Keeps column widths between refreshes (they only grow) and draws at most `width` x `height`."""

    def __init__(self, width=80, height=24):
        self.width, self.height = width, height
        self.widths = {}

    def _w(self, key, *texts):
        w = max([self.widths.get(key, 0)] + [len(t) for t in texts])
        self.widths[key] = w
        return w

    def lines(self, snapshot, source="", now=None):
        """[(text, style)] lines, each at most `width` characters."""
        now = time.time() if now is None else now
        devices = snapshot["devices"]
        metrics = sorted({m for d in devices.values() for m in set(d["values"]) | set(d["status"])})
        rows = {t: self._cells(d) for t, d in devices.items()}
        name_w = self._w("device", "device", *devices)
        state_w = self._w("state", "offline")
        seen_w = self._w("seen", "seen", *(rows[t]["seen"] for t in rows))
        used = name_w + 1 + state_w + 1 + seen_w
        shown, hidden = [], 0
        for m in metrics:
            w = self._w("m:" + m, _label(m), *(rows[t]["m"].get(m, "-") for t in rows))
            if used + 1 + w + 1 + 6 <= self.width:  # keep room for the alerts column
                shown.append((m, w))
                used += 1 + w
            else:
                hidden += 1
        alerts_w = self._w("alerts", "alerts", *(rows[t]["alerts"] for t in rows))
        used += 1 + alerts_w
        diag_w = max(0, self.width - used - 1)
        title = f"edgeshadow fleet: {len(devices)} device(s) {source}".rstrip()
        if hidden:
            title += f"; {hidden} more metric(s) with --wide"
        out = [(title[:self.width], "bold")]
        head = self._row("device", "state", "seen", [(_label(m), w) for m, w in shown], "alerts", "diagnoses",
                         name_w, state_w, seen_w, alerts_w, diag_w)
        out.append((head, "dim"))
        for t, d in devices.items():
            r = rows[t]
            line = self._row(t, r["state"], r["seen"], [(r["m"].get(m, "-"), w) for m, w in shown],
                             r["alerts"], r["diag"], name_w, state_w, seen_w, alerts_w, diag_w)
            style = "red" if not d["connected"] else ("yellow" if d["alerts"] else "")
            out.append((line, style))
        if not devices:
            out.append(("waiting for devices...", "dim"))
        out += self._alert_lines(devices, now, room=self.height - len(out) - 2)
        return out

    def _alert_lines(self, devices, now, room):
        alerts = [(t, a, d["units"]) for t, d in devices.items() for a in d["alerts"]]
        if not alerts or room < 2:
            return []
        fit = room - 1  # lines below the "alerts:" header
        show = alerts if len(alerts) <= fit else alerts[:fit - 1]
        out = [("alerts:", "bold")]
        out += [(("  " + alert_line(t, a, units, now))[:self.width], _SEV_STYLE.get(a.get("severity"), ""))
                for t, a, units in show]
        if len(show) < len(alerts):
            out.append((f"  ... {len(alerts) - len(show)} more alert(s): --wide or --once --json", "dim"))
        return out

    @staticmethod
    def _cells(d):
        m = {}
        for name in set(d["values"]) | set(d["status"]):
            v = d["values"].get(name)
            m[name] = f"!{d['status'][name]}"[:8] if d["status"].get(name) and v is None else \
                short_value(v, d["units"].get(name, ""))
        worst = d["alerts"][0].get("severity") if d["alerts"] else None
        return {"state": "online" if d["connected"] else "offline", "seen": age_text(d["last_seen_s"]),
                "m": m, "alerts": f"{len(d['alerts'])} {_SEV_SHORT.get(worst, '?')}" if worst else "-",
                "diag": _diag_text(d) or "-"}

    @staticmethod
    def _row(name, state, seen, metric_cells, alerts, diag, name_w, state_w, seen_w, alerts_w, diag_w):
        cells = [name.ljust(name_w)[:name_w], state.ljust(state_w), seen.rjust(seen_w)]
        cells += [text.rjust(w)[:w] for text, w in metric_cells]
        cells.append(alerts.ljust(alerts_w))
        if diag_w > 0:
            cells.append(diag if len(diag) <= diag_w else diag[:max(0, diag_w - 1)] + "~")
        return " ".join(cells).rstrip()

    def render(self, snapshot, source="", now=None):
        from rich.text import Text
        text = Text(no_wrap=True, overflow="crop")
        for i, (line, style) in enumerate(self.lines(snapshot, source, now)):
            if i:
                text.append("\n")
            text.append(line, style=style or None)
        return text


def _fmt_value(v, unit):
    if v is None:
        return "[dim]no value[/]"
    text = f"{v:.6g}" if isinstance(v, float) else str(v)
    return f"{text} {unit}" if unit else text


def render_wide(snapshot, source="", now=None):
    """A rich Table of the snapshot (one row per device, every detail)."""
    from rich.table import Table
    from rich.text import Text
    now = time.time() if now is None else now
    devices = snapshot["devices"]
    table = Table(title=f"edgeshadow fleet: {len(devices)} device(s) {source}".rstrip(),
                  expand=True, show_lines=True)
    for col in ("device", "state", "values", "alerts", "diagnoses", "spool / heap", "last seen"):
        table.add_column(col, overflow="fold")
    for thing, d in devices.items():
        state = "[green]connected[/]" if d["connected"] else "[red]offline[/]"
        # a failed read has no value in the shadow (null deletes it): show it by its status
        values = "\n".join(f"{m}: {_fmt_value(d['values'].get(m), d['units'].get(m))}"
                           + (f" [red]({d['status'][m]})[/]" if d["status"].get(m) else "")
                           for m in sorted(set(d["values"]) | set(d["status"])))
        alerts = Text()
        for a in d["alerts"]:
            sev = a.get("severity", "?")
            what = a.get("id") or a.get("rule") or a.get("type") or "alert"
            metric = f"{a['metric']} " if a.get("metric") else ""
            detail = alert_line("", a, d["units"], now).split(" ", 2)[-1] if a.get("value") is not None else ""
            alerts.append(f"{sev}: {metric}{what}" + (f" {detail}" if detail else "") + "\n",
                          style=_SEV_STYLE.get(sev, ""))
        diags = "\n".join(str(x.get("name", x.get("id", x)) if isinstance(x, dict) else x)
                          + (f" ({x['confidence']:.2f})" if isinstance(x, dict)
                             and isinstance(x.get("confidence"), (int, float)) else "")
                          for x in d["diagnoses"])
        table.add_row(thing, state, values or "-", alerts if alerts.plain else "-", diags or "-",
                      _spool_text(d), "-" if d["last_seen_s"] is None else f"{d['last_seen_s']:.0f} s ago")
    if not devices:
        table.add_row("[dim]waiting for devices...[/]", "", "", "", "", "", "")
    return table


def _spool_text(d):
    spool = d["spool"]
    text = f"backlog {spool.get('backlog', '?')}\ndropped {spool.get('dropped', '?')}" if spool else "-"
    heap = d.get("heap") or {}
    if isinstance(heap.get("free"), int) and isinstance(heap.get("min_free"), int):
        text += f"\nheap {heap['free'] // 1024}K free\n(low {heap['min_free'] // 1024}K)"
    return text
