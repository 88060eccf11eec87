"""The model registry drives production: the registry rule's pattern, the registry
commands and the promotion, against moto's SageMaker model registry.

moto (5.2) stands in for SageMaker's CreateModelPackage, UpdateModelPackage,
ListModelPackages and DescribeModelPackage, and its EventBridge pattern engine (the one its
rules match events with: moto's TestEventPattern answers without a ``Result`` in this
version, so the tests call the engine, ``EventPattern.load(...).matches_event``). Two
stubs, each named where it is used: moto's UpdateModelPackage drops the
CustomerMetadataProperties a call does not name (SageMaker keeps them), so
``keep_metadata`` restores SageMaker's behaviour; and the promotion's CloudFormation
deployment is replaced by a fake that records the deploy-prd parameters it would deploy
(the deployer itself, ``deploy.deploy_stack``, is tested in test_deploy.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern
from moto.sagemaker import models as sagemaker_models

from mlops_templates import cli, config, contract, promotion, registry
from mlops_templates.ci import steps
from mlops_templates.stacks import pipeline
from mlops_templates.stacks.pipeline import promotion as promotion_stack

CFG = config.parse({})
GROUP = registry.group_name(CFG)
BUCKET = "mlops-abalone-art"
ENV = {
    "ARTIFACT_BUCKET": BUCKET,
    "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/mlops-abalone-cloudformation",
    "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:mlops-abalone-notifications",
}


def event(group: str = GROUP, status: str = "Approved", detail_type: str = promotion_stack.DETAIL_TYPE) -> dict[str, Any]:
    """A model package state change as SageMaker sends it (the EventBridge event's
    ``detail`` is the model package's description)."""
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/3"
    return {
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
        "source": "aws.sagemaker", "account": "123456789012", "time": "2026-11-30T12:00:00Z",
        "region": "us-east-1", "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group, "ModelPackageVersion": 3, "ModelPackageArn": arn,
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": status,
            "ApprovalDescription": "drifted on the holdout", "CertifyForMarketplace": False,
        },
    }


def _pattern(logical_id: str) -> str:
    """The rule's pattern as deployed: the project's name filled into its Fn::Sub."""
    template = json.loads(pipeline.build(CFG).to_json())
    text = json.dumps(template["Resources"][logical_id]["Properties"]["EventPattern"])
    return text.replace('{"Fn::Sub": "mlops-${SageMakerProjectName}-models"}', json.dumps(GROUP))


@pytest.mark.parametrize(
    ("rule", "sent", "matches"),
    [
        (promotion_stack.REGISTRY_RULE, event(), True),
        (promotion_stack.REGISTRY_RULE, event(status="Rejected"), True),
        (promotion_stack.REGISTRY_RULE, event(status="PendingManualApproval"), True),
        (promotion_stack.REGISTRY_RULE, event(group="mlops-other-models"), False),
        (promotion_stack.REGISTRY_RULE, event(detail_type="SageMaker Model State Change"), False),
        (promotion_stack.REJECTED_RULE, event(status="Rejected"), True),
        (promotion_stack.REJECTED_RULE, event(status="Approved"), False),
        (promotion_stack.REJECTED_RULE, event(group="mlops-other-models", status="Rejected"), False),
    ],
)
def test_the_registry_rules_match_registry_events_of_the_group_only(rule: str, sent: dict[str, Any], matches: bool) -> None:
    assert EventPattern.load(_pattern(rule)).matches_event(sent) is matches


def test_the_registry_rule_starts_the_promote_project_with_the_events_role() -> None:
    template = json.loads(pipeline.build(CFG).to_json())
    (target,) = template["Resources"][promotion_stack.REGISTRY_RULE]["Properties"]["Targets"]
    assert target["Arn"]["Fn::Sub"].endswith(":project/mlops-${SageMakerProjectName}-promote")
    assert template["Resources"][promotion_stack.PROMOTE_PROJECT]["Properties"]["Name"] == {
        "Fn::Sub": "mlops-${SageMakerProjectName}-promote"
    }
    assert target["RoleArn"] == {"Fn::GetAtt": [pipeline.EVENTS_ROLE, "Arn"]}
    spec = template["Resources"][promotion_stack.PROMOTE_PROJECT]["Properties"]
    assert "registry promote" in spec["Source"]["BuildSpec"]
    assert "ConcurrentBuildLimit" not in spec  # a build at the limit would fail, losing its event


@pytest.fixture
def keep_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub: SageMaker keeps CustomerMetadataProperties an UpdateModelPackage does not name."""
    backend = sagemaker_models.SageMakerModelBackend
    original = backend.update_model_package

    def update(self: Any, model_package_arn: str, **kwargs: Any) -> str:
        package = self.model_packages[self.model_package_name_mapping.get(model_package_arn, model_package_arn)]
        if not kwargs.get("customer_metadata_properties"):
            kwargs["customer_metadata_properties"] = package.customer_metadata_properties
        return original(self, model_package_arn, **kwargs)

    monkeypatch.setattr(backend, "update_model_package", update)


@pytest.fixture
def sm(keep_metadata: None) -> Any:
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model_package_group(ModelPackageGroupName=GROUP)
        yield client


def register(sm: Any, run: str, status: str = registry.PENDING) -> str:
    """A version as the training workflow registers it (outcome.model_package_parameters)."""
    spec = {"ContentType": "application/json"}
    return sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": f"repo:{run}", "ModelDataUrl": f"s3://{BUCKET}/runs/{run}/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelMetrics={"ModelQuality": {"Statistics": {**spec, "S3Uri": f"s3://{BUCKET}/runs/{run}/evaluation.json"}}},
        DriftCheckBaselines={"ModelDataQuality": {
            "Statistics": {**spec, "S3Uri": f"s3://{BUCKET}/runs/{run}/statistics.json"},
            "Constraints": {**spec, "S3Uri": f"s3://{BUCKET}/runs/{run}/constraints.json"},
        }},
        CustomerMetadataProperties={"RunId": run, "Attempt": "a1", "ModelName": f"m-{run}", "TrainingImage": "x"},
    )["ModelPackageArn"]


def test_newest_approved_is_the_newest_approved_version(sm: Any) -> None:
    assert registry.newest_approved(sm, GROUP) is None
    register(sm, "run-1", registry.APPROVED)
    register(sm, "run-2", registry.APPROVED)
    register(sm, "run-3")  # pending: not for production
    found = registry.newest_approved(sm, GROUP)
    assert found is not None and found["ModelPackageVersion"] == 2
    assert registry.deploy_values(found) == {
        contract.IMAGE_URI: "repo:run-2",
        contract.MODEL_DATA_URL: f"s3://{BUCKET}/runs/run-2/model.tar.gz",
        contract.BASELINE_STATISTICS_URI: f"s3://{BUCKET}/runs/run-2/statistics.json",
        contract.BASELINE_CONSTRAINTS_URI: f"s3://{BUCKET}/runs/run-2/constraints.json",
        registry.RUN_ID: "run-2",
    }


def test_approve_and_reject_set_the_status_and_say_why(sm: Any) -> None:
    register(sm, "run-1")
    registry.approve(sm, GROUP, "1", "Approved by someone")
    described = registry.describe(sm, registry.find(sm, GROUP, 1)["ModelPackageArn"])
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == ("Approved", "Approved by someone")
    registry.reject(sm, GROUP, 1, "latency regression")
    described = registry.describe(sm, described["ModelPackageArn"])
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == ("Rejected", "latency regression")


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda sm: registry.approve(sm, GROUP, "7", "x"), 'VERSION=7: model package group mlops-abalone-models has no version 7 \\(versions: 1\\)'),
        (lambda sm: registry.approve(sm, GROUP, "two", "x"), "VERSION=two: give a model package version number"),
        (lambda sm: registry.reject(sm, GROUP, "1", " "), r"REASON=\(empty\): say why version 1 is rejected"),
        (lambda sm: registry.rollback(sm, GROUP, "x"), "has no approved version: nothing to roll back from"),
    ],
)
def test_bad_input_names_the_field_and_value(sm: Any, call: Any, says: str) -> None:
    register(sm, "run-1")
    with pytest.raises(registry.RegistryError, match=says):
        call(sm)


def test_rollback_registers_the_previous_approved_artifact_as_a_new_approved_version(sm: Any) -> None:
    register(sm, "run-1", registry.APPROVED)
    register(sm, "run-2", registry.APPROVED)
    arn, previous = registry.rollback(sm, GROUP, "bad canary")
    assert previous["ModelPackageVersion"] == 1
    new = registry.describe(sm, arn)
    assert new["ModelPackageVersion"] == 3 and new["ModelApprovalStatus"] == "Approved"
    original = registry.describe(sm, previous["ModelPackageArn"])
    for key in ("InferenceSpecification", "ModelMetrics", "DriftCheckBaselines"):
        assert new[key] == original[key], key
    assert new["CustomerMetadataProperties"] == {**original["CustomerMetadataProperties"], registry.ROLLBACK_OF: "1"}
    newest = registry.newest_approved(sm, GROUP)
    assert newest is not None and newest["ModelPackageVersion"] == 3
    # Rolling back again goes to the artifact before the one now served (run-2), not to run-1 again.
    _, again = registry.rollback(sm, GROUP, "again")
    assert again["ModelPackageVersion"] == 2


class FakeProduction:
    """Stub of CloudFormation for the promotion: deploy-prd's Parameters, and a deployer
    that records what it was given and makes it live."""

    def __init__(self) -> None:
        self.parameters: dict[str, str] | None = None
        self.deployed: list[dict[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mlops_templates import deploy

        monkeypatch.setattr(promotion, "_parameters", lambda cfn, name: self.parameters)

        def deploy_stack(boto: Any, spec: Any, out: Any) -> str:
            assert spec.name == "mlops-abalone-deploy-prd" and not spec.replace_failed
            assert spec.role_arn == ENV["CLOUDFORMATION_ROLE_ARN"]
            self.deployed.append(dict(spec.parameters))
            self.parameters = dict(spec.parameters)
            return "UPDATE_COMPLETE"

        monkeypatch.setattr(deploy, "deploy_stack", deploy_stack)


def _store_build(run: str) -> None:
    """What the Build stores under runs/<RunId>/build/ (buildspec.yml.j2)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    prefix = promotion.run_prefix(run)
    s3.put_object(Bucket=BUCKET, Key=prefix + "deploy-prd.yaml", Body=b"Parameters: {}\n")
    s3.put_object(Bucket=BUCKET, Key=prefix + "deploy-prd.json",
                  Body=json.dumps({"Parameters": {"KmsKeyArn": "k"}}).encode())
    s3.put_object(Bucket=BUCKET, Key=prefix + contract.EXECUTION_INPUT, Body=json.dumps({"RunId": run}).encode())


@pytest.fixture
def production(sm: Any, monkeypatch: pytest.MonkeyPatch) -> FakeProduction:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    boto3.client("sns", region_name="us-east-1").create_topic(Name="mlops-abalone-notifications")
    fake = FakeProduction()
    fake.install(monkeypatch)
    return fake


def _promote(tmp_path: Path) -> promotion.Outcome:
    return promotion.promote(boto3.session.Session(region_name="us-east-1"), CFG, ENV, tmp_path / "work", io.StringIO())


def test_promotion_converges_to_the_newest_approved_and_is_a_no_op_when_live(
    sm: Any, production: FakeProduction, tmp_path: Path
) -> None:
    assert _promote(tmp_path).action == "empty"
    for run in ("run-1", "run-2"):
        register(sm, run)
        _store_build(run)
    registry.approve(sm, GROUP, 1, "ok")
    outcome = _promote(tmp_path)
    assert (outcome.action, outcome.version, outcome.previous) == ("deployed", 1, None)
    assert production.deployed[-1][contract.MODEL_DATA_URL] == f"s3://{BUCKET}/runs/run-1/model.tar.gz"
    assert production.deployed[-1]["KmsKeyArn"] == "k"  # the run's build parameters
    assert _promote(tmp_path).action == "unchanged"
    registry.approve(sm, GROUP, 2, "ok")
    outcome = _promote(tmp_path)
    assert (outcome.action, outcome.version, outcome.previous) == ("deployed", 2, 1)
    assert "serves version 2 of mlops-abalone-models (run run-2)" in outcome.message
    assert len(production.deployed) == 2


def test_rejecting_the_live_version_converges_to_the_newest_remaining_approved(
    sm: Any, production: FakeProduction, tmp_path: Path
) -> None:
    for run in ("run-1", "run-2"):
        register(sm, run, registry.APPROVED)
        _store_build(run)
    assert _promote(tmp_path).version == 2
    registry.reject(sm, GROUP, 2, "bad")
    outcome = _promote(tmp_path)
    assert (outcome.action, outcome.version, outcome.previous) == ("deployed", 1, 2)
    registry.reject(sm, GROUP, 1, "also bad")
    outcome = _promote(tmp_path)
    assert (outcome.action, outcome.previous) == ("blocked", 1)
    assert "no approved version remains: production stays on it" in outcome.message
    assert len(production.deployed) == 2


def test_a_rollback_goes_through_the_same_promotion(sm: Any, production: FakeProduction, tmp_path: Path) -> None:
    for run in ("run-1", "run-2"):
        register(sm, run, registry.APPROVED)
        _store_build(run)
    _promote(tmp_path)
    registry.rollback(sm, GROUP, "canary alarms")
    outcome = _promote(tmp_path)
    assert (outcome.action, outcome.version, outcome.previous) == ("deployed", 3, 2)
    assert production.deployed[-1][contract.IMAGE_URI] == "repo:run-1"


def test_status_names_the_live_version_per_stage(sm: Any, production: FakeProduction) -> None:
    register(sm, "run-1", registry.APPROVED)
    production.parameters = {contract.IMAGE_URI: "repo:run-1", contract.MODEL_DATA_URL: f"s3://{BUCKET}/runs/run-1/model.tar.gz"}
    lines = promotion.status(boto3.session.Session(region_name="us-east-1"), CFG)
    assert "dev: mlops-abalone-deploy-dev serves version 1 (Approved)" in lines
    assert "prd: mlops-abalone-deploy-prd serves version 1 (Approved)" in lines
    assert lines[-1] == "newest approved: version 1"


def test_the_ci_production_job_approves_the_runs_model_first(sm: Any, tmp_path: Path) -> None:
    arn = register(sm, "run-1")
    train_output = tmp_path / contract.TRAIN_OUTPUT
    train_output.write_text(json.dumps({"ModelPackageArn": arn}), encoding="utf-8")
    env = {"GITHUB_ACTOR": "octo", "GITHUB_REPOSITORY": "org/repo", "GITHUB_RUN_ID": "42"}
    steps.approve_run(boto3.session.Session(region_name="us-east-1"), train_output, env)
    described = registry.describe(sm, arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == (
        "Approved for production by the reviewers of the production environment in GitHub Actions run "
        "https://github.com/org/repo/actions/runs/42 (started by octo)"
    )
    gitlab = steps.approver({"GITLAB_USER_LOGIN": "ana", "CI_JOB_URL": "https://gitlab.example/-/jobs/7"})
    assert gitlab == "ana, who started the manual production job https://gitlab.example/-/jobs/7 in GitLab CI"


def test_the_cli_reports_bad_input_without_a_traceback(sm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    register(sm, "run-1")
    assert cli.main(["registry", "reject", "1"]) == 2
    assert "REASON=(empty)" in capsys.readouterr().err
    assert cli.main(["registry", "approve", "9"]) == 2
    assert "VERSION=9" in capsys.readouterr().err
