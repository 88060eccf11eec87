"""``mlops-templates doctor`` against moto: one test per check, for a pass and each failure.

Everything runs in-process under ``moto.mock_aws``. The few calls moto does not
implement are answered by a botocore ``before-call`` handler registered for that one
operation on the session doctor uses (see :data:`MOTO_GAPS`); every other call goes to
moto. No test reaches AWS: conftest sets fake credentials, and the no-credentials test
points the endpoint at a closed local port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.cloudformation.models import cloudformation_backends
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT
from moto.s3.models import s3_backends

from mlops_templates import cli, doctor
from mlops_templates import config as config_mod

from .conftest import EXAMPLE_CONFIG

REGION = "us-east-1"
BUCKET = "my-deploy-bucket"
BASE = "mlops-abalone"
CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
LEGACY_CONNECTION = (
    "arn:aws:codestar-connections:eu-west-1:123456789012:connection/11111111-2222-3333-4444-555555555555"
)

#: Operations moto 5.2 does not implement, answered by a stub (``service-id.Operation``):
#: - sagemaker GetSagemakerServicecatalogPortfolioStatus: NotImplementedError in moto;
#: - service-quotas ListServiceQuotas: NotImplementedError; ListAWSDefaultServiceQuotas:
#:   moto has no SageMaker quotas (NoSuchResourceException);
#: - codeconnections / codestar-connections GetConnection: moto answers 404 "Not yet implemented";
#: - sagemaker ListMonitoringSchedules: NotImplementedError in moto.
MOTO_GAPS = (
    "sagemaker.GetSagemakerServicecatalogPortfolioStatus",
    "service-quotas.ListServiceQuotas",
    "service-quotas.ListAWSDefaultServiceQuotas",
    "codeconnections.GetConnection",
    "codestar-connections.GetConnection",
    "sagemaker.ListMonitoringSchedules",
)

Stub = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any] | None]


def quota(name: str, value: float, code: str = "L-12345678", adjustable: bool = True) -> dict[str, Any]:
    return {
        "QuotaName": name,
        "Value": value,
        "QuotaCode": code,
        "Adjustable": adjustable,
        "ServiceCode": "sagemaker",
    }


HEALTHY_QUOTAS = [
    quota("ml.m5.xlarge for training job usage", 4, "L-TRAIN"),
    quota("ml.m5.xlarge for processing job usage", 4, "L-PROC"),
    quota("ml.m5.large for endpoint usage", 20, "L-ENDPT"),
]


def error(code: str, message: str, status: int = 400) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}


def healthy_stubs() -> dict[str, Stub]:
    return {
        "sagemaker.GetSagemakerServicecatalogPortfolioStatus": {"Status": "Enabled"},
        "service-quotas.ListServiceQuotas": {"Quotas": HEALTHY_QUOTAS},
        "service-quotas.ListAWSDefaultServiceQuotas": {"Quotas": []},
        "codeconnections.GetConnection": {
            "Connection": {
                "ConnectionName": "github",
                "ConnectionArn": CONNECTION,
                "ProviderType": "GitHub",
                "ConnectionStatus": "AVAILABLE",
            },
        },
        "codestar-connections.GetConnection": error("ResourceNotFoundException", "not this one"),
        "sagemaker.ListMonitoringSchedules": {"MonitoringScheduleSummaries": []},
    }


def _answer(stubs: dict[str, Stub], calls: list[str]) -> Callable[..., Any]:
    def handler(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        key = f"{model.service_model.service_id.hyphenize()}.{model.name}"
        if key not in stubs:
            return None  # moto answers
        calls.append(key)
        stub = stubs[key]
        body = stub(params) if callable(stub) else stub  # ``params``: the serialized request
        if body is None:
            return None  # this request is moto's after all
        status = body.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        return AWSResponse("https://stub.invalid", status, {}, None), json.loads(json.dumps(body))

    return handler


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, Stub], list[str]]]:
    """moto for every call, except the moto gaps and a test's injected errors (``table``).

    The handlers go on the session doctor makes (``doctor.session``), for these operations only.
    """
    table, calls = healthy_stubs(), []
    original = doctor.session

    def session(config: config_mod.Config, region: str | None = None) -> boto3.Session:
        made = original(config, region)
        for key in MOTO_GAPS + tuple(k for k in table if k not in MOTO_GAPS):
            made.events.register(f"before-call.{key}", _answer(table, calls))
        return made

    monkeypatch.setattr(doctor, "session", session)
    with mock_aws():
        yield table, calls


@pytest.fixture
def account(stubs: tuple[dict[str, Stub], list[str]]) -> tuple[dict[str, Stub], list[str]]:
    """A healthy account: logging role set, deployment bucket in the region."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="apigw-logs", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return stubs


def doctor_run(
    capsys: pytest.CaptureFixture[str], *args: str, config: Path = EXAMPLE_CONFIG
) -> tuple[int, str]:
    code = cli.main(["-c", str(config), "doctor", "--bucket", BUCKET, "--connection-arn", CONNECTION, *args])
    return code, capsys.readouterr().out


def line(out: str, start: str) -> str:
    """The report line starting with ``start`` (status and name), with its fix lines."""
    lines = out.splitlines()
    for number, text in enumerate(lines):
        if text.startswith(start):
            block = [text]
            for more in lines[number + 1 :]:
                if not more.startswith("      "):
                    break
                block.append(more)
            return "\n".join(block)
    raise AssertionError(f"no line starting {start!r} in:\n{out}")


def write_config(tmp_path: Path, **sections: Any) -> Path:
    """The example config with ``a__b=value`` settings replaced."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for dotted, value in sections.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "mlops.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- the whole report ----------------------------------------------------------------------


def test_healthy_account_passes_and_exits_0(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor_run(capsys)
    assert code == 0, out
    assert "FAIL" not in out and "Traceback" not in out
    assert out.splitlines()[-1].endswith("0 failed, 0 warned, 1 skipped")  # Model Monitor: builtin
    for start in (
        f"PASS  credentials and region: account {ACCOUNT}, region {REGION}",
        "PASS  SageMaker projects:",
        "PASS  API Gateway logging role:",
        "PASS  source connection:",
        "PASS  quota ml.m5.large for endpoint usage:",
        "PASS  leftover S3 buckets: none",
        "PASS  leftover stacks: none",
        "PASS  deployment bucket:",
        "SKIP  Model Monitor: monitoring.engine is builtin: the project's own monitor job does not use Model Monitor",
    ):
        line(out, start)


def test_doctor_is_imported_only_by_its_command() -> None:
    code = "import sys, mlops_templates.cli; print('boto3' in sys.modules, 'mlops_templates.doctor' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False False"


# -- 1. credentials and region -------------------------------------------------------------


def test_no_credentials_fails_and_skips_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never AWS, even if a credential turned up
    code, out = doctor_run(capsys)
    assert code == 1
    text = line(out, "FAIL  credentials and region: NoCredentialsError")
    assert "fix: configure credentials: aws configure, aws sso login" in text
    assert "SKIP  SageMaker projects: needs working credentials" in out
    assert "SKIP  deployment bucket: needs working credentials" in out
    assert "Traceback" not in out


def test_region_without_image_table_entry_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor_run(capsys, "--region", "ap-southeast-5")
    assert code == 1
    text = line(out, "FAIL  credentials and region:")
    assert "the templates have no image table entry for ap-southeast-5" in text and "us-east-1" in text


# -- 2. SageMaker projects -----------------------------------------------------------------


def test_sagemaker_projects_disabled_fails_with_the_enable_command(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["sagemaker.GetSagemakerServicecatalogPortfolioStatus"] = {"Status": "Disabled"}
    code, out = doctor_run(capsys)
    assert code == 1
    assert line(out, "FAIL  SageMaker projects:") == (
        "FAIL  SageMaker projects: the SageMaker Service Catalog portfolio is Disabled: Studio cannot create projects\n"
        f"      fix: aws sagemaker enable-sagemaker-servicecatalog-portfolio --region {REGION}"
    )


def test_denied_call_names_the_missing_permission(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["sagemaker.GetSagemakerServicecatalogPortfolioStatus"] = error(
        "AccessDeniedException", "not authorized", 403
    )
    code, out = doctor_run(capsys)
    assert code == 0, "a check doctor cannot make is a warning"
    text = line(out, "WARN  SageMaker projects: AccessDeniedException")
    assert "the caller lacks sagemaker:GetSagemakerServicecatalogPortfolioStatus" in text
    assert "fix: grant sagemaker:GetSagemakerServicecatalogPortfolioStatus" in text


def test_throttling_is_a_line_not_a_traceback(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["sagemaker.GetSagemakerServicecatalogPortfolioStatus"] = error(
        "ThrottlingException", "Rate exceeded"
    )
    code, out = doctor_run(capsys)
    assert code == 0
    assert "WARN  SageMaker projects: ThrottlingException: AWS throttled" in out
    assert "fix: run doctor again in a minute" in out and "Traceback" not in out


# -- 3. API Gateway logging role -----------------------------------------------------------


def test_api_gateway_without_logging_role_warns(stubs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    code, out = doctor_run(capsys)
    assert code == 0
    text = line(out, "WARN  API Gateway logging role: the account has no API Gateway CloudWatch Logs role")
    assert "aws apigateway update-account" in text and "path=/cloudwatchRoleArn" in text


def test_api_gateway_logging_role_that_is_gone_warns(stubs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    gone = f"arn:aws:iam::{ACCOUNT}:role/deleted-role"
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": gone}]
    )
    code, out = doctor_run(capsys)
    assert code == 0
    assert (
        f"WARN  API Gateway logging role: cloudwatchRoleArn {gone} names a role that no longer exists" in out
    )


def test_api_gateway_logging_role_must_trust_api_gateway(
    stubs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = boto3.client("iam").create_role(RoleName="wrong", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )
    _, out = doctor_run(capsys)
    assert f"WARN  API Gateway logging role: {arn} does not trust apigateway.amazonaws.com" in out


# -- 4. source connection ------------------------------------------------------------------


def test_pending_connection_fails_with_the_console_handshake(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["codeconnections.GetConnection"]["Connection"]["ConnectionStatus"] = "PENDING"  # type: ignore[index]
    code, out = doctor_run(capsys)
    assert code == 1
    assert line(out, "FAIL  source connection:") == (
        "FAIL  source connection: github (GitHub) is PENDING\n"
        "      fix: complete the handshake in the console: "
        "https://console.aws.amazon.com/codesuite/settings/connections?region=us-east-1 (Update pending connection)"
    )


def test_missing_connection_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["codeconnections.GetConnection"] = error("ResourceNotFoundException", "no such connection")
    code, out = doctor_run(capsys)
    assert code == 1
    assert "aws codeconnections create-connection --provider-type GitHub" in line(
        out, f"FAIL  source connection: no connection {CONNECTION}"
    )


def test_connection_of_another_account_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["codeconnections.GetConnection"] = error("AccessDeniedException", "not authorized", 403)
    foreign = CONNECTION.replace("123456789012", "111122223333")
    code, out = doctor_run(capsys, "--connection-arn", foreign)
    assert code == 1
    assert (
        f"FAIL  source connection: no connection {foreign} readable from account {ACCOUNT} "
        "(it belongs to 111122223333)"
    ) in out


def test_codestar_connections_arn_uses_its_own_client_and_region(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    table, calls = account
    table["codestar-connections.GetConnection"] = {
        "Connection": {
            "ConnectionName": "legacy",
            "ProviderType": "Bitbucket",
            "ConnectionStatus": "AVAILABLE",
        },
    }
    code, out = doctor_run(capsys, "--connection-arn", LEGACY_CONNECTION)
    assert code == 0, out
    assert "PASS  source connection: legacy (Bitbucket) is AVAILABLE" in out
    assert "codestar-connections.GetConnection" in calls and "codeconnections.GetConnection" not in calls


def test_connection_check_skipped_for_codecommit(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, pipeline__source={"provider": "codecommit", "repository": "abalone"})
    code, out = doctor_run(capsys, config=cfg)
    assert code == 0
    assert "SKIP  source connection: pipeline.source.provider is codecommit" in out


# -- 5. service quotas ---------------------------------------------------------------------


def test_quota_needs_count_the_blue_green_second_fleet(example_config: config_mod.Config) -> None:
    needs = {need.quota: need for need in doctor.quota_needs(example_config)}
    endpoint = needs["ml.m5.large for endpoint usage"]
    assert endpoint.count == 1 + 6 + 6
    assert "a second fleet of 6 during a blue/green update" in endpoint.why
    assert needs["ml.m5.xlarge for training job usage"].count == 1
    assert needs["ml.m5.xlarge for processing job usage"].count == 2


def test_too_low_quota_fails_with_the_increase_request(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["service-quotas.ListServiceQuotas"] = {
        "Quotas": [*HEALTHY_QUOTAS[:2], quota("ml.m5.large for endpoint usage", 4, "L-ENDPT")],
    }
    code, out = doctor_run(capsys)
    assert code == 1
    text = line(out, "FAIL  quota ml.m5.large for endpoint usage: applied value 4, needs 13")
    assert "a second fleet of 6 during a blue/green update" in text
    assert (
        "fix: aws service-quotas request-service-quota-increase --service-code sagemaker "
        f"--quota-code L-ENDPT --desired-value 13 --region {REGION}"
    ) in text


def test_quotas_are_paginated_and_fall_back_to_defaults(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def pages(request: dict[str, Any]) -> dict[str, Any]:
        if json.loads(request["body"]).get("NextToken") == "page-2":
            return {"Quotas": [HEALTHY_QUOTAS[1]]}
        return {"Quotas": [HEALTHY_QUOTAS[0]], "NextToken": "page-2"}

    account[0]["service-quotas.ListServiceQuotas"] = pages
    account[0]["service-quotas.ListAWSDefaultServiceQuotas"] = {
        "Quotas": [quota("ml.m5.large for endpoint usage", 20)]
    }
    code, out = doctor_run(capsys)
    assert code == 0, out
    assert "PASS  quota ml.m5.xlarge for processing job usage: applied value 4, needs 2" in out
    assert "PASS  quota ml.m5.large for endpoint usage: AWS default value 20, needs 13" in out


def test_unknown_quota_warns(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["service-quotas.ListServiceQuotas"] = {"Quotas": HEALTHY_QUOTAS[:2]}
    code, out = doctor_run(capsys)
    assert code == 0
    assert "WARN  quota ml.m5.large for endpoint usage: no SageMaker quota of that name in us-east-1" in out


def test_denied_quota_listing_warns_once(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account[0]["service-quotas.ListServiceQuotas"] = error("AccessDeniedException", "denied", 403)
    code, out = doctor_run(capsys)
    assert code == 0
    assert (
        "WARN  SageMaker quotas: AccessDeniedException: the caller lacks servicequotas:ListServiceQuotas"
        in out
    )


# -- 6. leftovers --------------------------------------------------------------------------

ART_BUCKET = f"{BASE}-{ACCOUNT}-{REGION}-art"


def _tag_bucket(name: str, stack: str) -> None:
    # CloudFormation sets aws:cloudformation:* tags; moto's CloudFormation does not, and its
    # S3 API (like AWS's) refuses aws: tags from callers, so the tag goes on moto's backend.
    s3_backends[ACCOUNT]["global"].put_bucket_tagging(name, {doctor.STACK_TAG: stack})


def test_leftover_bucket_without_owner_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=ART_BUCKET)
    code, out = doctor_run(capsys)
    assert code == 1
    text = line(out, f"FAIL  leftover S3 buckets: bucket {ART_BUCKET} exists and no stack owns it")
    assert "creating it again fails with AlreadyExists" in text
    assert f"aws s3api delete-bucket --bucket {ART_BUCKET} --region {REGION}" in text
    assert "make destroy NAME=abalone PURGE=1" in text


def test_leftover_bucket_name_taken_elsewhere_warns(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # moto has no buckets of other accounts: HeadBucket's 403 for one is injected.
    def head_bucket(request: dict[str, Any]) -> dict[str, Any] | None:
        return error("403", "Forbidden", 403) if ART_BUCKET in json.dumps(request, default=str) else None

    account[0]["s3.HeadBucket"] = head_bucket
    code, out = doctor_run(capsys)
    assert code == 0, "doctor cannot tell: a warning"
    text = line(
        out, f"WARN  leftover S3 buckets: bucket {ART_BUCKET} exists, but 403: the caller lacks s3:ListBucket"
    )
    assert "or another account owns the name" in text


def test_leftover_bucket_of_a_live_stack_passes(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    template = {"Resources": {"Art": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": ART_BUCKET}}}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"{BASE}-pipeline", TemplateBody=json.dumps(template)
    )
    _tag_bucket(ART_BUCKET, f"{BASE}-pipeline")
    code, out = doctor_run(capsys)
    assert code == 0, out
    assert (
        f"PASS  leftover S3 buckets: bucket {ART_BUCKET} exists, owned by stack {BASE}-pipeline (CREATE_COMPLETE)"
        in out
    )
    assert (
        f"PASS  leftover stacks: stack {BASE}-pipeline is live (CREATE_COMPLETE): a deploy updates it" in out
    )


def test_bucket_retained_by_a_deleted_stack_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=ART_BUCKET)
    _tag_bucket(ART_BUCKET, "SC-123456789012-pp-abcdefgh")
    code, out = doctor_run(capsys)
    assert code == 1
    assert "retained by stack SC-123456789012-pp-abcdefgh, which no longer exists" in out


def test_leftover_repository_group_endpoint_and_log_group_fail(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("ecr", region_name=REGION).create_repository(repositoryName=BASE)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=f"{BASE}-models")
    sagemaker.create_model(
        ModelName="m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", PrimaryContainer={"Image": "img"}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=f"{BASE}-prd", EndpointConfigName="c")
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=f"/mlops/{'abalone'}/codebuild")
    code, out = doctor_run(capsys)
    assert code == 1
    assert f"aws ecr delete-repository --repository-name {BASE} --force --region {REGION}" in line(
        out, f"FAIL  leftover ECR repository: repository {BASE} exists and no stack owns it"
    )
    assert f"aws sagemaker delete-model-package-group --model-package-group-name {BASE}-models" in line(
        out, f"FAIL  leftover model package group: model package group {BASE}-models exists"
    )
    assert f"aws sagemaker delete-endpoint --endpoint-name {BASE}-prd --region {REGION}" in line(
        out, f"FAIL  leftover endpoints: endpoint {BASE}-prd exists"
    )
    # Log groups never block a re-creation (their names carry their stack's ID): listed only.
    assert "PASS  kept log groups: 1 log group(s) of this project's stacks: /mlops/abalone/codebuild" in out


def test_leftovers_owned_by_live_stacks_pass(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    stack = f"{BASE}-pipeline"
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=stack, TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    )
    owned = [{"Key": doctor.STACK_TAG, "Value": stack}]
    boto3.client("ecr", region_name=REGION).create_repository(repositoryName=BASE, tags=owned)
    boto3.client("sagemaker", region_name=REGION).create_model_package_group(
        ModelPackageGroupName=f"{BASE}-models", Tags=owned
    )
    code, out = doctor_run(capsys)
    assert code == 0, out
    for kind, what in (
        ("ECR repository", f"repository {BASE}"),
        ("model package group", f"model package group {BASE}-models"),
    ):
        assert f"PASS  leftover {kind}: {what} exists, owned by stack {stack} (CREATE_COMPLETE)" in out


def test_leftovers_of_another_project_name(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("ecr", region_name=REGION).create_repository(repositoryName="mlops-churn")
    code, out = doctor_run(capsys, "--project", "churn")
    assert code == 1
    assert "make destroy NAME=churn PURGE=1" in line(
        out, "FAIL  leftover ECR repository: repository mlops-churn exists"
    )
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "doctor", "--project", "Not_A_Name"]) == 2


def test_stack_in_rollback_complete_must_be_deleted(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    stack = f"{BASE}-deploy-dev"
    stack_id = boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=stack, TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    )["StackId"]
    # moto never rolls a create back, so the failed create's final state is set on its backend.
    cloudformation_backends[ACCOUNT][REGION].stacks[stack_id].status = "ROLLBACK_COMPLETE"
    code, out = doctor_run(capsys)
    assert code == 1
    text = line(out, f"FAIL  leftover stacks: stack {stack} is ROLLBACK_COMPLETE")
    assert "must be deleted before it can be created again" in text
    assert f"fix: aws cloudformation delete-stack --stack-name {stack} --region {REGION}" in text


# -- 7. deployment bucket ------------------------------------------------------------------


def test_missing_deployment_bucket_fails(stubs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor_run(capsys)
    assert code == 1
    assert line(out, "FAIL  deployment bucket:") == (
        f"FAIL  deployment bucket: bucket {BUCKET} does not exist\n"
        f"      fix: aws s3 mb s3://{BUCKET} --region {REGION}"
    )


def test_deployment_bucket_in_another_region_fails(stubs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    code, out = doctor_run(capsys)
    assert code == 1
    assert (
        f"FAIL  deployment bucket: bucket {BUCKET} is in eu-west-1, the deployment region is {REGION}" in out
    )


def test_deployment_bucket_writable_and_probe_removed(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("s3", region_name=REGION).put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )
    code, out = doctor_run(capsys)
    assert code == 0
    assert f"PASS  deployment bucket: bucket {BUCKET} is in {REGION} and writable" in out
    versions = boto3.client("s3", region_name=REGION).list_object_versions(Bucket=BUCKET)
    assert not versions.get("Versions") and not versions.get("DeleteMarkers"), "the probe must leave nothing"


def test_unwritable_deployment_bucket_fails(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # moto does not evaluate IAM or bucket policies: the denied PutObject is injected.
    account[0]["s3.PutObject"] = error("AccessDenied", "Access Denied", 403)
    code, out = doctor_run(capsys)
    assert code == 1
    text = line(
        out,
        f"FAIL  deployment bucket: bucket {BUCKET} is not writable: AccessDenied: the caller lacks s3:PutObject",
    )
    assert "fix: grant s3:PutObject" in text


def test_empty_make_variables_mean_the_defaults(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # What `make doctor` runs when BUCKET, NAME and CONNECTION_ARN are unset.
    argv = ["-c", str(EXAMPLE_CONFIG), "doctor", "--bucket", "", "--project", "", "--connection-arn", ""]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "SKIP  deployment bucket: no --bucket given" in out
    assert f"PASS  leftover ECR repository: none ({BASE})" in out
    assert "PASS  source connection: github (GitHub) is AVAILABLE" in out  # pipeline.source.connection_arn


# -- 8. Model Monitor ----------------------------------------------------------------------

CLOSED = "Amazon SageMaker Model Monitor is no longer available to new customers"


def model_monitor_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, monitoring__engine="model_monitor")


def test_model_monitor_is_not_probed_for_the_builtin_engine(
    account: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["sagemaker.ListMonitoringSchedules"] = error("AccessDeniedException", CLOSED, 403)
    code, out = doctor_run(capsys)
    assert code == 0
    line(out, "SKIP  Model Monitor: monitoring.engine is builtin")


def test_model_monitor_answers_for_the_model_monitor_engine(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor_run(capsys, config=model_monitor_config(tmp_path))
    assert code == 0, out
    line(out, "PASS  Model Monitor: Model Monitor API answers")


def test_model_monitor_unavailable_fails_where_the_config_uses_it(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["sagemaker.ListMonitoringSchedules"] = error("ValidationException", CLOSED)
    code, out = doctor_run(capsys, config=model_monitor_config(tmp_path))
    assert code == 1
    text = line(out, "FAIL  Model Monitor: Model Monitor is not available to this account (ValidationException")
    assert "monitoring.engine model_monitor uses it" in text and "set monitoring.engine: builtin" in text


def test_model_monitor_probe_denied_for_other_reasons_warns(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account[0]["sagemaker.ListMonitoringSchedules"] = error(
        "AccessDeniedException", "not authorized to perform", 403
    )
    code, out = doctor_run(capsys, config=model_monitor_config(tmp_path))
    assert code == 0
    assert (
        "WARN  Model Monitor: AccessDeniedException: the caller lacks sagemaker:ListMonitoringSchedules"
        in out
    )


# -- 9. the CI orchestrator's OIDC provider ---------------------------------------------------

GITHUB_ISSUER = "token.actions.githubusercontent.com"


def github_config(tmp_path: Path, **ci: Any) -> Path:
    return write_config(tmp_path, pipeline__orchestrator="github", pipeline__ci=ci)


def test_codepipeline_has_no_oidc_check(account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor_run(capsys)
    assert code == 0 and "CI OIDC provider" not in out


def test_a_missing_provider_is_one_the_ci_stack_creates(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor_run(capsys, config=github_config(tmp_path))
    assert code == 0, out
    line(out, f"PASS  CI OIDC provider: no provider for https://{GITHUB_ISSUER} yet: the ci-oidc stack creates it")
    assert "SKIP  source connection: pipeline.orchestrator is github" in out


def test_an_existing_provider_must_be_named_in_the_config(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = boto3.client("iam").create_open_id_connect_provider(
        Url=f"https://{GITHUB_ISSUER}", ClientIDList=["sts.amazonaws.com"]
    )["OpenIDConnectProviderArn"]
    code, out = doctor_run(capsys, config=github_config(tmp_path))
    assert code == 1
    text = line(out, f"FAIL  CI OIDC provider: the account already has {arn}")
    assert f"fix: set pipeline.ci.oidc_provider_arn: {arn}" in text
    code, out = doctor_run(capsys, config=github_config(tmp_path, oidc_provider_arn=arn))
    assert code == 0, out
    line(out, f"PASS  CI OIDC provider: {arn} exists and accepts audience sts.amazonaws.com")


def test_a_configured_provider_must_exist_and_accept_the_audience(
    account: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB_ISSUER}"
    code, out = doctor_run(capsys, config=github_config(tmp_path, oidc_provider_arn=missing))
    assert code == 1
    assert "remove the setting" in line(out, f"FAIL  CI OIDC provider: pipeline.ci.oidc_provider_arn {missing}")
    arn = boto3.client("iam").create_open_id_connect_provider(
        Url=f"https://{GITHUB_ISSUER}", ClientIDList=["other-audience"]
    )["OpenIDConnectProviderArn"]
    code, out = doctor_run(capsys, config=github_config(tmp_path, oidc_provider_arn=arn))
    assert code == 1
    text = line(out, f"FAIL  CI OIDC provider: {arn} does not accept the CI job's audience sts.amazonaws.com")
    assert "aws iam add-client-id-to-open-id-connect-provider" in text and "--client-id sts.amazonaws.com" in text
