"""The modelled deployment the permission checks judge (``permissions/scenario.py``): which
stacks one project has, their names, accounts and regions, the parameters the pipeline's
build passes to the per-run stacks, and the build environment a CI job reads from the
pipeline stack's outputs, with the expected values written out here.

A model that dropped a stack, a parameter, the network or the account would make every
permission check judge the wrong deployment and still pass. Each test calls
:func:`scenario.deploy` itself (no cache shared between tests), so that a change to the
model is seen by every test that reads it.
"""

from __future__ import annotations

import copy

import pytest

from mlops_templates import config
from mlops_templates.permissions import scenario
from mlops_templates.permissions.deployed import DeployedStack, Environment

from . import variants

ACCOUNT = "111122223333"
TEMPLATE_URL = "https://org-templates.s3.us-east-1.amazonaws.com/pipeline/pipeline-0123456789abcdef.yaml"
CONNECTION = "connection/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
RUN = "runs/1624a1d1-3699/5f2c9a1e"
TAGS = {"sagemaker:project-name": "demo", "sagemaker:project-id": "p-0a1b2c3d4e5f"}


def workflow_parameters(prefix: str, account: str, region: str, kms_key: str) -> dict[str, str]:
    """The workflow stack's Parameters: the pipeline stack's resources of project ``demo``."""
    base = f"{prefix}-demo"
    return {
        "ArtifactBucket": f"{base}-{account}-{region}-art",
        "KmsKeyArn": f"arn:aws:kms:{region}:{account}:key/{kms_key}",
        "NotificationTopicArn": f"arn:aws:sns:{region}:{account}:{base}-notifications",
        "SageMakerRoleArn": f"arn:aws:iam::{account}:role/{base}-sagemaker",
        "StatesRoleArn": f"arn:aws:iam::{account}:role/{base}-states",
    }


def kms_key(d: scenario.ProjectDeployment) -> str:
    """The key id of the project's KMS key (a modelled physical id)."""
    arn = d.runs["workflow"].parameters["KmsKeyArn"]
    assert arn.startswith(f"arn:aws:kms:{d.env.region}:{d.env.account}:key/")
    return arn.rsplit("/", 1)[1]


# -- A Studio project (CodePipeline) --------------------------------------------------------


def test_a_studio_project_has_the_studio_the_service_catalog_and_the_run_stacks() -> None:
    d = scenario.deploy(config.load(variants.path(variants.EXAMPLE)))
    assert d.env == Environment(account=ACCOUNT, region="us-east-1", partition="aws")
    assert d.studio.name == "mlops-abalone-studio"
    assert d.studio.parameters == {"PipelineTemplateUrl": TEMPLATE_URL}
    assert d.pipeline.name == f"SC-{ACCOUNT}-pp-0a1b2c3d4e5f"
    assert d.pipeline.parameters == {
        "NotificationEmail": "none", "SageMakerProjectId": "p-0a1b2c3d4e5f", "SageMakerProjectName": "demo",
    }
    assert d.ci is None
    with pytest.raises(KeyError, match="no ci-oidc stack"):
        d.stack("ci-oidc")
    assert {name: stack.name for name, stack in d.runs.items()} == {
        "workflow": "mlops-demo-workflow", "deploy-dev": "mlops-demo-deploy-dev", "deploy-prd": "mlops-demo-deploy-prd",
    }
    assert all(stack.stack_tags == TAGS for stack in d.runs.values())


def test_the_run_stacks_get_the_pipeline_resources_and_the_training_output() -> None:
    d = scenario.deploy(config.load(variants.path(variants.EXAMPLE)))
    bucket = f"mlops-demo-{ACCOUNT}-us-east-1-art"
    assert d.runs["workflow"].parameters == workflow_parameters("mlops", ACCOUNT, "us-east-1", kms_key(d))
    image = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-demo:1624a1d1-3699"
    dev = d.runs["deploy-dev"].parameters
    assert dev["ModelDataUrl"] == f"s3://{bucket}/{RUN}/model/job/output/model.tar.gz"
    assert dev["ImageUri"] == image
    assert dev["ExecutionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/mlops-demo-sagemaker"
    prd = d.runs["deploy-prd"].parameters
    assert prd["BaselineStatisticsUri"] == f"s3://{bucket}/{RUN}/baseline/statistics.json"
    assert prd["BaselineConstraintsUri"] == f"s3://{bucket}/{RUN}/baseline/constraints.json"
    assert prd["ModelDataUrl"] == dev["ModelDataUrl"] and prd["ImageUri"] == image
    assert prd["DataCaptureUri"] == f"s3://{bucket}/data-capture"
    assert prd["NotificationEmail"] == "none"


def test_the_lambda_code_is_where_the_build_packaged_it() -> None:
    d = scenario.deploy(config.load(variants.path(variants.EXAMPLE)))
    code = d.runs["deploy-prd"].resources["ApiFunction"].properties["Code"]
    assert code == {
        "S3Bucket": f"mlops-demo-{ACCOUNT}-us-east-1-art",
        "S3Key": "packages/1624a1d1-3699/0123456789abcdef0123456789abcdef",
    }


def test_a_value_in_the_config_parameters_reaches_its_stack() -> None:
    d = scenario.deploy(config.parse({"parameters": {"deploy-prd": {"NotificationEmail": "ops@example.com"}}}))
    assert d.runs["deploy-prd"].parameters["NotificationEmail"] == "ops@example.com"
    assert "NotificationEmail" not in d.runs["deploy-dev"].parameters


def test_a_connection_asked_for_at_launch_is_in_the_stacks_region() -> None:
    d = scenario.deploy(variants.variant_config("api-key-linear-vpc"))
    assert d.env.region == "eu-west-1"
    assert d.pipeline.parameters["CodeConnectionArn"] == f"arn:aws:codeconnections:eu-west-1:{ACCOUNT}:{CONNECTION}"
    assert "CodeConnectionArn" not in scenario.deploy(variants.variant_config("example")).pipeline.parameters


# -- A CI-driven project (GitHub Actions, GitLab CI) ----------------------------------------


def test_a_ci_project_has_its_pipeline_stack_the_ci_oidc_stack_and_the_run_stacks() -> None:
    d = scenario.deploy(variants.variant_config("github-actions"))
    assert d.env == Environment(account=ACCOUNT, region="eu-west-1", partition="aws")
    assert d.studio.name == "acme-fraud-studio"
    assert d.pipeline.name == "acme-demo-pipeline"
    assert d.ci is not None and d.stack("ci-oidc") is d.ci
    assert d.ci.name == "acme-demo-ci-oidc"
    assert d.ci.parameters == {}
    assert d.ci.resources["CiRole"].arn == f"arn:aws:iam::{ACCOUNT}:role/acme-demo-ci"
    assert {name: stack.name for name, stack in d.runs.items()} == {
        "workflow": "acme-demo-workflow", "deploy-dev": "acme-demo-deploy-dev", "deploy-prd": "acme-demo-deploy-prd",
    }
    assert d.runs["workflow"].parameters == workflow_parameters("acme", ACCOUNT, "eu-west-1", kms_key(d))
    assert all(stack.stack_tags == TAGS for stack in d.runs.values())


def test_the_ci_build_environment_is_the_pipeline_stacks_outputs_and_parameters() -> None:
    d = scenario.deploy(variants.variant_config("github-actions"))
    env = scenario.ci_environment(d.config, d.pipeline)
    base = "acme-demo"
    assert env == {
        "PROJECT_PREFIX": "acme",
        "SAGEMAKER_PROJECT_NAME": "demo",
        "SAGEMAKER_PROJECT_ID": "p-0a1b2c3d4e5f",
        "CONFIG_FILE": "mlops.yaml",
        "DATA_PREFIX": "training/",
        "NOTIFICATION_EMAIL": "none",
        "ARTIFACT_BUCKET": f"{base}-{ACCOUNT}-eu-west-1-art",
        "DATA_BUCKET": f"{base}-{ACCOUNT}-eu-west-1-data",
        "KMS_KEY_ARN": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{kms_key(d)}",
        "SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{base}-sagemaker",
        "STATES_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{base}-states",
        "NOTIFICATION_TOPIC_ARN": f"arn:aws:sns:eu-west-1:{ACCOUNT}:{base}-notifications",
        "IMAGE_REPOSITORY_URI": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{base}",
        "IMAGE_REPOSITORY_NAME": base,
    }


def test_a_list_valued_output_reaches_the_ci_build_joined_with_commas() -> None:
    """As ``aws cloudformation describe-stacks`` reports a list: one comma-separated string."""
    d = scenario.deploy(variants.variant_config("github-actions"))
    template = copy.deepcopy(d.pipeline.template)
    template["Outputs"]["SubnetIds"] = {"Value": ["subnet-0aaa", "subnet-0bbb"]}
    template["Outputs"]["SecurityGroupId"] = {"Value": "sg-0ccc"}
    stack = DeployedStack(d.pipeline.name, template, dict(d.pipeline.parameters), d.env)
    env = scenario.ci_environment(d.config, stack)
    assert env["SUBNET_IDS"] == "subnet-0aaa,subnet-0bbb"
    assert env["SECURITY_GROUP_IDS"] == "sg-0ccc"
    assert env["ARTIFACT_BUCKET"] == f"acme-demo-{ACCOUNT}-eu-west-1-art"


def test_another_account_and_region_reach_every_stack() -> None:
    env = Environment(account="444455556666", region="eu-west-1")
    d = scenario.deploy(variants.variant_config("github-actions"), env)
    assert d.env == env and d.ci is not None
    for stack in (d.studio, d.pipeline, d.ci, *d.runs.values()):
        assert stack.env == env, stack.name
        assert stack.stack_id.startswith(f"arn:aws:cloudformation:eu-west-1:444455556666:stack/{stack.name}/")
    assert d.ci.resources["CiRole"].arn == "arn:aws:iam::444455556666:role/acme-demo-ci"
    assert d.runs["workflow"].parameters == workflow_parameters("acme", "444455556666", "eu-west-1", kms_key(d))


def test_a_ci_project_deployed_under_another_name_names_its_stacks_after_it() -> None:
    d = scenario.deploy(variants.variant_config("gitlab-ci"), project_name="churn2")
    assert d.pipeline.name == "ml-churn2-pipeline"
    assert d.ci is not None and d.ci.name == "ml-churn2-ci-oidc"
    assert d.runs["workflow"].name == "ml-churn2-workflow"
    assert d.runs["workflow"].stack_tags == {**TAGS, "sagemaker:project-name": "churn2"}


# -- The network the pipeline stack made -----------------------------------------------------


@pytest.mark.parametrize("name", ["private-vpc", "github-private-vpc"])
def test_the_run_stacks_are_placed_in_the_pipeline_stacks_network(name: str) -> None:
    d = scenario.deploy(variants.variant_config(name))
    subnets = [d.pipeline.resources[s].name for s in ("PrivateSubnet1", "PrivateSubnet2")]
    group = d.pipeline.resources["WorkloadSecurityGroup"].name
    assert all(s.startswith("subnet-") for s in subnets) and group.startswith("sg-")
    assert d.pipeline.output("SubnetIds") == ",".join(subnets)
    vpc = {"SecurityGroupIds": [group], "Subnets": subnets}
    assert d.runs["deploy-dev"].resources["Model"].properties["VpcConfig"] == vpc
    assert d.runs["deploy-prd"].resources["Model"].properties["VpcConfig"] == vpc
    assert d.runs["deploy-prd"].resources["ApiFunction"].properties["VpcConfig"] == {
        "SecurityGroupIds": [group], "SubnetIds": subnets,
    }
