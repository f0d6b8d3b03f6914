# net.shadow_client against hostile or unlucky shadow traffic (issue 13): a bogus huge version must
# not shut out later deltas, versions that are no versions are ignored, and a state the service
# refuses to take is reported as an error once instead of being retried in a loop.
import asyncio
import json

from _net_fakes import publish_packet, run, until, shut
from test_net_shadow import BASE, ShadowScript, setup


def test_a_bogus_huge_version_does_not_shut_out_later_deltas():
    async def main():
        script = ShadowScript()
        script.desired = {}
        script.answers["get"] = [("accepted", {"state": {"desired": {}}, "version": 10})]
        deltas = []
        op, conn, sh = setup(script, lambda s, v: deltas.append((s, v)))
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 10)
        b = op.brokers[0]
        b.feed(publish_packet(BASE + "update/delta", json.dumps({"state": {"x": 1}, "version": 2 ** 62}).encode()))
        await until(lambda: len(deltas) == 1)
        # the real service's next delta: below the bogus one; the board asks the service (GET)
        script.version, script.desired = 11, {"x": 2}
        b.feed(publish_packet(BASE + "update/delta", json.dumps({"state": {"x": 2}, "version": 11}).encode()))
        await until(lambda: len(deltas) == 2)
        assert deltas[1] == ({"x": 2}, 11)
        assert sh.version == 11
        await shut(conn, task)
    run(main())


def test_versions_that_are_no_versions_are_ignored():
    async def main():
        script = ShadowScript()
        script.desired = {}
        script.answers["get"] = [("accepted", {"state": {"desired": {}}, "version": 5})]
        deltas = []
        op, conn, sh = setup(script, lambda s, v: deltas.append((s, v)))
        task = asyncio.create_task(conn.run())
        await until(lambda: sh.version == 5)
        b = op.brokers[0]
        for body in (b'{"state": {"x": 1}, "version": true}', b'{"state": {"x": 1}, "version": 2e30}',
                     b'{"state": {"x": 1}, "version": -4}', b'{"state": {"x": 1}, "version": "6"}',
                     b'{"state": [1], "version": 7}', b'[1, 2]', b'{"state": {"x": 1}}',
                     b'{"state": {"x": 1}, "version": 99999999999999999999999}'):
            b.feed(publish_packet(BASE + "update/delta", body))
        b.feed(publish_packet(BASE + "update/delta", b'{"state": {"x": 3}, "version": 8}'))
        await until(lambda: len(deltas) >= 1)
        await asyncio.sleep(0.05)
        assert deltas == [({"x": 3}, 8)] and sh.version == 8
        await shut(conn, task)
    run(main())


def test_a_refused_report_is_reported_as_an_error_once():
    async def main():
        script = ShadowScript()
        script.desired = {"ssid": "x" * 50}
        rejected = []

        def on_rejected(reported, e):
            rejected.append((reported, e.code))
            return {"config_error": {"problems": ["report: %s" % e]}}
        op, conn, sh = setup(script, lambda s, v: dict(s), on_rejected=on_rejected)
        script.answers["update"] = [("rejected", {"code": 413, "message": "The payload exceeds the maximum size allowed"})]
        task = asyncio.create_task(conn.run())
        await until(lambda: len(script.requests) >= 3)
        await asyncio.sleep(0.05)
        ops = [(o, list(d.get("state", {}).get("reported", {}))) for o, d in script.requests]
        assert ops == [("get", []), ("update", ["ssid"]), ("update", ["config_error"])], ops
        assert rejected[0][1] == 413
        await shut(conn, task)
    run(main())
