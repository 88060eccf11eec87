"""The deploy and teardown logic that needs no AWS endpoint: stages, parameters, events.

The same code runs against a moto server, through make, in tests/test_makefile.py.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_templates import config as config_mod
from mlops_templates import deploy, stackwatch, teardown
from mlops_templates.stackwatch import DeployError

CONNECTION = "arn:aws:codeconnections:us-east-1:111122223333:connection/00000000-0000-0000-0000-000000000000"
OTHER = "arn:aws:codeconnections:us-east-1:111122223333:connection/11111111-1111-1111-1111-111111111111"


def event(
    logical_id: str, status: str, reason: str = "", kind: str = "AWS::S3::Bucket", second: int = 0
) -> dict:
    return {
        "EventId": f"{logical_id}-{status}-{second}",
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": datetime(2024, 5, 1, 12, 0, second, tzinfo=UTC),
    }


def test_the_first_failure_is_the_cause_not_what_cloudformation_cancelled_because_of_it() -> None:
    events = [
        event("app", "CREATE_IN_PROGRESS", "User Initiated", "AWS::CloudFormation::Stack"),
        event("Role", "CREATE_FAILED", "Resource creation cancelled", "AWS::IAM::Role", 1),
        event("Bucket", "CREATE_FAILED", "mybucket already exists", second=2),
        event("Topic", "CREATE_FAILED", "Topic limit exceeded", "AWS::SNS::Topic", 3),
        event(
            "app",
            "ROLLBACK_IN_PROGRESS",
            "The following resource(s) failed to create: [Bucket, Role]",
            "AWS::CloudFormation::Stack",
            4,
        ),
    ]
    found = stackwatch.first_failure(events, "app")
    assert found is not None and found["LogicalResourceId"] == "Bucket"
    assert stackwatch.failure_line(found) == (
        "first failure: Bucket (AWS::S3::Bucket) CREATE_FAILED: mybucket already exists"
    )
    only_stack = [event("app", "UPDATE_FAILED", "role not authorized", "AWS::CloudFormation::Stack")]
    assert stackwatch.first_failure(only_stack, "app") == only_stack[0]
    assert stackwatch.first_failure(events[:1], "app") is None


def test_an_event_line_has_time_logical_id_type_status_and_reason() -> None:
    line = stackwatch.format_event(event("Bucket", "CREATE_FAILED", "already\n exists", second=7))
    assert line.startswith("12:00:07  Bucket ")
    assert line.split() == ["12:00:07", "Bucket", "AWS::S3::Bucket", "CREATE_FAILED", "already", "exists"]


class FakeCloudFormation:
    """describe_stack_events over pages of 2, newest first, as CloudFormation lists them."""

    def __init__(self, events: list[dict]) -> None:
        self.events = events  # oldest first

    def describe_stack_events(self, StackName: str, NextToken: str | None = None) -> dict:
        newest = list(reversed(self.events))
        start = int(NextToken or 0)
        page = newest[start : start + 2]
        more = start + 2 < len(newest)
        return {"StackEvents": page, **({"NextToken": str(start + 2)} if more else {})}


def test_the_watcher_prints_only_new_events_oldest_first_across_pages() -> None:
    cloudformation = FakeCloudFormation([event("Old", "CREATE_COMPLETE", second=0)])
    out = io.StringIO()
    watcher = stackwatch.Watcher(cloudformation, out)
    watcher.mark("stack")
    cloudformation.events += [event(f"New{i}", "CREATE_COMPLETE", second=i) for i in range(1, 6)]
    watcher.poll("stack")
    watcher.poll("stack")
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["New1", "New2", "New3", "New4", "New5"]
    assert [e["LogicalResourceId"] for e in watcher.events("stack")] == [
        "New1",
        "New2",
        "New3",
        "New4",
        "New5",
    ]


def test_template_parameters_read_short_form_tags_and_json() -> None:
    text = (
        "Parameters:\n  Name: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\n"
        "    Properties: {TopicName: !Ref Name, Tags: [!GetAtt X.Y]}\n"
    )
    assert deploy.template_parameters(text) == {"Name": {"Type": "String"}}
    assert deploy.template_parameters('{"Resources": {}}') == {}
    with pytest.raises(DeployError, match="not a CloudFormation template"):
        deploy.template_parameters("- a list")


def test_overrides_are_key_value_words() -> None:
    assert deploy.parse_overrides(["A=1", "B=x=y", "A=2", "C="]) == {"A": "2", "B": "x=y", "C": ""}
    with pytest.raises(DeployError, match="'oops': write it as Key=Value"):
        deploy.parse_overrides(["oops"])


def test_stages() -> None:
    cfg = config_mod.parse({})
    assert deploy.stage_stacks(cfg, "system") == ["account", "pipeline"]
    assert deploy.stage_stacks(cfg, "dev") == ["deploy-dev"]
    assert deploy.stage_stacks(cfg, "deploy-prd") == ["deploy-prd"]
    assert deploy.publish_stacks(cfg) == ["account", "studio"]
    with pytest.raises(DeployError, match="STAGE must be system, account, pipeline, workflow, dev or prd"):
        deploy.stage_stacks(cfg, "qa")
    with pytest.raises(DeployError, match="make publish"):
        deploy.stage_stacks(cfg, "studio")
    off = config_mod.parse({"account": {"api_gateway_logging_role": False}})
    assert deploy.stage_stacks(off, "system") == ["pipeline"]
    assert deploy.publish_stacks(off) == ["studio"]
    with pytest.raises(DeployError, match="account.api_gateway_logging_role: false"):
        deploy.stage_stacks(off, "account")


def test_the_connection_goes_only_to_a_template_that_takes_it() -> None:
    pinned = config_mod.parse({"pipeline": {"source": {"connection_arn": CONNECTION}}})
    takes = {"CodeConnectionArn": {"Type": "String"}}
    assert deploy.connection_parameter(pinned, takes, OTHER) == {"CodeConnectionArn": OTHER}
    assert deploy.connection_parameter(pinned, takes, None) == {}
    assert deploy.connection_parameter(pinned, {}, CONNECTION) == {}
    assert deploy.connection_parameter(pinned, {}, None) == {}
    with pytest.raises(DeployError, match="differs from pipeline.source.connection_arn"):
        deploy.connection_parameter(pinned, {}, OTHER)
    codecommit = config_mod.parse({"pipeline": {"source": {"provider": "codecommit", "repository": "r"}}})
    with pytest.raises(DeployError, match="uses no connection; omit CONNECTION_ARN"):
        deploy.connection_parameter(codecommit, {}, OTHER)


def test_project_id_is_the_one_make_deploy_always_derived() -> None:
    assert deploy.project_id("abalone") == "p-b4eb0604ba82"


def test_values_keep_previous_ones_on_update_and_name_what_is_missing(tmp_path: Path) -> None:
    spec = deploy.StackSpec("app", tmp_path / "t.yaml", "b", parameters={"A": "1"}, hints={"B": "pass B=..."})
    declared = {"A": {"Type": "String"}, "B": {"Type": "String"}, "C": {"Type": "String", "Default": "c"}}
    with pytest.raises(DeployError, match="stack app needs a value for B:\n  B: pass B=..."):
        deploy._values(spec, declared, None, set())
    existing = stackwatch.Stack("app", "id", "CREATE_COMPLETE", "")
    assert deploy._values(spec, declared, existing, {"A", "B", "C"}) == [
        {"ParameterKey": "A", "ParameterValue": "1"},
        {"ParameterKey": "B", "UsePreviousValue": True},
        {"ParameterKey": "C", "UsePreviousValue": True},
    ]
    spec.parameters["Z"] = "1"
    with pytest.raises(DeployError, match=r"the template has no parameter\(s\) Z \(it has: A, B, C\)"):
        deploy._values(spec, declared, existing, set())


def test_destroy_checks_purge_kinds_and_asks_first() -> None:
    cfg = config_mod.parse({})
    with pytest.raises(DeployError, match=r"PURGE: unknown kind\(s\) data"):
        teardown.destroy(cfg, ["data"], yes=True)
    asked: list[str] = []

    def refuse(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(DeployError, match="not confirmed; nothing deleted"):
        teardown.destroy(cfg, ["buckets"], confirm=refuse)
    assert asked == [
        (
            "Delete project abalone: stacks mlops-abalone-deploy-prd, mlops-abalone-deploy-dev, "
            "mlops-abalone-batch, mlops-abalone-workflow, the SageMaker project abalone (or stack mlops-abalone-pipeline), "
            "and PURGE the retained buckets?"
        )
    ]


class LaggingCloudFormation(FakeCloudFormation):
    """A stack that still shows its old final status while an update starts."""

    def __init__(self) -> None:
        super().__init__([event("app", "CREATE_COMPLETE", kind="AWS::CloudFormation::Stack")])
        self.polls = 0

    def describe_stacks(self, StackName: str) -> dict:
        self.polls += 1
        if self.polls == 3:
            self.events.append(
                event("app", "UPDATE_IN_PROGRESS", kind="AWS::CloudFormation::Stack", second=1)
            )
        if self.polls == 5:
            self.events.append(event("app", "UPDATE_COMPLETE", kind="AWS::CloudFormation::Stack", second=2))
        status = (
            "UPDATE_IN_PROGRESS"
            if self.polls in (3, 4)
            else ("CREATE_COMPLETE" if self.polls < 3 else "UPDATE_COMPLETE")
        )
        return {"Stacks": [{"StackName": "app", "StackId": "app", "StackStatus": status}]}


def test_a_started_operation_is_done_only_when_its_final_event_has_come() -> None:
    cloudformation, out = LaggingCloudFormation(), io.StringIO()
    watcher = stackwatch.Watcher(cloudformation, out, sleep=lambda _: None)
    watcher.mark("app")
    final = watcher.wait({"app": "app"}, started=True)
    assert final["app"].status == "UPDATE_COMPLETE"
    assert [line.split()[3] for line in out.getvalue().splitlines()] == [
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE",
    ]
