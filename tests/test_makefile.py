"""The Makefile's deploy targets, run for real: `make deploy`, `publish`, `project` and
`destroy` call the real AWS CLI (package, s3 cp) and this library's deploy commands
(boto3) against a moto server.

make runs in a copy of the repository's Makefile, config, README and Lambda folders (with
this venv), so its `build` step never rewrites the working tree's templates or README.

moto resolves a template URL to its own S3 only for ``localhost`` URLs, so the CLI talks
to the server (bound to 127.0.0.1) as ``localhost``. What moto lacks is added by
``moto_fakes`` (stack events and failures as CloudFormation reports them, SageMaker
projects, model package deletion); ``AWS=python -m tests.moto_aws`` packages templates
into what moto can create (see that module).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.cloudformation import models as cfn_models

from . import moto_fakes
from .conftest import FAKE_CREDENTIALS, REPO, aws_cli
from .moto_aws import moto_template
from .moto_fakes import ACCOUNT, REGION, FakeProjects

# moto's CloudFormation skips resource types it does not implement (Service Catalog,
# CodeBuild, CodePipeline, SAM) with a warning; the assertions check what it does create.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto:UserWarning"),
    pytest.mark.filterwarnings("ignore:Unable to delete .*:UserWarning"),
]

BUCKET = "mlops-templates-artifacts"
CONNECTION = "arn:aws:codeconnections:us-east-1:111122223333:connection/00000000-0000-0000-0000-000000000000"
OTHER_CONNECTION = (
    "arn:aws:codeconnections:us-east-1:111122223333:connection/11111111-1111-1111-1111-111111111111"
)
DEV_PARAMS = (
    "ImageUri=111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-abalone:run-1 "
    "ModelDataUrl=s3://artifacts/runs/run-1/model/model.tar.gz "
    "ExecutionRoleArn=arn:aws:iam::111122223333:role/mlops-abalone-sagemaker "
    "KmsKeyArn=arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
)
#: An image manifest, as ``docker push`` uploads one.
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
)
MOTO_AWS = f"{sys.executable} -m tests.moto_aws"
#: A progress line: time, logical id, type, status.
EVENT = r"\d\d:\d\d:\d\d  {id}\s+{type}\s+{status}"


def _reset(server: str) -> None:
    """Empty moto's state: these stacks share names with other modules' stacks."""
    request = urllib.request.Request(f"{server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the deploy targets read, where `make build` may write."""
    root = tmp_path_factory.mktemp("repo")
    for name in ("Makefile", "mlops.yaml", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "lambdas", root / "lambdas", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".installed").touch()  # the STAMP: this venv is installed
    return root


@pytest.fixture
def like_aws() -> Iterator[None]:
    with moto_fakes.cloudformation_like_aws():
        yield


@pytest.fixture
def projects() -> Iterator[FakeProjects]:
    with moto_fakes.sagemaker_projects() as fake:
        yield fake


@pytest.fixture
def endpoint(moto_server: str) -> Iterator[str]:
    url = moto_server.replace("127.0.0.1", "localhost")
    _reset(moto_server)
    aws_cli(url, "s3", "mb", f"s3://{BUCKET}")
    yield url
    _reset(moto_server)


def environment(endpoint: str) -> dict[str, str]:
    env = {
        **os.environ,
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_PAGER": "",
        "MLOPS_TEMPLATES_POLL_SECONDS": "0.05",
        "PYTHONPATH": str(REPO),
    }
    env.pop("AWS_PROFILE", None)
    return env


def make(
    endpoint: str, sandbox: Path, tmp: Path, *args: str, aws: str | None = None
) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    extra = [f"AWS={aws}"] if aws else []
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            f"VENV={venv}",
            f"STAMP={sandbox / '.installed'}",
            f"PACKAGED={tmp}",
            *extra,
            *args,
        ],
        cwd=sandbox,
        env=environment(endpoint),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def cli(endpoint: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mlops-templates"
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=environment(endpoint),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def stack(endpoint: str, name: str) -> dict:
    out = aws_cli(endpoint, "cloudformation", "describe-stacks", "--stack-name", name, "--output", "json")
    return json.loads(out.stdout)["Stacks"][0]


def exists(endpoint: str, name: str) -> bool:
    return (
        aws_cli(endpoint, "cloudformation", "describe-stacks", "--stack-name", name, check=False).returncode
        == 0
    )


def parameters(described: dict) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def test_deploy_dev_packages_and_deploys_with_config_and_command_line_parameters(
    endpoint: str, sandbox: Path, tmp_path: Path
) -> None:
    proc = make(
        endpoint, sandbox, tmp_path, "deploy", "STAGE=dev", f"BUCKET={BUCKET}", f"PARAMS={DEV_PARAMS}"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"packaged {tmp_path}/deploy-dev.yaml" in proc.stdout
    assert "stack mlops-abalone-deploy-dev: CREATE_COMPLETE" in proc.stdout
    created = stack(endpoint, "mlops-abalone-deploy-dev")
    assert created["StackStatus"] == "CREATE_COMPLETE"
    params = parameters(created)
    assert params["ModelDataUrl"] == "s3://artifacts/runs/run-1/model/model.tar.gz"

    configs = json.loads(aws_cli(endpoint, "sagemaker", "list-endpoint-configs", "--output", "json").stdout)
    names = [c["EndpointConfigName"] for c in configs["EndpointConfigs"]]
    assert names
    described = json.loads(
        aws_cli(
            endpoint,
            "sagemaker",
            "describe-endpoint-config",
            "--endpoint-config-name",
            names[0],
            "--output",
            "json",
        ).stdout
    )
    assert described["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    assert described["KmsKeyId"] == params["KmsKeyArn"]


def test_publish_deploys_the_account_stack_uploads_the_product_and_deploys_the_studio_stack(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None
) -> None:
    proc = make(endpoint, sandbox, tmp_path, "publish", f"BUCKET={BUCKET}", aws=MOTO_AWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.index("stack mlops-account: CREATE_COMPLETE") < proc.stdout.index(
        "stack mlops-abalone-studio: CREATE_COMPLETE"
    )
    assert stack(endpoint, "mlops-account")["StackStatus"] == "CREATE_COMPLETE"
    created = stack(endpoint, "mlops-abalone-studio")
    assert created["StackStatus"] == "CREATE_COMPLETE"
    url = parameters(created)["PipelineTemplateUrl"]
    prefix = f"https://{BUCKET}.s3.us-east-1.amazonaws.com/"
    assert url.startswith(prefix)
    uploaded = aws_cli(endpoint, "s3", "cp", f"s3://{BUCKET}/{url.removeprefix(prefix)}", "-").stdout
    assert uploaded == (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    assert "SageMakerProjectName" in uploaded


def test_publish_mode_s3_deploys_the_template_bucket_then_uploads_the_tagged_template(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None
) -> None:
    proc = make(endpoint, sandbox, tmp_path, "publish", "MODE=s3", f"BUCKET={BUCKET}", aws=MOTO_AWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.index("stack mlops-account: CREATE_COMPLETE") < out.index("stack mlops-abalone-studio: CREATE_COMPLETE")
    created = stack(endpoint, "mlops-abalone-studio")
    assert "Parameters" not in created or not created["Parameters"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in created["Outputs"]}
    templates = f"mlops-abalone-{ACCOUNT}-{REGION}-tpl"
    assert outputs["TemplateBucketName"] == templates
    key = "templates/mlops-abalone-pipeline.yaml"
    s3 = client(endpoint, "s3")
    body = s3.get_object(Bucket=templates, Key=key)["Body"].read().decode("utf-8")
    assert body == (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    assert s3.get_object_tagging(Bucket=templates, Key=key)["TagSet"] == [
        {"Key": "sagemaker:studio-visibility", "Value": "true"}
    ]
    assert f"uploaded s3://{templates}/{key}" in out
    assert f"sagemaker:projectS3TemplatesLocation=s3://{templates}/templates/" in out
    # The packaged studio template is the s3 one, whatever templates/studio.yaml holds.
    packaged = (tmp_path / "studio.yaml").read_text(encoding="utf-8")
    assert "TemplateBucket" in packaged and "AWS::ServiceCatalog::" not in packaged
    assert "AWS::ServiceCatalog::Portfolio" in (sandbox / "templates" / "studio.yaml").read_text(encoding="utf-8")


def test_project_mode_must_match_the_published_stack(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None, projects: FakeProjects
) -> None:
    client(endpoint, "cloudformation").create_stack(
        StackName="mlops-abalone-studio", TemplateBody=json.dumps(STUDIO)
    )
    proc = make(endpoint, sandbox, tmp_path, "project", "NAME=churn", "MODE=s3", f"CONNECTION_ARN={CONNECTION}")
    assert proc.returncode == 2
    assert "publishes the pipeline with publish_mode service_catalog, not s3" in proc.stderr
    assert projects.requests == []


def test_deploy_brings_up_the_system_with_progress_then_redeploys_without_changes(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None
) -> None:
    proc = make(
        endpoint, sandbox, tmp_path, "deploy", f"BUCKET={BUCKET}", "EMAIL=ops@example.com", aws=MOTO_AWS
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.index("stack mlops-account: CREATE_COMPLETE") < out.index(
        "stack mlops-abalone-pipeline: creating"
    )
    assert re.search(
        EVENT.format(id="ApiGatewayCloudWatchRole", type="AWS::IAM::Role", status="CREATE_COMPLETE"), out
    )
    assert re.search(
        EVENT.format(id="ArtifactBucket", type=r"AWS::S3::Bucket", status="CREATE_IN_PROGRESS"), out
    )
    assert re.search(
        EVENT.format(
            id="mlops-abalone-pipeline", type="AWS::CloudFormation::Stack", status="CREATE_COMPLETE"
        ),
        out,
    )
    assert "stack mlops-abalone-pipeline: CREATE_COMPLETE" in out
    pipeline = stack(endpoint, "mlops-abalone-pipeline")
    assert pipeline["StackStatus"] == "CREATE_COMPLETE"
    assert parameters(pipeline) == {
        "SageMakerProjectName": "abalone",
        "SageMakerProjectId": "p-b4eb0604ba82",  # sha1("abalone")[:12], as `make deploy` always derived it
        "NotificationEmail": "ops@example.com",
    }
    assert stack(endpoint, "mlops-account")["StackStatus"] == "CREATE_COMPLETE"

    # Again, with the configured connection: nothing to change, and EMAIL's value is kept.
    again = make(
        endpoint,
        sandbox,
        tmp_path,
        "deploy",
        f"BUCKET={BUCKET}",
        f"CONNECTION_ARN={CONNECTION}",
        aws=MOTO_AWS,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stack mlops-account: no changes" in again.stdout
    assert "stack mlops-abalone-pipeline: no changes" in again.stdout
    assert parameters(stack(endpoint, "mlops-abalone-pipeline"))["NotificationEmail"] == "ops@example.com"


def test_deploy_refuses_a_connection_the_pipeline_template_is_not_built_for(
    endpoint: str, sandbox: Path, tmp_path: Path
) -> None:
    proc = make(
        endpoint,
        sandbox,
        tmp_path,
        "deploy",
        "STAGE=pipeline",
        f"BUCKET={BUCKET}",
        f"CONNECTION_ARN={OTHER_CONNECTION}",
    )
    assert proc.returncode == 2
    assert f"CONNECTION_ARN={OTHER_CONNECTION} differs from pipeline.source.connection_arn" in proc.stderr
    assert "Change pipeline.source.connection_arn" in proc.stderr
    assert not exists(endpoint, "mlops-abalone-pipeline")


def test_deploy_needs_a_connection_when_the_config_sets_none(
    endpoint: str, tmp_path: Path, like_aws: None
) -> None:
    config = tmp_path / "mlops.yaml"
    text = (REPO / "mlops.yaml").read_text(encoding="utf-8")
    config.write_text(re.sub(r"\n    connection_arn: .*", "", text), encoding="utf-8")
    built = cli(endpoint, "-c", str(config), "build", "--out", str(tmp_path), "--stack", "pipeline")
    assert built.returncode == 0, built.stderr
    rendered = tmp_path / "pipeline.yaml"
    rendered.write_text(moto_template(rendered.read_text(encoding="utf-8")), encoding="utf-8")
    args = ("-c", str(config), "deploy", "pipeline", "--packaged", str(tmp_path), "--s3-bucket", BUCKET)

    missing = cli(endpoint, *args)
    assert missing.returncode == 2
    assert "stack mlops-abalone-pipeline needs a value for CodeConnectionArn" in missing.stderr
    assert "pass CONNECTION_ARN=arn:aws:codeconnections:" in missing.stderr

    given = cli(endpoint, *args, "--connection-arn", OTHER_CONNECTION)
    assert given.returncode == 0, given.stdout + given.stderr
    assert parameters(stack(endpoint, "mlops-abalone-pipeline"))["CodeConnectionArn"] == OTHER_CONNECTION


FAILING = {
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "progress-topic"}},
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "DependsOn": "Topic",
            "Properties": {"BucketName": "taken-bucket"},
        },
    }
}


def deploy_stack(
    endpoint: str, name: str, template: dict, directory: Path
) -> subprocess.CompletedProcess[str]:
    path = directory / f"{name}.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    return cli(
        endpoint, "deploy-stack", "--stack-name", name, "--template-file", str(path), "--s3-bucket", BUCKET
    )


def test_a_failed_first_create_shows_its_first_failure_and_the_next_deploy_recreates_the_stack(
    endpoint: str, tmp_path: Path, like_aws: None
) -> None:
    """moto does not check bucket names, so the failing bucket's name is taken instead."""
    aws_cli(endpoint, "s3", "mb", "s3://taken-bucket")
    failed = deploy_stack(endpoint, "progress", FAILING, tmp_path)
    assert failed.returncode == 2
    assert re.search(
        EVENT.format(id="Topic", type="AWS::SNS::Topic", status="CREATE_COMPLETE"), failed.stdout
    )
    assert re.search(
        EVENT.format(id="Bucket", type="AWS::S3::Bucket", status="CREATE_FAILED")
        + r"\s+BucketAlreadyExists: The requested bucket name is not available",
        failed.stdout,
    )
    assert re.search(
        EVENT.format(id="Topic", type="AWS::SNS::Topic", status="DELETE_COMPLETE"), failed.stdout
    )
    assert "error: stack progress: ROLLBACK_COMPLETE\n" in failed.stderr
    assert (
        "first failure: Bucket (AWS::S3::Bucket) CREATE_FAILED: BucketAlreadyExists: The requested bucket name"
        in failed.stderr
    )
    assert stack(endpoint, "progress")["StackStatus"] == "ROLLBACK_COMPLETE"

    aws_cli(endpoint, "s3", "rb", "s3://taken-bucket")
    retried = deploy_stack(endpoint, "progress", FAILING, tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert (
        "stack progress is ROLLBACK_COMPLETE (its first create failed and it holds no resources): "
        "deleting it before creating it again" in retried.stdout
    )
    assert retried.stdout.index("DELETE_COMPLETE") < retried.stdout.index("stack progress: creating")
    assert "stack progress: CREATE_COMPLETE" in retried.stdout
    assert stack(endpoint, "progress")["StackStatus"] == "CREATE_COMPLETE"

    unchanged = deploy_stack(endpoint, "progress", FAILING, tmp_path)
    assert unchanged.returncode == 0 and "stack progress: no changes" in unchanged.stdout


def _status(name: str, status: str, event: bool = False) -> None:
    backend = cfn_models.cloudformation_backends[ACCOUNT][REGION]
    (found,) = [s for s in backend.stacks.values() if s.name == name]
    found.status = status
    if event:
        found._add_stack_event(status)


def test_update_rollback_failed_says_how_to_continue_and_a_busy_stack_is_waited_for(
    endpoint: str, tmp_path: Path, like_aws: None
) -> None:
    topic = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    assert deploy_stack(endpoint, "busy", topic, tmp_path).returncode == 0
    _status("busy", "UPDATE_ROLLBACK_FAILED")
    stuck = deploy_stack(endpoint, "busy", topic, tmp_path)
    assert stuck.returncode == 2
    assert "stack busy is UPDATE_ROLLBACK_FAILED" in stuck.stderr
    assert "aws cloudformation continue-update-rollback --stack-name busy" in stuck.stderr

    _status("busy", "UPDATE_IN_PROGRESS", event=True)
    timer = threading.Timer(1.0, _status, ("busy", "UPDATE_COMPLETE", True))
    timer.start()
    try:
        waited = deploy_stack(
            endpoint,
            "busy",
            {"Resources": {**topic["Resources"], "Other": topic["Resources"]["Topic"]}},
            tmp_path,
        )
    finally:
        timer.cancel()
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "stack busy is UPDATE_IN_PROGRESS: waiting for it to finish first" in waited.stdout
    assert re.search(
        EVENT.format(id="busy", type="AWS::CloudFormation::Stack", status="UPDATE_COMPLETE"), waited.stdout
    )
    assert "stack busy: UPDATE_COMPLETE" in waited.stdout


# -- make project ------------------------------------------------------------------------

STUDIO = {
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "ProductId": {"Value": "prod-abcdefghijklm"},
        "ProvisioningArtifactId": {"Value": "pa-old0000000001,pa-new0000000002"},
    },
}


def test_project_passes_a_connection_only_to_a_product_that_takes_one(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None, projects: FakeProjects
) -> None:
    """moto has no SageMaker projects: ``moto_fakes`` adds them to the server."""
    fake = projects
    none_yet = make(endpoint, sandbox, tmp_path, "project", "NAME=churn")
    assert none_yet.returncode == 2 and "run `make publish` first" in none_yet.stderr
    client(endpoint, "cloudformation").create_stack(
        StackName="mlops-abalone-studio", TemplateBody=json.dumps(STUDIO)
    )

    # The config pins the connection: the product has no CodeConnectionArn.
    other = make(endpoint, sandbox, tmp_path, "project", "NAME=churn", f"CONNECTION_ARN={OTHER_CONNECTION}")
    assert other.returncode == 2
    assert "differs from pipeline.source.connection_arn" in other.stderr and "make publish" in other.stderr
    assert fake.requests == []
    same = make(endpoint, sandbox, tmp_path, "project", "NAME=churn", f"CONNECTION_ARN={CONNECTION}")
    assert same.returncode == 0, same.stdout + same.stderr
    (request,) = fake.requests
    assert request == {
        "ProjectName": "churn",
        "ProductId": "prod-abcdefghijklm",
        "ProvisioningArtifactId": "pa-new0000000002",
    }
    lines = same.stdout.splitlines()
    assert "project churn: CreateInProgress" in lines and "project churn: CreateCompleted" in lines
    assert f"project churn: its stack is SC-{ACCOUNT}-pp-0000000000001" in lines
    assert re.search(EVENT.format(id="Topic", type="AWS::SNS::Topic", status="CREATE_COMPLETE"), same.stdout)
    again = make(endpoint, sandbox, tmp_path, "project", "NAME=churn")
    assert again.returncode == 0 and "project churn exists (CreateCompleted)" in again.stdout
    assert len(fake.requests) == 1

    # A config without a connection: the product takes CodeConnectionArn, which is then needed.
    config = sandbox / "no-connection.yaml"
    text = (sandbox / "mlops.yaml").read_text(encoding="utf-8")
    config.write_text(re.sub(r"\n    connection_arn: .*", "", text), encoding="utf-8")
    fake.product_template = json.dumps(
        {
            "Parameters": {
                "CodeConnectionArn": {"Type": "String"},
                "NotificationEmail": {"Type": "String", "Default": "none"},
            },
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        }
    )
    missing = make(endpoint, sandbox, tmp_path, "project", "NAME=fraud", f"CONFIG={config.name}")
    assert missing.returncode == 2 and "the product needs CodeConnectionArn" in missing.stderr
    given = make(
        endpoint,
        sandbox,
        tmp_path,
        "project",
        "NAME=fraud",
        f"CONFIG={config.name}",
        f"CONNECTION_ARN={OTHER_CONNECTION}",
        "EMAIL=ds@example.com",
    )
    assert given.returncode == 0, given.stdout + given.stderr
    assert fake.requests[-1]["ProvisioningParameters"] == [
        {"Key": "CodeConnectionArn", "Value": OTHER_CONNECTION},
        {"Key": "NotificationEmail", "Value": "ds@example.com"},
    ]


# -- make destroy ------------------------------------------------------------------------

BASE = "mlops-abalone"
BUCKETS = [f"{BASE}-{ACCOUNT}-{REGION}-{suffix}" for suffix in ("art", "data", "logs")]
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
#: The pipeline stack's resources that hold data (retained), and a role it deletes.
PIPELINE = {
    "Resources": {
        **{
            f"Bucket{index}": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": name}, **RETAIN}
            for index, name in enumerate(BUCKETS)
        },
        "Repository": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": BASE}, **RETAIN},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": "{}"}, **RETAIN},
        "KeyAlias": {
            "Type": "AWS::KMS::Alias",
            "Properties": {"AliasName": f"alias/{BASE}", "TargetKeyId": {"Ref": "Key"}},
        },
        "BuildLogs": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": "/mlops/abalone/codebuild"},
            **RETAIN,
        },
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{BASE}-notifications"}},
    }
}


def run_stack(name: str, repository: bool = False) -> dict:
    resources: dict[str, Any] = {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": name}}}
    if repository:  # deleting it fails while it holds an image, as in CloudFormation
        resources["Images"] = {
            "Type": "AWS::ECR::Repository",
            "Properties": {"RepositoryName": f"{name}-images"},
        }
    return {"Resources": resources}


@pytest.fixture
def project(endpoint: str, like_aws: None, projects: FakeProjects) -> dict[str, Any]:
    """Project abalone as a Studio project and three per-run stacks, plus data in what
    the stacks retain and a neighbour project's log group that must survive."""
    cfn = client(endpoint, "cloudformation")
    for stack_name in ("workflow", "deploy-dev", "deploy-prd"):
        cfn.create_stack(
            StackName=f"{BASE}-{stack_name}", TemplateBody=json.dumps(run_stack(f"{BASE}-{stack_name}"))
        )
    projects.product_template = json.dumps(PIPELINE)
    client(endpoint, "sagemaker").create_project(
        ProjectName="abalone",
        ServiceCatalogProvisioningDetails={"ProductId": "prod-x", "ProvisioningArtifactId": "pa-x"},
    )
    s3 = client(endpoint, "s3")
    for bucket in BUCKETS:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKETS[1], Key="training/abalone.csv", Body=b"1")
    s3.put_object(Bucket=BUCKETS[1], Key="training/abalone.csv", Body=b"2")
    s3.delete_object(Bucket=BUCKETS[1], Key="training/abalone.csv")  # a delete marker
    client(endpoint, "ecr").put_image(repositoryName=BASE, imageManifest=MANIFEST, imageTag="run-1")
    sagemaker = client(endpoint, "sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=f"{BASE}-models")
    for _ in range(2):
        sagemaker.create_model_package(ModelPackageGroupName=f"{BASE}-models", ModelApprovalStatus="Approved")
    logs = client(endpoint, "logs")
    groups = {
        "/aws/vendedlogs/states/mlops-abalone-training": BASE,
        "mlops-abalone-deploy-prd-ApiAccessLogs-AbCdEf": BASE,
        "mlops-abalone-x-deploy-prd-ApiAccessLogs-GhIjKl": f"{BASE}-x",  # project abalone-x
    }
    for group, owner in groups.items():
        logs.create_log_group(logGroupName=group, tags={"mlops:project": owner})
    kms = client(endpoint, "kms")
    key = kms.describe_key(KeyId=f"alias/{BASE}")["KeyMetadata"]["KeyId"]
    # moto drops a key's Tags from CloudFormation: tag it as the pipeline stack does.
    kms.tag_resource(
        KeyId=key,
        Tags=[
            {"TagKey": "mlops:project", "TagValue": BASE},
            {"TagKey": "mlops:component", "TagValue": "pipeline"},
        ],
    )
    account_key = kms.create_key(
        Tags=[
            {"TagKey": "mlops:project", "TagValue": BASE},
            {"TagKey": "mlops:component", "TagValue": "account"},
        ]
    )
    return {"key": key, "account_key": account_key["KeyMetadata"]["KeyId"]}


def test_destroy_deletes_in_order_reports_what_it_keeps_and_runs_again(
    endpoint: str, sandbox: Path, tmp_path: Path, project: dict[str, Any]
) -> None:
    refused = make(endpoint, sandbox, tmp_path, "destroy", "NAME=abalone")
    assert refused.returncode == 2 and "pass YES=1" in refused.stderr
    assert exists(endpoint, f"{BASE}-deploy-prd")

    proc = make(endpoint, sandbox, tmp_path, "destroy", "NAME=abalone", "YES=1")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    order = [
        f"stack {BASE}-deploy-prd: deleting",
        f"stack {BASE}-deploy-dev: deleting",
        f"stack {BASE}-deploy-prd: DELETE_COMPLETE",
        f"stack {BASE}-workflow: deleting",
        f"stack {BASE}-workflow: DELETE_COMPLETE",
        "SageMaker project abalone: deleting",
        "project abalone: deleted",
        f"stack {BASE}-pipeline does not exist: skipped",
        "Kept because they hold data",
    ]
    positions = [out.index(line) for line in order]
    assert positions == sorted(positions), out
    assert re.search(EVENT.format(id="Topic", type="AWS::SNS::Topic", status="DELETE_COMPLETE"), out)
    for name in ("workflow", "deploy-dev", "deploy-prd"):
        assert not exists(endpoint, f"{BASE}-{name}")
    for command in (
        "make destroy NAME=abalone PURGE=buckets",
        f"aws s3api delete-bucket --bucket {BUCKETS[0]}",
        f"aws ecr delete-repository --repository-name {BASE} --force",
        f"aws sagemaker delete-model-package-group --model-package-group-name {BASE}-models",
        "aws logs delete-log-group --log-group-name /mlops/abalone/codebuild",
        "aws logs delete-log-group --log-group-name /aws/vendedlogs/states/mlops-abalone-training",
        "aws logs delete-log-group --log-group-name mlops-abalone-deploy-prd-ApiAccessLogs-AbCdEf",
        f"aws kms schedule-key-deletion --key-id {project['key']} --pending-window-in-days 7",
        "make destroy NAME=abalone PURGE=1",
    ):
        assert command in out, command
    assert f"s3://{BUCKETS[1]}: 3 object versions and delete markers" in out
    assert "aws sagemaker delete-model-package --model-package-name arn:aws:sagemaker:" in out
    assert "mlops-abalone-x-deploy-prd" not in out and project["account_key"] not in out

    again = make(endpoint, sandbox, tmp_path, "destroy", "NAME=abalone", "YES=1")
    assert again.returncode == 0, again.stdout + again.stderr
    for name in ("deploy-prd", "deploy-dev", "workflow", "pipeline"):
        assert f"stack {BASE}-{name} does not exist: skipped" in again.stdout
    assert "SageMaker project abalone does not exist: skipped" in again.stdout
    assert f"aws ecr delete-repository --repository-name {BASE} --force" in again.stdout


def test_destroy_with_purge_removes_what_the_stacks_kept(
    endpoint: str, sandbox: Path, tmp_path: Path, project: dict[str, Any]
) -> None:
    proc = make(endpoint, sandbox, tmp_path, "destroy", "NAME=abalone", "YES=1", "PURGE=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"purged s3://{BUCKETS[1]}" in proc.stdout
    assert "project abalone: nothing retained" in proc.stdout
    s3 = client(endpoint, "s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert not names & set(BUCKETS)
    assert client(endpoint, "ecr").describe_repositories()["repositories"] == []
    assert client(endpoint, "sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    left = [g["logGroupName"] for g in client(endpoint, "logs").describe_log_groups()["logGroups"]]
    assert left == ["mlops-abalone-x-deploy-prd-ApiAccessLogs-GhIjKl"]
    kms = client(endpoint, "kms")
    assert kms.describe_key(KeyId=project["key"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=project["account_key"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert not [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/{BASE}"]


def test_destroy_stops_before_the_pipeline_when_a_run_stack_cannot_be_deleted(
    endpoint: str, sandbox: Path, tmp_path: Path, like_aws: None
) -> None:
    cfn = client(endpoint, "cloudformation")
    for name, template in (
        ("deploy-dev", run_stack(f"{BASE}-deploy-dev", repository=True)),
        ("workflow", run_stack(f"{BASE}-workflow")),
        ("pipeline", PIPELINE),
    ):
        cfn.create_stack(StackName=f"{BASE}-{name}", TemplateBody=json.dumps(template))
    client(endpoint, "ecr").put_image(
        repositoryName=f"{BASE}-deploy-dev-images", imageManifest=MANIFEST, imageTag="x"
    )
    proc = make(endpoint, sandbox, tmp_path, "destroy", "NAME=abalone", "YES=1")
    assert proc.returncode == 2
    assert f"stack {BASE}-deploy-prd does not exist: skipped" in proc.stdout
    assert re.search(
        EVENT.format(id="Images", type="AWS::ECR::Repository", status="DELETE_FAILED"), proc.stdout
    )
    assert f"stack {BASE}-deploy-dev: DELETE_FAILED" in proc.stderr
    assert (
        "first failure: Images (AWS::ECR::Repository) DELETE_FAILED: RepositoryNotEmptyException: The repository"
        in proc.stderr
    )
    assert "Stopped before the pipeline stack" in proc.stderr
    assert exists(endpoint, f"{BASE}-workflow") and exists(endpoint, f"{BASE}-pipeline")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("deploy", "STAGE=qa", f"BUCKET={BUCKET}"),
            "STAGE must be system, account, pipeline, workflow, dev or prd (got 'qa')",
        ),
        (("deploy", "STAGE=studio", f"BUCKET={BUCKET}"), "the studio stack is deployed by `make publish`"),
        (
            ("deploy", "STAGE=dev", f"BUCKET={BUCKET}", "PARAMS=Nope=1"),
            "PARAMS: no stack of deploy-dev has the parameter(s) Nope",
        ),
        (("package",), "error: set BUCKET="),
        (("project",), "error: set NAME="),
        (("publish", f"BUCKET={BUCKET}", "MODE=ftp"), "studio.publish_mode: Input should be 'service_catalog' or 's3'"),
        (("project", "NAME=churn", "MODE=catalog"), "studio.publish_mode"),
        (("project", "NAME=Bad_Name"), "project.name"),
        (("destroy",), "error: set NAME="),
        (("destroy", "NAME=abalone", "YES=1", "PURGE=everything"), "PURGE: unknown kind(s) everything"),
    ],
)
def test_targets_refuse_bad_input_with_a_clear_message(
    endpoint: str, sandbox: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = make(endpoint, sandbox, tmp_path, *args)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
