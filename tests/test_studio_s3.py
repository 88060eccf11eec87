"""``studio.publish_mode: s3``: the studio stack as a bucket of SageMaker project templates,
the upload ``make publish`` does, and the ``CreateProject`` request ``make project`` sends."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops_templates import config, lint, projects, publish
from mlops_templates.errors import ConfigError
from mlops_templates.stacks import studio, studio_s3
from mlops_templates.stackwatch import DeployError

from .variants import rendered, variant_config

NAME = "s3-templates"
READERS = [
    "arn:aws:iam::111122223333:role/SageMakerStudioExecutionRole",
    "arn:aws:iam::111122223333:role/DataScientists",
]


@cache
def template() -> dict[str, Any]:
    return json.loads(studio.build(variant_config(NAME)).to_json())


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template()["Resources"].items() if v["Type"] == kind}


def statements(logical_id: str) -> dict[str, dict[str, Any]]:
    document = template()["Resources"][logical_id]["Properties"]
    document = document.get("PolicyDocument") or document.get("KeyPolicy")
    return {s.get("Sid", ""): s for s in document["Statement"]}


def launch_statements(cfg: config.Config) -> list[dict[str, Any]]:
    return json.loads(json.dumps(studio.launch_statements(cfg), default=lambda o: o.JSONrepr() if hasattr(o, "JSONrepr") else o.to_dict()))


def test_cfn_lint_has_no_findings() -> None:
    findings = lint.cfn_lint_text(rendered(NAME, "studio"), f"{NAME}/studio.yaml", ["us-east-1", "eu-west-1"])
    assert findings == [], "\n".join(map(str, findings))


def test_no_service_catalog_resource_and_no_template_url_parameter() -> None:
    types = {r["Type"] for r in template()["Resources"].values()}
    assert not any(t.startswith("AWS::ServiceCatalog::") for t in types)
    assert "Parameters" not in template()
    assert {"AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::KMS::Key", "AWS::IAM::Role"} <= types


def test_the_template_bucket_is_encrypted_with_its_key_versioned_private_and_logged() -> None:
    bucket = template()["Resources"][studio_s3.BUCKET]
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [studio_s3.KEY, "Arn"]},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": studio_s3.LOG_BUCKET}
    assert props["BucketName"] == {"Fn::Sub": "mlops-churn-${AWS::AccountId}-${AWS::Region}-tpl"}
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
    key = template()["Resources"][studio_s3.KEY]["Properties"]
    assert key["EnableKeyRotation"] is True
    tags = {t["Key"]: t["Value"] for t in props["Tags"]}
    assert tags == {"mlops:project": "mlops-churn", "mlops:component": "studio"}


def test_studio_may_read_the_bucket_from_its_origin_only_with_get_and_head() -> None:
    (rule,) = template()["Resources"][studio_s3.BUCKET]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == ["https://*.sagemaker.aws"]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]


def test_bucket_policy_is_tls_only_and_lets_the_readers_read_the_templates_only() -> None:
    policy = statements(studio_s3.BUCKET_POLICY)
    deny = policy["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    readers = [*READERS, {"Fn::GetAtt": [studio.LAUNCH_ROLE, "Arn"]}]
    read = policy["ReadersReadTemplates"]
    assert read["Principal"] == {"AWS": readers}
    assert sorted(read["Action"]) == ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion"]
    assert read["Resource"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [studio_s3.BUCKET, "Arn"]}, "/", "templates/", "*"]]}
    ]
    listing = policy["ReadersListTemplates"]
    assert listing["Principal"] == {"AWS": readers}
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for s in policy.values() if s["Effect"] == "Allow"
                   for a in s["Action"])
    # The key policy names no role (the account administers it, IAM policies grant its use):
    # the launch role decrypts through S3 by its own policy.
    assert list(statements(studio_s3.KEY)) == ["AccountAdministers", "CloudWatchLogsOfThisAccount"]
    read = template()["Resources"][studio_s3.READ_POLICY]["Properties"]
    assert read["Roles"] == [{"Ref": studio.LAUNCH_ROLE}]
    decrypt, objects = read["PolicyDocument"]["Statement"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == [{"Fn::GetAtt": [studio_s3.KEY, "Arn"]}]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
    }
    assert sorted(objects["Action"]) == ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion"]


def test_launch_role_is_cloudformations_with_the_service_catalog_roles_resource_permissions() -> None:
    role = template()["Resources"][studio.LAUNCH_ROLE]["Properties"]
    service, users = role["AssumeRolePolicyDocument"]["Statement"]
    assert service["Principal"] == {"Service": ["cloudformation.amazonaws.com"]}
    assert users["Principal"] == {"AWS": READERS}
    s3_mode = variant_config(NAME)
    catalog = s3_mode.model_copy(update={"studio": s3_mode.studio.model_copy(update={"publish_mode": "service_catalog"})})
    # The same statements but the three about the launcher's stacks and template copies.
    s3_statements, catalog_statements = launch_statements(s3_mode), launch_statements(catalog)
    assert s3_statements[3:] == catalog_statements[3:]
    stacks, inspect, copies = s3_statements[:3]
    assert stacks["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/SP-*/*"}
    ]
    assert inspect == catalog_statements[1]
    assert copies["Condition"] == {"StringEquals": {"s3:ExistingObjectTag/Projects:provisioning": "true"}}
    policies = resources("AWS::IAM::ManagedPolicy")
    assert policies and all(p["Properties"]["Roles"] == [{"Ref": studio.LAUNCH_ROLE}] for p in policies.values())


def test_outputs_name_what_make_project_needs() -> None:
    outputs = {k: v["Value"] for k, v in template()["Outputs"].items()}
    assert outputs["TemplateUrl"] == {
        "Fn::Sub": "https://${TemplateBucket}.s3.${AWS::Region}.${AWS::URLSuffix}/templates/mlops-churn-pipeline.yaml"
    }
    assert outputs["TemplateObjectKey"] == "templates/mlops-churn-pipeline.yaml"
    assert outputs["TemplatesLocation"] == {"Fn::Sub": "s3://${TemplateBucket}/templates/"}
    assert outputs["LaunchRoleArn"] == {"Fn::GetAtt": [studio.LAUNCH_ROLE, "Arn"]}


# -- config ---------------------------------------------------------------------------------


def test_publish_mode_defaults_to_service_catalog_and_rejects_other_values() -> None:
    assert config.parse({}).studio.publish_mode == "service_catalog"
    with pytest.raises(ConfigError, match=r"studio\.publish_mode: Input should be 'service_catalog' or 's3' \(got 'ftp'\)"):
        config.parse({"studio": {"publish_mode": "ftp"}})


def test_s3_mode_needs_iam_role_arns_as_readers() -> None:
    user = "arn:aws:iam::111122223333:user/alice"
    with pytest.raises(ConfigError, match=rf"studio: principal_arns: '{user}' is not an IAM role ARN; with publish_mode s3"):
        config.parse({"studio": {"publish_mode": "s3", "principal_arns": [user]}})
    # Service Catalog associates any IAM principal with the portfolio.
    assert config.parse({"studio": {"principal_arns": [user]}}).studio.principal_arns == [user]


def test_mode_override_of_load_is_validated_like_the_file(tmp_path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("project:\n  name: churn\n", encoding="utf-8")
    assert config.load(path, publish_mode="s3").studio.publish_mode == "s3"
    assert config.load(path).studio.publish_mode == "service_catalog"
    with pytest.raises(ConfigError, match="studio.publish_mode"):
        config.load(path, publish_mode="catalog")


# -- make publish: the upload ------------------------------------------------------------------


@mock_aws
def test_upload_tags_the_template_for_studio_and_keeps_older_versions(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="templates")
    s3.put_bucket_versioning(Bucket="templates", VersioningConfiguration={"Status": "Enabled"})
    key = studio_s3.template_key(variant_config(NAME))
    assert key == "templates/mlops-churn-pipeline.yaml"
    first = publish.upload_template(s3, "templates", key, "Resources: {}\n")
    second = publish.upload_template(s3, "templates", key, "Resources: {A: {}}\n")
    assert first and second and first != second
    tags = s3.get_object_tagging(Bucket="templates", Key=key)["TagSet"]
    assert tags == [{"Key": "sagemaker:studio-visibility", "Value": "true"}]
    assert s3.get_object(Bucket="templates", Key=key)["Body"].read() == b"Resources: {A: {}}\n"
    versions = s3.list_object_versions(Bucket="templates", Prefix=key)["Versions"]
    assert len(versions) == 2
    with pytest.raises(DeployError, match="upload the pipeline template to s3://missing/"):
        publish.upload_template(s3, "missing", key, "x")


# -- make project: the CreateProject request ---------------------------------------------------

S3_OUTPUTS = {
    "TemplateUrl": "https://mlops-churn-111122223333-us-east-1-tpl.s3.us-east-1.amazonaws.com/"
    "templates/mlops-churn-pipeline.yaml",
    "LaunchRoleArn": "arn:aws:iam::111122223333:role/mlops-churn-launch",
    "TemplatesLocation": "s3://mlops-churn-111122223333-us-east-1-tpl/templates/",
}


def stubbed_create(request: dict[str, Any]) -> None:
    """Send ``request`` to a stubbed SageMaker: Stubber validates it against botocore's model."""
    sagemaker = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "create_project",
            {"ProjectArn": "arn:aws:sagemaker:us-east-1:111122223333:project/churn", "ProjectId": "p-abc"},
            request,
        )
        sagemaker.create_project(**request)
        stub.assert_no_pending_responses()


def test_s3_project_request_names_the_template_the_launch_role_and_the_parameters() -> None:
    parameters = {"NotificationEmail": "ds@example.com"}
    request = projects.project_request(variant_config(NAME), "churn", S3_OUTPUTS, parameters)
    assert request == {
        "ProjectName": "churn",
        "ProjectDescription": "Created by mlops-templates",
        "TemplateProviders": [
            {
                "CfnTemplateProvider": {
                    "TemplateName": "pipeline",
                    "TemplateURL": S3_OUTPUTS["TemplateUrl"],
                    "RoleARN": S3_OUTPUTS["LaunchRoleArn"],
                    "Parameters": [{"Key": "NotificationEmail", "Value": "ds@example.com"}],
                }
            }
        ],
    }
    stubbed_create(request)
    bare = projects.project_request(variant_config(NAME), "churn", S3_OUTPUTS, {})
    assert "Parameters" not in bare["TemplateProviders"][0]["CfnTemplateProvider"]
    stubbed_create(bare)


def test_service_catalog_request_is_unchanged_and_valid() -> None:
    outputs = {"ProductId": "prod-abcdefghijklm", "ProvisioningArtifactId": "pa-old0000000001,pa-new0000000002"}
    request = projects.project_request(variant_config("example"), "churn", outputs, {"NotificationEmail": "none"})
    assert request["ServiceCatalogProvisioningDetails"] == {
        "ProductId": "prod-abcdefghijklm",
        "ProvisioningArtifactId": "pa-new0000000002",
        "ProvisioningParameters": [{"Key": "NotificationEmail", "Value": "none"}],
    }
    assert "TemplateProviders" not in request
    stubbed_create(request)


def test_a_project_of_the_other_mode_says_which_mode_the_stack_publishes() -> None:
    catalog = {"ProductId": "prod-abcdefghijklm", "ProvisioningArtifactId": "pa-new0000000002"}
    with pytest.raises(DeployError, match="publishes the pipeline with publish_mode service_catalog, not s3"):
        projects.project_request(variant_config(NAME), "churn", catalog, {})
    with pytest.raises(DeployError, match="publishes the pipeline with publish_mode s3, not service_catalog"):
        projects.project_request(variant_config("example"), "churn", S3_OUTPUTS, {})
    with pytest.raises(DeployError, match="no published S3 template in stack 'mlops-churn-studio'"):
        projects.project_request(variant_config(NAME), "churn", {}, {})


def test_the_project_stack_is_found_from_its_template_provider() -> None:
    project = {
        "TemplateProviderDetails": [
            {
                "CfnTemplateProviderDetail": {
                    "TemplateName": "pipeline",
                    "TemplateURL": S3_OUTPUTS["TemplateUrl"],
                    "StackDetail": {
                        "Name": "SP-churn",
                        "Id": "arn:aws:cloudformation:us-east-1:111122223333:stack/SP-churn/1",
                        "StatusMessage": "creating",
                    },
                }
            }
        ]
    }
    asked: list[str] = []

    class CloudFormation:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            asked.append(StackName)
            return {"Stacks": [{"StackName": "SP-churn", "StackId": StackName, "StackStatus": "CREATE_IN_PROGRESS"}]}

    stack = projects._project_stack(CloudFormation(), project, "111122223333")
    assert stack is not None and stack.name == "SP-churn"
    assert asked == [project["TemplateProviderDetails"][0]["CfnTemplateProviderDetail"]["StackDetail"]["Id"]]
    assert projects._project_stack(CloudFormation(), {}, "111122223333") is None
