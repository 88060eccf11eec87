"""How a training run fails, executed for real in moto's Step Functions interpreter: a
Task's error is renamed after its step, published once to the project topic and ends the
execution with that name; a poor or incomplete evaluation is refused with its own error.
And what every Task does before it gives up: which errors it retries, how, and how long a
short API call may take.

The run is the one of tests/test_workflow_requests.py (each Task a recording stand-in),
with the failing Task a real ``aws-sdk:s3:getObject`` of a missing object, wired with the
Task's own ``Catch``, so the error travels the definition's own routes. Expected errors,
subjects and messages are written out here (the module docstring of
``mlops_templates.stacks.workflow`` and ``mlops_templates.notifications`` name them).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_templates import config

from . import test_safety_workflow_selectors as run
from . import test_workflow_requests as requests
from .variants import path

RUN_ID, IMAGE, DATA = requests.RUN_ID, requests.IMAGE, requests.DATA
GOOD = {"RunId": RUN_ID, "TrainingDataUri": DATA, "ImageUri": IMAGE}


@pytest.fixture(scope="module")
def sfn() -> Iterator[run.Sfn]:
    yield from requests.moto_sfn()


def outcome(sfn: run.Sfn, name: str, failing: str | None = None,
            report: dict[str, Any] | None = None, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run variant ``name``'s workflow with ``failing`` failing (or ``report`` as the
    evaluation): the execution's status, error and cause, the states it entered, and
    what each notice Task sent."""
    definition = run.substituted(run.machine(config.load(path(name))), sfn.topic)
    results = run.selections(sfn, definition)
    if report is not None:
        read = next(n for n, s in run.tasks(definition).items() if s["Resource"].endswith("s3:getObject"))
        results[read] = {"Report": report}
    stand_ins = run.with_stand_ins(definition, results)
    for scope in run.scopes(stand_ins):
        if failing in scope["States"]:
            task = run.tasks(definition)[failing]
            scope["States"][failing] = {
                "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": run.BUCKET, "Key": "no/such/key"},
                **{k: task[k] for k in ("ResultPath", "Catch", "Next", "End") if k in task},
            }
    client = sfn.client
    sfn.count += 1
    machine = client.create_state_machine(name=f"failure-{sfn.count}", definition=json.dumps(stand_ins),
                                          roleArn=f"arn:aws:iam::{run.ACCOUNT}:role/states")["stateMachineArn"]
    execution = client.start_execution(stateMachineArn=machine, name=f"run-{sfn.count}",
                                       input=json.dumps(given or GOOD))["executionArn"]
    deadline = time.monotonic() + 60
    while (description := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.02)
    history = client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    notices = {n for n, s in run.tasks(definition).items() if s["Resource"] == "arn:aws:states:::sns:publish"}
    sent = {}
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details["name"] in notices and details["name"] != failing:
            sent[details["name"]] = json.loads(details["output"])["Calls"][details["name"]]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    return {"status": description["status"], "error": description.get("error"),
            "cause": description.get("cause"), "entered": entered, "sent": sent,
            "execution": f"run-{sfn.count}"}


#: What the failing stand-in raises (getObject from a bucket this moto does not have).
RAW = "s3.NoSuchBucketException: The specified bucket does not exist"


@pytest.mark.parametrize(("step", "error"), [
    ("Preprocess", "PreprocessingFailed"),
    ("Train", "TrainingFailed"),
    ("Evaluate", "EvaluationFailed"),
    ("ReadEvaluation", "EvaluationUnreadable"),
    ("CreateModel", "ModelCreationFailed"),
    ("RegisterModel", "RegistrationFailed"),
])
def test_a_failed_step_is_named_notified_once_and_fails_the_run(sfn: run.Sfn, step: str, error: str) -> None:
    result = outcome(sfn, "example", failing=step)
    assert (result["status"], result["error"]) == ("FAILED", error)
    # The raw error leads the cause, then the raw cause.
    assert result["cause"].startswith(RAW), result["cause"]
    assert list(result["sent"]) == ["NotifyFailure"]
    notice = result["sent"]["NotifyFailure"]
    assert notice["TopicArn"] == sfn.topic
    assert notice["Subject"] == "mlops-abalone: training run failed"
    assert notice["Message"] == (
        f"Training execution {result['execution']} of mlops-abalone failed: {error}: {result['cause']}")
    assert "Output" not in result["entered"] and "NotifyRegistered" not in result["entered"]


@pytest.mark.parametrize(("name", "step", "error"), [
    ("tuning", "Tune", "TuningFailed"),
    ("tuning", "ReadBestTrainingJob", "BestTrainingJobUnreadable"),
    ("model-monitor", "Train", "TrainingFailed"),
    ("model-monitor", "Baseline", "BaselineFailed"),
    ("tuning-model-monitor", "ReadBestTrainingJob", "BestTrainingJobUnreadable"),
])
def test_a_failed_training_or_baseline_job_is_named_after_itself(
        sfn: run.Sfn, name: str, step: str, error: str) -> None:
    """Also inside TrainAndBaseline's branches, which fail with the step's name."""
    result = outcome(sfn, name, failing=step)
    assert (result["status"], result["error"]) == ("FAILED", error)
    assert result["cause"].startswith(RAW), result["cause"]
    assert list(result["sent"]) == ["NotifyFailure"]
    assert error in result["sent"]["NotifyFailure"]["Message"]  # the variants' own texts
    assert "Evaluate" not in result["entered"]


def test_a_model_below_the_gate_is_rejected_with_the_gate_failed_notice(sfn: run.Sfn) -> None:
    report = copy.deepcopy(run.REPORT)
    report["regression_metrics"]["rmse"]["value"] = 3.5  # mlops.yaml gates on rmse < 3.0
    result = outcome(sfn, "example", report=report)
    message = (f"Training run {RUN_ID} of mlops-abalone did not pass the quality gate: rmse is 3.5 on "
               "the test split, the gate requires rmse < 3.0. The model was not registered.")
    assert (result["status"], result["error"], result["cause"]) == ("FAILED", "QualityGateFailed", message)
    assert result["sent"] == {"NotifyGateFailed": {
        "TopicArn": sfn.topic, "Subject": "mlops-abalone: training run rejected", "Message": message}}
    assert "CreateModel" not in result["entered"]


@pytest.mark.parametrize("rmse", [None, "2.1", {"mean": 2.1}])
def test_an_evaluation_without_a_numeric_metric_is_incomplete(sfn: run.Sfn, rmse: Any) -> None:
    report = copy.deepcopy(run.REPORT)
    if rmse is None:
        del report["regression_metrics"]["rmse"]
    else:
        report["regression_metrics"]["rmse"]["value"] = rmse
    result = outcome(sfn, "example", report=report)
    assert (result["status"], result["error"]) == ("FAILED", "EvaluationIncomplete")
    assert result["cause"] == "evaluation.json has no numeric regression_metrics.rmse.value to gate on."
    assert list(result["sent"]) == ["NotifyFailure"]
    assert "CreateModel" not in result["entered"]


def test_a_refused_input_is_notified_under_the_executions_name(sfn: run.Sfn) -> None:
    result = outcome(sfn, "example", given={"TrainingDataUri": DATA, "ImageUri": IMAGE})
    assert (result["status"], result["error"]) == ("FAILED", "InvalidInput")
    # No RunId to name the run by: the execution's name instead.
    assert result["sent"]["NotifyFailure"]["Message"].startswith(
        f"Training execution {result['execution']} of mlops-abalone failed: InvalidInput: ")
    assert "Preprocess" not in result["entered"]


def test_a_notice_that_cannot_be_sent_never_changes_the_outcome(sfn: run.Sfn) -> None:
    registered = outcome(sfn, "example", failing="NotifyRegistered")
    assert registered["status"] == "SUCCEEDED"
    assert registered["entered"][-2:] == ["Output", "Succeeded"]
    report = copy.deepcopy(run.REPORT)
    report["regression_metrics"]["rmse"]["value"] = 3.5
    rejected = outcome(sfn, "example", failing="NotifyGateFailed", report=report)
    assert (rejected["status"], rejected["error"]) == ("FAILED", "QualityGateFailed")
    assert rejected["cause"].startswith(f"Training run {RUN_ID} of mlops-abalone did not pass")
    failed = outcome(sfn, "example", failing="NotifyFailure", given={"RunId": RUN_ID})
    assert (failed["status"], failed["error"]) == ("FAILED", "InvalidInput")
    assert failed["cause"].startswith("The execution input needs string fields RunId")


# ------------------------------------------------------------------------ retries

#: The transient errors of each integration, as Step Functions names them: the optimised
#: SageMaker integration's, and the AWS SDK integrations' "<Service>.<Exception>" names.
TRANSIENT = {
    "sagemaker": ["ThrottlingException", "SageMaker.AmazonSageMakerException"],
    "aws-sdk:sagemaker": ["SageMaker.ThrottlingException", "SageMaker.SageMakerException",
                          "SageMaker.SdkClientException"],
    "aws-sdk:s3": ["S3.SdkClientException", "S3.InternalErrorException", "S3.SlowDownException"],
    "sns": ["SNS.ThrottledException", "SNS.InternalErrorException", "SNS.SdkClientException"],
}


@pytest.mark.parametrize("name", ["example", "tuning-model-monitor"])
def test_every_task_retries_its_transient_errors_with_backoff_and_times_out_short_calls(name: str) -> None:
    definition = run.machine(config.load(path(name)))["Definition"]
    for state_name, task in run.tasks(definition).items():
        resource = task["Resource"].removeprefix("arn:aws:states:::")
        integration = resource.rsplit(":", 1)[0]
        # 5 s, 10 s, 20 s, 40 s (at most 60 s), each drawn at random below that: runs
        # throttled together do not retry together.
        assert task["Retry"] == [{
            "ErrorEquals": TRANSIENT[integration], "IntervalSeconds": 5, "MaxAttempts": 4,
            "BackoffRate": 2.0, "MaxDelaySeconds": 60, "JitterStrategy": "FULL",
        }], state_name
        # A job runs for hours (its StoppingCondition bounds it); an API call answers in
        # seconds, and one that hangs fails the state within a minute.
        if resource.endswith(".sync"):
            assert "TimeoutSeconds" not in task, state_name
        else:
            assert task["TimeoutSeconds"] == 60, state_name
