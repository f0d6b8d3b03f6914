"""The soak's report: what each board produced (its spool on flash, read once the board is
stopped) against what the monitor saw, by (thing, seq); reconnect times; reboots, crashes,
MemoryErrors; hostile deltas applied. And its text form."""
import json
import statistics
import sys

from host_tools import ROOT

# A board that failed several attempts waits up to its backoff cap (net.backoff: 120 s, as the AWS
# SDKs) before the next one: a reconnect counts as missed only past the cap and a margin.
RECONNECT_DEADLINE_S = 150
META_EVERY = 20          # store.spool's default
WINDOW_RECORDS = 20 * 20  # net.mqtt max_inflight x mqtt.batch_max: records a reconnect may re-send
TOTALS = ("produced", "delivered", "lost", "lost_in_broker_kill", "duplicated", "out_of_order", "reboots", "watchdog_resets",
          "crashes", "memory_errors", "hostile_deltas_sent", "hostile_deltas_applied", "reconnects_missed")


def contiguous(seqs, excused=None):
    """Every seq from 1 to the newest has arrived (but those `excused(gap)` returns)."""
    s = set(seqs)
    if not s:
        return False
    gap = [q for q in range(1, max(s)) if q not in s]
    return not gap or (excused is not None and len(excused(gap)) == len(gap))


def read_spool(flash_dir):
    """(produced, seqs still waiting on flash, dropped when full) from a stopped board's spool."""
    if str(ROOT / "firmware") not in sys.path:
        sys.path.insert(0, str(ROOT / "firmware"))
    from store.spool import Spool
    sp = Spool(str(flash_dir / "spool"), 1 << 20)
    try:
        return sp.next_seq - 1, {r[0] for r in sp.peek(1 << 20)}, sp.dropped
    finally:
        sp.close()


def arrival_order(seen):
    """(duplicates, first arrivals below a seq already seen)."""
    ooo, top, before = 0, 0, set()
    for s in seen:
        if s < top and s not in before:
            ooo += 1
        before.add(s)
        top = max(top, s)
    return len(seen) - len(set(seen)), ooo


def reconnect_times(monitor, thing, outages):
    """([seconds from each outage's end to the board's next connected status], outages missed)."""
    times, missed = [], 0
    for e in outages:
        t = monitor.reconnected(thing, e["outage_end"] - 0.5)
        if t is None or t - e["outage_end"] > RECONNECT_DEADLINE_S:
            missed += 1
        else:
            times.append(max(0.0, t - e["outage_end"]))
    return times, missed


def in_broker_kill(lost, arrived, kills):
    """The lost seqs that went missing across a broker SIGKILL: the nearest seq before arrived at
    most 2 s before the kill, the nearest seq after it after the kill. Mosquitto acknowledges a QoS 1 PUBLISH
    (the board then drops it from its spool) when it has passed it on to the subscriber's socket,
    not when that subscriber has read it, and keeps nothing on disk (persistence false); a SIGKILL
    that catches a message there loses it in the broker, not on the board (the kernel resets the
    connection, dropping what the monitor had not read yet)."""
    if not lost or not kills:
        return []
    times = sorted((q, t) for q, t in arrived.items())
    out = []
    for s in lost:
        before = [t for q, t in times if q < s]
        after = [t for q, t in times if q > s]
        lo, hi = (before[-1] if before else float("-inf")), (after[0] if after else float("inf"))
        if any(k - 2.0 <= lo <= k and k <= hi for k in kills):   # the seq before arrived <= 2 s before it
            out.append(s)
    return out


def board_row(soak, vb):
    """One board's line of the report, and its reconnect times."""
    log = vb.log()[soak.marks.get(vb.thing, 0):]   # from the start of the chaos
    produced, pending, dropped = read_spool(vb.flash_dir)
    seen = soak.monitor.seqs.get(vb.thing, [])
    seen_set = set(seen)
    lost = [s for s in range(1, produced + 1) if s not in seen_set and s not in pending]
    broker_kills = [e["at"] for e in soak.events if e["kind"] == "broker_kill"]
    in_kill = in_broker_kill(lost, soak.monitor.arrived.get(vb.thing, {}), broker_kills)
    lost = [s for s in lost if s not in in_kill]
    dups, ooo = arrival_order(seen)
    mine = [e for e in soak.events if e["thing"] == vb.thing]
    kills = sum(1 for e in mine if e["kind"] in ("board_kill", "power_cycle"))
    outages = [e for e in soak.events if vb.thing in e["affects"]]
    times, missed = reconnect_times(soak.monitor, vb.thing, outages)
    bound = kills * (META_EVERY - 1) + len(outages) * WINDOW_RECORDS
    crashes = log.count("Guru Meditation") - sum(1 for e in mine if e["kind"] == "board_kill")
    tracebacks = [ln for ln in log.splitlines() if ln.startswith("Traceback") or "sampler: error" in ln]
    row = {"produced": produced, "delivered": len(seen_set), "pending_on_flash": len(pending),
           "lost": len(lost), "lost_seqs": lost[:20], "dropped_spool_full": dropped,
           "lost_in_broker_kill": len(in_kill), "lost_in_broker_kill_seqs": in_kill[:20],
           "duplicated": dups, "duplicate_bound": bound, "out_of_order": ooo,
           "reboots": log.count("ets Jun  8 2016"), "watchdog_resets": log.count("TG0WDT_SYS_RESET"),
           "crashes": max(0, crashes), "tracebacks": len(tracebacks), "memory_errors": log.count("MemoryError"),
           "outages": len(outages), "reconnects_missed": missed,
           "hostile_deltas_sent": soak.hostile_sent.get(vb.thing, 0),
           "hostile_deltas_applied": hostile_applied(vb.flash_dir),
           "heap_low": soak.heap_low.get(vb.thing), "boots_before_chaos": soak.setup_boots.get(vb.thing)}
    row["ok"] = not (row["lost"] or dups > bound or row["watchdog_resets"] or row["crashes"]
                     or row["tracebacks"] or row["memory_errors"] or missed
                     or row["hostile_deltas_applied"] or produced == 0)
    return row, times


def build(soak):
    """The whole report (a dict, as `--json` prints it)."""
    boards, reconnects = {}, []
    for vb in soak.boards:
        boards[vb.thing], times = board_row(soak, vb)
        reconnects += times
    counts = {}
    for e in soak.events:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    return {"ok": all(r["ok"] for r in boards.values()), "seconds": soak.seconds, "boards": boards,
            "events": counts, "seed": soak.seed, "runtime": soak.runtime, "heap": soak.heap,
            "reconnect_s": {"n": len(reconnects),
                            "median": round(statistics.median(reconnects), 2) if reconnects else None,
                            "max": round(max(reconnects), 2) if reconnects else None},
            "totals": {k: sum(r[k] for r in boards.values()) for k in TOTALS},
            "timing": soak.timing}


def hostile_applied(flash_dir):
    """1 when the board's config.json at the end holds anything of a hostile delta (or is not
    a valid config at all), else 0."""
    from edge import config as econfig
    try:
        cfg = json.loads((flash_dir / "config.json").read_text())
    except (OSError, ValueError):
        return 1
    cal = json.dumps(cfg.get("metrics", {}).get("current", {}).get("calibration", []))
    spool = cfg.get("spool", {})
    good = (not econfig.validate(cfg) and cfg["interval_s"] in (1, 2) and cfg.get("watchdog_s", 45) <= 3600
            and spool.get("dir", "/spool") == "/spool" and spool.get("max_bytes", 65536) >= 4096
            and cfg["mqtt"].get("telemetry_prefix", "dt") == "dt"
            and len(cfg.get("wifi", {}).get("ssid", "")) <= 32 and "1e+308" not in cal
            and '"decimals": 400' not in cal)
    return 0 if good else 1


def format_report(r):
    t = r["totals"]
    lines = [f"soak {r['seconds']} s, {len(r['boards'])} boards, runtime {r['runtime']}"
             f"{' heap %d B' % r['heap'] if r['heap'] else ''}, seed {r['seed']}: {'OK' if r['ok'] else 'FAILED'}",
             "events: " + ", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())),
             f"readings: produced {t['produced']}, delivered {t['delivered']}, lost {t['lost']} "
             f"(+{t['lost_in_broker_kill']} acknowledged by the broker just before its SIGKILL), "
             f"duplicated {t['duplicated']}, out of order {t['out_of_order']}",
             f"reconnects: {r['reconnect_s']['n']} (median {r['reconnect_s']['median']} s, max "
             f"{r['reconnect_s']['max']} s), missed {t['reconnects_missed']}",
             f"reboots {t['reboots']}, watchdog resets {t['watchdog_resets']}, crashes {t['crashes']}, "
             f"MemoryErrors {t['memory_errors']}, hostile deltas applied {t['hostile_deltas_applied']} "
             f"of {t['hostile_deltas_sent']}"]
    if r.get("timing"):
        lines.append("time: " + ", ".join(f"{k} {v} s" for k, v in r["timing"].items()))
    for thing, b in sorted(r["boards"].items()):
        lines.append(f"  {thing}: {'ok' if b['ok'] else 'FAILED'} produced {b['produced']} delivered "
                     f"{b['delivered']} pending {b['pending_on_flash']} lost {b['lost']} dup {b['duplicated']}"
                     f"/{b['duplicate_bound']} ooo {b['out_of_order']} reboots {b['reboots']} "
                     f"outages {b['outages']} missed {b['reconnects_missed']} tracebacks {b['tracebacks']} "
                     f"heap low {b['heap_low'] if b['heap_low'] is not None else 'n/a'}")
    return "\n".join(lines)
