from edge import checks, diagnosis
from test_edge_fixtures import grid_cfg, sample


def diags(values, cfg=None):
    out = {}
    for d in diagnosis.build(cfg or grid_cfg()):
        c = d.confidence(values)
        if c >= d.min and c > 0:
            out[d.name] = c
    return out


def test_default_grid_set():
    assert diags(sample()) == {}
    assert diags(sample(current=660, temperature=100)) == {"overload": 1.0}
    o = diags(sample(current=600, temperature=90))["overload"]   # 100 % rating, 90 C: half each
    assert abs(o - 0.5) < 1e-9
    assert diags(sample(current=660, temperature=50)) == {}        # AND: needs both
    assert diags(sample(humidity=90, temperature=95)) == {"insulation_risk": 1.0}
    assert diags(sample(voltage=20000)) == {"sag": 1.0}
    assert diags(sample(voltage=30000)) == {"swell": 1.0}
    assert diags(sample(voltage=None)) == {}


def test_default_set_skips_what_the_config_cannot_evaluate():
    c = grid_cfg()
    del c["sku"]
    del c["metrics"]["humidity"]
    names = [d.name for d in diagnosis.build(c)]
    assert names == ["sag", "swell"]


def test_custom_any_and_validation():
    c = grid_cfg()
    c["diagnoses"] = [{"name": "hot_or_wet", "min_confidence": 0.2,
                       "any": [{"metric": "temperature", "rises": [90, 100]}, {"metric": "humidity", "rises": [75, 80]}]}]
    assert diags(sample(temperature=92.5), c) == {"hot_or_wet": 0.25}
    p = []
    checks.validate_diagnoses([{"name": "", "all": [{"metric": "x", "rises": [2, 1]}], "bad": 1},
                                {"name": "y", "all": [], "any": []}], c, p)
    assert "diagnoses[0].name: must be a non-empty string" in p
    assert "diagnoses[0].bad: unknown key (known: all, any, min_confidence, name)" in p
    assert "diagnoses[0].all[0].metric: 'x' is not a metric of this config" in p
    assert "diagnoses[0].all[0].rises: must be [a, b] numbers with a < b" in p
    assert "diagnoses[1]: give exactly one of all, any" in p
