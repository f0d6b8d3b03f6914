"""`provision aws` / `deprovision aws` against moto (nothing reaches AWS).

moto's CreateCertificateFromCsr signs a fresh key of its own instead of the CSR's; real AWS signs
the CSR's public key. The `faithful_csr` fixture makes moto do what AWS does (sign the CSR's key,
with an issuer shaped like AWS IoT's); one test keeps moto's behaviour to show that provision
refuses a certificate that is not for its key."""
import fnmatch
import json
import os

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto import mock_aws
from moto.iot import models as iot_models

from host_tools.cloud import certs
from host_tools.cloud import provision as lib
from host_tools.cli import main as cli
from host_tools.errors import EdgeshadowError
from tests.host._aws import sign_csrs_as_aws_does

REGION = "eu-west-1"
THING_VAR = "${iot:Connection.Thing.ThingName}"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    with mock_aws():
        yield boto3.client("iot", region_name=REGION)


@pytest.fixture
def faithful_csr(monkeypatch):
    sign_csrs_as_aws_does(monkeypatch)


def run(*argv):
    return cli(list(argv))


def provision(tmp_path, *things, extra=()):
    return run("provision", "aws", *things, "--certs-dir", str(tmp_path / "certs"), *extra)


def thing_certs(iot, thing):
    return [p for p in iot.list_thing_principals(thingName=thing)["principals"]]


# -- policy -------------------------------------------------------------------------------------

def allowed(doc, thing, action, resource):
    """Enough of IAM evaluation for our document: Allow statements, `*` wildcards, the thing
    name variable bound to the connecting thing, and the IsAttached condition taken as true."""
    for st in doc["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        if st["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(resource, r.replace(THING_VAR, thing).replace("[", "[[]"))
               for r in resources):
            return True
    return False


def test_policy_lets_a_device_be_only_itself():
    doc = lib.policy_document("aws", REGION, "123456789012")
    arn = f"arn:aws:iot:{REGION}:123456789012:"
    assert lib.policy_problems(doc) == []
    text = json.dumps(doc)
    assert '"iot:*"' not in text and '"*"' not in text
    connect = [s for s in doc["Statement"] if s["Action"] == "iot:Connect"]
    assert len(connect) == 1 and connect[0]["Resource"] == arn + "client/" + THING_VAR
    assert connect[0]["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    me = "grid-001"
    yes = [("iot:Connect", "client/grid-001"),
           ("iot:Publish", "topic/$aws/things/grid-001/shadow/update"),
           ("iot:Publish", "topic/$aws/things/grid-001/shadow/get"),
           ("iot:Publish", "topic/dt/grid-001/telemetry"),
           ("iot:Publish", "topic/dt/grid-001/alerts"),
           ("iot:Subscribe", "topicfilter/$aws/things/grid-001/shadow/update/delta"),
           ("iot:Receive", "topic/$aws/things/grid-001/shadow/get/accepted")]
    no = [("iot:Connect", "client/grid-002"), ("iot:Connect", "client/admin"),
          ("iot:Publish", "topic/$aws/things/grid-002/shadow/update"),
          ("iot:Publish", "topic/dt/grid-002/telemetry"),
          ("iot:Publish", "topic/dt/grid-0011/telemetry"),
          ("iot:Subscribe", "topicfilter/$aws/things/grid-002/shadow/update/delta"),
          ("iot:Subscribe", "topicfilter/#"), ("iot:Receive", "topic/other/grid-001"),
          ("iot:Publish", "topic/$aws/events/presence/connected/grid-001"),
          ("iot:DeleteThing", "thing/grid-001"), ("iot:UpdateThingShadow", "thing/grid-001")]
    for action, res in yes:
        assert allowed(doc, me, action, arn + res), (action, res)
    for action, res in no:
        assert not allowed(doc, me, action, arn + res), (action, res)


def test_policy_problems_catches_broad_documents():
    broad = {"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                           {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:r:1:client/*"}]}
    p = lib.policy_problems(broad)
    assert len(p) == 3 and "Statement[0] allows ['iot:*']" in p[0] and "other client ids" in p[2]


# -- provisioning -------------------------------------------------------------------------------

def test_provision_one_thing(aws, faithful_csr, tmp_path, capsys):
    assert provision(tmp_path, "grid-001") == 0
    assert "provisioned" in capsys.readouterr().out
    d = tmp_path / "certs" / "grid-001"
    state = json.loads((d / "aws.json").read_text())
    assert state["done"] and state["region"] == REGION
    desc = aws.describe_certificate(certificateId=state["certificate_id"])["certificateDescription"]
    assert desc["status"] == "ACTIVE"
    assert thing_certs(aws, "grid-001") == [state["certificate_arn"]]
    pols = aws.list_attached_policies(target=state["certificate_arn"])["policies"]
    assert [p["policyName"] for p in pols] == [lib.DEFAULT_POLICY]
    created = json.loads(aws.get_policy(policyName=lib.DEFAULT_POLICY)["policyDocument"])
    assert created == lib.policy_document("aws", REGION, "123456789012")
    # the certificate AWS holds is for the key kept here, and the files pass `certs check`
    local = x509.load_pem_x509_certificate((d / "device.crt").read_bytes())
    assert desc["certificatePem"].strip() == local.public_bytes(serialization.Encoding.PEM).decode().strip()
    assert (d / "device.key").stat().st_mode & 0o777 == 0o600
    report = certs.check("grid-001", d)
    assert report.key_type == "EC P-256" and any("AWS IoT" in n for n in report.notes)
    assert "Amazon Root CA 1" in x509.load_pem_x509_certificate((d / "root-ca.crt").read_bytes()).subject.rfc4514_string()
    cfg = json.loads((d / "config.json").read_text())
    endpoint = aws.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert cfg["thing"] == "grid-001" and cfg["mqtt"]["port"] == 8883
    assert cfg["mqtt"]["endpoint"].endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert endpoint.endswith("-ats.iot.eu-west-1.amazonaws.com")


def test_the_private_key_never_leaves_the_host(aws, faithful_csr, tmp_path):
    session = boto3.session.Session(region_name=REGION)
    bodies = []
    session.events.register("before-send.iot.*", lambda request, **kw: bodies.append(request.body or b""))
    api = lib.AwsIot(session=session)
    d = tmp_path / "grid-001"
    lib.provision_thing(api, "grid-001", d, certs.amazon_root_ca1_pem())
    key = certs.load_key(d / "device.key")
    sent = b"".join(b if isinstance(b, bytes) else b.encode() for b in bodies)
    assert b"CERTIFICATE REQUEST" in sent.replace(b"\\n", b"\n")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    body_lines = [ln for ln in pem.splitlines() if not ln.startswith("-----")]
    assert not any(ln.encode() in sent for ln in body_lines)
    assert b"PRIVATE KEY" not in sent


def test_existing_config_is_merged(aws, faithful_csr, tmp_path):
    cfg = tmp_path / "dev.json"
    cfg.write_text(json.dumps({"thing": "old", "interval_s": 5, "mqtt": {"keepalive_s": 90}}))
    assert provision(tmp_path, "grid-001", extra=("--config", str(cfg))) == 0
    got = json.loads(cfg.read_text())
    assert got["thing"] == "grid-001" and got["interval_s"] == 5 and got["mqtt"]["keepalive_s"] == 90
    assert got["mqtt"]["endpoint"].endswith(".amazonaws.com")
    assert provision(tmp_path, "a", "b", extra=("--config", str(cfg))) == 1


def test_fleet_from_csv_and_rerun_skips(aws, faithful_csr, tmp_path, capsys):
    csv = tmp_path / "fleet.csv"
    csv.write_text("thing,site\ngrid-001,north\n# spare\n\ngrid-002,south\ngrid-003,east\ngrid-002,dup\n")
    assert provision(tmp_path, "--csv", str(csv)) == 0
    out = capsys.readouterr().out
    assert out.count("provisioned") >= 3 and "3 thing(s)" in out
    assert len(aws.list_certificates()["certificates"]) == 3
    assert sorted(t["thingName"] for t in aws.list_things()["things"]) == ["grid-001", "grid-002", "grid-003"]
    assert provision(tmp_path, "grid-004", "--csv", str(csv)) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 3 and "grid-004" in out
    assert len(aws.list_certificates()["certificates"]) == 4  # re-run made no second certificate


def test_fleet_json_and_progress_on_stderr(aws, faithful_csr, tmp_path, capsys):
    assert provision(tmp_path, "grid-001", "grid-002", extra=("--json",)) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # one document, nothing else on stdout
    assert doc["ok"] is True and [t["thing"] for t in doc["things"]] == ["grid-001", "grid-002"]
    assert {t["result"] for t in doc["things"]} == {"provisioned"}
    assert "provision (2 things) ..." in captured.err and "2/2" in captured.err  # progress: stderr
    assert provision(tmp_path, "grid-001", extra=("--json",)) == 0
    assert json.loads(capsys.readouterr().out)["things"][0]["result"] == "skipped"


def test_csv_with_bad_names_is_refused_before_anything(aws, tmp_path, capsys):
    csv = tmp_path / "fleet.csv"
    csv.write_text("grid-001\nbad name\ngrid/002\n")
    assert provision(tmp_path, "--csv", str(csv)) == 1
    err = capsys.readouterr().err
    assert "line 2: 'bad name'" in err and "line 3: 'grid/002'" in err
    assert aws.list_things()["things"] == []


def test_one_failure_does_not_stop_the_rest(aws, faithful_csr, tmp_path, capsys, monkeypatch):
    certs.init_ca(tmp_path / "certs" / "ca")
    certs.issue_device("grid-002", tmp_path / "certs" / "grid-002", tmp_path / "certs" / "ca")
    real_create = iot_models.IoTBackend.create_thing

    def create_thing(self, thing_name, *a, **kw):
        if thing_name == "grid-003":
            from moto.iot.exceptions import InvalidRequestException
            raise InvalidRequestException("simulated refusal")
        return real_create(self, thing_name, *a, **kw)

    monkeypatch.setattr(iot_models.IoTBackend, "create_thing", create_thing)
    assert provision(tmp_path, "grid-001", "grid-002", "grid-003", "grid-004") == 1
    out = capsys.readouterr().out
    assert "grid-002: " in out and "already holds a certificate not made by `provision aws`" in out
    assert "grid-003: AWS refused CreateThing as invalid (InvalidRequestException: simulated refusal)" in out
    assert "2 of 4 failed" in out
    assert sorted(t["thingName"] for t in aws.list_things()["things"]) == ["grid-001", "grid-004"]
    # the local certificate of grid-002 is untouched
    assert certs.check("grid-002", tmp_path / "certs" / "grid-002").issuer.endswith("edgeshadow local CA")
    monkeypatch.setattr(iot_models.IoTBackend, "create_thing", real_create)
    assert provision(tmp_path, "grid-001", "grid-002", "grid-003", "grid-004", extra=("--replace",)) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2 and out.count("provisioned") >= 2


def test_interrupted_run_resumes_with_the_same_certificate(aws, faithful_csr, tmp_path, monkeypatch, capsys):
    real_attach = iot_models.IoTBackend.attach_thing_principal

    def broken(self, *a, **kw):
        from moto.iot.exceptions import InvalidRequestException
        raise InvalidRequestException("connection reset")

    monkeypatch.setattr(iot_models.IoTBackend, "attach_thing_principal", broken)
    assert provision(tmp_path, "grid-001") == 1
    state = json.loads((tmp_path / "certs" / "grid-001" / "aws.json").read_text())
    assert not state["done"] and state["certificate_id"]
    monkeypatch.setattr(iot_models.IoTBackend, "attach_thing_principal", real_attach)
    assert provision(tmp_path, "grid-001") == 0
    assert [c["certificateId"] for c in aws.list_certificates()["certificates"]] == [state["certificate_id"]]
    assert thing_certs(aws, "grid-001") == [state["certificate_arn"]]


def test_certificate_not_for_our_key_is_refused(aws, tmp_path, capsys):
    """Plain moto signs a key of its own: exactly what provision must not accept."""
    assert provision(tmp_path, "grid-001") == 1
    out = capsys.readouterr().out
    assert "is not for the key in the CSR" in out
    assert not (tmp_path / "certs" / "grid-001" / "device.key").exists()


def test_a_broad_policy_under_our_name_is_not_attached(aws, faithful_csr, tmp_path, capsys):
    aws.create_policy(policyName=lib.DEFAULT_POLICY, policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    assert provision(tmp_path, "grid-001") == 1
    out = capsys.readouterr().out
    assert "already exists with another document" in out and "allows ['iot:*']" in out and "--policy" in out
    assert aws.list_targets_for_policy(policyName=lib.DEFAULT_POLICY)["targets"] == []
    assert provision(tmp_path, "grid-001", extra=("--policy", "edgeshadow-device-v2")) == 0


# -- deprovisioning -----------------------------------------------------------------------------

def test_deprovision_detaches_and_deletes(aws, faithful_csr, tmp_path, capsys):
    assert provision(tmp_path, "grid-001", "grid-002") == 0
    cd = ("--certs-dir", str(tmp_path / "certs"))
    assert run("deprovision", "aws", "grid-001", *cd) == 0
    assert [t["thingName"] for t in aws.list_things()["things"]] == ["grid-002"]
    assert len(aws.list_certificates()["certificates"]) == 1
    assert aws.get_policy(policyName=lib.DEFAULT_POLICY)  # still used by grid-002
    d = tmp_path / "certs" / "grid-001"
    assert not (d / "device.key").exists() and not (d / "aws.json").exists()
    assert run("deprovision", "aws", "grid-002", *cd) == 0
    assert aws.list_things()["things"] == [] and aws.list_certificates()["certificates"] == []
    assert aws.list_policies()["policies"] == []
    capsys.readouterr()
    assert run("deprovision", "aws", "grid-001", *cd) == 0  # again: nothing left, not a failure
    assert "absent" in capsys.readouterr().out


def test_deprovision_then_provision_again(aws, faithful_csr, tmp_path):
    assert provision(tmp_path, "grid-001") == 0
    assert run("deprovision", "aws", "grid-001", "--certs-dir", str(tmp_path / "certs")) == 0
    assert provision(tmp_path, "grid-001") == 0
    assert len(aws.list_certificates()["certificates"]) == 1


# -- errors -------------------------------------------------------------------------------------

def test_missing_credentials_and_region_are_clear(tmp_path, monkeypatch, capsys):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert provision(tmp_path, "grid-001") == 1
    assert "no AWS region: pass --region" in capsys.readouterr().err
    assert provision(tmp_path, "grid-001", extra=("--region", REGION)) == 1
    assert "no AWS credentials found" in capsys.readouterr().err
    assert run("deprovision", "aws", "grid-001", "--region", REGION, "--certs-dir", str(tmp_path)) == 1
    assert "no AWS credentials found" in capsys.readouterr().err
    assert not (tmp_path / "certs").exists()


def test_aws_errors_become_sentences():
    from botocore.exceptions import ClientError, EndpointConnectionError

    def err(code, msg="m"):
        return ClientError({"Error": {"Code": code, "Message": msg}}, "X")
    assert str(lib.aws_error(err("AccessDeniedException"), "CreateThing", "g1")) == \
        "g1: this AWS identity may not call CreateThing; add iot:CreateThing to its IAM policy (AccessDeniedException: m)"
    assert "throttled CreateCertificateFromCsr" in str(lib.aws_error(err("ThrottlingException"), "CreateCertificateFromCsr"))
    assert "credentials" in str(lib.aws_error(err("UnrecognizedClientException"), "CreateThing"))
    assert "AWS refused AttachPolicy (WeirdNewError: m)" == str(lib.aws_error(err("WeirdNewError"), "AttachPolicy"))
    e = lib.aws_error(EndpointConnectionError(endpoint_url="https://iot.eu-west-1.amazonaws.com"), "CreateThing")
    assert "could not reach AWS IoT for CreateThing" in str(e)
    assert isinstance(e, EdgeshadowError)


def test_no_things_and_help(capsys):
    assert run("provision", "aws") == 1
    assert "no things given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run("deprovision", "aws", "--help")
    assert e.value.code == 0
    assert os.path.exists(lib.POLICY_TEMPLATE)
