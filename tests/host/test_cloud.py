"""`edgeshadow cloud`: the plan, deploy and destroy against moto (iot, timestream-write, iam, sns,
lambda), the rules' SQL evaluated on the firmware's own messages, the unbatching function writing
to moto's Timestream, the Grafana dashboard."""
import base64
import json

import pytest
from moto import mock_aws

from host_tools.history import aws as cloud

from host_tools.history import iot_sql
from host_tools.cli import main as cli_main
from host_tools.history.aws_unbatch import handler
from host_tools.errors import EdgeshadowError

REGION = "eu-west-1"
TELEMETRY = json.dumps([{"seq": 41, "ts": 1796112586, "v": {"voltage": 24001.5, "current": 300.0}},
                        {"seq": 42, "ts": 1796112596, "v": {"voltage": 24010.0}, "s": {"current": "timeout"}}]).encode()
ALERT = {"seq": 43, "metric": "voltage", "rule": "range", "severity": "critical", "state": "raised",
         "value": 26000.0, "since": 1796112596, "reason": "above 25000", "thing": "grid-sensor-001", "ts": 1796112596}
SHADOW = json.dumps({"previous": None, "timestamp": 1796112597, "current": {"version": 7, "state": {"reported": {
    "voltage": 24010.0, "current": 300.0, "temperature": 40.5, "timestamp": 1796112596,
    "spool": {"backlog": 2, "dropped": 0}, "alerts": []}}}}).encode()


@pytest.fixture
def aws(monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield cloud.Aws(REGION)


def rules():
    return {r["name"]: r for r in cloud.plan(region=REGION) if r["kind"] == "iot-rule"}


def test_rule_sql_on_the_firmwares_messages():
    r = rules()
    out = iot_sql.evaluate(r["edgeshadow_telemetry"]["sql"], "dt/grid-sensor-001/telemetry", TELEMETRY)
    assert out["thing"] == "grid-sensor-001" and base64.b64decode(out["batch"]) == TELEMETRY
    assert iot_sql.evaluate(r["edgeshadow_telemetry"]["sql"], "dt/grid-sensor-001/alerts", TELEMETRY) is None
    alert = json.dumps(ALERT).encode()
    assert iot_sql.evaluate(r["edgeshadow_alerts"]["sql"], "dt/grid-sensor-001/alerts", alert) == \
        {"value": 26000.0, "severity": "critical", "state": "raised"}
    crit = r["edgeshadow_critical"]["sql"]
    assert iot_sql.evaluate(crit, "dt/grid-sensor-001/alerts", alert)["thing"] == "grid-sensor-001"
    for change in ({"state": "cleared"}, {"severity": "warning"}, {"state": "active"}):
        assert iot_sql.evaluate(crit, "dt/grid-sensor-001/alerts", json.dumps(dict(ALERT, **change)).encode()) is None
    out = iot_sql.evaluate(r["edgeshadow_shadow"]["sql"], "$aws/things/grid-sensor-001/shadow/update/documents", SHADOW)
    assert out == {"voltage": 24010.0, "current": 300.0, "temperature": 40.5, "spool_backlog": 2, "spool_dropped": 0}
    ts = r["edgeshadow_alerts"]["actions"][0]["timestream"]
    assert iot_sql.substitute(ts["timestamp"]["value"], "dt/grid-sensor-001/alerts", alert) == "1796112596"
    assert [iot_sql.substitute(d["value"], "dt/grid-sensor-001/alerts", alert) for d in ts["dimensions"]] == \
        ["grid-sensor-001", "voltage", "range"]
    shadow_ts = r["edgeshadow_shadow"]["actions"][0]["timestream"]
    assert iot_sql.substitute(shadow_ts["dimensions"][0]["value"], "$aws/things/grid-sensor-001/shadow/update/documents",
                              SHADOW) == "grid-sensor-001"


def test_the_checker_refuses_what_it_does_not_understand():
    with pytest.raises(iot_sql.SqlError, match=r"function newuuid\(\) is not supported"):
        iot_sql.evaluate("SELECT newuuid() AS id FROM 'a/b'", "a/b", b"{}")


def test_deploy_is_least_privilege_idempotent_and_destroy_removes_it(aws, tmp_path):
    resources = cloud.plan(region=REGION, account=aws.account())
    first = cloud.deploy(aws, resources, progress=lambda m: None)
    assert {s for _, _, s in first} == {"created"} and len(first) == len(resources)
    rule = aws("iot").get_topic_rule(ruleName="edgeshadow_critical")["rule"]
    assert "WHERE severity = 'critical'" in rule["sql"] and rule["actions"][0]["sns"]["targetArn"].endswith(
        ":edgeshadow-critical-alerts")
    table = aws("timestream-write").describe_table(DatabaseName="edgeshadow", TableName="telemetry")["Table"]
    assert table["RetentionProperties"] == cloud.RETENTION
    for role in ("edgeshadow-iot-rules", "edgeshadow-unbatch"):
        doc = aws("iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        for st in doc["Statement"]:  # "*" only where AWS offers nothing narrower
            assert st["Resource"] != "*" or st["Action"] == "timestream:DescribeEndpoints", st
            assert "*" not in str(st["Action"]), st
    policy = json.loads(aws("lambda").get_policy(FunctionName="edgeshadow-unbatch")["Policy"])
    assert policy["Statement"][0]["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(":rule/edgeshadow_telemetry")
    again = cloud.deploy(aws, resources, progress=lambda m: None)
    assert {s for _, _, s in again} == {"exists"}
    gone = cloud.destroy(aws, resources, progress=lambda m: None)
    assert {s for _, _, s in gone} == {"deleted"}
    assert aws("iot").list_topic_rules()["rules"] == []
    assert aws("timestream-write").list_databases()["Databases"] == []
    assert aws("iam").list_roles()["Roles"] == []
    assert {s for _, _, s in cloud.destroy(aws, resources, progress=lambda m: None)} == {"absent"}


def test_the_unbatching_function_writes_every_value_once(aws, monkeypatch):
    cloud.deploy(aws, cloud.plan(region=REGION, account=aws.account()), progress=lambda m: None)
    monkeypatch.setenv("TIMESTREAM_DATABASE", "edgeshadow")
    monkeypatch.setenv("TIMESTREAM_TABLE", "telemetry")
    event = iot_sql.evaluate(rules()["edgeshadow_telemetry"]["sql"], "dt/grid-sensor-001/telemetry", TELEMETRY)
    assert handler(event, client=aws("timestream-write")) == {"thing": "grid-sensor-001", "readings": 2, "records": 3}
    from moto.timestreamwrite.models import timestreamwrite_backends
    recs = timestreamwrite_backends[aws.account()][REGION].databases["edgeshadow"].tables["telemetry"].records
    assert sorted((r["MeasureName"], r["MeasureValue"], r["Time"]) for r in recs) == [
        ("current", "300.0", "1796112586000"), ("voltage", "24001.5", "1796112586000"),
        ("voltage", "24010.0", "1796112596000")]
    with pytest.raises(ValueError, match=r"reading \[0\] needs a number ts"):
        handler({"thing": "x", "batch": base64.b64encode(b'[{"v": {}}]').decode()}, client=aws("timestream-write"))


def test_cloud_command(aws, tmp_path, capsys):
    out = tmp_path / "grafana.json"
    assert cli_main(["cloud", "deploy", "--region", REGION, "--grafana-out", str(out), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert len(done) == 12 and all(d["state"] == "created" for d in done)
    dash = json.loads(out.read_text())
    titles = [p["title"] for p in dash["panels"]]
    assert titles == ["Fleet at a glance", "current", "humidity", "temperature", "voltage", "Alerts"]
    volt = dash["panels"][4]
    assert [s["value"] for s in volt["fieldConfig"]["defaults"]["thresholds"]["steps"]][1:] == [23000, 25000]
    assert cli_main(["cloud", "destroy", "--region", REGION]) == 0
    assert capsys.readouterr().out.count("deleted") == 12


def test_plan_needs_no_account_and_names_are_checked(capsys):
    assert cli_main(["cloud", "plan"]) == 0
    assert "edgeshadow_telemetry" in capsys.readouterr().out
    with pytest.raises(EdgeshadowError, match="only letters, digits and _"):
        cloud.plan(name="my-fleet")
