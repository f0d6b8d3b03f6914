"""The bench report drawn: one panel per metric, calibrated series (raw on a second axis), failed
reads marked, the noise limit as a band and the expected range's edges where they fall in view."""
import math
from pathlib import Path

from host_tools.bench.check import _noise_limit
from host_tools.errors import EXIT_USAGE, EdgeshadowError


# What matplotlib's Agg canvas writes (the pinned matplotlib's get_supported_filetypes(); a test
# keeps them equal): named here so the check costs no matplotlib import before the bench starts.
PLOT_TYPES = ("avif", "eps", "gif", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
              "tif", "tiff", "webp")


def check_path(path):
    """Refuse a plot path before the bench runs: an image type matplotlib writes, in a folder that
    exists. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise EdgeshadowError(f"--plot {path}: is a folder; give a file name", exit_code=EXIT_USAGE)
    kinds = PLOT_TYPES
    ext = path.suffix.lower().lstrip(".")
    if ext not in kinds:
        what = f"a .{ext} file" if ext else "a file without an extension"
        raise EdgeshadowError(f"--plot {path}: cannot draw {what}; use one of .{', .'.join(sorted(kinds))}",
                              exit_code=EXIT_USAGE)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeshadowError(f"--plot {path}: folder {parent} does not exist", exit_code=EXIT_USAGE)
    return path


def plot(report, path):
    """One panel per metric: calibrated series (and raw on a second axis), failed reads marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = list(report["metrics"])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 2.4 * len(metrics) + 0.6), squeeze=False,
                             sharex=True)
    for ax, m in zip(axes[:, 0], metrics):
        _panel(ax, m, report["metrics"][m], report["series"][m])
    axes[-1, 0].set_xlabel("sample")
    fig.suptitle(f"bench {report.get('thing')} ({report.get('board')}): {report['result']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _panel(ax, m, r, s):
    """One metric's panel."""
    xs = list(range(len(s["status"])))
    cal = [math.nan if v is None else v for v in s["calibrated"]]
    raw = [math.nan if v is None else v for v in s["raw"]]
    color = "tab:green" if r["result"] == "PASS" else "tab:red"
    ax.plot(xs, cal, marker=".", color=color, label="calibrated")
    ax2 = ax.twinx()
    ax2.plot(xs, raw, color="tab:gray", alpha=0.5, linewidth=0.8, label="raw")
    ax2.set_ylabel("raw", color="tab:gray", fontsize=8)
    bad = [x for x, st in zip(xs, s["status"]) if st != "ok"]
    for i, x in enumerate(bad):
        ax.axvline(x, color="tab:red", alpha=0.3, label=None if i else f"failed read ({len(bad)})")
    lim = r["limits"]
    good = [v for v in cal if not math.isnan(v)]
    c = r["calibrated"]
    if good:
        # scaled to the data (the noise shows), with the noise limit as a band around the mean
        # and the expected range's edges where they fall in view
        noise = _noise_limit(lim, c["mean"])
        lo, hi = min(good), max(good)
        pad = max((hi - lo) * 0.2, noise or 0.0, abs(c["mean"]) * 1e-3, 1e-6)
        ax.set_ylim(lo - pad, hi + pad)
        if noise:
            ax.axhspan(c["mean"] - noise, c["mean"] + noise, color="tab:blue", alpha=0.08,
                       label="mean \u00b1 noise limit")
        for key in ("min", "max"):
            if lim.get(key) is not None and lo - pad <= lim[key] <= hi + pad:
                ax.axhline(lim[key], color="tab:orange", linestyle="--", linewidth=0.8,
                           label=f"expected {key}")
        ax.legend(loc="upper right", fontsize=7)
    title = f"{m} [{r['unit']}] {r['result']}"
    if r["reasons"]:
        title += ": " + "; ".join(r["reasons"])[:110]
    ax.set_title(title, fontsize=9, color=color, loc="left")
    ax.set_ylabel(r["unit"] or m)
    ax.grid(alpha=0.3)
