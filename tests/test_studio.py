"""The studio stack: a Studio-visible product launched with exactly the permissions
the pipeline product needs, scoped to the prefix's names."""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache
from typing import Any

import pytest

from mlops_templates import lint, naming
from mlops_templates.permissions import data
from mlops_templates.stacks import studio

from .variants import rendered, variant_config

STUDIO_VARIANTS = ["example", "create-vpc", "defaults", "codecommit-schedule"]
SAMPLE = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "111122223333",
    "SageMakerProjectName": "demo",
}


@cache
def template(name: str) -> dict[str, Any]:
    return json.loads(studio.build(variant_config(name)).to_json())


def resolve(value: Any) -> Any:
    """Substitute sample values into ``Fn::Sub`` strings (other intrinsics stay as-is)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for variable, sample in SAMPLE.items():
            text = text.replace("${" + variable + "}", sample)
        return text
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def launch_statements(name: str) -> list[dict[str, Any]]:
    tpl = template(name)
    found = []
    for resource in tpl["Resources"].values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            assert resource["Properties"]["Roles"] == [{"Ref": studio.LAUNCH_ROLE}]
            found += resolve(resource["Properties"]["PolicyDocument"]["Statement"])
    return found


def allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    return any(
        action in s["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in s["Resource"] if isinstance(r, str))
        for s in statements
    )


# tests/test_templates.py lints the rendering of mlops.yaml ("example").
@pytest.mark.parametrize("name", [name for name in STUDIO_VARIANTS if name != "example"])
def test_cfn_lint_has_no_findings(name: str) -> None:
    findings = lint.cfn_lint_text(rendered(name, "studio"), f"{name}/studio.yaml", ["us-east-1", "eu-west-1"])
    assert findings == [], "\n".join(map(str, findings))


def test_product_is_visible_in_studio_and_loads_the_packaged_pipeline() -> None:
    tpl = template("example")
    product = tpl["Resources"][studio.PRODUCT]["Properties"]
    tags = {t["Key"]: t["Value"] for t in product["Tags"]}
    assert tags["sagemaker:studio-visibility"] == "true"
    (artifact,) = product["ProvisioningArtifactParameters"]
    assert artifact["Info"] == {"LoadTemplateFromURL": {"Ref": studio.TEMPLATE_URL}}
    assert artifact["Type"] == "CLOUD_FORMATION_TEMPLATE"
    assert artifact["Name"] == variant_config("example").studio.product_version
    association = tpl["Resources"][studio.PRODUCT_ASSOCIATION]["Properties"]
    assert association == {"PortfolioId": {"Ref": studio.PORTFOLIO}, "ProductId": {"Ref": studio.PRODUCT}}


def test_template_url_parameter_accepts_only_https_s3_urls() -> None:
    parameter = template("example")["Parameters"][studio.TEMPLATE_URL]
    assert parameter["ConstraintDescription"] and parameter["MaxLength"] >= 1024
    pattern = re.compile(parameter["AllowedPattern"])
    for good in (
        "https://artifacts.s3.us-east-1.amazonaws.com/mlops/pipeline-1a2b.yaml",
        "https://s3.amazonaws.com/artifacts/pipeline.yaml",
        "https://artifacts.s3.cn-north-1.amazonaws.com.cn/pipeline.yaml",
    ):
        assert pattern.match(good), good
    for bad in ("http://artifacts.s3.amazonaws.com/p.yaml", "https://example.com/p.yaml", "s3://b/p.yaml"):
        assert not pattern.match(bad), bad


def test_every_studio_role_is_associated_with_a_stable_logical_id() -> None:
    cfg = variant_config("example").model_copy(
        update={
            "studio": variant_config("example").studio.model_copy(
                update={
                    "principal_arns": [
                        "arn:aws:iam::111122223333:role/SageMakerStudioExecutionRole",
                        "arn:aws:iam::111122223333:role/DataScientists",
                    ]
                }
            )
        }
    )
    tpl = json.loads(studio.build(cfg).to_json())
    associations = {
        k: v["Properties"]
        for k, v in tpl["Resources"].items()
        if v["Type"] == "AWS::ServiceCatalog::PortfolioPrincipalAssociation"
    }
    assert sorted(a["PrincipalARN"] for a in associations.values()) == sorted(cfg.studio.principal_arns)
    assert all(a["PrincipalType"] == "IAM" for a in associations.values())
    # Adding a principal does not rename the existing association.
    (first,) = [
        k for k, v in template("example")["Resources"].items()
        if v["Type"] == "AWS::ServiceCatalog::PortfolioPrincipalAssociation"
    ]
    assert first in associations


def test_launch_constraint_uses_the_launch_role_after_its_policies() -> None:
    tpl = template("example")
    constraint = tpl["Resources"][studio.LAUNCH_CONSTRAINT]
    assert constraint["Properties"]["RoleArn"] == {"Fn::GetAtt": [studio.LAUNCH_ROLE, "Arn"]}
    policies = [k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::IAM::ManagedPolicy"]
    assert set(constraint["DependsOn"]) == {studio.PRODUCT_ASSOCIATION, *policies}
    role = tpl["Resources"][studio.LAUNCH_ROLE]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["servicecatalog.amazonaws.com"]}
    assert "Policies" not in role


@pytest.mark.parametrize("name", STUDIO_VARIANTS)
def test_launch_role_covers_every_resource_type_of_the_product(name: str) -> None:
    """Every resource type of the product has handler permissions in the table the launch
    role is generated from (tests/test_permissions.py evaluates them)."""
    types = {data.canonical(t) for t in studio.pipeline_resource_types(variant_config(name))}
    assert types <= set(data.handlers())
    actions = {a for s in launch_statements(name) for a in s["Action"]}
    assert ("ec2:CreateVpc" in actions) is variant_config(name).network.create_vpc


def test_a_resource_type_without_handler_permissions_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(data.handlers())
    del table["AWS::Events::Rule"]
    monkeypatch.setattr(data, "handlers", lambda: table)
    with pytest.raises(KeyError, match="AWS::Events::Rule"):
        studio.launch_statements(variant_config("example"))


#: The create call of each named resource type of the pipeline stack.
CREATE_ACTIONS = {
    "AWS::S3::Bucket": "s3:CreateBucket",
    "AWS::IAM::Role": "iam:CreateRole",
    "AWS::Logs::LogGroup": "logs:CreateLogGroup",
    "AWS::SNS::Topic": "sns:CreateTopic",
    "AWS::ECR::Repository": "ecr:CreateRepository",
    "AWS::CodeBuild::Project": "codebuild:CreateProject",
    "AWS::CodePipeline::Pipeline": "codepipeline:CreatePipeline",
    "AWS::Events::Rule": "events:PutRule",
    "AWS::KMS::Alias": "kms:CreateAlias",
    "AWS::Lambda::Function": "lambda:CreateFunction",
    "AWS::IAM::ManagedPolicy": "iam:CreatePolicy",
}


@pytest.mark.parametrize("name", STUDIO_VARIANTS)
def test_launch_role_can_create_every_named_resource_of_a_project_and_none_of_another_prefix(
    name: str,
) -> None:
    """The names of a project's deployed pipeline stack (tests/test_permissions.py checks
    every handler action); the same names under another prefix are out of reach."""
    from mlops_templates.permissions import scenario
    from mlops_templates.permissions.policy import Request, allows

    cfg = variant_config(name)
    prefix, other_prefix = cfg.project.prefix, f"x{cfg.project.prefix}"
    deployment = scenario.deploy(cfg)
    documents = deployment.launch_role_documents()
    checked = 0
    for resource in deployment.pipeline.resources.values():
        action = CREATE_ACTIONS.get(resource.kind)
        if action is None or not resource.arn:
            continue
        context = {"aws:RequestTag/mlops:project": resource.tags.get("mlops:project", "")}
        assert allows(documents, Request(action, resource.arn, context)), f"{action} on {resource.arn}"
        other = resource.arn.replace(f"{prefix}-demo", f"{other_prefix}-demo").replace(
            f"/{prefix}/", f"/{other_prefix}/"
        )
        assert other != resource.arn
        assert not allows(documents, Request(action, other, context)), f"{action} on {other}"
        checked += 1
    assert checked >= 18
    for role in ("codebuild", "codepipeline", "events", "teardown"):
        arn = f"arn:aws:iam::111122223333:role/{prefix}-demo-{role}"
        service = "lambda.amazonaws.com" if role == "teardown" else f"{role}.amazonaws.com"
        assert allows(documents, Request("iam:PassRole", arn, {"iam:PassedToService": service}))
        assert not allows(documents, Request("iam:PassRole", arn, {"iam:PassedToService": "ec2.amazonaws.com"}))


def test_launch_role_cannot_change_itself_or_other_roles() -> None:
    statements = launch_statements("example")
    cfg = variant_config("example")
    own = f"arn:aws:iam::111122223333:role/{naming.physical_name(cfg, 'launch')}"
    own_policy = f"arn:aws:iam::111122223333:policy/{naming.physical_name(cfg, 'launch')}-1"
    for action in ("iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:CreateRole"):
        assert not allowed(statements, action, own), action
        assert not allowed(statements, action, "arn:aws:iam::111122223333:role/Admin"), action
    for action in ("iam:CreatePolicyVersion", "iam:CreatePolicy", "iam:DeletePolicy"):
        assert not allowed(statements, action, own_policy), action
        assert allowed(statements, action, "arn:aws:iam::111122223333:policy/mlops-demo-cloudformation-1")


def test_launch_statements_with_wildcard_resources_act_on_no_resource_type() -> None:
    """Resource "*" only for actions the Service Authorization Reference lists without
    resource types, and two documented exceptions."""
    exceptions = {"cloudformation:ValidateTemplate", "cloudformation:GetTemplateSummary", "s3:GetObject"}
    for name in STUDIO_VARIANTS:
        for statement in launch_statements(name):
            assert all(a != "*" and not a.endswith(":*") for a in statement["Action"])
            if "*" not in statement["Resource"]:
                continue
            for action in statement["Action"]:
                info = data.action(action)
                assert action in exceptions or (info is not None and not info.resource_types), action
            if "s3:GetObject" in statement["Action"]:
                assert statement["Condition"] == {
                    "StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}
                }


def test_source_connection_is_passed_only_to_codepipeline() -> None:
    configured = [s for s in launch_statements("example") if "codeconnections:PassConnection" in s["Action"]]
    (statement,) = configured
    assert statement["Resource"] == [variant_config("example").pipeline.source.connection_arn]
    assert statement["Condition"] == {
        "StringEquals": {"codeconnections:PassedToService": "codepipeline.amazonaws.com"}
    }
    at_launch = [
        s for s in launch_statements("defaults")
        if {"codeconnections:PassConnection", "codestar-connections:PassConnection"} & set(s["Action"])
    ]
    assert len(at_launch) == 2  # codeconnections and legacy codestar-connections ARNs
    for statement in at_launch:
        (service,) = {a.split(":")[0] for a in statement["Action"]}
        assert statement["Condition"] == {
            "StringEquals": {f"{service}:PassedToService": "codepipeline.amazonaws.com"}
        }
    assert not any(
        a.endswith(":PassConnection") for s in launch_statements("codecommit-schedule") for a in s["Action"]
    )


def test_outputs_name_what_make_project_needs() -> None:
    outputs = template("example")["Outputs"]
    assert outputs["PortfolioId"]["Value"] == {"Ref": studio.PORTFOLIO}
    assert outputs["ProductId"]["Value"] == {"Ref": studio.PRODUCT}
    assert outputs["ProvisioningArtifactId"]["Value"] == {
        "Fn::GetAtt": [studio.PRODUCT, "ProvisioningArtifactIds"]
    }
    assert outputs["ProductName"]["Value"] == {"Fn::GetAtt": [studio.PRODUCT, "ProductName"]}
    assert outputs["LaunchRoleArn"]["Value"] == {"Fn::GetAtt": [studio.LAUNCH_ROLE, "Arn"]}
