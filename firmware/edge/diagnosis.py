# Fuzzy fault diagnosis from data. A diagnosis is a set of terms over calibrated metrics, each a
# ramp membership: "rises": [a, b] is 0 at or below a and 1 at or above b; "falls": [a, b] is 1 at
# or below a and 0 at or above b. With "of_rating": true the value is taken as percent of the
# SKU's rating for that metric. "all" combines terms with min (fuzzy AND), "any" with max (OR).
# The confidence is reported when it reaches min_confidence (default 0.5).



class Term:
    def __init__(self, t, scale):
        self.metric = t["metric"]
        rising = "rises" in t
        a, b = t["rises"] if rising else t["falls"]
        # membership = clip((v*scale - a) / (b - a)) for rises, 1 - that for falls
        self.a = a
        self.k = scale / (b - a)
        self.a_scaled = a / scale
        self.rising = rising

    def grade(self, v):
        g = (v - self.a_scaled) * self.k
        if g < 0.0:
            g = 0.0
        elif g > 1.0:
            g = 1.0
        return g if self.rising else 1.0 - g


class Diagnosis:
    def __init__(self, d, ratings):
        self.name = d["name"]
        self.any = "any" in d
        self.terms = tuple(Term(t, 100.0 / ratings[t["metric"]] if t.get("of_rating") else 1.0)
                           for t in d.get("any") or d["all"])
        self.min = d.get("min_confidence", 0.5)

    def confidence(self, values):
        acc = 0.0 if self.any else 1.0
        for t in self.terms:
            v = values.get(t.metric)
            g = 0.0 if v is None else t.grade(v)
            if self.any:
                if g > acc:
                    acc = g
            elif g < acc:
                acc = g
        return acc


def _ratings(cfg):
    sku = cfg.get("sku")
    r = sku.get("ratings") if type(sku) is dict else None
    return r if type(r) is dict else {}


def _usable(d, metrics, ratings):
    for t in d.get("all") or d.get("any") or ():
        if t["metric"] not in metrics or t.get("of_rating") and not ratings.get(t["metric"]):
            return False
    return True


def grid_default():
    """The grid sensor's default set (nominal 23-25 kV, 0-100 % of rated current, 30-100 C,
    20-80 %), made when a Device is built rather than kept in RAM between."""
    return [
        {"name": "overload", "all": [
            {"metric": "current", "of_rating": True, "rises": [90, 110]},
            {"metric": "temperature", "rises": [80, 100]}]},
        {"name": "insulation_risk", "all": [
            {"metric": "humidity", "rises": [70, 85]},
            {"metric": "temperature", "rises": [60, 90]}]},
        {"name": "sag", "all": [{"metric": "voltage", "falls": [21600, 23000]}]},
        {"name": "swell", "all": [{"metric": "voltage", "rises": [25000, 26400]}]},
    ]


def effective(cfg):
    """The configured diagnoses, or the default set restricted to what this config can evaluate."""
    if cfg.get("diagnoses") is not None:
        return cfg["diagnoses"]
    metrics, ratings = cfg.get("metrics") or {}, _ratings(cfg)
    return [d for d in grid_default() if _usable(d, metrics, ratings)]


def build(cfg):
    ratings = _ratings(cfg)
    return tuple(Diagnosis(d, ratings) for d in effective(cfg))
