"""What the firmware prints on its console, read by the host after a reset.

The firmware's banner (main.py) and the application's announcement (app.py main()):
    edgeshadow firmware v<version> thing=<thing>
    edgeshadow: running v<version> thing=<thing> config=<first 12 hex of /config.json's SHA-256>
    edgeshadow: config-error /config.json: <key.path: problem>; <key.path: problem>
or main.py's own lines when no application runs (no /app.py; the application stopped with an
error, then its traceback and the REPL prompt).
"""
import re

BANNER_RE = re.compile(r"edgeshadow firmware v(?P<version>\S+) thing=(?P<thing>\S+)")
# What the application announces once it runs, or why it does not (firmware/app.py main()).
RUNNING_RE = re.compile(r"edgeshadow: running v(?P<version>\S+) thing=(?P<thing>\S+) "
                        r"config=(?P<config>[0-9a-f]+)")
CONFIG_ERROR_RE = re.compile(r"edgeshadow: config-error (?P<problems>.*)")
# main.py's lines when the application does not run: no app on the board, or it crashed.
NO_APP = "edgeshadow: no /app.py on this board yet"
APP_STOPPED = "edgeshadow: the application stopped with an error"


def banner_line_end(text):
    """Index just past the banner line in text, or None while it is not all there."""
    m = BANNER_RE.search(text)
    if not m or "\n" not in text[m.end():]:
        return None
    return text.index("\n", m.end()) + 1


def start_outcome(text):
    """("running", {version, thing, config}) or ("failed", reason) from the console, or None
    while it has not said yet (only whole lines count: a line still arriving is not read)."""
    text = text[:text.rfind("\n") + 1]
    for line in text.splitlines():
        line = line.strip()
        m = RUNNING_RE.search(line)
        if m:
            return "running", m.groupdict()
        m = CONFIG_ERROR_RE.search(line)
        if m:
            return "failed", "its config is refused: " + m.group("problems")
        if NO_APP in line:
            return "failed", "there is no /app.py on it (deploy the firmware)"
    if APP_STOPPED in text:
        after = text[text.index(APP_STOPPED):]
        if ">>>" in after:  # main.py printed the whole traceback and left the board at the REPL
            lines = [ln.strip() for ln in after[:after.index(">>>")].splitlines()[1:]]
            last = [ln for ln in lines if ln and not ln.startswith(("File ", "Traceback"))]
            return "failed", "the application stopped with " + (last[-1] if last else "an error")
    return None
