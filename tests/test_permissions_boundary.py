"""The permissions boundary of the roles the per-run stacks create.

The pipeline's CloudFormation role creates deploy-prd's and the batch stack's roles. Every
such role carries the project's boundary (``<base>-boundary``, made by the pipeline
stack), the CloudFormation role may create or widen a role only with it, and the boundary
allows what those roles' policies grant on the project's resources and nothing else. The
expected requests are written here, on ARNs of the modelled deployment; the IAM evaluator
judges them (a request passes only if both the role's policies and its boundary allow it:
IAM User Guide, "Permissions boundaries for IAM entities").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlops_templates import config
from mlops_templates.permissions import coverage, data, runtime, scenario, scopes
from mlops_templates.permissions.deployed import DeployedStack
from mlops_templates.permissions.grants import Scope
from mlops_templates.permissions.policy import Request, allows, decide

# The run-time check's modelled deployments: every variant and deployment.mode both.
from .test_permissions_runtime import NAMES, deployment

ACCOUNT = "arn:aws:iam::111122223333"
BOUNDARY = f"{ACCOUNT}:policy/mlops-demo-boundary"


@pytest.fixture(scope="module")
def example() -> scenario.ProjectDeployment:
    return deployment("mode-both")


def run_roles(d: scenario.ProjectDeployment) -> list[tuple[DeployedStack, Any]]:
    return [(stack, role) for stack in d.runs.values() for role in stack.of_type("AWS::IAM::Role").values()]


def boundary(d: scenario.ProjectDeployment) -> list[dict[str, Any]]:
    return [d.pipeline.resources["PermissionsBoundary"].properties["PolicyDocument"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", NAMES)
def test_every_role_of_the_per_run_stacks_carries_the_projects_boundary(name: str) -> None:
    d = deployment(name)
    expected = d.pipeline.resources["PermissionsBoundary"].arn
    prefix = f"{d.config.project.prefix}-{d.pipeline.parameters['SageMakerProjectName']}"
    assert expected == f"{ACCOUNT}:policy/{prefix}-boundary"
    roles = run_roles(d)
    assert roles, "deploy-prd or the batch stack creates roles"
    for stack, role in roles:
        assert role.properties.get("PermissionsBoundary") == expected, f"{stack.name}/{role.logical_id}"
        assert runtime.boundary_documents(role, d) == boundary(d)


@pytest.mark.parametrize("name", NAMES)
def test_the_boundary_allows_what_the_per_run_roles_policies_grant(name: str) -> None:
    """Every action a per-run role's policy allows, on every resource it names: the boundary
    never silently takes away what a role is given. (A ``*`` resource means "what the call
    names": the run-time check evaluates those calls on the boundary, with their ARNs.)"""
    d = deployment(name)
    limit = boundary(d)
    checked = 0
    for stack, role in run_roles(d):
        for statement in (s for p in role.properties.get("Policies", []) for s in p["PolicyDocument"]["Statement"]):
            if statement["Effect"] != "Allow":
                continue
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    continue
                for action in as_list(statement["Action"]):
                    assert decide(limit, Request(action, resource)) == "Allow", (
                        f"{stack.name}/{role.logical_id}: {action} on {resource} is outside the boundary")
                    checked += 1
    assert checked > 20


def test_the_runtime_check_fails_a_call_outside_the_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call a role's policy allows but its boundary does not is reported as missing."""
    d = scenario.deploy(config.parse({}))
    assert runtime.missing(d) == []
    real = runtime.boundary_documents
    removed: set[str] = set()

    def narrowed(role: Any, deployment: scenario.ProjectDeployment) -> Any:
        found = real(role, deployment)
        if found is None:
            return None
        kept = []
        for statement in found[0]["Statement"]:
            if "sagemaker:InvokeEndpoint" in as_list(statement["Action"]):
                removed.update(as_list(statement["Action"]))
            else:
                kept.append(statement)
        return [{"Version": "2012-10-17", "Statement": kept}]

    monkeypatch.setattr(runtime, "boundary_documents", narrowed)
    found = runtime.missing(d)
    assert "sagemaker:InvokeEndpoint" in {m.action for m in found} and {m.action for m in found} <= removed
    assert {m.role for m in found if m.action == "sagemaker:InvokeEndpoint"} >= {"api", "pre-traffic"}
    assert {m.decision for m in found} == {"outside its permissions boundary"}


def test_a_role_with_a_boundary_no_stack_makes_is_an_error() -> None:
    d = scenario.deploy(config.parse({}))
    role = d.runs["deploy-prd"].resources["ApiFunctionRole"]
    stray = dataclasses.replace(role, properties={**role.properties, "PermissionsBoundary": f"{ACCOUNT}:policy/x"})
    with pytest.raises(KeyError, match="no managed policy"):
        runtime.boundary_documents(stray, d)


@pytest.mark.parametrize(("action", "resource"), [
    ("iam:CreateRole", f"{ACCOUNT}:role/mlops-demo-prd-api"),
    ("iam:PutRolePolicy", f"{ACCOUNT}:role/mlops-demo-prd-api"),
    ("iam:AttachRolePolicy", f"{ACCOUNT}:role/mlops-demo-prd-api"),
    ("iam:DeleteRolePermissionsBoundary", f"{ACCOUNT}:role/mlops-demo-prd-api"),
    ("iam:CreatePolicyVersion", BOUNDARY),
    ("iam:PassRole", f"{ACCOUNT}:role/mlops-demo-cloudformation"),
    ("iam:PassRole", f"{ACCOUNT}:role/Admin"),
    ("sts:AssumeRole", f"{ACCOUNT}:role/Admin"),
    ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/secret.csv"),
    ("s3:DeleteObject", "arn:aws:s3:::mlops-demo-111122223333-us-east-1-art/model.tar.gz"),
    ("kms:Decrypt", "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"),
    ("sagemaker:InvokeEndpoint", "arn:aws:sagemaker:us-east-1:111122223333:endpoint/other-prd"),
    ("sagemaker:CreateTrainingJob", "arn:aws:sagemaker:us-east-1:111122223333:training-job/mlops-demo-x"),
    ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:other"),
    ("lambda:UpdateFunctionCode", "arn:aws:lambda:us-east-1:111122223333:function:mlops-demo-api"),
    ("states:StartExecution", "arn:aws:states:us-east-1:111122223333:stateMachine:other"),
    ("sns:Publish", "arn:aws:sns:us-east-1:111122223333:other"),
    ("ec2:RunInstances", "*"),
])
def test_the_boundary_denies_what_no_per_run_role_needs(
        example: scenario.ProjectDeployment, action: str, resource: str) -> None:
    """Whatever policy a per-run template gives a role, the role cannot manage IAM, pass
    roles other than the project's SageMaker role, or reach other projects' data."""
    assert not allows(boundary(example), Request(action, resource))


@pytest.mark.parametrize(("action", "resource"), [
    ("sagemaker:InvokeEndpoint", "arn:aws:sagemaker:us-east-1:111122223333:endpoint/mlops-demo-prd"),
    ("s3:GetObject", "arn:aws:s3:::mlops-demo-111122223333-us-east-1-art/monitoring/report.json"),
    ("iam:PassRole", f"{ACCOUNT}:role/mlops-demo-sagemaker"),
    ("lambda:UpdateAlias", "arn:aws:lambda:us-east-1:111122223333:function:mlops-demo-api:live"),
    ("xray:PutTraceSegments", "*"),
])
def test_the_boundary_allows_the_projects_own_calls(
        example: scenario.ProjectDeployment, action: str, resource: str) -> None:
    assert allows(boundary(example), Request(action, resource))


ROLE = f"{ACCOUNT}:role/mlops-demo-prd-api"


@pytest.mark.parametrize("action", ["iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"])
def test_the_cloudformation_role_creates_or_widens_a_role_only_with_the_projects_boundary(
        example: scenario.ProjectDeployment, action: str) -> None:
    documents = example.cloudformation_role_documents()
    assert allows(documents, Request(action, ROLE, {"iam:PermissionsBoundary": BOUNDARY}))
    assert not allows(documents, Request(action, ROLE))
    for other in (f"{ACCOUNT}:policy/mlops-other-boundary", "arn:aws:iam::aws:policy/AdministratorAccess"):
        assert not allows(documents, Request(action, ROLE, {"iam:PermissionsBoundary": other}))


@pytest.mark.parametrize(("action", "resource"), [
    ("iam:DeleteRolePermissionsBoundary", ROLE),
    ("iam:CreatePolicyVersion", BOUNDARY),
    ("iam:SetDefaultPolicyVersion", BOUNDARY),
    ("iam:DeletePolicy", BOUNDARY),
    ("iam:DetachRolePolicy", BOUNDARY),
])
def test_the_cloudformation_role_cannot_lift_or_change_the_boundary(
        example: scenario.ProjectDeployment, action: str, resource: str) -> None:
    documents = example.cloudformation_role_documents()
    assert not allows(documents, Request(action, resource, {"iam:PermissionsBoundary": BOUNDARY}))


def test_the_bounded_calls_are_those_that_give_a_role_permissions() -> None:
    """Creating a role, adding a policy, attaching one, or setting a boundary: each supports
    the ``iam:PermissionsBoundary`` key (Service Authorization Reference)."""
    assert set(scopes.BOUNDED) == {
        "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"}
    for action in scopes.BOUNDED:
        info = data.action(action)
        assert info is not None and info.supports("iam:PermissionsBoundary", "role"), action


def test_a_roles_boundary_is_in_the_context_of_the_calls_that_support_it(
        example: scenario.ProjectDeployment) -> None:
    prd = example.runs["deploy-prd"]
    role = prd.resources["ApiFunctionRole"]
    for action, operation, expected in [
        ("iam:CreateRole", "create", BOUNDARY),
        ("iam:PutRolePolicy", "update", BOUNDARY),
        ("iam:GetRolePolicy", "read", None),  # no such key for it
    ]:
        info = data.action(action)
        assert info is not None
        context = coverage.request_context(info, role, operation, role.arn, "role")
        assert context.get("iam:PermissionsBoundary") == expected, action
    # A role without a boundary (the pipeline stack's) sends none.
    plain = example.pipeline.resources["CloudFormationRole"]
    info = data.action("iam:CreateRole")
    assert info is not None
    assert "iam:PermissionsBoundary" not in coverage.request_context(info, plain, "create", plain.arn, "role")


def test_the_projects_teardown_deletes_the_per_run_stacks_before_the_boundary(
        example: scenario.ProjectDeployment) -> None:
    """IAM refuses to delete a policy a role still uses as its boundary."""
    teardown = example.pipeline.resources["RunStacksTeardown"]
    assert "PermissionsBoundary" in teardown.depends_on


# ------------------------------------------------------------ the generator's parts


def _template(*roles: dict[str, Any]) -> Any:
    from troposphere import Template, iam

    template = Template()
    for index, properties in enumerate(roles):
        template.add_resource(iam.Role(f"Role{index}", AssumeRolePolicyDocument={}, **properties))
    return template


def _policy(*statements: dict[str, Any]) -> Any:
    from troposphere import iam

    return iam.Policy(PolicyName="p", PolicyDocument={"Version": "2012-10-17", "Statement": list(statements)})


def test_role_actions_reads_every_allow_of_every_role_and_no_deny() -> None:
    from mlops_templates.permissions import boundary as gen

    template = _template(
        {},  # a role without inline policies
        {"Policies": [_policy(
            {"Effect": "Deny", "Action": "iam:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": ["kms:Decrypt", "sns:Publish"], "Resource": "*"},
        )]},
    )
    assert gen.role_actions([template]) == {"s3:GetObject", "kms:Decrypt", "sns:Publish"}


def test_the_boundary_generator_names_what_its_scope_lacks() -> None:
    from mlops_templates.permissions import boundary as gen

    scope = scopes.boundary_scope("mlops-${SageMakerProjectName}", "arn:aws:kms:r:1:key/k", ("arn:aws:s3:::b",))
    with pytest.raises(KeyError, match="iam:NoSuchCall is not in the Service Authorization Reference"):
        gen.patterns("iam:NoSuchCall", scope)
    with pytest.raises(KeyError, match=r"sagemaker:CreateTrainingJob acts on training-job: add its ARN "
                                       r"patterns to scopes.boundary_scope"):
        gen.patterns("sagemaker:CreateTrainingJob", scope)
    empty = Scope(resources={})
    with pytest.raises(KeyError, match="ec2:CreateNetworkInterface acts on network-interface, subnet: "):
        gen.patterns("ec2:CreateNetworkInterface", empty)
    with pytest.raises(KeyError, match="s3:GetObject acts on accesspointobject, object: "):
        gen.patterns("s3:GetObject", empty)
