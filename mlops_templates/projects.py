"""SageMaker projects from the published product: create one and wait for it.

``make project`` creates the project (Service Catalog then provisions the ``pipeline``
product as a stack ``SC-<account>-pp-...``) and waits, printing the project's status
changes and the stack's events; ``make destroy`` deletes it through the same calls.
"""

from __future__ import annotations

from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import naming, stacks
from mlops_templates.config import Config
from mlops_templates.deploy import (
    CONNECTION,
    CONNECTION_HINT,
    EMAIL,
    PUBLISH_STACK,
    connection_parameter,
)
from mlops_templates.stackwatch import (
    DeployError,
    Watcher,
    aws_error,
    describe,
    not_found,
    session,
)

PROJECT_FAILED = frozenset({"CreateFailed", "UpdateFailed", "DeleteFailed"})


def provisioned_stack_name(account: str, provisioned_product_id: str) -> str:
    """Service Catalog names a provisioned product's stack ``SC-<account>-<pp-id>``."""
    return f"SC-{account}-{provisioned_product_id}"


def describe_project(sagemaker: Any, name: str) -> dict[str, Any] | None:
    """The SageMaker project, or None if there is none of that name."""
    try:
        found = sagemaker.describe_project(ProjectName=name)
    except ClientError as err:
        if not_found(err):
            return None
        raise aws_error(err, f"describe SageMaker project {name}") from None
    except BotoCoreError as err:
        raise aws_error(err, f"describe SageMaker project {name}") from None
    return None if found.get("ProjectStatus") == "DeleteCompleted" else found


def wait_project(
    boto: Any, name: str, watcher: Watcher, account: str, stack_id: str = ""
) -> dict[str, Any] | None:
    """Poll the project until its status is final, printing its status changes and the
    events of its provisioned stack (``stack_id``, else found from the project); the
    project, or None once it is deleted."""
    sagemaker, cloudformation = boto.client("sagemaker"), watcher.cloudformation
    last = ""
    while True:
        project = describe_project(sagemaker, name)
        if project is None:
            if stack_id:
                watcher.poll(stack_id)
            watcher.say(f"project {name}: deleted")
            return None
        status = project.get("ProjectStatus", "")
        product = project.get("ServiceCatalogProvisionedProductDetails") or {}
        if not stack_id and product.get("ProvisionedProductId"):
            stack = describe(cloudformation, provisioned_stack_name(account, product["ProvisionedProductId"]))
            if stack is not None:
                stack_id = stack.id
                watcher.say(f"project {name}: its stack is {stack.name}")
        if status != last:
            watcher.say(f"project {name}: {status}")
            last = status
        if stack_id:
            watcher.poll(stack_id)
        if not status.endswith("InProgress") and status != "Pending":
            if status in PROJECT_FAILED:
                message = product.get("ProvisionedProductStatusMessage", "")
                detail = ""
                if stack_id:
                    stack = describe(cloudformation, stack_id)
                    if stack is not None:
                        detail = "\n" + watcher.failure(stack)
                raise DeployError(f"project {name}: {status}{': ' + message if message else ''}{detail}")
            return project
        watcher.sleep(watcher.interval)


def _account(boto: Any) -> str:
    try:
        return boto.client("sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, "find the AWS account (sts get-caller-identity)") from None


def create_project(
    config: Config,
    name: str,
    connection_arn: str | None = None,
    email: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Create SageMaker project ``name`` from the published product and wait for it.

    The product is the pipeline template this config renders (``make publish`` published
    it): ``connection_arn`` is passed only when that template takes a CodeConnectionArn.
    """
    declared = stacks.module("pipeline").build(config).parameters
    parameters = connection_parameter(config, declared, connection_arn)
    if email:
        parameters[EMAIL] = email
    if CONNECTION in declared and CONNECTION not in parameters:
        raise DeployError(f"project {name}: the product needs CodeConnectionArn: {CONNECTION_HINT}")
    boto = session(fallback=config.project.region)
    cloudformation, sagemaker = boto.client("cloudformation"), boto.client("sagemaker")
    watcher = Watcher(cloudformation, out)
    account = _account(boto)
    existing = describe_project(sagemaker, name)
    if existing is not None:
        status = existing.get("ProjectStatus", "")
        if status in PROJECT_FAILED:
            raise DeployError(
                f"project {name} exists and is {status}: remove it with `make destroy NAME={name}`, "
                "then create it again"
            )
        watcher.say(f"project {name} exists ({status})")
        wait_project(boto, name, watcher, account)
        return
    studio = naming.stack_name(config, PUBLISH_STACK)
    outputs = _outputs(cloudformation, studio)
    product, artifact = outputs.get("ProductId"), outputs.get("ProvisioningArtifactId")
    if not product or not artifact:
        raise DeployError(f"no published product in stack '{studio}': run `make publish` first")
    details: dict[str, Any] = {
        "ProductId": product,
        # A comma-separated list once the product has several versions: the last one,
        # as `make project` has always taken.
        "ProvisioningArtifactId": artifact.split(",")[-1].strip(),
    }
    if parameters:
        details["ProvisioningParameters"] = [{"Key": k, "Value": v} for k, v in parameters.items()]
    try:
        created = sagemaker.create_project(
            ProjectName=name,
            ProjectDescription="Created by mlops-templates",
            ServiceCatalogProvisioningDetails=details,
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"create SageMaker project {name}") from None
    watcher.say(f"project {name}: created {created.get('ProjectId', '')}; provisioning the pipeline stack")
    wait_project(boto, name, watcher, account)


def _outputs(cloudformation: Any, name: str) -> dict[str, str]:
    try:
        found = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as err:
        if not_found(err):
            return {}
        raise aws_error(err, f"describe stack {name}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
