"""Over-the-air app updates on virtual boards against the real broker and the local jobs/streams
service: a 10-board rollout confirmed and visible in the shadow, rollback of an app that raises at
start with the rollout stopped after K failures, forged or damaged updates rejected before
anything is written, and power cuts (SIGKILL of the firmware process) at random moments."""
import hashlib
import json
import os
import random
import re
import signal
import time

import pytest

from _broker_fixtures import local_broker  # noqa: F401  (module-scoped broker + services)
from _ota_fixtures import ROMFS, build_app, executions, firmware_variant, ota_board, state, wait_until
from host_tools import FIRMWARE_DIR
from host_tools.cloud import ota
from host_tools.cloud.shadow_api import LocalShadow
from host_tools.sim.board import VirtualBoard, stop_boards

FLEET = 10
TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "CANCELED")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return ota.keygen(tmp_path_factory.mktemp("otakey"))


@pytest.fixture(scope="module")
def admin(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as j:
        yield j


@pytest.fixture(scope="module")
def fleet(local_broker, keys, tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    # a reading every 10 s: these tests are about updates, and ten boards sampling every 2 s for
    # the whole module cost a core's worth of CPU
    boards = [ota_board(root, f"ota-{i:03d}", local_broker, keys[1], interval_s=10) for i in range(1, FLEET + 1)]
    try:
        for b in boards:
            b.launch()
        for b in boards:
            b.wait_ready()
        for b in boards:
            b.wait_for_log("net: connected", timeout=90)
        yield boards
    finally:
        stop_boards(boards)


@pytest.fixture(scope="module")
def versions(keys, tmp_path_factory):
    """Bundles built once: a good 0.2.0, and 0.3.0 whose app raises at start."""
    key = keys[0]
    root = tmp_path_factory.mktemp("fw")
    good = build_app(firmware_variant(root / "good", "0.2.0"), key, version="0.2.0", seq=2)
    app = (FIRMWARE_DIR / "app.py").read_text() + (
        "\n\ndef main():\n    raise RuntimeError('0.3.0 cannot start: missing calibration table')\n")
    bad = build_app(firmware_variant(root / "bad", "0.3.0", {"app.py": app}), key, version="0.3.0", seq=3)
    return {"good": good, "crash": bad}


def end_states(env, job, things, timeout, boards=()):
    try:
        wait_until(lambda: all(executions(env, job)[t] in TERMINAL for t in things), timeout,
                   f"every execution of {job} to end", every=0.25)
    except AssertionError as e:  # the states at the deadline, and what the boards said
        tails = "".join(f"\n--- {b.thing} ---\n{b.log()[-1500:]}" for b in boards)
        raise AssertionError(f"{e}: {executions(env, job)}{tails}") from None
    return executions(env, job)


def update_tree(board):
    """{path under /update: sha256} on the board's flash."""
    root = board.flash_dir / "update"
    out = {}
    for p in sorted(root.rglob("*")) if root.exists() else []:
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_rollout_to_ten_boards_is_confirmed_and_the_shadow_shows_it(local_broker, fleet, admin, versions):
    t0 = time.monotonic()
    job = ota.push_local(admin, versions["good"], [b.thing for b in fleet], rollout="50%")
    ex = end_states(local_broker, job, [b.thing for b in fleet], 120)
    elapsed = time.monotonic() - t0
    assert set(ex.values()) == {"SUCCEEDED"}, ex
    print(f"\n10-board rollout: job created -> all confirmed in {elapsed:.1f} s")
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with LocalShadow(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as sh:
        for b in fleet:
            # the board clears its result once the service has accepted its report, a moment
            # after the job shows the final status
            st = wait_until(lambda: (lambda s: s if s["result"] is None else None)(state(b)), 30,
                            f"{b.thing}'s reported result cleared")
            assert st["active"] == "a" and st["pending"] is None and st["result"] is None, st
            assert "edgeshadow firmware v0.2.0" in b.log()
            wait_until(lambda: sh.get(b.thing)["state"]["reported"].get("fw") == "0.2.0", 30,
                       f"{b.thing}'s shadow to report fw 0.2.0")
    details = local_broker.jobs.store.jobs[job]["executions"][fleet[0].thing]["statusDetails"]
    assert details == {"version": "0.2.0"}


def test_an_app_that_raises_at_start_is_rolled_back_and_the_rollout_stops(local_broker, fleet, admin, versions):
    things = [b.thing for b in fleet[:5]]
    job = ota.push_local(admin, versions["crash"], things, rollout=1, abort_after=2)
    ex = end_states(local_broker, job, things, 90)
    assert list(ex.values()) == ["FAILED", "FAILED", "CANCELED", "CANCELED", "CANCELED"], ex
    summary = {j["jobId"]: j for j in admin.list_jobs()}[job]
    assert summary["status"] == "CANCELED" and "2 execution(s) failed" in summary["reasonCode"]
    for b in fleet[:2]:
        reason = local_broker.jobs.store.jobs[job]["executions"][b.thing]["statusDetails"]["reason"]
        assert "0.3.0 cannot start: missing calibration table" in reason
        # the board clears its result once the service has accepted its report, a moment
        # after the job shows the final status
        st = wait_until(lambda: (lambda s: s if s["result"] is None else None)(state(b)), 30,
                        f"{b.thing}'s reported result cleared")
        assert st["active"] == "a" and st["pending"] is None and st["result"] is None, st  # back on 0.2.0
        mark = b.log().rfind("rolled back")
        assert mark > 0
        b.wait_for_log("edgeshadow firmware v0.2.0", start=mark)
        b.wait_for_log("net: connected", start=mark, timeout=30)
    for b in fleet[2:5]:  # never started: the job was cancelled before their turn
        assert "0.3.0" not in b.log()


def test_an_app_that_never_reports_or_hangs_at_start_is_rolled_back(local_broker, fleet, admin, keys, tmp_path):
    """0.4.0 cannot report its shadow: rolled back after its trial (trial_s). 0.4.1 hangs before its
    app starts the watchdog: the trial watchdog resets it, and after 3 boots it is rolled back."""
    app = (FIRMWARE_DIR / "app.py").read_text()
    broken = app.replace("await self.shadow.report(rep)", "raise OSError('0.4.0: shadow reports broken')")
    assert broken != app
    silent = build_app(firmware_variant(tmp_path / "a", "0.4.0", {"app.py": broken}), keys[0],
                       version="0.4.0", seq=4, trial_s=5)
    hang = build_app(firmware_variant(tmp_path / "b", "0.4.1", {"app.py": app + "\n\ndef main():\n    while True:\n        pass\n"}),
                     keys[0], version="0.4.1", seq=4, trial_s=3)
    b1, b2 = fleet[2], fleet[3]
    j1 = ota.push_local(admin, silent, [b1.thing])
    j2 = ota.push_local(admin, hang, [b2.thing])
    assert end_states(local_broker, j1, [b1.thing], 90)[b1.thing] == "FAILED"
    assert end_states(local_broker, j2, [b2.thing], 90)[b2.thing] == "FAILED"
    r1 = local_broker.jobs.store.jobs[j1]["executions"][b1.thing]["statusDetails"]["reason"]
    r2 = local_broker.jobs.store.jobs[j2]["executions"][b2.thing]["statusDetails"]["reason"]
    assert "not confirmed within 5 s" in r1, r1
    assert "not confirmed after 3 boots" in r2, r2
    assert "task_wdt: Task watchdog got triggered" in b2.log()
    for b in (b1, b2):
        st = state(b)
        assert st["active"] == "a" and st["pending"] is None, st
        back = b.log().rfind("rolled back")
        assert back > 0
        b.wait_for_log("edgeshadow firmware v0.2.0", start=back)   # the previous version again


def test_a_download_cut_by_a_restart_resumes_where_it_stopped(local_broker, fleet, admin, keys, tmp_path):
    b = fleet[4]
    bundle = build_app(firmware_variant(tmp_path / "fw", "0.6.0"), keys[0], version="0.6.0", seq=6)
    size = bundle.manifest["size"]
    sent0 = local_broker.jobs.bytes_sent
    mark = len(b.log())
    job = ota.push_local(admin, bundle, [b.thing])
    stage = b.flash_dir / "update" / "stage"

    def staged():  # bytes on flash: finished files and the one being written (.part)
        try:
            return sum(p.stat().st_size for p in stage.rglob("*") if p.is_file() and p.name[0] != ".")
        except OSError:
            return 0
    wait_until(lambda: staged() >= size * 0.4, 60, "40% staged", every=0.01)
    sent_before = local_broker.jobs.bytes_sent - sent0
    _power_cut(b)
    assert end_states(local_broker, job, [b.thing], 90)[b.thing] == "SUCCEEDED"
    m = re.search(r"resuming the download at file (\d+), byte (\d+)", b.log()[mark:])
    assert m and int(m.group(2)) >= size * 0.3, b.log()[-1500:]   # not from the start
    assert ROMFS or int(m.group(1)) >= 2
    sent = local_broker.jobs.bytes_sent - sent0
    # what was on flash is not fetched again (blocks in flight at the cut may be)
    assert sent - sent_before < size, (sent_before, sent, size)
    assert state(b)["pending"] is None and "edgeshadow firmware v0.6.0" in b.log()


def test_a_job_cancelled_during_the_download_is_not_applied(local_broker, fleet, admin, keys, tmp_path):
    b = fleet[4]
    before = state(b)
    bundle = build_app(firmware_variant(tmp_path / "fw", "0.6.1"), keys[0], version="0.6.1", seq=7)
    mark = len(b.log())
    job = ota.push_local(admin, bundle, [b.thing])
    progress = b.flash_dir / "update" / "stage" / ".progress"
    wait_until(progress.exists, 60, "the download to start", every=0.01)
    admin.cancel_job(job, force=True)
    b.wait_for_log(f"ota: job {job} is over (TerminalStateReached): not applied", start=mark, timeout=60)
    assert executions(local_broker, job)[b.thing] == "CANCELED"
    st = state(b)
    assert st["active"] == before["active"] and st["pending"] is None and st["seq"] == before["seq"]
    assert "restarting into it" not in b.log()[mark:]


def _tamper(bundle, **kw):
    m = json.loads(bundle.manifest_text)
    m.update(kw)
    return json.dumps(m, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("case", ["bad_signature", "tampered_manifest", "wrong_sha256", "truncated",
                                  "other_arch", "replayed_older"])
def test_a_forged_or_damaged_update_is_refused_and_nothing_is_kept(local_broker, fleet, admin, versions,
                                                                    keys, case):
    good = versions["good"]
    b = fleet[5 + ["bad_signature", "tampered_manifest", "wrong_sha256", "truncated", "other_arch",
                   "replayed_older"].index(case) % 5]
    key = ota._load(keys[0], True)
    text, sig, blob = good.manifest_text, good.signature, good.blob
    expect, words = "REJECTED", None
    if case == "bad_signature":
        sig = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
        words = "signature does not verify"
    elif case == "tampered_manifest":  # signed bytes changed after signing: e.g. a new version
        text = _tamper(good, version="9.9.9", seq=99)
        words = "signature does not verify"
    elif case == "wrong_sha256":  # a correctly signed manifest, a file changed in the stream
        text = _tamper(good, version="0.2.1", seq=21)
        sig = ota.sign(key, text)
        i = json.loads(text)["files"][0]["offset"]
        blob = blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1:]
        expect, words = "FAILED", "SHA-256"
    elif case == "truncated":
        text = _tamper(good, version="0.2.2", seq=22)
        sig = ota.sign(key, text)
        blob = blob[:len(blob) // 2]
        words = "the manifest says"   # DescribeStream's size, before the download starts
    elif case == "other_arch":  # built for another chip's bytecode
        text = _tamper(good, version="0.2.3", seq=23, mpy_arch="xtensawin")
        sig = ota.sign(key, text)
        words = "does not match this board's x64"
    elif case == "replayed_older":  # an old, validly signed manifest sent again
        text = _tamper(good, version="0.1.9", seq=1)
        sig = ota.sign(key, text)
        words = "older than the running"
    before = update_tree(b)
    job = ota.push_local(admin, ota.Bundle(text, sig, blob), [b.thing])
    ex = end_states(local_broker, job, [b.thing], 60)
    assert ex[b.thing] == expect, ex
    reason = local_broker.jobs.store.jobs[job]["executions"][b.thing]["statusDetails"]["reason"]
    assert words in reason, reason
    assert update_tree(b) == before  # no slot, no stage, no state change
    assert state(b)["active"] == "a"


def _phase(board, job):
    """Where the update stood on the board at the moment of a kill (from its flash)."""
    st = state(board) or {}
    if (st.get("result") or {}).get("job") == job:
        return "confirmed, not yet reported"
    if (st.get("pending") or {}).get("job") == job:
        if ROMFS and st.get("rom") != st.get("active"):
            return "switched, copying into ROMFS (pending)"
        return "switched, first boot (pending)"
    if (board.flash_dir / "update" / "stage").exists():
        return "downloading"
    return "before the download or after the report"


def _power_cut(board):
    """SIGKILL the firmware process (the supervisor boots the board again, as after a power cut).
    Between a reset and the next boot there is briefly no process: wait for it."""
    deadline = time.monotonic() + 10
    while True:
        pid = board.state().get("child_pid")
        try:
            if pid:
                os.kill(pid, signal.SIGKILL)
                return
        except ProcessLookupError:
            pass
        assert time.monotonic() < deadline, f"{board.thing} has no firmware process to kill"
        time.sleep(0.005)


def test_power_cuts_at_random_moments_never_leave_a_board_unbootable(local_broker, fleet, admin, keys,
                                                                     versions, tmp_path):
    """20 SIGKILLs of the firmware process over download, switch and first boot (4 boards x 5)."""
    rng = random.Random(14)
    boards = fleet[6:10]
    outcomes, phases = [], []
    for rnd in range(5):
        v = f"0.5.{rnd}"
        bundle = build_app(firmware_variant(tmp_path / v, v), keys[0], version=v, seq=50 + rnd)
        marks = [len(b.log()) for b in boards]
        job = ota.push_local(admin, bundle, [b.thing for b in boards])
        t0 = time.monotonic()
        delays = sorted((rng.uniform(0.0, 2.5), i) for i in range(len(boards)))
        for delay, i in delays:
            time.sleep(max(0.0, t0 + delay - time.monotonic()))  # the random moment itself
            phases.append(_phase(boards[i], job))
            _power_cut(boards[i])
        ex = end_states(local_broker, job, [b.thing for b in boards], 120, boards)
        for b, mark in zip(boards, marks):
            st = state(b)
            running = st["active"] if st else None
            assert running is None or (b.flash_dir / "update" / running / ".manifest").exists()
            ver = json.loads((b.flash_dir / "update" / running / ".manifest").read_text())["version"]
            b.wait_for_log(f"edgeshadow firmware v{ver}", start=mark, timeout=30)
            b.wait_for_log("net: connected", start=mark, timeout=60)
            outcomes.append((ex[b.thing], ver))
    assert all(o[0] in ("SUCCEEDED", "FAILED") for o in outcomes), outcomes
    print("\npower cuts: phase at the kill", {p: phases.count(p) for p in set(phases)},
          "outcomes", {o: outcomes.count(o) for o in set(outcomes)})
    assert len(phases) == 20
