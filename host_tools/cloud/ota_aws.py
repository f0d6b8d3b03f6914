"""`edgeshadow ota push/status --aws`: the same update on AWS IoT through boto3.

push: the bundle's blob and manifest go to S3 (s3://BUCKET/edgeshadow-ota/<jobId>.bin and
.manifest.json), a stream (CreateStream) names them as files 0 and 1 for MQTT-based file delivery (ROLE_ARN lets AWS IoT read the
bucket), and a job (CreateJob, targetSelection SNAPSHOT) carries the signed job document. The
options map onto AWS's job configs:
  --rollout N        jobExecutionsRolloutConfig.maximumPerMinute = N (AWS rolls out by rate;
                     a percentage is taken of the targets)
  --abort-after K    abortConfig: CANCEL when FAILED executions reach K of the targets
                     (thresholdPercentage = 100*K/targets, minNumberOfExecutedThings = K);
                     REJECTED and TIMED_OUT get the same criterion.
status: DescribeJob and ListJobExecutionsForJob.
"""
import json

from host_tools.errors import EdgeshadowError
from host_tools.cloud.ota import rollout_count

PREFIX = "edgeshadow-ota/"


def _call(what, fn, **kw):
    import botocore.exceptions
    try:
        return fn(**kw)
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        raise EdgeshadowError(f"AWS refused {what}: {err.get('Code')}: {err.get('Message')}")
    except botocore.exceptions.NoCredentialsError:
        raise EdgeshadowError("no AWS credentials found", hint="configure them with `aws configure`")
    except botocore.exceptions.BotoCoreError as e:
        raise EdgeshadowError(f"cannot reach AWS for {what}: {e}")


def clients(region=None):
    import boto3
    import botocore.exceptions
    try:
        return boto3.client("s3", region_name=region), boto3.client("iot", region_name=region)
    except botocore.exceptions.NoRegionError:
        raise EdgeshadowError("no AWS region given", hint="pass --region or set AWS_DEFAULT_REGION")


def abort_config(targets, abort_after):
    pct = min(100.0, round(100.0 * abort_after / len(targets), 2))
    return {"criteriaList": [{"failureType": t, "action": "CANCEL", "thresholdPercentage": pct,
                              "minNumberOfExecutedThings": abort_after}
                             for t in ("FAILED", "REJECTED", "TIMED_OUT")]}


def push_aws(bundle, things, bucket, role_arn, job_id, s3, iot, iot_streams=None, rollout=None,
             abort_after=None):
    """Upload, stream, job; returns {"jobId", "jobArn", "streamId", "s3Key"}."""
    if not bucket or not role_arn:
        raise EdgeshadowError("--aws needs --bucket (for the bundle) and --role-arn (a role AWS IoT "
                              "assumes to read it for MQTT-based file delivery)")
    arns = [_call(f"DescribeThing {t}", iot.describe_thing, thingName=t)["thingArn"] for t in things]
    key = f"{PREFIX}{job_id}.bin"
    stream_id = f"{job_id}-stream"
    files = []
    for fid, data in bundle.stream_files():
        k = key if fid == 0 else f"{PREFIX}{job_id}.manifest.json"
        _call("PutObject", s3.put_object, Bucket=bucket, Key=k, Body=data)
        files.append({"fileId": fid, "s3Location": {"bucket": bucket, "key": k}})
    _call("CreateStream", (iot_streams or iot).create_stream, streamId=stream_id,
          description=f"edgeshadow {bundle.kind} {bundle.version}", files=files, roleArn=role_arn)
    kw = {}
    n = rollout_count(things, rollout)
    if n is not None:
        kw["jobExecutionsRolloutConfig"] = {"maximumPerMinute": n}
    if abort_after is not None:
        kw["abortConfig"] = abort_config(things, abort_after)
    doc = json.dumps(bundle.job_document(stream_id))
    if len(doc.encode()) > 32768:
        raise EdgeshadowError(f"the job document is {len(doc)} bytes; AWS IoT accepts at most 32 KB")
    out = _call("CreateJob", iot.create_job, jobId=job_id, targets=arns, document=doc,
                description=f"edgeshadow {bundle.kind} {bundle.version}", targetSelection="SNAPSHOT", **kw)
    return {"jobId": out["jobId"], "jobArn": out["jobArn"], "streamId": stream_id, "s3Key": key}


def status_aws(iot, job_id):
    """The same shape as the local service's list-jobs entries."""
    job = _call("DescribeJob", iot.describe_job, jobId=job_id)["job"]
    execs, token = {}, None
    while True:
        kw = {"jobId": job_id}
        if token:
            kw["nextToken"] = token
        page = _call("ListJobExecutionsForJob", iot.list_job_executions_for_job, **kw)
        for e in page.get("executionSummaries", []):
            thing = e["thingArn"].rsplit("/", 1)[-1]
            execs[thing] = {"status": e["jobExecutionSummary"]["status"], "statusDetails": {}}
        token = page.get("nextToken")
        if not token:
            break
    counts = {}
    for e in execs.values():
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    return {"jobId": job_id, "status": job["status"], "reasonCode": job.get("reasonCode"),
            "counts": counts, "executions": execs}
