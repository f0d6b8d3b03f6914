"""The same on AWS: IoT topic rules into Amazon Timestream, critical alerts to SNS, least privilege.

`plan(name, metrics)` is data: every resource `deploy` makes, in order, with the exact SQL, actions
and IAM policies; `cloud plan` prints it, `deploy` creates what is missing (a second run changes
nothing), `destroy` removes it in reverse order. Names derive from `name` (default "edgeshadow"),
so destroy needs no state file.

  Timestream  database <name>, tables telemetry, alerts, shadow (memory 24 h, magnetic 365 days)
  rule <name>_telemetry  dt/+/telemetry -> Lambda <name>-unbatch (host_tools/history/aws_unbatch.py):
              a rule action cannot split the firmware's batches into rows, the function does
  rule <name>_alerts     dt/+/alerts -> Timestream alerts (dimensions thing, metric, rule)
  rule <name>_critical   dt/+/alerts WHERE severity = 'critical' AND state = 'raised' -> SNS
  rule <name>_shadow     $aws/things/+/shadow/update/documents -> Timestream shadow (the reported
              metrics, spool backlog, at the device's timestamp)
  IAM         role <name>-iot-rules (iot.amazonaws.com): timestream:WriteRecords on the two tables
              it writes, sns:Publish on the topic; role <name>-unbatch (lambda.amazonaws.com):
              WriteRecords on telemetry, its own log group. timestream:DescribeEndpoints is the
              only action on "*" (AWS allows no narrower resource for it).
  SNS         topic <name>-critical-alerts
  Grafana     a dashboard JSON (Timestream data source) with the local page's panels: `grafana()`.
"""
import io
import json
import zipfile
from pathlib import Path

from host_tools.errors import EdgeshadowError
from host_tools.cloud.provision import aws_error

SQL_VERSION = "2016-03-23"
RETENTION = {"MemoryStoreRetentionPeriodInHours": 24, "MagneticStoreRetentionPeriodInDays": 365}
TABLES = ("telemetry", "alerts", "shadow")
LAMBDA_SOURCE = Path(__file__).resolve().parent / "aws_unbatch.py"


def _trust(service):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                    "Action": "sts:AssumeRole"}]}


def plan(name="edgeshadow", metrics=("voltage", "current", "temperature", "humidity"), region="us-east-1",
         account="123456789012", prefix="dt"):
    """Every resource as {"kind", "name", ...spec}; ARNs are filled with region and account."""
    db = name
    table_arn = lambda t: f"arn:aws:timestream:{region}:{account}:database/{db}/table/{t}"  # noqa: E731
    topic_arn = f"arn:aws:sns:{region}:{account}:{name}-critical-alerts"
    rules_role = f"arn:aws:iam::{account}:role/{name}-iot-rules"
    fn_role = f"arn:aws:iam::{account}:role/{name}-unbatch"
    fn_arn = f"arn:aws:lambda:{region}:{account}:function:{name}-unbatch"
    shadow_cols = ", ".join([f"current.state.reported.{m} AS {m}" for m in metrics] +
                            ["current.state.reported.spool.backlog AS spool_backlog",
                             "current.state.reported.spool.dropped AS spool_dropped"])
    out = [{"kind": "timestream-database", "name": db}]
    out += [{"kind": "timestream-table", "name": t, "database": db, "retention": RETENTION} for t in TABLES]
    out.append({"kind": "sns-topic", "name": f"{name}-critical-alerts", "arn": topic_arn})
    out += _iam_roles(name, region, account, table_arn, topic_arn, rules_role, fn_role)
    out.append({"kind": "lambda-function", "name": f"{name}-unbatch", "arn": fn_arn, "role": fn_role,
                "runtime": "python3.12", "handler": "cloud_unbatch.handler",
                "environment": {"TIMESTREAM_DATABASE": db, "TIMESTREAM_TABLE": "telemetry"},
                "invoked_by": f"arn:aws:iot:{region}:{account}:rule/{name}_telemetry"})
    out += _rules(name, prefix, db, fn_arn, rules_role, topic_arn, shadow_cols)
    return out


def _iam_roles(name, region, account, table_arn, topic_arn, rules_role, fn_role):
    """The IoT rules' role (Timestream alerts/shadow tables, SNS) and the unbatch function's role."""
    log_arn = f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{name}-unbatch:*"
    endpoints = {"Effect": "Allow", "Action": "timestream:DescribeEndpoints", "Resource": "*"}
    out = []
    out.append({"kind": "iam-role", "name": f"{name}-iot-rules", "arn": rules_role,
                "trust": _trust("iot.amazonaws.com"),
                "policy": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "timestream:WriteRecords",
                     "Resource": [table_arn("alerts"), table_arn("shadow")]},
                    endpoints,
                    {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}})
    out.append({"kind": "iam-role", "name": f"{name}-unbatch", "arn": fn_role,
                "trust": _trust("lambda.amazonaws.com"),
                "policy": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "timestream:WriteRecords", "Resource": table_arn("telemetry")},
                    endpoints,
                    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                     "Resource": log_arn},
                    {"Effect": "Allow", "Action": "logs:CreateLogGroup",
                     "Resource": f"arn:aws:logs:{region}:{account}:*"}]}})
    return out


def _rules(name, prefix, db, fn_arn, rules_role, topic_arn, shadow_cols):
    """The IoT rules: telemetry to the unbatch function, alerts and shadows to Timestream, critical
    alerts to SNS."""
    out = []
    thing_dim = {"name": "thing", "value": "${topic(2)}"}
    out.append(_rule(f"{name}_telemetry", f"SELECT topic(2) AS thing, encode(*, 'base64') AS batch "
                                          f"FROM '{prefix}/+/telemetry'",
                     [{"lambda": {"functionArn": fn_arn}}]))
    # reason stays out: it may be "", which Timestream refuses as a VARCHAR measure (SNS carries it)
    out.append(_rule(f"{name}_alerts", f"SELECT value, severity, state FROM '{prefix}/+/alerts'",
                     [{"timestream": {"roleArn": rules_role, "databaseName": db, "tableName": "alerts",
                                      "dimensions": [thing_dim, {"name": "metric", "value": "${metric}"},
                                                     {"name": "rule", "value": "${rule}"}],
                                      "timestamp": {"value": "${floor(ts)}", "unit": "SECONDS"}}}]))
    out.append(_rule(f"{name}_critical", "SELECT topic(2) AS thing, metric, rule, severity, value, reason, ts "
                                         f"FROM '{prefix}/+/alerts' WHERE severity = 'critical' AND state = 'raised'",
                     [{"sns": {"targetArn": topic_arn, "roleArn": rules_role, "messageFormat": "JSON"}}]))
    out.append(_rule(f"{name}_shadow", f"SELECT {shadow_cols} FROM '$aws/things/+/shadow/update/documents'",
                     [{"timestream": {"roleArn": rules_role, "databaseName": db, "tableName": "shadow",
                                      "dimensions": [{"name": "thing", "value": "${topic(3)}"}],
                                      "timestamp": {"value": "${current.state.reported.timestamp}",
                                                    "unit": "SECONDS"}}}]))
    return out


def _rule(name, sql, actions):
    if not name.replace("_", "").isalnum():  # AWS: a rule's name holds only letters, digits and _
        raise EdgeshadowError(f"rule name {name!r}: only letters, digits and _ (choose another --name)")
    return {"kind": "iot-rule", "name": name, "sql": sql, "actions": actions}


def describe(resources):
    """Lines of text: what `deploy` would make."""
    lines = []
    for r in resources:
        extra = {"iot-rule": lambda: r["sql"], "timestream-table": lambda: f"in {r['database']}",
                 "iam-role": lambda: "may: " + "; ".join(
                     f"{s['Action']} on {s['Resource']}" for s in r["policy"]["Statement"])}.get(r["kind"])
        lines.append(f"{r['kind']:20} {r['name']}" + (f"  {extra()}" if extra else ""))
    return lines


def lambda_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("cloud_unbatch.py", LAMBDA_SOURCE.read_text())
    return buf.getvalue()


class Aws:
    """boto3 clients of one session and region."""

    def __init__(self, region=None, session=None):
        import boto3
        self.session = session or boto3.session.Session(region_name=region)
        self.region = self.session.region_name
        if not self.region:
            raise EdgeshadowError("no AWS region: give --region or set AWS_DEFAULT_REGION")
        self._clients = {}

    def __call__(self, service):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def account(self):
        try:
            return self("sts").get_caller_identity()["Account"]
        except Exception as e:
            raise aws_error(e, "GetCallerIdentity")


def _exists(call, *missing):
    from botocore.exceptions import ClientError
    try:
        call()
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in missing:
            return False
        raise


def _present(aws, r):
    k = r["kind"]
    if k == "timestream-database":
        return _exists(lambda: aws("timestream-write").describe_database(DatabaseName=r["name"]),
                       "ResourceNotFoundException")
    if k == "timestream-table":
        return _exists(lambda: aws("timestream-write").describe_table(DatabaseName=r["database"], TableName=r["name"]),
                       "ResourceNotFoundException")
    if k == "sns-topic":
        return _exists(lambda: aws("sns").get_topic_attributes(TopicArn=r["arn"]), "NotFound", "NotFoundException")
    if k == "iam-role":
        return _exists(lambda: aws("iam").get_role(RoleName=r["name"]), "NoSuchEntity")
    if k == "lambda-function":
        return _exists(lambda: aws("lambda").get_function(FunctionName=r["name"]), "ResourceNotFoundException")
    if k == "iot-rule":
        return _exists(lambda: aws("iot").get_topic_rule(ruleName=r["name"]), "ResourceNotFoundException",
                       "UnauthorizedException")
    raise ValueError(k)


def _create(aws, r):
    k = r["kind"]
    if k == "timestream-database":
        aws("timestream-write").create_database(DatabaseName=r["name"])
    elif k == "timestream-table":
        aws("timestream-write").create_table(DatabaseName=r["database"], TableName=r["name"],
                                             RetentionProperties=r["retention"])
    elif k == "sns-topic":
        aws("sns").create_topic(Name=r["name"])
    elif k == "iam-role":
        aws("iam").create_role(RoleName=r["name"], AssumeRolePolicyDocument=json.dumps(r["trust"]))
        aws("iam").put_role_policy(RoleName=r["name"], PolicyName=r["name"], PolicyDocument=json.dumps(r["policy"]))
    elif k == "lambda-function":
        aws("lambda").create_function(FunctionName=r["name"], Runtime=r["runtime"], Role=r["role"],
                                      Handler=r["handler"], Code={"ZipFile": lambda_zip()}, Timeout=30,
                                      Environment={"Variables": r["environment"]})
        aws("lambda").add_permission(FunctionName=r["name"], StatementId="iot-rule", Action="lambda:InvokeFunction",
                                     Principal="iot.amazonaws.com", SourceArn=r["invoked_by"])
    elif k == "iot-rule":
        aws("iot").create_topic_rule(ruleName=r["name"], topicRulePayload={
            "sql": r["sql"], "actions": r["actions"], "awsIotSqlVersion": SQL_VERSION, "ruleDisabled": False})


def _delete(aws, r):
    k = r["kind"]
    if k == "timestream-database":
        aws("timestream-write").delete_database(DatabaseName=r["name"])
    elif k == "timestream-table":
        aws("timestream-write").delete_table(DatabaseName=r["database"], TableName=r["name"])
    elif k == "sns-topic":
        aws("sns").delete_topic(TopicArn=r["arn"])
    elif k == "iam-role":
        for p in aws("iam").list_role_policies(RoleName=r["name"])["PolicyNames"]:
            aws("iam").delete_role_policy(RoleName=r["name"], PolicyName=p)
        aws("iam").delete_role(RoleName=r["name"])
    elif k == "lambda-function":
        aws("lambda").delete_function(FunctionName=r["name"])
    elif k == "iot-rule":
        aws("iot").delete_topic_rule(ruleName=r["name"])


_NOUN = {"timestream-database": "Database", "timestream-table": "Table", "sns-topic": "Topic",
         "iam-role": "Role", "lambda-function": "Function", "iot-rule": "TopicRule"}


def _op(kind, verb):
    return verb + _NOUN[kind]


def deploy(aws, resources, progress=print):
    """Create what is missing, in order; returns [(kind, name, "created"|"exists")]."""
    done = []
    for r in resources:
        try:
            state = "exists" if _present(aws, r) else (_create(aws, r) or "created")
        except EdgeshadowError:
            raise
        except Exception as e:
            raise aws_error(e, _op(r["kind"], "Create"), r["name"])
        progress(f"{r['kind']} {r['name']}: {state}")
        done.append((r["kind"], r["name"], state))
    return done


def destroy(aws, resources, progress=print):
    """Delete in reverse order what exists; returns [(kind, name, "deleted"|"absent")]."""
    done = []
    for r in reversed(resources):
        try:
            state = (_delete(aws, r) or "deleted") if _present(aws, r) else "absent"
        except Exception as e:
            raise aws_error(e, _op(r["kind"], "Delete"), r["name"])
        progress(f"{r['kind']} {r['name']}: {state}")
        done.append((r["kind"], r["name"], state))
    return done


def grafana(name="edgeshadow", metrics=("voltage", "current", "temperature", "humidity"), limits=None):
    """A Grafana dashboard (JSON model) on the Timestream data source with the local page's panels:
    the fleet table, one time series per metric with its limits as thresholds, the alert events."""
    db = name
    limits = limits or {}
    panels = [{"type": "table", "title": "Fleet at a glance", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 6},
               "targets": [{"refId": "A", "rawQuery": (
                   f'SELECT thing, max(time) AS last_seen, max_by(measure_value::bigint, time) AS spool_backlog '
                   f'FROM "{db}"."shadow" WHERE measure_name = \'spool_backlog\' AND $__timeFilter GROUP BY thing')}]}]
    for i, m in enumerate(metrics):
        steps = [{"color": "green", "value": None}] + [
            {"color": "red" if x.get("severity") == "critical" else "orange", "value": x["value"]}
            for x in limits.get(m, [])]
        panels.append({"type": "timeseries", "title": m, "gridPos": {"x": 12 * (i % 2), "y": 6 + 8 * (i // 2), "w": 12, "h": 8},
                       "fieldConfig": {"defaults": {"custom": {"thresholdsStyle": {"mode": "dashed"}},
                                                    "thresholds": {"mode": "absolute", "steps": steps}}},
                       "targets": [{"refId": "A", "rawQuery": (
                           f'SELECT time, measure_value::double AS "{m}" FROM "{db}"."telemetry" WHERE thing = '
                           f"'$thing' AND measure_name = '{m}' AND $__timeFilter ORDER BY time")}]})
    panels.append({"type": "table", "title": "Alerts", "gridPos": {"x": 0, "y": 6 + 8 * ((len(metrics) + 1) // 2), "w": 24, "h": 6},
                   "targets": [{"refId": "A", "rawQuery": (
                       f'SELECT time, metric, rule, measure_name, measure_value::varchar AS v FROM "{db}"."alerts" '
                       "WHERE thing = '$thing' AND $__timeFilter ORDER BY time DESC")}]})
    return {"title": f"{name} fleet", "uid": f"{name}-fleet", "schemaVersion": 39, "time": {"from": "now-24h", "to": "now"},
            "timepicker": {"refresh_intervals": ["10s", "1m", "5m"]}, "refresh": "10s",
            "templating": {"list": [{"name": "thing", "type": "query", "datasource": {"type": "grafana-timestream-datasource"},
                                     "query": f'SELECT DISTINCT thing FROM "{db}"."shadow" WHERE time > ago(30d)'}]},
            "panels": [dict(p, datasource={"type": "grafana-timestream-datasource"}) for p in panels]}
