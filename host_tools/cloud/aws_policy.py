"""The AWS IoT device policy: host_tools/data/policies/device.json filled in for an account, and
checked so that an edit of the template cannot let a device be more than itself."""
import json

from host_tools import DATA_DIR
from host_tools.errors import EdgeshadowError

POLICY_TEMPLATE = DATA_DIR / "policies" / "device.json"


def policy_document(partition, region, account):
    text = POLICY_TEMPLATE.read_text()
    for k, v in (("<PARTITION>", partition), ("<REGION>", region), ("<ACCOUNT>", account)):
        text = text.replace(k, v)
    doc = json.loads(text)
    problems = policy_problems(doc)
    if problems:  # guards edits of the template
        raise EdgeshadowError(f"{POLICY_TEMPLATE} is too broad: " + "; ".join(problems))
    return doc


def policy_problems(doc):
    """Statements that would let a device be more than itself."""
    out = []
    for i, st in enumerate(doc.get("Statement", [])):
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(a in ("*", "iot:*") for a in actions):
            out.append(f"Statement[{i}] allows {actions}")
        if any(r == "*" or r.endswith(":*") for r in resources):
            out.append(f"Statement[{i}] applies to every resource ({resources})")
        if "iot:Connect" in actions and any("${iot:Connection.Thing.ThingName}" not in r for r in resources):
            out.append(f"Statement[{i}] allows connecting with other client ids")
    return out
