"""AWS IoT provisioning with boto3: one thing or a fleet, resumable, least-privilege.

Per thing: the private key is made here and AWS signs a CSR (CreateCertificateFromCsr), so the key
never leaves the host; the certificate is activated, the thing created if absent, the shared device
policy (host_tools/data/policies/device.json: connect only as `client/${iot:Connection.Thing.ThingName}`
while attached, topics only under the thing's own shadow and `dt/<thing>/`) created or reused and
attached, and the ATS data endpoint written into the device config.

Progress is kept in `<certs>/<thing>/aws.json` after each AWS step, so a re-run skips finished
things and finishes interrupted ones without making a second certificate.
"""
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from host_tools.cloud import certs
from host_tools.cloud.aws_policy import POLICY_TEMPLATE, policy_document, policy_problems  # noqa: F401 (API)
from host_tools.errors import EdgeshadowError

DEFAULT_POLICY = "edgeshadow-device"
STATE = "aws.json"
MQTT_PORT = 8883  # the ESP32 build has no ALPN, so not 443

# botocore ClientError codes -> what to do about them ({op} is the AWS operation).
_AWS_ERRORS = {
    "UnrecognizedClientException": "AWS does not know these credentials (access key unknown); check "
                                   "AWS_ACCESS_KEY_ID / AWS_PROFILE",
    "InvalidClientTokenId": "AWS does not know these credentials; check AWS_ACCESS_KEY_ID / AWS_PROFILE",
    "InvalidSignatureException": "AWS rejected the request signature; check AWS_SECRET_ACCESS_KEY",
    "SignatureDoesNotMatch": "AWS rejected the request signature; check AWS_SECRET_ACCESS_KEY",
    "ExpiredTokenException": "the AWS session token has expired; log in again (e.g. `aws sso login`)",
    "AccessDeniedException": "this AWS identity may not call {op}; add iot:{op} to its IAM policy",
    "UnauthorizedException": "this AWS identity may not call {op}; add iot:{op} to its IAM policy",
    "ThrottlingException": "AWS throttled {op}; wait a minute and re-run (finished things are skipped)",
    "LimitExceededException": "an AWS IoT limit was reached during {op}; see the AWS IoT quotas page",
    "ServiceUnavailableException": "AWS IoT is unavailable right now ({op}); re-run later",
    "InternalFailureException": "AWS IoT failed internally during {op}; re-run later",
    "InvalidRequestException": "AWS refused {op} as invalid",
    "ResourceNotFoundException": "{op}: AWS has no such resource",
    "ResourceAlreadyExistsException": "{op}: it already exists in AWS with different settings",
    "DeleteConflictException": "{op}: it is still attached to something in AWS",
    "CertificateStateException": "{op}: the certificate is in the wrong state (active/inactive)",
    "VersionConflictException": "{op}: changed by someone else meanwhile; re-run",
}


def aws_error(e, op, thing=None):
    """A sentence for a botocore error raised by operation `op`."""
    from botocore.exceptions import ClientError
    where = f"{thing}: " if thing else ""
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        msg = e.response.get("Error", {}).get("Message", "")
        text = _AWS_ERRORS.get(code, "AWS refused {op}").format(op=op)
        return EdgeshadowError(f"{where}{text} ({code}: {msg})" if msg else f"{where}{text} ({code})")
    return EdgeshadowError(f"{where}could not reach AWS IoT for {op}: {e}; check the network and region")


@dataclass
class Result:
    thing: str
    status: str  # "provisioned", "skipped", "deprovisioned", "absent", "failed"
    detail: str = ""
    certificate_id: str = ""


class AwsIot:
    """The boto3 IoT client plus the facts every thing needs (region, account, endpoint)."""

    def __init__(self, region=None, session=None):
        import os

        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
        session = session or boto3.session.Session(region_name=region or os.environ.get("AWS_REGION"))
        self.region = region or session.region_name or os.environ.get("AWS_REGION")
        if not self.region:
            raise EdgeshadowError("no AWS region: pass --region (e.g. --region eu-west-1) or set "
                                  "AWS_REGION or a default region in ~/.aws/config")
        if session.get_credentials() is None:
            raise EdgeshadowError("no AWS credentials found: set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run `aws configure`")
        try:
            self.iot = session.client("iot", region_name=self.region)
            self.account = session.client("sts", region_name=self.region).get_caller_identity()["Account"]
        except NoRegionError:
            raise EdgeshadowError("no AWS region: pass --region or set AWS_REGION") from None
        except (ClientError, BotoCoreError) as e:
            raise aws_error(e, "GetCallerIdentity") from None
        self.partition = session.get_partition_for_region(self.region)
        self._endpoint = None

    def call(self, op, thing=None, **kw):
        """Call an IoT operation by its AWS name; errors become one sentence."""
        from botocore.exceptions import BotoCoreError, ClientError
        method = getattr(self.iot, "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_"))
        try:
            return method(**kw)
        except (ClientError, BotoCoreError) as e:
            raise aws_error(e, op, thing) from None

    def missing(self, op, **kw):
        """True if the operation says ResourceNotFound; other errors raise."""
        from botocore.exceptions import ClientError
        try:
            getattr(self.iot, op)(**kw)
            return False
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return True
            raise aws_error(e, op) from None

    def endpoint(self):
        if self._endpoint is None:
            self._endpoint = self.call("DescribeEndpoint", endpointType="iot:Data-ATS")["endpointAddress"]
        return self._endpoint


# -- the policy ---------------------------------------------------------------------------------

def ensure_policy(aws, name):
    doc = policy_document(aws.partition, aws.region, aws.account)
    from botocore.exceptions import ClientError
    try:
        existing = json.loads(aws.iot.get_policy(policyName=name)["policyDocument"])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise aws_error(e, "GetPolicy") from None
        aws.call("CreatePolicy", policyName=name, policyDocument=json.dumps(doc))
        return doc
    if existing != doc:
        raise EdgeshadowError(f"an AWS IoT policy named {name!r} already exists with another document "
                              f"({'; '.join(policy_problems(existing)) or 'not the edgeshadow device policy'}); "
                              "it is not attached: pass --policy NAME to use a new name")
    return doc


# -- one thing ----------------------------------------------------------------------------------

def _load_state(thing_dir):
    try:
        return json.loads((thing_dir / STATE).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise EdgeshadowError(f"{thing_dir / STATE} is damaged; delete it and run "
                              "`edgeshadow deprovision aws` / `provision aws` again") from None


def _save_state(thing_dir, state):
    certs.write_pem(thing_dir / STATE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def write_device_config(path, thing, endpoint, port=MQTT_PORT):
    """Merge thing and endpoint into a device config (created if absent)."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        cfg = {}
    except ValueError as e:
        raise EdgeshadowError(f"{path} is not valid JSON ({e}); fix it or pass another --config") from None
    if not isinstance(cfg, dict):
        raise EdgeshadowError(f"{path} must hold a JSON object (the device config)")
    cfg["thing"] = thing
    mqtt = cfg.setdefault("mqtt", {})
    mqtt["endpoint"], mqtt["port"] = endpoint, port
    certs.write_pem(path, (json.dumps(cfg, indent=2) + "\n").encode())
    return path


def _done(aws, state, thing):
    """The finished state still holds in AWS (active certificate attached to the thing)."""
    if not state.get("done"):
        return False
    from botocore.exceptions import ClientError
    try:
        desc = aws.iot.describe_certificate(certificateId=state["certificate_id"])["certificateDescription"]
        principals = aws.iot.list_thing_principals(thingName=thing)["principals"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise aws_error(e, "DescribeCertificate", thing) from None
    return desc["status"] == "ACTIVE" and state["certificate_arn"] in principals


def provision_thing(aws, thing, thing_dir, root_ca_pem, policy=DEFAULT_POLICY, config=None, replace=False):
    certs.validate_thing(thing)
    thing_dir = Path(thing_dir)
    state = _load_state(thing_dir)
    if state and state.get("region") not in (None, aws.region):
        raise EdgeshadowError(f"{thing} was provisioned in {state['region']}, not {aws.region}; "
                              f"run `edgeshadow deprovision aws {thing} --region {state['region']}` first")
    config = Path(config) if config else thing_dir / "config.json"
    if _done(aws, state, thing):
        write_device_config(config, thing, aws.endpoint())
        return Result(thing, "skipped", "already provisioned", state["certificate_id"])
    if not state.get("certificate_id") and (thing_dir / certs.DEVICE_CRT).exists() and not replace:
        raise EdgeshadowError(f"{thing_dir} already holds a certificate not made by `provision aws` "
                              "(e.g. from the local CA); move it away or pass --replace")

    if aws.missing("describe_thing", thingName=thing):
        aws.call("CreateThing", thing, thingName=thing)
    state.update(region=aws.region, thing=thing, policy=policy, done=False)

    if not state.get("certificate_id") or aws.missing("describe_certificate",
                                                      certificateId=state["certificate_id"]):
        key = certs.new_key("ec")
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
               .sign(key, hashes.SHA256()))
        out = aws.call("CreateCertificateFromCsr", thing, setAsActive=True,
                       certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode())
        cert = x509.load_pem_x509_certificate(out["certificatePem"].encode())
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise EdgeshadowError(f"{thing}: AWS returned a certificate ({out['certificateId'][:12]}...) "
                                  "that is not for the key in the CSR; nothing was saved; run "
                                  f"`edgeshadow deprovision aws {thing}` and try again")
        certs.write_key(thing_dir / certs.DEVICE_KEY, key)
        certs.write_cert(thing_dir / certs.DEVICE_CRT, cert)
        state.update(certificate_id=out["certificateId"], certificate_arn=out["certificateArn"])
        _save_state(thing_dir, state)
    certs.write_pem(thing_dir / certs.ROOT_CA, root_ca_pem)

    arn = state["certificate_arn"]
    aws.call("UpdateCertificate", thing, certificateId=state["certificate_id"], newStatus="ACTIVE")
    ensure_policy(aws, policy)
    aws.call("AttachPolicy", thing, policyName=policy, target=arn)
    aws.call("AttachThingPrincipal", thing, thingName=thing, principal=arn)
    write_device_config(config, thing, aws.endpoint())
    state["done"] = True
    _save_state(thing_dir, state)
    return Result(thing, "provisioned", f"certificate {state['certificate_id'][:12]}...", state["certificate_id"])


def deprovision_thing(aws, thing, thing_dir, delete_policy=True):
    """Detach and delete the thing's certificates and the thing; remove its key, certificate and
    state here. The shared policy is deleted once nothing uses it."""
    certs.validate_thing(thing)
    thing_dir = Path(thing_dir)
    state = _load_state(thing_dir)
    if aws.missing("describe_thing", thingName=thing):
        principals = [state["certificate_arn"]] if state.get("certificate_arn") else []
        absent = True
    else:
        principals = aws.call("ListThingPrincipals", thing, thingName=thing)["principals"]
        absent = False
    policies = set()
    for arn in principals:
        cert_id = arn.rsplit("/", 1)[-1]
        if not absent:
            aws.call("DetachThingPrincipal", thing, thingName=thing, principal=arn)
        if aws.missing("describe_certificate", certificateId=cert_id):
            continue
        for p in aws.call("ListAttachedPolicies", thing, target=arn)["policies"]:
            aws.call("DetachPolicy", thing, policyName=p["policyName"], target=arn)
            policies.add(p["policyName"])
        aws.call("UpdateCertificate", thing, certificateId=cert_id, newStatus="INACTIVE")
        _retry_conflict(lambda: aws.call("DeleteCertificate", thing, certificateId=cert_id))
    if not absent:
        _retry_conflict(lambda: aws.call("DeleteThing", thing, thingName=thing))
    if delete_policy:
        for p in sorted(policies | ({state["policy"]} if state.get("policy") else set())):
            if not aws.missing("get_policy", policyName=p) and \
                    not aws.call("ListTargetsForPolicy", policyName=p)["targets"]:
                aws.call("DeletePolicy", policyName=p)
    for name in (certs.DEVICE_KEY, certs.DEVICE_CRT, STATE):
        (thing_dir / name).unlink(missing_ok=True)
    if absent and not principals:
        return Result(thing, "absent", f"not registered in AWS IoT ({aws.region})")
    return Result(thing, "deprovisioned", f"{len(principals)} certificate(s) deleted")


def _retry_conflict(fn, deadline_s=20.0):
    """AWS detaches asynchronously: a delete right after a detach may conflict for a few seconds."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return fn()
        except EdgeshadowError as e:
            if "DeleteConflictException" not in str(e) or time.monotonic() > end:
                raise
            time.sleep(1.0)


# -- fleets -------------------------------------------------------------------------------------

def read_things_csv(path):
    """Thing names from a CSV: a `thing` column if there is a header, else the first column."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as e:
        raise EdgeshadowError(f"cannot read {path}: {e.strerror}") from None
    col, start = 0, 0
    if rows and any(c.strip().lower() in ("thing", "thing_name", "name") for c in rows[0]):
        col = [c.strip().lower() for c in rows[0]].index(next(
            c.strip().lower() for c in rows[0] if c.strip().lower() in ("thing", "thing_name", "name")))
        start = 1
    things, bad = [], []
    for n, row in enumerate(rows[start:], start + 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        name = row[col].strip() if col < len(row) else ""
        if not certs.THING_RE.match(name):
            bad.append(f"line {n}: {name!r}")
        elif name not in things:
            things.append(name)
    if bad:
        raise EdgeshadowError(f"{path} has invalid thing names ({', '.join(bad[:5])}"
                              f"{' ...' if len(bad) > 5 else ''}); use 1 to 128 of A-Z a-z 0-9 _ : -")
    if not things:
        raise EdgeshadowError(f"{path} holds no thing names")
    return things


def run_fleet(fn, things, progress=None):
    """Call fn(thing) -> Result for each thing; a failure is recorded and the rest go on."""
    results = []
    for thing in things:
        try:
            r = fn(thing)
        except EdgeshadowError as e:
            r = Result(thing, "failed", str(e).removeprefix(f"{thing}: "))
        results.append(r)
        if progress:
            progress(r)
    return results
