"""The local AWS IoT Jobs + MQTT-based file delivery service: AWS's topics and documents over the
real broker, rollout and abort rules, and the ACLs (a thing reaches only its own jobs and streams;
only the admin certificate reaches the control plane)."""
import base64
import json

import pytest

from _broker_fixtures import local_broker  # noqa: F401
from host_tools.cloud import ota
from host_tools.cloud.jobs_store import JobsError, JobStore


@pytest.fixture(scope="module")
def admin(local_broker):
    crt, key = local_broker.client_cert("edgeshadow-admin")
    with ota.LocalJobs(local_broker.host, local_broker.port, local_broker.broker.ca_cert, crt, key) as j:
        yield j


def test_device_jobs_api_documents(local_broker, admin):
    thing = "jobs-doc-001"
    with local_broker.probe(thing) as dev:
        dev.subscribe(f"$aws/things/{thing}/jobs/#")
        admin.create_job("doc-job-1", [thing], {"operation": "x", "n": 1})
        note = dev.wait_for(lambda m: m.topic.endswith("/notify-next")).json()
        assert note["execution"]["jobId"] == "doc-job-1" and note["execution"]["status"] == "QUEUED"
        assert note["execution"]["jobDocument"] == {"operation": "x", "n": 1}
        assert isinstance(note["timestamp"], int)
        dev.publish(f"$aws/things/{thing}/jobs/$next/get", {"clientToken": "t1"})
        got = dev.wait_for(lambda m: m.topic.endswith("$next/get/accepted")).json()
        ex = got["execution"]
        assert got["clientToken"] == "t1"
        assert {"jobId", "thingName", "status", "queuedAt", "lastUpdatedAt", "versionNumber",
                "executionNumber", "jobDocument"} <= set(ex)
        assert ex["thingName"] == thing and ex["versionNumber"] == 1
        dev.publish(f"$aws/things/{thing}/jobs/doc-job-1/update",
                    {"status": "IN_PROGRESS", "statusDetails": {"step": "download"}, "expectedVersion": 1,
                     "clientToken": "t2"})
        acc = dev.wait_for(lambda m: m.topic.endswith("doc-job-1/update/accepted")).json()
        assert acc["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"step": "download"},
                                         "versionNumber": 2}
        dev.publish(f"$aws/things/{thing}/jobs/doc-job-1/update",
                    {"status": "SUCCEEDED", "expectedVersion": 1, "clientToken": "t3"})
        rej = dev.wait_for(lambda m: m.topic.endswith("doc-job-1/update/rejected")).json()
        assert rej["code"] == "VersionMismatch" and rej["clientToken"] == "t3"
        dev.publish(f"$aws/things/{thing}/jobs/doc-job-1/update", {"status": "SUCCEEDED", "clientToken": "t4",
                                                                  "statusDetails": {"n": 5}})
        rej = dev.wait_for(lambda m: m.topic.endswith("doc-job-1/update/rejected") and b"t4" in m.payload).json()
        assert rej["code"] == "InvalidRequest"                  # statusDetails values are strings
        dev.publish(f"$aws/things/{thing}/jobs/doc-job-1/update", {"status": "SUCCEEDED", "clientToken": "t5"})
        dev.wait_for(lambda m: m.topic.endswith("doc-job-1/update/accepted") and b"t5" in m.payload)
        # nothing next any more: notify-next without an execution, $next/get likewise
        dev.wait_for(lambda m: m.topic.endswith("/notify-next") and "execution" not in m.json())
        dev.publish(f"$aws/things/{thing}/jobs/doc-job-1/update", {"status": "FAILED", "clientToken": "t6"})
        rej = dev.wait_for(lambda m: m.topic.endswith("/rejected") and b"t6" in m.payload).json()
        assert rej["code"] == "TerminalStateReached"


def test_stream_describe_and_blocks(local_broker, admin):
    thing = "jobs-doc-002"
    data = bytes(range(256)) * 11 + b"end"
    admin.create_stream("doc-stream-1", data, description="d")
    base = f"$aws/things/{thing}/streams/doc-stream-1"
    with local_broker.probe(thing) as dev:
        dev.subscribe(base + "/description/json", base + "/data/json", base + "/rejected/json")
        dev.publish(base + "/describe/json", {"c": "c1"})
        d = dev.wait_for(lambda m: m.topic.endswith("description/json")).json()
        assert d == {"c": "c1", "s": 1, "d": "d", "r": [{"f": 0, "z": len(data)}]}
        dev.publish(base + "/get/json", {"c": "c2", "f": 0, "l": 1024, "o": 1, "n": 5})
        blocks = [dev.wait_for(lambda m, i=i: m.topic.endswith("data/json") and m.json()["i"] == i).json()
                  for i in (1, 2)]
        assert b"".join(base64.b64decode(b["p"]) for b in blocks) == data[1024:]
        assert blocks[1]["l"] == len(data) - 2048 and blocks[0]["c"] == "c2"
        for req, code in (({"f": 0, "l": 100, "o": 0}, "BlockSizeOutOfBounds"),
                          ({"f": 0, "l": 1024, "o": 9}, "OffsetOutOfBounds"),
                          ({"f": 3, "l": 1024, "o": 0}, "ResourceNotFound"),
                          ({"f": 0, "l": 1024, "o": 0, "s": 7}, "VersionMismatch")):
            dev.publish(base + "/get/json", dict(req, c=code))
            r = dev.wait_for(lambda m, c=code: m.topic.endswith("rejected/json") and m.json()["c"] == c).json()
            assert r["o"] == code and r["m"]


def test_a_thing_reaches_only_its_own_jobs_and_streams(local_broker, admin):
    admin.create_stream("acl-stream", b"x" * 600)
    with local_broker.probe("acl-001") as dev, local_broker.probe("acl-002") as other:
        other.subscribe("$aws/things/acl-001/jobs/#", "$aws/things/acl-001/streams/#", "edgeshadow/jobs/#",
                        "$aws/things/acl-002/jobs/#")
        dev.subscribe("$aws/things/acl-001/jobs/#", "$aws/things/acl-001/streams/#")
        admin.create_job("acl-job-1", ["acl-001"], {"operation": "x"})
        dev.wait_for(lambda m: m.topic.endswith("/notify-next"))
        dev.publish("$aws/things/acl-001/streams/acl-stream/get/json", {"c": "a", "f": 0, "l": 512, "o": 0, "n": 2})
        dev.wait_for(lambda m: m.topic.endswith("data/json") and m.json()["i"] == 1)
        # publishing to another thing's update topic or to the control plane is dropped by the ACL
        other.publish("$aws/things/acl-001/jobs/acl-job-1/update", {"status": "SUCCEEDED"})
        other.publish("edgeshadow/jobs/create-job", {"jobId": "forged", "targets": ["acl-002"],
                                                      "document": {"operation": "edgeshadow-ota"}})
        other.publish("$aws/things/acl-002/jobs/$next/get", {"clientToken": "marker"})
        other.wait_for(lambda m: m.topic.endswith("$next/get/accepted"))   # its own topics work
        assert [m.topic for m in other.messages if "acl-001" in m.topic or m.topic.startswith("edgeshadow")] == []
    jobs = {j["jobId"]: j for j in admin.list_jobs()}
    assert jobs["acl-job-1"]["executions"]["acl-001"]["status"] == "QUEUED"
    assert "forged" not in jobs


def test_rollout_releases_executions_in_waves_and_abort_cancels_the_rest(tmp_path):
    s = JobStore(tmp_path)
    things = [f"t{i}" for i in range(5)]
    _, released = s.create_job("j", things, {"operation": "x"}, rollout=2, abort_after=2)
    assert released == ["t0", "t1"] and s.next_execution("t2") is None
    _, changed = s.update("t0", "j", {"status": "SUCCEEDED"})
    assert set(changed) == {"t0", "t2"} and s.next_execution("t2")["jobId"] == "j"
    s.update("t1", "j", {"status": "FAILED", "statusDetails": {"reason": "r"}})
    assert s.next_execution("t3")["status"] == "QUEUED"
    s.update("t2", "j", {"status": "IN_PROGRESS"})
    _, changed = s.update("t3", "j", {"status": "REJECTED"})      # second failure: abort
    summary = s.list_jobs()[0]
    assert summary["status"] == "CANCELED" and "2 execution(s) failed" in summary["reasonCode"]
    assert summary["executions"]["t4"]["status"] == "CANCELED"
    assert summary["executions"]["t2"]["status"] == "IN_PROGRESS"  # may still finish (no force)
    s.update("t2", "j", {"status": "SUCCEEDED"})
    with pytest.raises(JobsError) as e:
        s.create_job("j", things, {})
    assert e.value.code == "ResourceAlreadyExists"
    again = JobStore(tmp_path)                                    # state survives a restart
    assert again.list_jobs()[0]["executions"]["t2"]["status"] == "SUCCEEDED"
    # IN_PROGRESS executions come before QUEUED ones, whatever their age
    s.create_job("k1", ["u"], {"operation": "x"})
    s.create_job("k2", ["u"], {"operation": "x"})
    s.update("u", "k2", {"status": "IN_PROGRESS"})
    assert s.next_execution("u")["jobId"] == "k2"
    assert [p["jobId"] for p in s.pending("u")["queuedJobs"]] == ["k1"]
