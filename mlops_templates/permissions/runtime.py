"""The roles services assume at run time, checked against what the services need.

``runtime_permissions.json`` lists, per role of the stacks, the calls the service
makes with it (from the service's documentation): CodePipeline's actions, CodeBuild's
build (the buildspec's commands), EventBridge's targets, SageMaker's jobs, models and
endpoints, the per-run stacks' functions, rules and schedules; and the calls of the CI
workflow's jobs with the ci-oidc stack's role. A role with ``orchestrators`` exists only for
those values of ``pipeline.orchestrator`` (``engines``, ``modes`` and ``when`` likewise). Each
need names its ARN with placeholders that a modelled deployment (:mod:`scenario`) fills
in; the role's rendered policies are then evaluated on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mlops_templates.config import Config
from mlops_templates.permissions import data
from mlops_templates.permissions.deployed import DeployedResource, DeployedStack
from mlops_templates.permissions.policy import Request, decide
from mlops_templates.permissions.scenario import ATTEMPT, RUN_ID, ProjectDeployment


@dataclass(frozen=True)
class Missing:
    role: str
    why: str
    action: str
    resource: str
    decision: str

    def __str__(self) -> str:
        return f"{self.role}: {self.action} on {self.resource} ({self.decision}; {self.why})"


def placeholders(deployment: ProjectDeployment) -> dict[str, str]:
    """The values a need's ``{...}`` names take in ``deployment``."""
    from mlops_templates.stacks import pipeline

    env = deployment.env
    stack = deployment.pipeline
    res = stack.resources
    config = deployment.config
    source = config.pipeline.source
    base = f"{config.project.prefix}-{deployment.pipeline.parameters['SageMakerProjectName']}"
    machine_arn = deployment.runs["workflow"].resources["TrainingStateMachine"].arn
    values: dict[str, str] = {}
    values.update({
        "p": env.partition,
        "r": env.region,
        "a": env.account,
        "base": base,
        "artifact_bucket_arn": res[pipeline.ARTIFACT_BUCKET].arn,
        "data_bucket_arn": res[pipeline.DATA_BUCKET].arn,
        "data_prefix": config.pipeline.data_prefix,
        "key_arn": res[pipeline.KEY].arn,
        "topic_arn": res[pipeline.TOPIC].arn,
        "repository_arn": res[pipeline.REPOSITORY].arn,
        **_codepipeline(stack),
        "pipeline_stack_arn": stack.stack_id,
        "cloudformation_role_arn": res[pipeline.CLOUDFORMATION_ROLE].arn,
        "state_machine_arn": machine_arn,
        "execution_arn": f"{machine_arn.replace(':stateMachine:', ':execution:')}:{RUN_ID}",
        "codecommit_arn": f"arn:{env.partition}:codecommit:{env.region}:{env.account}:{source.repository}",
    })
    for name, run in deployment.runs.items():
        values[f"stack_arn:{name}"] = run.stack_id
    # The CI job names an execution <run id>-<attempt>.
    values["ci_execution_arn"] = f"{values['execution_arn']}-1"
    sm = f"arn:{env.partition}:sagemaker:{env.region}:{env.account}"
    # Job names as the workflow builds them: <base>-<RunId>-<step>-<Attempt>-<RedriveCount>.
    values.update(
        run_id=RUN_ID,
        attempt=ATTEMPT,
        processing_job_arn=f"{sm}:processing-job/{base}-{RUN_ID}-prep-{ATTEMPT}-0",
        training_job_arn=f"{sm}:training-job/{base}-{RUN_ID}-train-{ATTEMPT}-0",
        # training.tuning: <base>-<Attempt>-<RedriveCount>, and its training jobs after it.
        tuning_job_arn=f"{sm}:hyper-parameter-tuning-job/{base}-{ATTEMPT}-0",
        tuning_training_job_arn=f"{sm}:training-job/{base}-{ATTEMPT}-0-003-a1b2c3d4",
        model_arn=f"{sm}:model/{base}-{RUN_ID}-model-{ATTEMPT}-0",
        model_package_group_arn=f"{sm}:model-package-group/{base}-models",
        model_package_arn=f"{sm}:model-package/{base}-models/1",
        sagemaker_role_arn=res[pipeline.SAGEMAKER_ROLE].arn,
    )
    values.update(metrics_namespace=f"{config.project.prefix}/{deployment.pipeline.parameters['SageMakerProjectName']}",
                  batch_model_arn=f"{sm}:model/{base}-batch-{ATTEMPT}-0",
                  batch_transform_job_arn=f"{sm}:transform-job/{base}-batch-{ATTEMPT}-0",
                  batch_monitor_job_arn=f"{sm}:processing-job/{base}-batch-mon-{ATTEMPT}-0")
    if "batch" in deployment.runs:
        values["batch_machine_arn"] = deployment.runs["batch"].resources["BatchStateMachine"].arn
    if "deploy-prd" in deployment.runs:
        values.update(_production(deployment, sm, base))
    return values


def _production(deployment: ProjectDeployment, sm: str, base: str) -> dict[str, str]:
    """The placeholders of the deploy-prd stack (``deployment.mode`` realtime or both)."""
    env, config = deployment.env, deployment.config
    prd = deployment.runs["deploy-prd"]
    rollback = prd.resources["Endpoint"].properties["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    values = {"rollback_alarm_arn": (
        f"arn:{env.partition}:cloudwatch:{env.region}:{env.account}:alarm:{rollback[0]['AlarmName']}")}
    groups = prd.of_type("AWS::CodeDeploy::DeploymentGroup")
    (group,) = groups.values()
    functions = {r.logical_id: r for r in prd.of_type("AWS::Lambda::Function").values()}
    values.update(
        endpoint_arn=prd.resources["Endpoint"].arn,
        deployment_group_arn=group.arn,
        api_version_arn=f"{functions['ApiFunction'].arn}:1",
        api_alias_arn=f"{functions['ApiFunction'].arn}:live",
        pre_hook_arn=functions["PreTrafficHook"].arn,
        post_hook_arn=functions["PostTrafficHook"].arn,
        prd_topic_arn=prd.resources["NotificationTopic"].arn,
    )
    # The builtin monitor's resources (monitoring.engine builtin) and its job names.
    monitor = prd.resources.get("MonitorStateMachine")
    values.update(
        monitor_machine_arn=monitor.arn if monitor else "",
        monitor_window_arn=functions["MonitorWindowFunction"].arn if "MonitorWindowFunction" in functions else "",
        monitor_job_arn=f"{sm}:processing-job/{base}-mon-202601010100-{ATTEMPT}-0",
    )
    del config
    return values


def _codepipeline(stack: DeployedStack) -> dict[str, str]:
    """The CodePipeline's, its builds' and its source connection's placeholders (empty
    when a CI system orchestrates: the pipeline stack then has none of them)."""
    from mlops_templates.stacks import pipeline

    res = stack.resources
    connection = ""
    stages = res[pipeline.PIPELINE].properties["Stages"] if pipeline.PIPELINE in res else [{"Actions": []}]
    for action in stages[0]["Actions"]:
        connection = action.get("Configuration", {}).get("ConnectionArn", connection)
    ids = {
        "build_log_group_arn": pipeline.BUILD_LOG_GROUP,
        "build_project_arn": pipeline.BUILD_PROJECT,
        "train_output_project_arn": pipeline.TRAIN_OUTPUT_PROJECT,
        "pipeline_arn": pipeline.PIPELINE,
        "promote_project_arn": "PromoteProject",
    }
    values = {name: res[logical_id].arn if logical_id in res else "" for name, logical_id in ids.items()}
    values["connection_arn"] = connection
    values["connection_service"] = connection.split(":")[2] if connection else ""
    return values


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^{}]+)\}", lambda m: values[m.group(1)], text)


def _fill_value(value: str | list[str], values: dict[str, str]) -> str | list[str]:
    """A context value: one string, or a list of them (a multivalued key)."""
    return [_fill(v, values) for v in value] if isinstance(value, list) else _fill(value, values)


def feature(when: str | None, config: Config) -> bool:
    """Whether ``config`` has the feature a need's or a role's ``when`` names (None: always):
    ``tuning``, ``batch_schedule`` (a ``batch.schedule_expression``), or a source provider."""
    if when is None:
        return True
    if when == "tuning":
        return config.training.tuning.enabled
    if when == "batch_schedule":
        return config.batch.schedule_expression is not None
    return config.pipeline.source.provider == when


def _applies(need: dict[str, Any], deployment: ProjectDeployment) -> bool:
    if deployment.config.monitoring.engine not in need.get("engines", ("builtin", "model_monitor")):
        return False
    if deployment.config.deployment.mode not in need.get("modes", ("realtime", "batch", "both")):
        return False
    return feature(need.get("when"), deployment.config)


def _exists(spec: dict[str, Any], deployment: ProjectDeployment) -> bool:
    """Whether the role of ``spec`` exists with ``deployment``'s orchestrator, monitoring
    engine, deployment mode and features (``when``)."""
    stack = spec.get("stack", "pipeline")
    return (
        feature(spec.get("when"), deployment.config)
        and deployment.config.pipeline.orchestrator in spec.get("orchestrators", ("codepipeline", "github", "gitlab"))
        and deployment.config.monitoring.engine in spec.get("engines", ("builtin", "model_monitor"))
        and deployment.config.deployment.mode in spec.get("modes", ("realtime", "batch", "both"))
        # A per-run stack the deployment mode does not deploy has no roles.
        and (stack in ("pipeline", "ci-oidc") or stack in deployment.runs)
    )


def _on_absent_stack(need: dict[str, Any], values: dict[str, str], deployment: ProjectDeployment) -> bool:
    """Whether ``need`` acts on a stack's resource that ``deployment.mode`` does not deploy
    (with ``batch`` alone: deploy-dev's and deploy-prd's). Every other placeholder must resolve."""
    texts = [need["resource"], *need["actions"], *(json.dumps(v) for v in need.get("context", {}).values())]
    names = [name for text in texts for name in re.findall(r"\{([^{}\"]+)\}", text)]
    unknown = [name for name in names if name not in values]
    if unknown and deployment.config.deployment.realtime and not deployment.config.deployment.batch:
        raise KeyError(f"runtime_permissions.json: unknown placeholder(s) {', '.join(unknown)}")
    return bool(unknown)


def boundary_documents(role: DeployedResource, deployment: ProjectDeployment) -> list[dict[str, Any]] | None:
    """The policy of ``role``'s permissions boundary (None: it has none). IAM allows a
    role's request only if its policies and its boundary both allow it."""
    arn = role.properties.get("PermissionsBoundary")
    if not arn:
        return None
    for stack in (deployment.pipeline, *deployment.runs.values()):
        for policy in stack.of_type("AWS::IAM::ManagedPolicy").values():
            if policy.arn == arn:
                return [policy.properties["PolicyDocument"]]
    raise KeyError(f"{role.logical_id}: its permissions boundary {arn} is no managed policy of the project's stacks")


def missing(deployment: ProjectDeployment) -> list[Missing]:
    """Every documented run-time call a role of ``deployment`` does not allow."""
    values = placeholders(deployment)
    found = []
    for name, spec in data.runtime().items():
        if not _exists(spec, deployment):
            continue
        stack = deployment.stack(spec.get("stack", "pipeline"))
        from mlops_templates.permissions.coverage import role_documents

        documents = role_documents(stack, spec["role"])
        limit = boundary_documents(stack.resources[spec["role"]], deployment)
        for need in spec["needs"]:
            if not _applies(need, deployment) or _on_absent_stack(need, values, deployment):
                continue
            resource = _fill(need["resource"], values)
            context = {k: _fill_value(v, values) for k, v in need.get("context", {}).items()}
            for action in need["actions"]:
                action = _fill(action, values)
                request = Request(action, resource, context)
                decision = decide(documents, request)
                if decision == "Allow" and limit is not None and decide(limit, request) != "Allow":
                    decision = "outside its permissions boundary"
                if decision != "Allow":
                    found.append(Missing(name, need["why"], action, resource, decision))
    return found
