"""`ota push/status --aws` against moto (S3, things, CreateJob with its rollout and abort configs,
DescribeJob, ListJobExecutionsForJob). moto has no CreateStream: that one call goes to a client
with botocore's Stubber, which checks the request against AWS's service model and answers it."""
import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from host_tools import FIRMWARE_DIR

from host_tools.cloud import ota
from host_tools.errors import EdgeshadowError
from host_tools.cloud.ota_aws import push_aws, status_aws

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/edgeshadow-ota-streams"


@pytest.fixture
def bundle(tmp_path):
    key, _ = ota.keygen(tmp_path / "k")
    return ota.build(FIRMWARE_DIR, key, version="0.8.0", seq=8)


def stream_client(bucket, job_id):
    c = boto3.client("iot", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    st = Stubber(c)
    st.add_response("create_stream", {"streamId": f"{job_id}-stream", "streamVersion": 1,
                                      "streamArn": f"arn:aws:iot:{REGION}:123456789012:stream/{job_id}-stream"},
                    {"streamId": f"{job_id}-stream", "description": "edgeshadow app 0.8.0",
                     "files": [{"fileId": 0, "s3Location": {"bucket": bucket, "key": f"edgeshadow-ota/{job_id}.bin"}},
                               {"fileId": 1, "s3Location": {"bucket": bucket,
                                                            "key": f"edgeshadow-ota/{job_id}.manifest.json"}}],
                     "roleArn": ROLE})
    st.activate()
    return c, st


def test_push_aws_uploads_streams_and_creates_the_job_with_rollout_and_abort(bundle):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        iot = boto3.client("iot", region_name=REGION)
        s3.create_bucket(Bucket="fw-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
        things = [f"grid-{i:03d}" for i in range(1, 5)]
        for t in things:
            iot.create_thing(thingName=t)
        streams, stub = stream_client("fw-bucket", "job-aws-1")
        out = push_aws(bundle, things, "fw-bucket", ROLE, "job-aws-1", s3, iot, iot_streams=streams,
                       rollout="50%", abort_after=1)
        stub.assert_no_pending_responses()
        assert s3.get_object(Bucket="fw-bucket", Key=out["s3Key"])["Body"].read() == bundle.blob
        assert s3.get_object(Bucket="fw-bucket", Key="edgeshadow-ota/job-aws-1.manifest.json")["Body"].read() \
            == bundle.manifest_text.encode()
        job = iot.describe_job(jobId="job-aws-1")["job"]
        assert job["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 2}
        crit = job["abortConfig"]["criteriaList"]
        assert {c["failureType"] for c in crit} == {"FAILED", "REJECTED", "TIMED_OUT"}
        assert all(c["action"] == "CANCEL" and c["thresholdPercentage"] == 25.0
                   and c["minNumberOfExecutedThings"] == 1 for c in crit)
        doc = json.loads(iot.get_job_document(jobId="job-aws-1")["document"])
        assert doc == bundle.job_document("job-aws-1-stream")
        st = status_aws(iot, "job-aws-1")
        assert set(st["executions"]) == set(things) and st["counts"] == {"QUEUED": 4}


def test_push_aws_refuses_unknown_things_and_missing_options(bundle):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        iot = boto3.client("iot", region_name=REGION)
        with pytest.raises(EdgeshadowError, match="--bucket"):
            push_aws(bundle, ["x"], None, ROLE, "j", s3, iot)
        with pytest.raises(EdgeshadowError, match="DescribeThing ghost-001"):
            push_aws(bundle, ["ghost-001"], "b", ROLE, "j", s3, iot)
