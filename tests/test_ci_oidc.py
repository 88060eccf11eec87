"""The ci-oidc stack: who may assume the CI role, and what the role may do, judged by the
IAM evaluator on a modelled deployment (as tests/test_permissions.py judges the other
roles), for every config variant whose orchestrator is GitHub Actions or GitLab CI.

The trust policy is evaluated as STS would for ``AssumeRoleWithWebIdentity``: the token's
``aud`` and ``sub`` claims are the request's ``<issuer host>:aud`` and ``<issuer host>:sub``
condition keys. What the jobs of the rendered workflows present is checked against it in
tests/test_ci.py.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_templates import config, deploy, naming, stacks
from mlops_templates.ci import oidc
from mlops_templates.permissions import runtime, scenario
from mlops_templates.permissions.coverage import role_documents
from mlops_templates.permissions.policy import Request, decide
from mlops_templates.stacks import ci_oidc

from . import variants

CI = [name for name in variants.names() if variants.variant_config(name).pipeline.orchestrator != "codepipeline"]
CODEPIPELINE = [name for name in variants.names() if name not in CI]


@cache
def deployment(name: str) -> scenario.ProjectDeployment:
    return scenario.deploy(variants.variant_config(name))


@cache
def template(name: str) -> dict[str, Any]:
    return json.loads(ci_oidc.build(variants.variant_config(name)).to_json())


def _role(name: str) -> dict[str, Any]:
    return template(name)["Resources"][ci_oidc.ROLE]["Properties"]


def test_the_variants_cover_both_ci_systems_and_both_provider_choices() -> None:
    orchestrators = {variants.variant_config(n).pipeline.orchestrator for n in CI}
    assert orchestrators == {"github", "gitlab"}
    existing = {variants.variant_config(n).pipeline.ci.oidc_provider_arn is None for n in CI}
    assert existing == {True, False}


@pytest.mark.parametrize("name", CODEPIPELINE)
def test_the_stack_exists_only_with_a_ci_orchestrator(name: str) -> None:
    cfg = variants.variant_config(name)
    assert not stacks.enabled("ci-oidc", cfg)
    assert "ci-oidc" not in deploy.stage_stacks(cfg, "system")


@pytest.mark.parametrize("name", CI)
def test_make_deploy_brings_up_the_ci_role_with_the_system(name: str) -> None:
    cfg = variants.variant_config(name)
    assert deploy.stage_stacks(cfg, "system")[-2:] == ["pipeline", "ci-oidc"]
    assert naming.stack_name(cfg, "ci-oidc") == f"{naming.base(cfg)}-ci-oidc"


@pytest.mark.parametrize("name", CI)
def test_the_provider_is_created_only_when_the_account_has_none_configured(name: str) -> None:
    cfg = variants.variant_config(name)
    trust = oidc.trust(cfg)
    providers = {k: r for k, r in template(name)["Resources"].items() if r["Type"] == "AWS::IAM::OIDCProvider"}
    principal = _role(name)["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Federated"]
    if cfg.pipeline.ci.oidc_provider_arn is not None:
        assert providers == {}
        assert principal == cfg.pipeline.ci.oidc_provider_arn
        return
    (provider,) = providers.values()
    assert provider["Properties"]["Url"] == trust.issuer
    assert provider["Properties"]["ClientIdList"] == [trust.audience]
    # IAM ignores thumbprints for GitHub and GitLab (it trusts their CAs).
    assert "ThumbprintList" not in provider["Properties"]
    # Other projects of the account may trust it: kept on delete, but not after a failed create.
    assert provider["DeletionPolicy"] == "RetainExceptOnCreate"
    assert principal == {"Ref": ci_oidc.PROVIDER}


@pytest.mark.parametrize("name", CI)
def test_the_trust_policy_names_exact_claims_only(name: str) -> None:
    cfg = variants.variant_config(name)
    trust = oidc.trust(cfg)
    (statement,) = _role(name)["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == ["sts:AssumeRoleWithWebIdentity"]
    # StringEquals only: no StringLike (wildcards), no ForAllValues (true when a claim is absent).
    assert set(statement["Condition"]) == {"StringEquals"}
    claims = statement["Condition"]["StringEquals"]
    assert claims == {f"{trust.host}:aud": trust.audience, f"{trust.host}:sub": list(trust.subjects)}
    assert all(not re.search(r"[*?]", sub) for sub in claims[f"{trust.host}:sub"])
    assert all(cfg.pipeline.ci_repository in sub.replace(f"@{cfg.pipeline.ci.owner_id}", "").replace(
        f"@{cfg.pipeline.ci.repository_id}", "") for sub in trust.subjects)


def _assume(name: str, sub: str, aud: str | None = None) -> str:
    """STS's decision on an ID token with ``sub`` and ``aud`` for the CI role."""
    cfg = variants.variant_config(name)
    trust = oidc.trust(cfg)
    role = f"arn:aws:iam::111122223333:role/{naming.physical_name(cfg, 'ci')}"
    # A trust policy is the role's resource policy: its statements apply to the role.
    document = copy.deepcopy(_role(name)["AssumeRolePolicyDocument"])
    for statement in document["Statement"]:
        statement["Resource"] = role
    context = {f"{trust.host}:sub": sub, f"{trust.host}:aud": aud or trust.audience}
    return decide([document], Request("sts:AssumeRoleWithWebIdentity", role, context))


def _github_names(name: str) -> tuple[str, str]:
    cfg = variants.variant_config(name)
    owner, repo = cfg.pipeline.ci_repository.split("/")
    if cfg.pipeline.ci.owner_id is not None:
        return f"{owner}@{cfg.pipeline.ci.owner_id}", f"{repo}@{cfg.pipeline.ci.repository_id}"
    return owner, repo


@pytest.mark.parametrize("name", [n for n in CI if variants.variant_config(n).pipeline.orchestrator == "github"])
def test_github_tokens_of_the_branch_and_the_production_environment_only(name: str) -> None:
    cfg = variants.variant_config(name)
    owner, repo = _github_names(name)
    branch, environment = cfg.pipeline.source.branch, cfg.pipeline.ci.environment
    assert _assume(name, f"repo:{owner}/{repo}:ref:refs/heads/{branch}") == "Allow"
    assert _assume(name, f"repo:{owner}/{repo}:environment:{environment}") == "Allow"
    refused = [
        f"repo:{owner}/{repo}:ref:refs/heads/{branch}-feature",  # another branch
        f"repo:{owner}/{repo}:ref:refs/tags/v1",  # a tag
        f"repo:{owner}/{repo}:pull_request",  # a pull request (forks included)
        f"repo:{owner}/{repo}:environment:staging",  # another environment
        f"repo:attacker/{repo}:ref:refs/heads/{branch}",  # a fork or a same-named repository
        f"repo:{owner}/{repo}-fork:ref:refs/heads/{branch}",  # a name that extends it
        f"repo:{owner}/{repo}:ref:refs/heads/{branch}:extra",
    ]
    if cfg.pipeline.ci.owner_id is not None:
        # A recycled name without the IDs must not match the immutable claim.
        plain_owner, plain_repo = cfg.pipeline.ci_repository.split("/")
        refused.append(f"repo:{plain_owner}/{plain_repo}:ref:refs/heads/{branch}")
    for sub in refused:
        assert _assume(name, sub) == "ImplicitDeny", sub
    assert _assume(name, f"repo:{owner}/{repo}:ref:refs/heads/{branch}", aud="sts.amazonaws.com.evil") != "Allow"


@pytest.mark.parametrize("name", [n for n in CI if variants.variant_config(n).pipeline.orchestrator == "gitlab"])
def test_gitlab_tokens_of_the_branch_only(name: str) -> None:
    cfg = variants.variant_config(name)
    path, branch = cfg.pipeline.ci_repository, cfg.pipeline.source.branch
    assert _assume(name, f"project_path:{path}:ref_type:branch:ref:{branch}") == "Allow"
    for sub in (
        f"project_path:{path}:ref_type:branch:ref:main-other",
        f"project_path:{path}:ref_type:tag:ref:{branch}",
        f"project_path:{path}-fork:ref_type:branch:ref:{branch}",
        f"project_path:other/{path}:ref_type:branch:ref:{branch}",
    ):
        assert _assume(name, sub) == "ImplicitDeny", sub
    assert _assume(name, f"project_path:{path}:ref_type:branch:ref:{branch}", aud="https://gitlab.com") != "Allow"


@pytest.mark.parametrize("name", CI)
def test_the_role_is_named_checked_and_lasts_a_ci_job(name: str) -> None:
    cfg = variants.variant_config(name)
    props = _role(name)
    assert props["RoleName"] == naming.physical_name(cfg, "ci") and len(props["RoleName"]) <= naming.LIMITS["iam-role"]
    # GitHub-hosted runners end a job after 6 hours; the training job waits that long at most.
    assert props["MaxSessionDuration"] == ci_oidc.MAX_SESSION_SECONDS == 21600


def _resources_text(node: Any) -> list[str]:
    found: list[str] = []
    for statement in node["PolicyDocument"]["Statement"]:
        for resource in statement["Resource"]:
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                sub = resource["Fn::Sub"]
                found.append(sub if isinstance(sub, str) else sub[0])
            else:
                found.append(str(resource))
    return found


@pytest.mark.parametrize("name", CI)
def test_every_wildcard_of_the_role_is_justified(name: str) -> None:
    (policy,) = _role(name)["Policies"]
    for text in _resources_text(policy):
        if "*" not in text:
            continue
        assert any(re.search(pattern, text) for pattern, _ in ci_oidc.JUSTIFIED_WILDCARDS), text


def _actions(documents: list[dict[str, Any]]) -> set[str]:
    return {a for d in documents for s in d["Statement"] for a in s["Action"]}


@pytest.mark.parametrize("name", CI)
def test_the_role_has_no_action_the_codepipeline_path_lacks(name: str) -> None:
    """The CI role is the CodePipeline and CodeBuild roles' permissions for the same calls:
    no action the CodePipeline path does not already grant."""
    ci = deployment(name)
    data = yaml.safe_load(variants.path(name).read_text(encoding="utf-8"))
    data["pipeline"] = {"data_prefix": data["pipeline"].get("data_prefix", "training/")}
    twin = scenario.deploy(config.parse(data))  # the same project, orchestrated by CodePipeline
    codepipeline = _actions(twin.role_documents("CodePipelineRole")) | _actions(twin.role_documents("CodeBuildRole"))
    # ...but one: the production job records the environment's approval in the model
    # registry, where on the CodePipeline path people approve (make approve, Studio).
    recorded = {"sagemaker:UpdateModelPackage"}
    assert _actions(role_documents(ci.stack("ci-oidc"), ci_oidc.ROLE)) - recorded <= codepipeline


@pytest.mark.parametrize("name", CI)
def test_the_ci_role_allows_what_the_workflow_does(name: str) -> None:
    """Every call of runtime_permissions.json's ``ci`` role, on the modelled deployment."""
    found = [m for m in runtime.missing(deployment(name)) if m.role == "ci"]
    assert found == [], "\n".join(map(str, found))


def _without(documents: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    documents = copy.deepcopy(documents)
    for document in documents:
        for statement in document["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != action]
    return documents


@pytest.mark.parametrize(
    "action",
    ["cloudformation:DescribeStacks", "states:StopExecution", "kms:GenerateDataKey", "iam:PassRole",
     "ecr:DescribeImages", "s3:ListBucket", "cloudformation:DeleteStack"],
)
def test_the_runtime_check_catches_a_missing_ci_action(action: str) -> None:
    d = deployment(CI[0])
    role = d.ci.resources[ci_oidc.ROLE]  # type: ignore[union-attr]
    original = role.properties
    role.properties = {**original, "Policies": [
        {**p, "PolicyDocument": _without([p["PolicyDocument"]], action)[0]} for p in original["Policies"]
    ]}
    try:
        assert any(m.role == "ci" and m.action == action for m in runtime.missing(d))
    finally:
        role.properties = original


@pytest.mark.parametrize("name", CI)
def test_the_role_reaches_nothing_outside_the_project(name: str) -> None:
    d = deployment(name)
    documents = role_documents(d.stack("ci-oidc"), ci_oidc.ROLE)
    env = d.env
    base = f"{d.config.project.prefix}-{scenario.PROJECT_NAME}"
    other = f"{d.config.project.prefix}-other"
    cfn = f"arn:aws:cloudformation:{env.region}:{env.account}:stack"
    denied = [
        # Production is never deleted by a deployment.
        Request("cloudformation:DeleteStack", f"{cfn}/{base}-deploy-prd/0"),
        # Another project's stacks, roles, repository and key.
        Request("cloudformation:CreateChangeSet", f"{cfn}/{other}-deploy-prd/0"),
        Request("iam:PassRole", f"arn:aws:iam::{env.account}:role/{other}-cloudformation",
                {"iam:PassedToService": "cloudformation.amazonaws.com"}),
        Request("iam:PassRole", f"arn:aws:iam::{env.account}:role/{base}-sagemaker",
                {"iam:PassedToService": "sagemaker.amazonaws.com"}),
        Request("ecr:PutImage", f"arn:aws:ecr:{env.region}:{env.account}:repository/{other}"),
        Request("kms:Decrypt", f"arn:aws:kms:{env.region}:{env.account}:key/k",
                {"kms:ResourceAliases": [f"alias/{other}"]}),
        # A key without the project's alias (the alias is what names the key).
        Request("kms:Decrypt", f"arn:aws:kms:{env.region}:{env.account}:key/k"),
        # Data outside the data prefix, and the artifacts outside the packages.
        Request("s3:ListBucket", d.pipeline.resources["DataBucket"].arn, {"s3:prefix": "private/"}),
        Request("s3:PutObject", f"{d.pipeline.resources['ArtifactBucket'].arn}/runs/x"),
        # The pipeline stack itself.
        Request("cloudformation:UpdateStack", d.pipeline.stack_id),
    ]
    for request in denied:
        assert decide(documents, request) != "Allow", request


def test_the_stack_is_the_configured_projects(tmp_path: Path) -> None:
    """The role's name and the ARNs it reaches follow project.name (the pipeline stack is
    deployed as project.name), never a Studio project's name."""
    cfg = variants.variant_config(CI[0])
    text = json.dumps(template(CI[0]))
    assert f"{naming.base(cfg)}-ci" in text and "SageMakerProjectName" not in text
    assert template(CI[0]) == json.loads(ci_oidc.build(cfg).to_json())  # deterministic


REMOVED_FOR_CI = {
    "AWS::CodeBuild::Project", "AWS::CodePipeline::Pipeline", "AWS::Events::Rule",
}


@pytest.mark.parametrize("name", CI)
def test_with_ci_the_pipeline_stack_is_the_codepipeline_one_without_codepipeline(name: str) -> None:
    """The stores, service roles, deploy role and teardown stay; CodeBuild, CodePipeline,
    the rules that start it, the build logs and the CodeBuild, CodePipeline and EventBridge
    roles go (nothing assumes them)."""
    from mlops_templates.stacks import pipeline
    from mlops_templates.stacks.pipeline import promotion

    cfg = variants.variant_config(name)
    data = yaml.safe_load(variants.path(name).read_text(encoding="utf-8"))
    data["pipeline"] = {"data_prefix": data["pipeline"].get("data_prefix", "training/")}
    ci = json.loads(pipeline.build(cfg).to_json())
    twin = json.loads(pipeline.build(config.parse(data)).to_json())
    removed = {pipeline.BUILD_LOG_GROUP, pipeline.CODEBUILD_ROLE, pipeline.PIPELINE_ROLE, pipeline.EVENTS_ROLE,
               promotion.PROMOTE_ROLE}
    removed |= {k for k, r in twin["Resources"].items() if r["Type"] in REMOVED_FOR_CI}
    assert set(ci["Resources"]) == set(twin["Resources"]) - removed
    assert not {r["Type"] for r in ci["Resources"].values()} & REMOVED_FOR_CI
    assert "CodeConnectionArn" not in ci.get("Parameters", {})
    assert set(twin["Outputs"]) - set(ci["Outputs"]) == {
        "PipelineName", "CodePipelineRoleArn", "CodeBuildRoleArn", "EventsRoleArn", "PromoteProjectName"
    }
