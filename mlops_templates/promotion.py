"""Production follows the model registry: converge deploy-prd to the newest approved version.

The pipeline stack's registry rule starts the ``promote`` CodeBuild project on every state
change of a version in the project's model package group; the project runs
``mlops-templates registry promote``, which is :func:`promote`:

1. resolve the group's newest Approved version (:func:`registry.newest_approved`);
2. if production's stack already has that version's image, model data and baselines,
   do nothing;
3. otherwise read what the build of that version's run stored under
   ``runs/<RunId>/build/`` in the artifact bucket (the packaged deploy-prd template and its
   TemplateConfiguration), write the version's values as the training output, and deploy
   deploy-prd the way ``ci deploy`` does (:func:`mlops_templates.ci.steps.deployment`:
   change set with the pipeline's CloudFormation role, never deleting production), so the
   endpoint's blue/green canary and rollback alarms guard the change;
4. with no approved version left while a version that is no longer approved serves
   production, production stays and the topic says so.

:func:`status` reports, per stage, which version serves it and the last monitoring result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import contract, naming, notifications, registry
from mlops_templates.config import Config
from mlops_templates.errors import MlopsError

#: Where the Build stores each run's build output (the promotion reads it back).
RUNS_PREFIX = "runs"
BUILD_DIR = "build"
#: The files of a run's build output a production deployment needs.
PROMOTION_FILES = ("deploy-prd.yaml", "deploy-prd.json", contract.EXECUTION_INPUT)
#: The environment of the promote project (set by the pipeline stack).
PROMOTE_ENV = ("ARTIFACT_BUCKET", "CLOUDFORMATION_ROLE_ARN", "NOTIFICATION_TOPIC_ARN")


def run_prefix(run_id: str) -> str:
    """Key prefix of a run's stored build output: ``runs/<RunId>/build/``."""
    return f"{RUNS_PREFIX}/{run_id}/{BUILD_DIR}/"


@dataclass(frozen=True)
class Outcome:
    """What a promotion did: ``deployed``, ``unchanged``, ``blocked`` or ``empty``."""

    action: str
    version: int | None = None
    previous: int | None = None
    message: str = ""


def _parameters(cloudformation: Any, name: str) -> dict[str, str] | None:
    """The Parameters of the deployed stack ``name``; None when it does not exist."""
    try:
        found = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise MlopsError(f"read stack {name}: {err}") from None
    except BotoCoreError as err:
        raise MlopsError(f"read stack {name}: {err}") from None
    if found.get("StackStatus") in {"REVIEW_IN_PROGRESS", "DELETE_COMPLETE"}:
        return None
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])}


def _live(sagemaker: Any, group: str, parameters: Mapping[str, str] | None) -> Mapping[str, Any] | None:
    """The version whose artifact a stack's Parameters name (None: none, or no stack)."""
    if not parameters:
        return None
    described = [registry.describe(sagemaker, s["ModelPackageArn"]) for s in registry.versions(sagemaker, group)]
    return registry.matching(described, parameters.get(contract.IMAGE_URI, ""), parameters.get(contract.MODEL_DATA_URL, ""))


def notice(config: Config, event: str, values: Mapping[str, str]) -> str:
    """The text of a promotion ``event`` (``notifications.messages`` overrides it)."""
    static = {"endpoint": naming.physical_name(config, "prd"), "group": registry.group_name(config)}
    rendered = notifications.render(event, config.notifications.messages.get(event), static)
    return rendered.template.format(*(values[name] for name in rendered.arguments))


def _publish(boto: Any, topic: str, config: Config, subject: str, text: str, out: TextIO) -> None:
    print(text, file=out, flush=True)
    if not topic:
        return
    try:
        boto.client("sns").publish(TopicArn=topic, Subject=f"{naming.base(config)}: {subject}"[:100], Message=text)
    except (ClientError, BotoCoreError) as err:  # the notice never hides the outcome
        print(f"warning: could not notify {topic}: {err}", file=out, flush=True)


def _download(s3: Any, bucket: str, run_id: str, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name in PROMOTION_FILES:
        key = run_prefix(run_id) + name
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise MlopsError(
                f"s3://{bucket}/{key}: {err}; the build of run {run_id} stores its output there "
                "(builds before this version of the pipeline did not: run the pipeline again)"
            ) from None
        (work / name).write_bytes(body)


def promote(boto: Any, config: Config, env: Mapping[str, str], work: Path, out: TextIO) -> Outcome:
    """Converge production to the newest approved version (see the module docstring)."""
    from mlops_templates.ci import steps
    from mlops_templates.deploy import deploy_stack

    missing = [name for name in PROMOTE_ENV if not env.get(name)]
    if missing:
        raise MlopsError(f"environment variable(s) {', '.join(missing)} not set: the promote project sets them")
    sagemaker, group = boto.client("sagemaker"), registry.group_name(config)
    stack = naming.stack_name(config, "deploy-prd")
    live_parameters = _parameters(boto.client("cloudformation"), stack)
    live = _live(sagemaker, group, live_parameters)
    live_version = None if live is None else live.get("ModelPackageVersion")
    target = registry.newest_approved(sagemaker, group)
    topic = env["NOTIFICATION_TOPIC_ARN"]
    if target is None:
        if live is not None and live.get("ModelApprovalStatus") != registry.APPROVED:
            text = notice(config, "promotion_blocked", {"version": str(live_version)})
            _publish(boto, topic, config, "production not converged", text, out)
            return Outcome("blocked", None, live_version, text)
        return Outcome("empty", None, live_version, f"model package group {group} has no approved version")
    version = target.get("ModelPackageVersion")
    values = registry.deploy_values(target)
    overrides = contract.TRAIN_OUTPUT_OVERRIDES["deploy-prd"]
    if live_parameters and all(live_parameters.get(key) == values[key] for key in overrides):
        text = f"production ({stack}) already serves version {version}, the newest approved: nothing to do"
        print(text, file=out, flush=True)
        return Outcome("unchanged", version, live_version, text)
    run_id = values[registry.RUN_ID]
    _download(boto.client("s3"), env["ARTIFACT_BUCKET"], run_id, work)
    train_output = work / contract.TRAIN_OUTPUT
    train_output.write_text(json.dumps({k: values[k] for k in overrides}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    outputs = {"ArtifactBucketName": env["ARTIFACT_BUCKET"], "CloudFormationRoleArn": env["CLOUDFORMATION_ROLE_ARN"]}
    print(f"deploying version {version} (run {run_id}) of {group} to {stack}", file=out, flush=True)
    deploy_stack(boto, steps.deployment(config, "deploy-prd", work, outputs, train_output), out)
    previous = "nothing" if live_version is None else f"version {live_version}"
    text = notice(config, "promoted", {"version": str(version), "run_id": run_id, "previous": previous})
    _publish(boto, topic, config, "production deployed", text, out)
    return Outcome("deployed", version, live_version, text)


def _last_report(s3: Any, uri: str) -> str:
    """``s3://`` URI and time of the newest ``report.json`` under ``uri``, or why none."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    newest: dict[str, Any] | None = None
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/report.json") and (newest is None or item["LastModified"] > newest["LastModified"]):
                    newest = item
    except (ClientError, BotoCoreError) as err:
        return f"unreadable ({err})"
    if newest is None:
        return "no monitoring report yet"
    return f"s3://{bucket}/{newest['Key']} ({newest['LastModified']:%Y-%m-%d %H:%M} UTC)"


def status(boto: Any, config: Config) -> list[str]:
    """One block of lines per stage: the stack, the version it serves, image, model data
    and (production) the last monitoring report; then the newest approved version."""
    sagemaker, group = boto.client("sagemaker"), registry.group_name(config)
    cloudformation = boto.client("cloudformation")
    lines = [f"model package group {group}"]
    for stage in ("dev", "prd"):
        stack = naming.stack_name(config, f"deploy-{stage}")
        parameters = _parameters(cloudformation, stack)
        if parameters is None:
            lines.append(f"{stage}: stack {stack} is not deployed")
            continue
        live = _live(sagemaker, group, parameters)
        served = "a model not in the registry" if live is None else (
            f"version {live.get('ModelPackageVersion')} ({live.get('ModelApprovalStatus')})"
        )
        lines += [
            f"{stage}: {stack} serves {served}",
            f"  image       {parameters.get(contract.IMAGE_URI, '?')}",
            f"  model data  {parameters.get(contract.MODEL_DATA_URL, '?')}",
        ]
        if stage == "prd" and parameters.get(contract.MONITORING_OUTPUT_URI):
            lines.append(f"  monitoring  {_last_report(boto.client('s3'), parameters[contract.MONITORING_OUTPUT_URI])}")
    newest = registry.versions(sagemaker, group, registry.APPROVED)
    lines.append(
        f"newest approved: version {newest[0].get('ModelPackageVersion')}" if newest else "newest approved: none"
    )
    return lines
