"""Custom resource of the pipeline stack: when the project is deleted, delete its per-run
stacks first.

The pipeline deploys the ``workflow``, ``deploy-dev`` and ``deploy-prd`` stacks with its
CloudFormation role. Deleting the project (Studio, ``make destroy``, Service Catalog)
deletes the pipeline stack and that role; without this resource the per-run stacks
(endpoints billing by the hour) would stay behind with no role that may delete them.
The resource depends on the role, so CloudFormation deletes it, and runs this code,
before the role.

Environment: ``STACK_WAVES``: stack names, waves separated by ``;``, stacks of a wave by
``,`` (the endpoint stacks together, then the workflow); ``ROLE_ARN``: the role the
stacks are deleted with.

Create and Update do nothing. Delete deletes each wave's stacks and waits for them; when
the function's time runs short it invokes itself again with the same event and leaves
the answer to that invocation. A stack that fails to delete fails the resource with its
first failed resource and reason, so the project's deletion stops before the role goes
(delete that stack's blocker and retry). Every path answers CloudFormation.
"""

import json
import os
import time
import urllib.request

import boto3

CFN = boto3.client("cloudformation")
LAMBDA = boto3.client("lambda")
MARGIN_MS = 60000
POLL_SECONDS = 10


def log(message, **fields):
    print(json.dumps({"message": message, **fields}, default=str))


def send(event, status, reason):
    """PUT the outcome to CloudFormation's pre-signed ``ResponseURL``."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "run-stacks",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30):
        log("reported", status=status, reason=reason)


def status(name):
    """The stack's status, or None when it does not exist."""
    try:
        return CFN.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except CFN.exceptions.ClientError as err:
        if "does not exist" in str(err):
            return None
        raise


def first_failure(name):
    for event in CFN.describe_stack_events(StackName=name)["StackEvents"]:
        if event["ResourceStatus"].endswith("FAILED") and event["LogicalResourceId"] != name:
            return f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
    return "see the stack's events"


def deleted(name):
    """True when the stack is gone; raises when its deletion failed."""
    state = status(name)
    if state == "DELETE_FAILED":
        raise RuntimeError(f"stack {name} could not be deleted: {first_failure(name)}")
    return state in (None, "DELETE_COMPLETE")


def handler(event, context):
    try:
        if event.get("RequestType") != "Delete":
            send(event, "SUCCESS", "Nothing to do before the project is deleted")
            return
        for wave in os.environ["STACK_WAVES"].split(";"):
            pending = [name for name in wave.split(",") if not deleted(name)]
            for name in pending:
                log("deleting", stack=name)
                CFN.delete_stack(StackName=name, RoleARN=os.environ["ROLE_ARN"])
            while pending:
                if context.get_remaining_time_in_millis() < MARGIN_MS:
                    LAMBDA.invoke(
                        FunctionName=context.invoked_function_arn,
                        InvocationType="Event",
                        Payload=json.dumps(event).encode(),
                    )
                    log("continued in a new invocation", waiting_for=pending)
                    return
                time.sleep(POLL_SECONDS)
                pending = [name for name in pending if not deleted(name)]
        send(event, "SUCCESS", "The per-run stacks are deleted")
    except Exception as err:  # noqa: BLE001 - CloudFormation must always get an answer
        log("failed", error=repr(err))
        send(event, "FAILED", f"{type(err).__name__}: {err}")
