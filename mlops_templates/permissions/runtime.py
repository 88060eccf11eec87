"""The roles services assume at run time, checked against what the services need.

``runtime_permissions.json`` lists, per role of the pipeline stack, the calls the service
makes with it (from the service's documentation): CodePipeline's actions, CodeBuild's
build (the buildspec's commands), EventBridge's targets, SageMaker's jobs, models and
endpoints. Each need names its ARN with placeholders that a modelled deployment
(:mod:`scenario`) fills in; the role's rendered policies are then evaluated on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlops_templates.permissions import data
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
    machine = res.get("TrainingStateMachine")
    machine_arn = deployment.runs["workflow"].resources["TrainingStateMachine"].arn if machine is None else machine.arn
    prd = deployment.runs["deploy-prd"]
    rollback = prd.resources["Endpoint"].properties["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    connection = ""
    for action in res[pipeline.PIPELINE].properties["Stages"][0]["Actions"]:
        connection = action.get("Configuration", {}).get("ConnectionArn", connection)
    values = {
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
        "build_log_group_arn": res[pipeline.BUILD_LOG_GROUP].arn,
        "build_project_arn": res[pipeline.BUILD_PROJECT].arn,
        "train_output_project_arn": res[pipeline.TRAIN_OUTPUT_PROJECT].arn,
        "pipeline_arn": res[pipeline.PIPELINE].arn,
        "cloudformation_role_arn": res[pipeline.CLOUDFORMATION_ROLE].arn,
        "state_machine_arn": machine_arn,
        "execution_arn": f"{machine_arn.replace(':stateMachine:', ':execution:')}:{RUN_ID}",
        "connection_arn": connection,
        "connection_service": connection.split(":")[2] if connection else "",
        "codecommit_arn": f"arn:{env.partition}:codecommit:{env.region}:{env.account}:{source.repository}",
        "rollback_alarm_arn": (
            f"arn:{env.partition}:cloudwatch:{env.region}:{env.account}:alarm:{rollback[0]['AlarmName']}"
        ),
    }
    for name, run in deployment.runs.items():
        values[f"stack_arn:{name}"] = run.stack_id
    sm = f"arn:{env.partition}:sagemaker:{env.region}:{env.account}"
    # Job names as the workflow builds them: <base>-<RunId>-<step>-<Attempt>-<RedriveCount>.
    values.update(
        run_id=RUN_ID,
        attempt=ATTEMPT,
        processing_job_arn=f"{sm}:processing-job/{base}-{RUN_ID}-prep-{ATTEMPT}-0",
        training_job_arn=f"{sm}:training-job/{base}-{RUN_ID}-train-{ATTEMPT}-0",
        model_arn=f"{sm}:model/{base}-{RUN_ID}-model-{ATTEMPT}-0",
        model_package_group_arn=f"{sm}:model-package-group/{base}-models",
        sagemaker_role_arn=res[pipeline.SAGEMAKER_ROLE].arn,
    )
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
    return values


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^{}]+)\}", lambda m: values[m.group(1)], text)


def _applies(need: dict[str, Any], deployment: ProjectDeployment) -> bool:
    when = need.get("when")
    if when is None:
        return True
    return deployment.config.pipeline.source.provider == when


def missing(deployment: ProjectDeployment) -> list[Missing]:
    """Every documented run-time call a role of ``deployment`` does not allow."""
    values = placeholders(deployment)
    found = []
    for name, spec in data.runtime().items():
        stack = deployment.runs[spec["stack"]] if "stack" in spec else deployment.pipeline
        from mlops_templates.permissions.coverage import role_documents

        documents = role_documents(stack, spec["role"])
        for need in spec["needs"]:
            if not _applies(need, deployment):
                continue
            resource = _fill(need["resource"], values)
            context = {k: _fill(v, values) for k, v in need.get("context", {}).items()}
            for action in need["actions"]:
                action = _fill(action, values)
                decision = decide(documents, Request(action, resource, context))
                if decision != "Allow":
                    found.append(Missing(name, need["why"], action, resource, decision))
    return found
