"""One project deployed end to end, as the stacks would be in an account.

The studio stack is deployed by a person; Service Catalog creates the pipeline stack
with the studio stack's launch role; the pipeline's build renders the per-run stacks
with the project's name and deploys them with the pipeline's CloudFormation role,
passing the pipeline's resources (``pipeline_build.template_configuration``) and the
training output. With a CI orchestrator the ci-oidc stack is deployed for the same
project, and the build's environment comes from the pipeline stack's outputs
(``ci.steps.stack_env``) instead of the CodeBuild project. The permission checks evaluate
each deploying role against the stacks it deploys in this model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlops_templates import config as config_mod
from mlops_templates import contract, naming, sam, stacks
from mlops_templates.permissions.deployed import DeployedStack, Environment
from mlops_templates.stacks import pipeline_build

PROJECT_NAME = "demo"
PROJECT_ID = "p-0a1b2c3d4e5f"
RUN_ID = "1624a1d1-3699"
ATTEMPT = "5f2c9a1e"
TEMPLATE_URL = "https://org-templates.s3.us-east-1.amazonaws.com/pipeline/pipeline-0123456789abcdef.yaml"
#: The connection a project asked for one at launch is given (CodePipeline runs a source
#: action in its own region, so the connection is in the stack's region).
CONNECTION = "arn:aws:codeconnections:{region}:111122223333:connection/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def template_dict(config: config_mod.Config, name: str, code_uri: str = sam.PACKAGED_CODE_URI) -> dict[str, Any]:
    """Stack ``name`` as CloudFormation receives it (``deploy-prd`` after the SAM transform).

    ``code_uri``: where packaging put the Lambda code.
    """
    template = json.loads(stacks.module(name).build(config).to_json())
    if "Transform" in template:
        template = sam.expand(template, config.project.region, code_uri)
    return template


@dataclass
class ProjectDeployment:
    """The stacks of one project and who deploys them."""

    config: config_mod.Config
    env: Environment
    studio: DeployedStack
    pipeline: DeployedStack
    runs: dict[str, DeployedStack] = field(default_factory=dict)
    #: The ci-oidc stack, with a CI orchestrator.
    ci: DeployedStack | None = None

    def stack(self, name: str) -> DeployedStack:
        """The deployed stack ``name`` (``pipeline``, ``ci-oidc`` or a per-run stack)."""
        if name == "pipeline":
            return self.pipeline
        if name == "ci-oidc":
            if self.ci is None:
                raise KeyError("no ci-oidc stack: pipeline.orchestrator is codepipeline")
            return self.ci
        return self.runs[name]

    def launch_role_documents(self) -> list[dict[str, Any]]:
        from mlops_templates.permissions.coverage import role_documents
        from mlops_templates.stacks import studio

        return role_documents(self.studio, studio.LAUNCH_ROLE)

    def cloudformation_role_documents(self) -> list[dict[str, Any]]:
        from mlops_templates.permissions.coverage import role_documents
        from mlops_templates.stacks import pipeline

        return role_documents(self.pipeline, pipeline.CLOUDFORMATION_ROLE)

    def role_documents(self, logical_id: str) -> list[dict[str, Any]]:
        from mlops_templates.permissions.coverage import role_documents

        return role_documents(self.pipeline, logical_id)


def _pipeline_environment(stack: DeployedStack) -> dict[str, str]:
    """The Build project's environment variables, resolved."""
    from mlops_templates.stacks import pipeline

    build = stack.resources[pipeline.BUILD_PROJECT]
    variables = build.properties["Environment"]["EnvironmentVariables"]
    return {v["Name"]: str(v["Value"]) for v in variables}


def ci_environment(config: config_mod.Config, stack: DeployedStack) -> dict[str, str]:
    """The CI build's environment: the pipeline stack's outputs and Parameters, resolved,
    as ``mlops-templates ci env`` reads them."""
    from mlops_templates.ci import steps

    outputs = {name: stack.output(name) for name in stack.template.get("Outputs", {})}
    outputs = {name: ",".join(v) if isinstance(v, list) else str(v) for name, v in outputs.items()}
    parameters = {name: str(value) for name, value in stack.parameters.items()}
    return steps.stack_env(config, outputs, parameters)


def _train_output(env: dict[str, str]) -> dict[str, str]:
    bucket = env["ARTIFACT_BUCKET"]
    run = f"s3://{bucket}/runs/{RUN_ID}/{ATTEMPT}"
    return {
        "ModelDataUrl": f"{run}/model/job/output/model.tar.gz",
        "ImageUri": f"{env['IMAGE_REPOSITORY_URI']}:{RUN_ID}",
        "BaselineStatisticsUri": f"{run}/baseline/statistics.json",
        "BaselineConstraintsUri": f"{run}/baseline/constraints.json",
    }


def deploy(
    config: config_mod.Config,
    env: Environment | None = None,
    project_name: str = PROJECT_NAME,
) -> ProjectDeployment:
    """Model ``config``'s studio, pipeline and per-run stacks as deployed."""
    env = env or Environment(region=config.project.region)
    studio = DeployedStack(
        naming.stack_name(config, "studio"),
        template_dict(config, "studio"),
        {"PipelineTemplateUrl": TEMPLATE_URL},
        env,
    )
    pipeline_template = template_dict(config, "pipeline")
    parameters = {"SageMakerProjectName": project_name, "SageMakerProjectId": PROJECT_ID}
    if "CodeConnectionArn" in pipeline_template.get("Parameters", {}):
        parameters["CodeConnectionArn"] = CONNECTION.format(region=env.region)
    ci = config.pipeline.orchestrator != "codepipeline"
    # Service Catalog names a Studio project's stack; a CI-driven project's pipeline stack
    # is deployed by `make deploy`, under the name the CI job reads its outputs from.
    name = f"{config.project.prefix}-{project_name}-pipeline" if ci else f"SC-{env.account}-pp-{PROJECT_ID[2:]}"
    pipeline = DeployedStack(name, pipeline_template, parameters, env)
    deployment = ProjectDeployment(config, env, studio, pipeline)

    build_env = ci_environment(config, pipeline) if ci else _pipeline_environment(pipeline)
    data = config.model_dump(mode="json", exclude_defaults=True)
    if build_env.get("SUBNET_IDS"):
        data = pipeline_build.derived_config(
            data, build_env["SUBNET_IDS"], build_env.get("SECURITY_GROUP_IDS", "")
        )
    data = {**data, "project": {**data.get("project", {}), "name": project_name}}
    run_config = config_mod.parse(data, "run config")
    train_output = _train_output(build_env)
    for name in stacks.run_stacks(run_config):
        code = f"s3://{build_env['ARTIFACT_BUCKET']}/packages/{RUN_ID}/0123456789abcdef0123456789abcdef"
        template = template_dict(run_config, name, code)
        configuration = pipeline_build.template_configuration(
            name, template.get("Parameters", {}), build_env, run_config.parameters.get(name, {})
        )
        values = dict(configuration["Parameters"])
        for key in contract.TRAIN_OUTPUT_OVERRIDES.get(name, ()):
            values[key] = train_output[key]
        deployment.runs[name] = DeployedStack(
            naming.stack_name(run_config, name), template, values, env, configuration["Tags"]
        )
    if ci:
        # Deployed for the project the pipeline stack was deployed as.
        deployment.ci = DeployedStack(
            naming.stack_name(run_config, "ci-oidc"), template_dict(run_config, "ci-oidc"), {}, env
        )
    return deployment
