# A desired-state delta applied to the running App (app.py), as a whole or not at all: checked
# (edge.text, edge.delta and the config checks), refused while rolled-back connection settings
# are asked for again, saved to /config.json, then put in force (a new pipeline only for the keys
# that change how samples are processed). Imported by App.on_delta per delta, then unloaded.
import gc

from app import CONFIG_PATH, log
from compat import unload
from edge.pipeline import Device
from store import write_atomic

# Delta keys that change how samples are processed: the pipeline is rebuilt for them. Others
# (interval_s, mqtt, ...) keep the pipeline, with its alert states and frozen baselines.
_PIPELINE_KEYS = ("metrics", "rules", "diagnoses", "sku")  # edge.config.PIPELINE_KEYS
_CONN_KEYS = ("mqtt", "wifi", "ntp")   # net.rollback.SECTIONS


def _check(app, state, version):
    """(new config, problems): problems None when the delta may be applied."""
    from edge.text import bad_text
    bad = bad_text(state, "")
    del bad_text
    unload("edge.text")
    from edge.delta import apply_delta
    new, problems = apply_delta(app.cfg, {"state": state, "version": version})
    del apply_delta
    if bad is not None:
        new, problems = None, ["%s: not valid Unicode text (a lone surrogate escape)" % (bad[1:] or "state")]
    unload("edge.delta", "edge.config", "edge.checks", "edge.model_checks", "edge.schema")
    gc.collect()      # room for the new pipeline and the config file
    if not problems and app._rb_refused is not None:
        problems = app._rollback("refuses", new) or None
    return new, problems


def apply(app, state, version):
    """What to report for the delta (None: nothing)."""
    new, problems = _check(app, state, version)
    if problems:
        log("shadow: delta v%d rejected: %s" % (version, "; ".join(problems)))
        return app.refuse(version, problems)
    same = dict(new)
    same["version"] = app.cfg.get("version", 0)
    if same == app.cfg:  # a delta we applied, again (it stays until reported): no rewrite
        if app._unreportable == state:
            return None   # its report was refused: the error was reported already
        out = dict(state)
        out["config_version"] = app.cfg.get("version", 0)
        return out
    del same
    try:
        device = Device(new, validated=True) if any(k in state for k in _PIPELINE_KEYS) else None
        write_atomic(CONFIG_PATH, new)
    except Exception as e:  # not persisted: nothing applied
        app.config_error = {"version": version, "problems": ["config: %r" % e]}
        log("shadow: delta v%d not applied: %r" % (version, e))
        return {"config_error": app.config_error}
    if app._net_cfg is not None and any(k in state for k in _CONN_KEYS):
        app._rollback("trying", app._net_cfg, new)  # tried at the next boot
    app.cfg = new
    app._unreportable = None
    if device is not None:
        for e in device.adopt(app.device):  # alerts whose rule is gone clear, with an event
            app._spool_alert(e, app.now())
        app.device = device
        app._filters()
        app._units_due = True
    app.config_error = None
    log("shadow: delta v%d applied: %s" % (version, ", ".join(sorted(state))))
    out = dict(state)
    out["config_version"] = new["version"]
    out["config_error"] = None
    return out
