"""Deploying stacks with change sets, with progress and the reason of a failure.

:func:`deploy_stack` is what ``aws cloudformation deploy`` does (upload the template to
S3, create a change set, execute it), plus what it leaves to the console: it prints the
stack's events while it waits and, on failure, the first failed resource; it deletes a
stack left in ``ROLLBACK_COMPLETE`` by a failed first create before creating it again,
waits for a stack that is busy, and says how to recover one it cannot update.

:func:`deploy` deploys the library's stacks from a packaged directory with the
parameters the config and the command line give (``mlops_templates.projects`` creates
SageMaker projects from the published product).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import naming, stacks
from mlops_templates.config import Config
from mlops_templates.stackwatch import (
    DeployError,
    Stack,
    Watcher,
    aws_error,
    describe,
    session,
)

CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
SUCCESS = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
#: CloudFormation's reasons for a change set without changes.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
#: The stack ``make publish`` deploys; ``make deploy`` never does (it needs the product URL).
PUBLISH_STACK = "studio"
SYSTEM = "system"
CONNECTION = "CodeConnectionArn"
EMAIL = "NotificationEmail"
CONNECTION_HINT = (
    "pass CONNECTION_ARN=arn:aws:codeconnections:<region>:<account>:connection/<id> "
    "(or set pipeline.source.connection_arn in the config)"
)


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation's short-form tags (``!Ref`` ...) as data."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _tagged)


def template_parameters(text: str, source: str = "template") -> dict[str, dict[str, Any]]:
    """The ``Parameters`` a template (YAML or JSON) declares."""
    try:
        document = yaml.load(text, Loader=_TemplateLoader)
    except yaml.YAMLError as err:
        raise DeployError(f"{source}: not a CloudFormation template: {err}") from None
    if not isinstance(document, dict):
        raise DeployError(f"{source}: not a CloudFormation template (no mapping at the top)")
    return dict(document.get("Parameters") or {})


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``Key=Value`` words into a dict (a later key wins)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DeployError(f"parameter override '{pair}': write it as Key=Value")
        result[key] = value
    return result


@dataclass
class StackSpec:
    """One stack to deploy from a local template file."""

    name: str
    template_file: Path
    bucket: str
    prefix: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    capabilities: Sequence[str] = CAPABILITIES
    #: How to supply a Parameter that has no value (Parameter -> advice).
    hints: Mapping[str, str] = field(default_factory=dict)
    #: The role CloudFormation deploys the stack with (None: the caller's credentials).
    role_arn: str | None = None
    #: Delete a stack whose first create failed before creating it again; False for a
    #: stack a deployment must never delete (production, as CodePipeline's CREATE_UPDATE).
    replace_failed: bool = True


def _ready(cloudformation: Any, watcher: Watcher, name: str, replace_failed: bool = True) -> Stack | None:
    """The stack once it can take a change set; None when it must be created."""
    while True:
        stack = describe(cloudformation, name)
        if stack is None:
            return None
        status = stack.status
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            watcher.say(f"stack {name} is {status}: waiting for it to finish first")
            watcher.mark(stack.id)
            watcher.wait({stack.id: name})
            continue
        if status in {"ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"}:
            why = (
                "its first create failed and it holds no resources"
                if status == "ROLLBACK_COMPLETE"
                else "a change set created it but was never executed"
            )
            if not replace_failed:
                raise DeployError(
                    f"stack {name} is {status} ({why}); this deployment never deletes it. Delete it, "
                    f"then run the deployment again:\n  aws cloudformation delete-stack --stack-name {name}"
                )
            watcher.say(f"stack {name} is {status} ({why}): deleting it before creating it again")
            _delete(cloudformation, watcher, stack)
            continue
        if status == "UPDATE_ROLLBACK_FAILED":
            raise DeployError(
                f"stack {name} is UPDATE_ROLLBACK_FAILED ({stack.reason or 'see its events'}): a failed "
                "update could not roll back. Continue the rollback, then deploy again:\n"
                f"  aws cloudformation continue-update-rollback --stack-name {name}\n"
                "(add --resources-to-skip <LogicalId> ... for resources that cannot roll back; "
                f"`aws cloudformation describe-stack-events --stack-name {name}` names them)"
            )
        if status in {"ROLLBACK_FAILED", "DELETE_FAILED"}:
            raise DeployError(
                f"stack {name} is {status} ({stack.reason or 'see its events'}): it can only be "
                f"deleted. Delete it (`aws cloudformation delete-stack --stack-name {name}`, with "
                "--retain-resources for what cannot be deleted), then deploy again"
            )
        return stack


def _delete(cloudformation: Any, watcher: Watcher, stack: Stack) -> None:
    watcher.mark(stack.id)
    try:
        cloudformation.delete_stack(StackName=stack.id)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"delete stack {stack.name}") from None
    final = watcher.wait({stack.id: stack.name}, started=True)[stack.id]
    if final.status != "DELETE_COMPLETE":
        raise DeployError(f"stack {stack.name}: {final.status}\n{watcher.failure(final)}")


def _values(
    spec: StackSpec, declared: Mapping[str, Any], stack: Stack | None, previous: set[str]
) -> list[dict[str, Any]]:
    unknown = sorted(set(spec.parameters) - set(declared))
    if unknown:
        raise DeployError(
            f"stack {spec.name}: the template has no parameter(s) {', '.join(unknown)} "
            f"(it has: {', '.join(sorted(declared)) or 'none'})"
        )
    values: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, declaration in declared.items():
        if key in spec.parameters:
            values.append({"ParameterKey": key, "ParameterValue": spec.parameters[key]})
        elif stack is not None and key in previous:
            values.append({"ParameterKey": key, "UsePreviousValue": True})
        elif not isinstance(declaration, dict) or "Default" not in declaration:
            missing.append(key)
    if missing:
        advice = "".join(f"\n  {key}: {spec.hints.get(key, f'pass PARAMS={key}=<value>')}" for key in missing)
        raise DeployError(f"stack {spec.name} needs a value for {', '.join(missing)}:{advice}")
    return values


def _upload(s3: Any, spec: StackSpec, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    key = "/".join(part for part in (spec.prefix.strip("/"), f"{spec.name}-{digest}.template") if part)
    try:
        s3.put_object(Bucket=spec.bucket, Key=key, Body=text.encode("utf-8"))
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"upload the template to s3://{spec.bucket}/{key}") from None
    # Path-style, as the AWS CLI builds it: valid for every region and endpoint.
    return f"{s3.meta.endpoint_url.rstrip('/')}/{spec.bucket}/{key}"


def _change_set(cloudformation: Any, watcher: Watcher, change_set_id: str) -> dict[str, Any] | None:
    """The change set once created, with all its changes; None when it has no changes."""
    while True:
        try:
            found = cloudformation.describe_change_set(ChangeSetName=change_set_id)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, "describe the change set") from None
        if found["Status"] not in {"CREATE_PENDING", "CREATE_IN_PROGRESS"}:
            break
        watcher.sleep(watcher.interval)
    if found["Status"] == "FAILED":
        reason = found.get("StatusReason", "")
        if any(text in reason for text in NO_CHANGES):
            return None
        raise DeployError(f"change set of stack {found['StackName']} failed: {reason}")
    changes = list(found.get("Changes", []))
    token = found.get("NextToken")
    while token:
        page = cloudformation.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
        changes.extend(page.get("Changes", []))
        token = page.get("NextToken")
    found["Changes"] = changes
    return found


def deploy_stack(boto: Any, spec: StackSpec, out: TextIO | None = None) -> str:
    """Create or update ``spec``'s stack and wait; its final status, or ``NO_CHANGES``.

    Raises :class:`DeployError` with the first failed resource when the stack fails.
    """
    cloudformation, s3 = boto.client("cloudformation"), boto.client("s3")
    watcher = Watcher(cloudformation, out)
    try:
        text = spec.template_file.read_text(encoding="utf-8")
    except OSError as err:
        raise DeployError(f"{spec.template_file}: {err.strerror}") from None
    declared = template_parameters(text, str(spec.template_file))
    stack = _ready(cloudformation, watcher, spec.name, spec.replace_failed)
    previous: set[str] = set()
    if stack is not None:
        described = cloudformation.describe_stacks(StackName=stack.id)["Stacks"][0]
        previous = {p["ParameterKey"] for p in described.get("Parameters", [])}
    values = _values(spec, declared, stack, previous)
    url = _upload(s3, spec, text)
    kind = "CREATE" if stack is None else "UPDATE"
    watcher.say(f"stack {spec.name}: {'creating' if stack is None else 'updating'} (change set, {kind})")
    role = {"RoleARN": spec.role_arn} if spec.role_arn else {}
    try:
        created = cloudformation.create_change_set(
            StackName=spec.name,
            TemplateURL=url,
            Parameters=values,
            Capabilities=list(spec.capabilities),
            ChangeSetName=f"mlops-templates-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}",
            ChangeSetType=kind,
            Description="Created by mlops-templates deploy",
            **role,
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"create a change set for stack {spec.name}") from None
    try:
        change_set = _change_set(cloudformation, watcher, created["Id"])
    except DeployError:
        if kind == "CREATE" and spec.replace_failed:
            # The change set made an empty stack (REVIEW_IN_PROGRESS): remove it.
            cloudformation.delete_stack(StackName=created["StackId"])
        raise
    if change_set is None:
        cloudformation.delete_change_set(ChangeSetName=created["Id"])
        watcher.say(f"stack {spec.name}: no changes")
        return "NO_CHANGES"
    if kind == "CREATE":
        watcher.say(f"  {len(change_set['Changes'])} resources to create")
    for change in change_set["Changes"] if kind == "UPDATE" else []:
        resource = change.get("ResourceChange", {})
        replace = " (replacement)" if resource.get("Replacement") == "True" else ""
        watcher.say(
            f"  change: {resource.get('Action', '?'):<7} {resource.get('LogicalResourceId', '')} "
            f"{resource.get('ResourceType', '')}{replace}"
        )
    stack_id = created["StackId"]
    watcher.mark(stack_id)
    try:
        cloudformation.execute_change_set(ChangeSetName=created["Id"])
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"execute the change set of stack {spec.name}") from None
    try:
        final = watcher.wait({stack_id: spec.name}, started=True)[stack_id]
    except KeyboardInterrupt:
        raise DeployError(
            f"stopped watching; CloudFormation carries on with stack {spec.name} "
            f"(`aws cloudformation describe-stack-events --stack-name {spec.name}`)"
        ) from None
    if final.status in SUCCESS:
        watcher.say(f"stack {spec.name}: {final.status}")
        return final.status
    after = {
        "ROLLBACK_COMPLETE": "\nThe next deploy deletes the rolled-back stack and creates it again.",
        "UPDATE_ROLLBACK_COMPLETE": "\nThe stack is back to its previous state: fix the cause and deploy again.",
    }.get(final.status, "")
    raise DeployError(f"stack {spec.name}: {final.status}\n{watcher.failure(final)}{after}")


# -- The library's stacks -------------------------------------------------------------------


def _deployable(config: Config) -> list[str]:
    return [name for name in stacks.STACKS if name != PUBLISH_STACK and stacks.enabled(name, config)]


def stage_stacks(config: Config, stage: str) -> list[str]:
    """The stacks ``make deploy STAGE=<stage>`` deploys, in order.

    ``system`` is the account stack (when the config enables it), the pipeline, which
    deploys everything else, and with a CI orchestrator the ci-oidc stack whose role the
    CI workflow assumes; a stack's name (or ``X`` for ``deploy-X``) is that stack.
    """
    if stage == SYSTEM:
        return [name for name in ("account", "pipeline", "ci-oidc") if name in _deployable(config)]
    aliases = {name.removeprefix("deploy-"): name for name in stacks.STACKS}
    name = aliases.get(stage, stage)
    if name == PUBLISH_STACK:
        raise DeployError("the studio stack is deployed by `make publish` (it needs the uploaded product)")
    if name in stacks.STACKS and not stacks.enabled(name, config):
        raise DeployError(
            f"the {name} stack is turned off in the config (account.api_gateway_logging_role: false)"
            if name == "account"
            else f"the {name} stack is turned off in the config"
        )
    if name not in stacks.STACKS:
        names = [SYSTEM, *(n.removeprefix("deploy-") for n in _deployable(config))]
        raise DeployError(f"STAGE must be {', '.join(names[:-1])} or {names[-1]} (got '{stage}')")
    return [name]


def publish_stacks(config: Config) -> list[str]:
    """The stacks ``make publish`` deploys, in order."""
    return [name for name in ("account", PUBLISH_STACK) if stacks.enabled(name, config)]


def project_id(name: str) -> str:
    """The SageMakerProjectId given to a pipeline stack deployed without Studio."""
    return "p-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


def connection_parameter(
    config: Config, declared: Mapping[str, Any], connection_arn: str | None
) -> dict[str, str]:
    """``{CodeConnectionArn: ...}`` when the pipeline template takes it, else ``{}``.

    A template built for a configured connection has no such Parameter (its permissions
    name that connection): another ARN cannot be honoured, the same one is not needed.
    """
    if CONNECTION in declared:
        return {CONNECTION: connection_arn} if connection_arn else {}
    if not connection_arn:
        return {}
    source = config.pipeline.source
    if source.provider != "codeconnections":
        raise DeployError(
            f"CONNECTION_ARN: pipeline.source.provider is {source.provider}, which uses no "
            "connection; omit CONNECTION_ARN"
        )
    if connection_arn == source.connection_arn:
        return {}
    raise DeployError(
        f"CONNECTION_ARN={connection_arn} differs from pipeline.source.connection_arn "
        f"({source.connection_arn}): the pipeline template's permissions are scoped to the "
        "configured connection. Change pipeline.source.connection_arn (and run `make publish` "
        "for Studio projects), or omit CONNECTION_ARN"
    )


def _config_parameters(config: Config, stack: str, declared: Mapping[str, Any]) -> dict[str, str]:
    values = dict(config.parameters.get(stack, {}))  # type: ignore[call-overload]
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise DeployError(
            f"parameters.{stack}: unknown parameter(s) {', '.join(unknown)} "
            f"(the stack has: {', '.join(sorted(declared))})"
        )
    return values


def deploy(
    config: Config,
    names: Sequence[str],
    packaged: Path,
    bucket: str,
    overrides: Mapping[str, str],
    connection_arn: str | None = None,
    email: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Deploy ``names`` in order from ``packaged/<name>.yaml``.

    Each stack gets, in increasing precedence: what the library derives (the pipeline's
    project name and id, CONNECTION_ARN, EMAIL), the config's ``parameters.<stack>``, and
    ``overrides`` for the Parameters it declares; an override no stack declares is an error.
    """
    plans: list[StackSpec] = []
    used: set[str] = set()
    for name in names:
        if not stacks.enabled(name, config):
            raise DeployError(f"the {name} stack is turned off in the config")
        path = packaged / f"{name}.yaml"
        try:
            declared = template_parameters(path.read_text(encoding="utf-8"), str(path))
        except OSError as err:
            raise DeployError(f"{path}: {err.strerror} (package it first)") from None
        values: dict[str, str] = {}
        if name == "pipeline":
            values = {
                "SageMakerProjectName": config.project.name,
                "SageMakerProjectId": project_id(config.project.name),
            }
            values.update(connection_parameter(config, declared, connection_arn))
            if email:
                values[EMAIL] = email
        values.update(_config_parameters(config, name, declared))
        mine = {key: value for key, value in overrides.items() if key in declared}
        used.update(mine)
        values.update(mine)
        stack_name = naming.stack_name(config, name)
        plans.append(
            StackSpec(stack_name, path, bucket, stack_name, values, hints={CONNECTION: CONNECTION_HINT})
        )
    unknown = sorted(set(overrides) - used)
    if unknown:
        raise DeployError(f"PARAMS: no stack of {', '.join(names)} has the parameter(s) {', '.join(unknown)}")
    boto = session(fallback=config.project.region)
    for spec in plans:
        deploy_stack(boto, spec, out)
