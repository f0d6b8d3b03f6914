# Storage on the board's flash: files replaced whole (write_atomic, here) and the store-and-forward
# spool of readings and alerts (store/spool.py). LittleFS renames atomically, so a file written
# to a temporary name and renamed over the old one is, after a crash, either old or new, whole.
import json
import os


def write_atomic(path, data):
    """Replace `path` with `data` so a crash leaves the old or the new file, whole. `data`: bytes,
    str, or an object written as JSON straight to the file (no copy of the text in RAM)."""
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        if isinstance(data, (str, bytes)):
            f.write(data)
        else:
            json.dump(data, f)
    os.rename(tmp, path)
