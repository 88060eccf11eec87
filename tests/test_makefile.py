"""The Makefile's deploy targets, run for real: `make publish` and `make deploy` call the
real AWS CLI (package, s3 cp, cloudformation deploy) against a moto server.

moto resolves a template URL to its own S3 only for ``localhost`` URLs, so the CLI talks
to the server (bound to 127.0.0.1) as ``localhost``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FAKE_CREDENTIALS, REPO, aws_cli

# moto's CloudFormation skips resource types it does not implement (Service Catalog,
# API Gateway account settings) with a warning; the assertions check what it does create.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* not supported by moto:UserWarning"
)

BUCKET = "mlops-templates-artifacts"
DEV_PARAMS = (
    "ImageUri=111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-abalone:run-1 "
    "ModelDataUrl=s3://artifacts/runs/run-1/model/model.tar.gz "
    "ExecutionRoleArn=arn:aws:iam::111122223333:role/mlops-abalone-sagemaker "
    "KmsKeyArn=arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
)


def _reset(server: str) -> None:
    """Empty moto's state: these stacks share names with other modules' stacks."""
    request = urllib.request.Request(f"{server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


@pytest.fixture(scope="module")
def endpoint(moto_server: str) -> Iterator[str]:
    url = moto_server.replace("127.0.0.1", "localhost")
    _reset(moto_server)
    aws_cli(url, "s3", "mb", f"s3://{BUCKET}")
    yield url
    _reset(moto_server)


def make(endpoint: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_PAGER": ""}
    env.pop("AWS_PROFILE", None)
    return subprocess.run(
        ["make", "--no-print-directory", f"PACKAGED={tmp}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def stack(endpoint: str, name: str) -> dict:
    out = aws_cli(endpoint, "cloudformation", "describe-stacks", "--stack-name", name, "--output", "json")
    return json.loads(out.stdout)["Stacks"][0]


def test_deploy_dev_packages_and_deploys_with_config_and_command_line_parameters(
    endpoint: str, tmp_path: Path
) -> None:
    proc = make(endpoint, tmp_path, "deploy", "STAGE=dev", f"BUCKET={BUCKET}", f"PARAMS={DEV_PARAMS}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"packaged {tmp_path}/deploy-dev.yaml" in proc.stdout
    created = stack(endpoint, "mlops-abalone-deploy-dev")
    assert created["StackStatus"] == "CREATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in created["Parameters"]}
    assert params["ModelDataUrl"] == "s3://artifacts/runs/run-1/model/model.tar.gz"

    configs = json.loads(aws_cli(endpoint, "sagemaker", "list-endpoint-configs", "--output", "json").stdout)
    names = [c["EndpointConfigName"] for c in configs["EndpointConfigs"]]
    assert names
    described = json.loads(
        aws_cli(endpoint, "sagemaker", "describe-endpoint-config", "--endpoint-config-name", names[0],
                "--output", "json").stdout
    )
    assert described["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    assert described["KmsKeyId"] == params["KmsKeyArn"]


def test_publish_uploads_the_pipeline_product_and_deploys_the_studio_stack(
    endpoint: str, tmp_path: Path
) -> None:
    proc = make(endpoint, tmp_path, "publish", f"BUCKET={BUCKET}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    created = stack(endpoint, "mlops-abalone-studio")
    assert created["StackStatus"] == "CREATE_COMPLETE"
    url = {p["ParameterKey"]: p["ParameterValue"] for p in created["Parameters"]}["PipelineTemplateUrl"]
    prefix = f"https://{BUCKET}.s3.us-east-1.amazonaws.com/"
    assert url.startswith(prefix)
    uploaded = aws_cli(endpoint, "s3", "cp", f"s3://{BUCKET}/{url.removeprefix(prefix)}", "-").stdout
    assert uploaded == (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    assert "SageMakerProjectName" in uploaded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deploy", "STAGE=qa", f"BUCKET={BUCKET}"), "STAGE must be dev, prd or pipeline (got 'qa')"),
        (("package",), "error: set BUCKET="),
        (("project",), "error: set NAME="),
    ],
)
def test_targets_refuse_bad_input_with_a_clear_message(
    endpoint: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = make(endpoint, tmp_path, *args)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
