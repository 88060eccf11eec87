"""The GitHub Actions and GitLab CI workflows: linted by the real tools (and shown to fail
them when broken), shaped like the CodePipeline they replace, and presenting exactly the
OIDC identities the ci-oidc stack's role trusts; and the steps they run (``mlops-templates
ci env|deploy|train``) against fakes of the AWS APIs.

The committed renderings are tests/golden/<config>/ci/ (tests/test_templates.py keeps them
equal to a fresh render); variants without a committed rendering are rendered here.
"""

from __future__ import annotations

import copy
import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_templates import config, contract, naming, render
from mlops_templates.ci import oidc, steps, validate, workflows
from mlops_templates.errors import ConfigError
from mlops_templates.permissions import scenario
from mlops_templates.permissions.policy import Request, decide
from mlops_templates.stacks import ci_oidc, pipeline, run_stacks
from mlops_templates.stacks.pipeline import builds

from . import variants
from .conftest import REPO

CI = [n for n in variants.names() if variants.variant_config(n).pipeline.orchestrator != "codepipeline"]
GITHUB = [n for n in CI if variants.variant_config(n).pipeline.orchestrator == "github"]
GITLAB = [n for n in CI if variants.variant_config(n).pipeline.orchestrator == "gitlab"]
GOLDEN = REPO / "tests" / "golden"


@cache
def rendered(name: str) -> tuple[str, str]:
    """(path under templates/, text) of the variant's workflow."""
    ((path, text),) = workflows.render(variants.variant_config(name)).items()
    return path, text


def written(name: str, tmp_path: Path) -> Path:
    """The variant's workflow on disk: the committed one where there is one."""
    path, text = rendered(name)
    golden = GOLDEN / name / path
    if golden.is_file():
        assert golden.read_text(encoding="utf-8") == text
        return golden
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def document(name: str) -> dict[str, Any]:
    return yaml.safe_load(rendered(name)[1])


def test_both_ci_systems_have_a_committed_rendering() -> None:
    for name, orchestrator in (("github-actions", "github"), ("gitlab-ci", "gitlab")):
        path, _ = workflows.FILES[orchestrator]
        assert (GOLDEN / name / path).is_file(), f"run `make templates` ({name})"
    assert GITHUB and GITLAB


# -- The linters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GITHUB)
def test_the_github_workflow_passes_actionlint_shellcheck_zizmor_and_the_schema(name: str, tmp_path: Path) -> None:
    findings = validate.github(written(name, tmp_path))
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("name", GITLAB)
def test_the_gitlab_pipeline_passes_the_gitlab_ci_schema(name: str, tmp_path: Path) -> None:
    findings = validate.gitlab(written(name, tmp_path))
    assert findings == [], "\n".join(map(str, findings))


def _broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    _, text = rendered(name)
    assert old in text, old
    path = tmp_path / ("mlops.yml" if name in GITHUB else ".gitlab-ci.yml")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "tool", "says"),
    [
        # A job that needs a job that does not exist.
        ("needs: build\n", "needs: bulid\n", "actionlint", "bulid"),
        # A shell bug in a run: script (shellcheck, run by actionlint).
        ('mkdir -p build/out\n', 'mkdir -p $OUT_DIR\n', "actionlint", "SC2086"),
        # An action on a movable tag instead of a commit.
        ("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1", "actions/checkout@v7",
         "zizmor", "unpinned"),
        # Untrusted input expanded into a script (template injection).
        ('exports="$(python -m', 'echo "${{ inputs.training_data_uri }}"\n          exports="$(python -m',
         "zizmor", "template-injection"),
        # A key the workflow syntax does not have.
        ("    timeout-minutes: 60\n", "    timeout-minutes: 60\n    retries: 2\n", "check-jsonschema", "retries"),
    ],
    ids=["actionlint-needs", "shellcheck", "zizmor-unpinned", "zizmor-injection", "schema"],
)
def test_the_github_linters_reject_a_broken_workflow(tmp_path: Path, old: str, new: str, tool: str, says: str) -> None:
    findings = validate.github(_broken(tmp_path, "github-actions", old, new))
    assert any(f.tool == tool and says in f.message for f in findings), findings


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("  when: manual\n", "  when: sometimes\n", "when"),
        ("  resource_group: ml-churn\n  timeout: 360m\n", "  resource_group: ml-churn\n  timeout: []\n", "timeout"),
    ],
    ids=["when", "timeout"],
)
def test_the_gitlab_schema_rejects_a_broken_pipeline(tmp_path: Path, old: str, new: str, says: str) -> None:
    findings = validate.gitlab(_broken(tmp_path, "gitlab-ci", old, new))
    assert [f.tool for f in findings] == ["check-jsonschema"] and says in findings[0].message, findings


def test_a_missing_linter_is_an_error_not_a_skipped_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_templates.errors import LintError

    monkeypatch.setattr(validate, "_bin_dirs", lambda: ["/nonexistent"])
    with pytest.raises(LintError, match="make install"):
        validate.executable("actionlint")


# -- The GitHub workflow --------------------------------------------------------------------


def _jobs(name: str) -> dict[str, Any]:
    return document(name)["jobs"]


def _credentials(job: dict[str, Any]) -> dict[str, Any] | None:
    for step in job["steps"]:
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
            return step["with"]
    return None


@pytest.mark.parametrize("name", GITHUB)
def test_github_jobs_mirror_the_codepipeline_stages(name: str) -> None:
    cfg = variants.variant_config(name)
    doc, jobs = document(name), _jobs(name)
    assert list(jobs) == ["build", "train", "deploy-dev", "deploy-prd"]
    assert jobs["train"]["needs"] == "build"
    assert jobs["deploy-dev"]["needs"] == ["build", "train"]
    assert jobs["deploy-prd"]["needs"] == ["build", "train", "deploy-dev"]
    # The approval: the production environment (its required reviewers), on that job only.
    assert jobs["deploy-prd"]["environment"] == cfg.pipeline.ci.environment
    assert [j for j, spec in jobs.items() if "environment" in spec] == ["deploy-prd"]
    # Pushes to the branch, or a run started by hand (TrainingDataUri as an input).
    on = doc[True]  # YAML 1.1 reads the key `on` as True
    assert on["push"] == {"branches": [cfg.pipeline.source.branch]}
    assert on["workflow_dispatch"]["inputs"]["training_data_uri"]["default"] == contract.LATEST
    assert jobs["build"]["if"] == f"github.ref == 'refs/heads/{cfg.pipeline.source.branch}'"
    # One run at a time, as the CodePipeline's QUEUED mode: runs share stacks and endpoints.
    assert doc["concurrency"] == {"group": naming.base(cfg), "cancel-in-progress": False}


@pytest.mark.parametrize("name", GITHUB)
def test_github_permissions_are_least_and_there_are_no_secrets(name: str) -> None:
    doc, text = document(name), rendered(name)[1]
    assert doc["permissions"] == {"contents": "read"}
    for job in doc["jobs"].values():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert _credentials(job) is not None
    assert "secrets." not in text
    assert set(re.findall(r"vars\.([A-Z_]+)", text)) == {"AWS_ROLE_ARN", "AWS_REGION"}
    # No stored keys anywhere: only the role and the OIDC token.
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job in doc["jobs"].values():
        checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", GITHUB)
def test_every_action_is_pinned_to_a_full_commit_with_its_release(name: str) -> None:
    uses = re.findall(r"uses: (\S+)@(\S+)( # \S+)?", rendered(name)[1])
    assert uses
    for action, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), (action, ref)
        assert comment.startswith(" # v"), action
        assert (action, ref, comment[3:]) in workflows.ACTIONS.values()


def _github_subject(cfg: config.Config, job: dict[str, Any]) -> str:
    """The sub claim GitHub gives a job's token (GitHub docs, "OpenID Connect reference")."""
    owner, repo = cfg.pipeline.ci_repository.split("/")
    if cfg.pipeline.ci.owner_id is not None:
        owner, repo = f"{owner}@{cfg.pipeline.ci.owner_id}", f"{repo}@{cfg.pipeline.ci.repository_id}"
    if "environment" in job:
        return f"repo:{owner}/{repo}:environment:{job['environment']}"
    return f"repo:{owner}/{repo}:ref:refs/heads/{cfg.pipeline.source.branch}"


def _trust_allows(cfg: config.Config, sub: str, aud: str) -> bool:
    (statement,) = json.loads(ci_oidc.build(cfg).to_json())["Resources"][ci_oidc.ROLE]["Properties"][
        "AssumeRolePolicyDocument"]["Statement"]
    statement = {**copy.deepcopy(statement), "Resource": "*"}
    host = oidc.trust(cfg).host
    request = Request("sts:AssumeRoleWithWebIdentity", "*", {f"{host}:sub": sub, f"{host}:aud": aud})
    return decide([{"Statement": [statement]}], request) == "Allow"


@pytest.mark.parametrize("name", GITHUB)
def test_every_github_job_presents_an_identity_the_role_trusts(name: str) -> None:
    """The workflow and the ci-oidc stack agree: each job's sub claim and audience, as
    GitHub forms them, are what the trust policy admits."""
    cfg = variants.variant_config(name)
    for job_id, job in _jobs(name).items():
        audience = _credentials(job).get("audience", oidc.GITHUB_AUDIENCE)  # type: ignore[union-attr]
        assert _trust_allows(cfg, _github_subject(cfg, job), audience), job_id
        # Had the job named another environment, the role would refuse it.
        assert not _trust_allows(cfg, _github_subject(cfg, {**job, "environment": "x"}), audience)


@pytest.mark.parametrize("name", GITHUB)
def test_github_jobs_run_the_library_steps_with_credentials_that_outlast_them(name: str) -> None:
    jobs = _jobs(name)
    for job_id, job in jobs.items():
        duration = int(_credentials(job).get("role-duration-seconds", 3600))  # type: ignore[union-attr]
        assert duration >= job["timeout-minutes"] * 60, job_id
        assert duration <= ci_oidc.MAX_SESSION_SECONDS
    runs = {job_id: " ".join(s.get("run", "") for s in job["steps"]) for job_id, job in jobs.items()}
    assert "ci deploy workflow" in runs["train"] and "ci train" in runs["train"]
    assert "ci deploy deploy-dev" in runs["deploy-dev"] and "ci deploy deploy-prd" in runs["deploy-prd"]


# -- The GitLab pipeline --------------------------------------------------------------------


@pytest.mark.parametrize("name", GITLAB)
def test_gitlab_jobs_mirror_the_codepipeline_stages_with_a_manual_approval(name: str) -> None:
    cfg = variants.variant_config(name)
    doc = document(name)
    assert doc["stages"] == ["build", "train", "deploy-dev", "deploy-prd"]
    branch = cfg.pipeline.source.branch
    (rule,) = doc["workflow"]["rules"]
    assert rule["if"].startswith(f'$CI_COMMIT_BRANCH == "{branch}" && ')
    prd = doc["deploy-prd"]
    assert prd["when"] == "manual" and prd["allow_failure"] is False
    assert prd["environment"]["name"] == cfg.pipeline.ci.environment
    assert [j for j in ("build", "train", "deploy-dev", "deploy-prd") if doc[j].get("when") == "manual"] == ["deploy-prd"]
    # One training or deployment at a time across pipelines.
    assert {doc[j]["resource_group"] for j in ("train", "deploy-dev", "deploy-prd")} == {naming.base(cfg)}
    assert doc["deploy-prd"]["needs"] == ["build", "train", "deploy-dev"]


@pytest.mark.parametrize("name", GITLAB)
def test_every_gitlab_job_presents_an_identity_the_role_trusts(name: str) -> None:
    cfg = variants.variant_config(name)
    doc, text = document(name), rendered(name)[1]
    audience = doc["default"]["id_tokens"]["AWS_ID_TOKEN"]["aud"]
    assert "id_tokens" not in json.dumps({k: v for k, v in doc.items() if k != "default"})
    sub = f"project_path:{cfg.pipeline.ci_repository}:ref_type:branch:ref:{cfg.pipeline.source.branch}"
    assert _trust_allows(cfg, sub, audience)
    assert not _trust_allows(cfg, sub.replace(":ref:", ":ref:x"), audience)
    # The SDKs and the CLI assume AWS_ROLE_ARN with the token file; no stored keys.
    assert doc["variables"]["AWS_WEB_IDENTITY_TOKEN_FILE"].startswith("/tmp/")
    for job in ("build",):
        assert any("AWS_WEB_IDENTITY_TOKEN_FILE" in line for line in doc[job]["before_script"])
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text


# -- One build, three systems --------------------------------------------------------------


def test_the_ci_build_runs_the_buildspecs_commands() -> None:
    """The CI build script and the CodeBuild buildspec render the same package and output
    commands, so the two paths cannot drift apart."""
    cfg = variants.variant_config("github-actions")
    spec = yaml.safe_load(builds.buildspec(cfg))
    script = workflows.build_script(cfg).splitlines()
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    shared = [
        c for c in commands
        if c.startswith(("aws cloudformation package", "python -m mlops_templates", "mlops-templates", "exports="))
    ]
    assert len(shared) == len(run_stacks(cfg)) + 3  # + the run's environment, the render, the outputs
    for command in shared:
        assert command in script, command


def test_ci_deployments_use_the_codepipeline_actions_capabilities() -> None:
    template = json.loads(pipeline.build(variants.variant_config("example")).to_json())
    found = {}
    for stage in template["Resources"][pipeline.PIPELINE]["Properties"]["Stages"]:
        for action in stage["Actions"]:
            if action["ActionTypeId"]["Provider"] == "CloudFormation":
                name = action["Configuration"]["StackName"]["Fn::Sub"]
                (stack,) = [s for s in contract.RUN_STACKS if name.endswith(f"}}-{s}")]
                found[stack] = action["Configuration"].get("Capabilities", "")
    # Production is deployed by the promotion (registry promote), with ci deploy's spec.
    assert found == {stack: ",".join(caps) for stack, caps in steps.CAPABILITIES.items() if stack != "deploy-prd"}
    assert steps.CAPABILITIES["deploy-prd"] == ("CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")


def test_render_and_the_cli_refuse_another_orchestrators_workflow(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline.orchestrator is codepipeline"):
        workflows.render_one(variants.variant_config("example"), "github")
    assert workflows.render(variants.variant_config("example")) == {}
    assert render.render(variants.variant_config("example")).keys().isdisjoint({"ci/github/mlops.yml"})
    from mlops_templates import cli

    assert cli.main(["-c", str(variants.path("gitlab-ci")), "ci", "github", "--out", str(tmp_path)]) == 2
    assert cli.main(["-c", str(variants.path("gitlab-ci")), "ci", "gitlab", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ci" / "gitlab" / ".gitlab-ci.yml").read_text() == rendered("gitlab-ci")[1]


# -- The steps --------------------------------------------------------------------------------


def _outputs(stack: Any) -> dict[str, str]:
    found = {name: stack.output(name) for name in stack.template.get("Outputs", {})}
    return {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in found.items()}


@pytest.mark.parametrize("name", ["example", "private-vpc", "api-key-xgboost"])
def test_the_ci_environment_is_the_build_projects(name: str) -> None:
    """Read from the pipeline stack's outputs, the CI build gets exactly the environment the
    pipeline stack sets on its CodeBuild project (both resolved on a modelled deployment)."""
    d = scenario.deploy(variants.variant_config(name))
    build = d.pipeline.resources[pipeline.BUILD_PROJECT].properties["Environment"]["EnvironmentVariables"]
    codebuild = {v["Name"]: str(v["Value"]) for v in build}
    outputs = {k: v for k, v in _outputs(d.pipeline).items() if k != "PipelineName"}
    parameters = {k: str(v) for k, v in d.pipeline.parameters.items()}
    assert steps.stack_env(d.config, outputs, parameters) == codebuild
    assert set(codebuild) >= set(contract.STACK_ENV)


def test_the_ci_environment_refuses_a_pipeline_that_codepipeline_runs() -> None:
    d = scenario.deploy(variants.variant_config("example"))
    with pytest.raises(steps.StepError, match="runs CodePipeline"):
        steps.stack_env(d.config, _outputs(d.pipeline), {})
    with pytest.raises(steps.StepError, match="no output"):
        steps.stack_env(d.config, {"ArtifactBucketName": "b"}, {})
    assert steps.exports({"A": "x y'z"}) == "export A='x y'\"'\"'z'\n"


def _build_dir(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    (build / contract.EXECUTION_INPUT).write_text(json.dumps({"RunId": "1234567890"}))
    for stack in contract.RUN_STACKS:
        (build / f"{stack}.yaml").write_text("Resources: {}\n")
        (build / f"{stack}.json").write_text(json.dumps({"Parameters": {"KmsKeyArn": "k"}, "Tags": {}}))
    return build


def test_a_deployment_passes_the_role_the_parameters_and_the_training_output(tmp_path: Path) -> None:
    cfg = variants.variant_config("github-actions")
    build = _build_dir(tmp_path)
    trained = tmp_path / contract.TRAIN_OUTPUT
    trained.write_text(json.dumps({key: f"value-{key}" for key in contract.TRAIN_OUTPUT_KEYS}))
    outputs = {"ArtifactBucketName": "art", "CloudFormationRoleArn": "arn:aws:iam::1:role/acme-fraud-cloudformation"}
    prd = steps.deployment(cfg, "deploy-prd", build, outputs, trained)
    assert prd.name == "acme-fraud-deploy-prd" and prd.bucket == "art"
    assert prd.role_arn == outputs["CloudFormationRoleArn"]
    assert prd.prefix.startswith(ci_oidc.PACKAGES_PREFIX + "1234567890/")
    assert prd.parameters == {"KmsKeyArn": "k", **{k: f"value-{k}" for k in contract.TRAIN_OUTPUT_OVERRIDES["deploy-prd"]}}
    assert prd.replace_failed is False and list(prd.capabilities) == ["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    workflow = steps.deployment(cfg, "workflow", build, outputs)
    assert workflow.replace_failed is True and workflow.parameters == {"KmsKeyArn": "k"}
    with pytest.raises(steps.StepError, match="needs the training output"):
        steps.deployment(cfg, "deploy-dev", build, outputs)
    with pytest.raises(steps.StepError, match="not a per-run stack"):
        steps.deployment(cfg, "pipeline", build, outputs)


class FakeCloudFormation:
    def __init__(self, status: str) -> None:
        self.status, self.calls = status, []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.calls.append(("describe_stacks", StackName))
        return {"Stacks": [{"StackName": StackName, "StackId": f"id/{StackName}", "StackStatus": self.status}]}

    def describe_stack_events(self, **_: Any) -> dict[str, Any]:
        return {"StackEvents": []}

    def delete_stack(self, StackName: str) -> None:
        raise AssertionError("production must never be deleted by a deployment")


def test_production_left_by_a_failed_create_is_not_deleted_but_explained() -> None:
    from mlops_templates import deploy
    from mlops_templates.stackwatch import DeployError, Watcher

    fake = FakeCloudFormation("ROLLBACK_COMPLETE")
    with pytest.raises(DeployError, match="(?s)never deletes it.*delete-stack --stack-name acme-fraud-deploy-prd"):
        deploy._ready(fake, Watcher(fake, io.StringIO()), "acme-fraud-deploy-prd", replace_failed=False)


def test_a_deployment_with_a_role_hands_it_to_cloudformation(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from mlops_templates import deploy

    template = tmp_path / "t.yaml"
    template.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")
    role = "arn:aws:iam::123456789012:role/acme-fraud-cloudformation"
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="art")
        spec = deploy.StackSpec("acme-fraud-workflow", template, "art", "packages/1/templates", role_arn=role)
        assert deploy.deploy_stack(session, spec, io.StringIO()) == "CREATE_COMPLETE"
        (stack,) = session.client("cloudformation").describe_stacks(StackName="acme-fraud-workflow")["Stacks"]
        assert stack["RoleARN"] == role
        keys = [o["Key"] for o in session.client("s3").list_objects_v2(Bucket="art")["Contents"]]
        assert all(k.startswith("packages/1/templates/") for k in keys)


class FakeStates:
    """Step Functions: an execution that runs for ``polls`` answers, then ends ``status``."""

    def __init__(self, status: str, output: dict[str, Any] | None = None, polls: int = 2) -> None:
        self.status, self.output, self.polls = status, output, polls
        self.started: dict[str, Any] = {}
        self.stopped: list[str] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started = kwargs
        return {"executionArn": f"arn:aws:states:eu-west-1:1:execution:m:{kwargs['name']}"}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.polls -= 1
        if self.polls > 0:
            return {"status": "RUNNING"}
        found = {"status": self.status, "error": "States.TaskFailed", "cause": "the gate failed"}
        if self.output is not None:
            found["output"] = json.dumps(self.output)
        return found

    def stop_execution(self, executionArn: str, **_: Any) -> None:
        self.stopped.append(executionArn)


class FakeSession:
    def __init__(self, states: FakeStates) -> None:
        self.states = states

    def client(self, service: str) -> Any:
        if service == "stepfunctions":
            return self.states
        outputs = [{"OutputKey": "StateMachineArn", "OutputValue": "arn:aws:states:eu-west-1:1:stateMachine:m"}]

        class CloudFormation:
            def describe_stacks(self, StackName: str) -> dict[str, Any]:
                assert StackName == "acme-fraud-workflow"
                return {"Stacks": [{"Outputs": outputs, "Parameters": []}]}

        return CloudFormation()


def test_training_runs_the_builds_input_waits_and_writes_the_output(tmp_path: Path) -> None:
    cfg = variants.variant_config("github-actions")
    build = _build_dir(tmp_path)
    output = {key: f"s3://b/{key}" for key in contract.TRAIN_OUTPUT_KEYS}
    states = FakeStates("SUCCEEDED", output, polls=3)
    out, log = tmp_path / "train-result", io.StringIO()
    out.mkdir()
    written_path = steps.train(FakeSession(states), cfg, build, out, "2", log, sleep=lambda _: None)
    assert json.loads(written_path.read_text()) == output and written_path.name == contract.TRAIN_OUTPUT
    assert states.started["name"] == "1234567890-2"  # <run id>-<attempt>: unique per try
    assert json.loads(states.started["input"]) == {"RunId": "1234567890"}
    assert "RUNNING" in log.getvalue() and "SUCCEEDED" in log.getvalue()


def test_a_failed_training_fails_the_job_with_the_cause(tmp_path: Path) -> None:
    cfg = variants.variant_config("github-actions")
    with pytest.raises(steps.StepError, match="FAILED: States.TaskFailed the gate failed"):
        steps.train(FakeSession(FakeStates("FAILED")), cfg, _build_dir(tmp_path), tmp_path, "1", io.StringIO(),
                    sleep=lambda _: None)
    # An output without the model fails like the TrainOutput build does.
    (tmp_path / "b").mkdir()
    with pytest.raises(steps.StepError, match="ModelDataUrl"):
        steps.train(FakeSession(FakeStates("SUCCEEDED", {"x": 1})), cfg, _build_dir(tmp_path / "b"), tmp_path,
                    "1", io.StringIO(), sleep=lambda _: None)


def test_a_cancelled_job_stops_the_training(tmp_path: Path) -> None:
    cfg = variants.variant_config("github-actions")
    states = FakeStates("SUCCEEDED", polls=5)

    def cancel(_: float) -> None:
        raise KeyboardInterrupt  # GitHub sends SIGINT to a cancelled job's step

    with pytest.raises(steps.StepError, match="cancelled"):
        steps.train(FakeSession(states), cfg, _build_dir(tmp_path), tmp_path, "1", io.StringIO(), sleep=cancel)
    assert states.stopped == ["arn:aws:states:eu-west-1:1:execution:m:1234567890-1"]


@pytest.mark.parametrize(("name", "gate"), [("github-actions", "reviewers of environment production"),
                                            ("gitlab-ci", "manual job, environment prod")])
def test_the_architecture_diagram_draws_the_ci_jobs_from_the_rendered_workflow(name: str, gate: str) -> None:
    from mlops_templates import diagram

    text = diagram.architecture(diagram.load(GOLDEN / name))
    assert "CodePipeline" not in text
    assert "push --> jobbuild" in text and "jobbuild --> jobtrain" in text
    assert f'approvedeployprd["approval: {gate}"]' in text
    assert "jobdeploydev --> approvedeployprd" in text and "approvedeployprd --> jobdeployprd" in text
    assert 'jobtrain -.->|"StartExecution"| stateValidateInput' in text
    assert 'jobdeployprd -.->|"deploys"| prdEndpoint' in text
    # No rule starts a CI run from AWS: no retraining edge from the drift alarm.
    assert '-->|"retrain"|' not in text
