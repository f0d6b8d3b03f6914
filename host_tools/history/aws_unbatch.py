"""The AWS Lambda function behind the telemetry rule: one batch in, one Timestream record per value.

An IoT rule action cannot split a JSON array into rows, and the firmware batches readings
(dt/<thing>/telemetry: [{"seq", "ts", "v": {metric: value}, "s": {...}}, ...]). The rule
(host_tools/history/aws.py) hands the batch over base64-encoded with the thing's name:
{"thing": ..., "batch": base64(payload)}. Each value becomes a record at the device's own time;
Timestream keeps one record per (dimensions, measure, time), so a QoS 1 re-send is stored once.
A failed read (no value) writes nothing. Standard library and boto3 only: the Lambda runtime's.
"""
import base64
import json
import os

MAX_RECORDS = 100  # WriteRecords takes at most 100 records per call


def records(thing, batch):
    """Timestream records of one telemetry batch (a list of readings); ValueError if malformed."""
    if not isinstance(batch, list):
        raise ValueError("telemetry is not a JSON array of readings")
    out = []
    for i, r in enumerate(batch):
        if not isinstance(r, dict) or not isinstance(r.get("v"), dict) or not isinstance(r.get("ts"), (int, float)):
            raise ValueError(f"reading [{i}] needs a number ts and a v object")
        dims = [{"Name": "thing", "Value": thing}]
        if isinstance(r.get("seq"), int):
            dims.append({"Name": "seq", "Value": str(r["seq"])})
        t = str(int(round(r["ts"] * 1000)))
        for metric, value in sorted(r["v"].items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append({"Dimensions": dims, "MeasureName": metric, "MeasureValue": repr(float(value)),
                            "MeasureValueType": "DOUBLE", "Time": t, "TimeUnit": "MILLISECONDS"})
    return out


def handler(event, context=None, client=None):
    thing = event.get("thing")
    if not isinstance(thing, str) or not thing:
        raise ValueError("the rule passed no thing name")
    batch = json.loads(base64.b64decode(event["batch"]))
    recs = records(thing, batch)
    if client is None:
        import boto3
        client = boto3.client("timestream-write")
    for i in range(0, len(recs), MAX_RECORDS):
        client.write_records(DatabaseName=os.environ["TIMESTREAM_DATABASE"],
                             TableName=os.environ["TIMESTREAM_TABLE"], Records=recs[i:i + MAX_RECORDS])
    return {"thing": thing, "readings": len(batch), "records": len(recs)}
