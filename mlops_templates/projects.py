"""SageMaker projects from the published template: create one and wait for it.

``make project`` creates the project and waits, printing the project's status changes and
the stack's events; ``make destroy`` deletes it through the same calls. With
``studio.publish_mode: service_catalog`` Service Catalog provisions the ``pipeline``
product as a stack ``SC-<account>-pp-...``; with ``s3`` the request names the template's
URL and the launch role (``TemplateProviders``, a ``CfnTemplateProvider``, see
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CfnCreateTemplateProvider.html)
and the project's ``TemplateProviderDetails`` name the stack SageMaker creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import naming, publish, stacks
from mlops_templates.config import Config
from mlops_templates.deploy import (
    CONNECTION,
    CONNECTION_HINT,
    EMAIL,
    PUBLISH_STACK,
    connection_parameter,
)
from mlops_templates.stacks import studio_s3
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
        if not stack_id:
            stack = _project_stack(cloudformation, project, account)
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
                message = product.get("ProvisionedProductStatusMessage", "") or _stack_detail(project).get(
                    "StatusMessage", ""
                )
                detail = ""
                if stack_id:
                    stack = describe(cloudformation, stack_id)
                    if stack is not None:
                        detail = "\n" + watcher.failure(stack)
                raise DeployError(f"project {name}: {status}{': ' + message if message else ''}{detail}")
            return project
        watcher.sleep(watcher.interval)


def _stack_detail(project: Mapping[str, Any]) -> dict[str, Any]:
    """``StackDetail`` of the project's CloudFormation template provider (s3 mode); ``{}``."""
    for provider in project.get("TemplateProviderDetails") or []:
        detail = (provider.get("CfnTemplateProviderDetail") or {}).get("StackDetail")
        if detail:
            return dict(detail)
    return {}


def _project_stack(cloudformation: Any, project: Mapping[str, Any], account: str) -> Any:
    """The project's stack once it exists: Service Catalog's provisioned product, or the
    stack of its CloudFormation template provider."""
    product = project.get("ServiceCatalogProvisionedProductDetails") or {}
    if product.get("ProvisionedProductId"):
        return describe(cloudformation, provisioned_stack_name(account, product["ProvisionedProductId"]))
    found = _stack_detail(project)
    reference = found.get("Id") or found.get("Name")
    return describe(cloudformation, reference) if reference else None


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
    outputs = publish.stack_outputs(cloudformation, naming.stack_name(config, PUBLISH_STACK))
    request = project_request(config, name, outputs, parameters)
    try:
        created = sagemaker.create_project(**request)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"create SageMaker project {name}") from None
    watcher.say(f"project {name}: created {created.get('ProjectId', '')}; provisioning the pipeline stack")
    wait_project(boto, name, watcher, account)


def _pairs(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in parameters.items()]


def project_request(
    config: Config, name: str, outputs: Mapping[str, str], parameters: Mapping[str, str]
) -> dict[str, Any]:
    """The ``CreateProject`` request for project ``name`` from the studio stack's
    ``outputs``: the Service Catalog product, or (``studio.publish_mode: s3``) the S3
    template with the launch role. ``parameters`` are the pipeline template's values
    beyond the two SageMaker passes itself (``SageMakerProjectName`` and ``-Id``)."""
    studio = naming.stack_name(config, PUBLISH_STACK)
    request: dict[str, Any] = {"ProjectName": name, "ProjectDescription": "Created by mlops-templates"}
    if config.studio.publish_mode == "s3":
        url, role = outputs.get("TemplateUrl"), outputs.get("LaunchRoleArn")
        if not url or not role:
            raise DeployError(_unpublished(studio, outputs, "s3", "ProductId"))
        provider: dict[str, Any] = {"TemplateName": studio_s3.TEMPLATE_NAME, "TemplateURL": url, "RoleARN": role}
        if parameters:
            provider["Parameters"] = _pairs(parameters)
        request["TemplateProviders"] = [{"CfnTemplateProvider": provider}]
        return request
    product, artifact = outputs.get("ProductId"), outputs.get("ProvisioningArtifactId")
    if not product or not artifact:
        raise DeployError(_unpublished(studio, outputs, "service_catalog", "TemplateUrl"))
    details: dict[str, Any] = {
        "ProductId": product,
        # A comma-separated list once the product has several versions: the last one,
        # as `make project` has always taken.
        "ProvisioningArtifactId": artifact.split(",")[-1].strip(),
    }
    if parameters:
        details["ProvisioningParameters"] = _pairs(parameters)
    request["ServiceCatalogProvisioningDetails"] = details
    return request


def _unpublished(studio: str, outputs: Mapping[str, str], mode: str, other_output: str) -> str:
    if other_output in outputs:
        other = "s3" if mode == "service_catalog" else "service_catalog"
        return (
            f"stack '{studio}' publishes the pipeline with publish_mode {other}, not {mode}: "
            f"run `make project` with MODE={other}, or `make publish MODE={mode}` first"
        )
    return f"no published {'S3 template' if mode == 's3' else 'product'} in stack '{studio}': run `make publish` first"
