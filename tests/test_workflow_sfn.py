"""Execute the workflow's definition in moto's Step Functions interpreter.

moto runs the real definition (``workflow.definition``: the same builders as the
template) with every state it can execute for real: input validation, the intrinsic
functions that build paths and job names and merge the hyperparameters, the Parallel,
``aws-sdk:s3:getObject`` of ``evaluation.json`` with ``States.StringToJson``, the quality
gate Choice, ``sagemaker:createModel`` and ``aws-sdk:sagemaker:createModelPackage``
against moto's SageMaker, ``sns:publish`` to a topic an SQS queue subscribes to, and the
Fail states.

What replaces what moto cannot run:

* The four ``.sync`` SageMaker jobs (Preprocess, Train, Baseline, Evaluate): moto's
  interpreter does not implement the ``.sync`` pattern for SageMaker. Each becomes a
  Task calling ``aws-sdk:s3:headBucket`` with the job's own ``ResultPath``, ``Catch`` and
  ``Next``/``End`` (no ``Retry``: nothing transient happens here); its ``ResultSelector``
  yields what the real one selects (the Train stub: ``ModelDataUrl`` and ``ImageUri``,
  made from the execution input). A job expected to fail calls ``aws-sdk:s3:getObject``
  for a missing key instead, which fails for real into the job's ``Catch``. The
  evaluation job's output, ``evaluation.json``, is put into moto's S3 where the real job
  would write it.
* moto hands S3 GetObject's ``Body`` to the aws-sdk integration as a stream, where Step
  Functions passes the object's text; ``_s3_body_as_text`` reads the stream into text,
  as Step Functions does, so ``States.StringToJson`` sees what it sees on AWS.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_templates import asl, config, naming
from mlops_templates.stacks import workflow

from .conftest import FAKE_CREDENTIALS, REPO

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "mlops-artifacts"
RUN_ID = "0f1e2d3c-4b5a-6978-8796"
MODEL_DATA_URL = f"s3://{BUCKET}/runs/{{}}/model/job/output/model.tar.gz"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-abalone:{RUN_ID}"
INPUT = {
    "RunId": RUN_ID,
    "TrainingDataUri": "s3://mlops-data/training/abalone.csv",
    "ImageUri": IMAGE_URI,
    "Hyperparameters": {"max_depth": "7", "extra": "1"},
}


def _metrics(rmse: float) -> dict[str, Any]:
    return {
        "regression_metrics": {
            "rmse": {"value": rmse, "standard_deviation": 0.1},
            "mae": {"value": 1.5, "standard_deviation": 0.1},
            "r2": {"value": 0.6, "standard_deviation": 0.0},
            "mse": {"value": rmse * rmse, "standard_deviation": 0.2},
        }
    }


def _s3_body_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    original = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        result = env.stack[-1]
        if isinstance(result, dict) and hasattr(result.get("Body"), "read"):
            result["Body"] = result["Body"].read().decode("utf-8")

    monkeypatch.setattr(aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", eval_service_task)


def stub_jobs(
    definition: dict[str, Any], results: dict[str, Any], failing: str | None = None
) -> dict[str, Any]:
    """``definition`` with its ``.sync`` jobs replaced as the module docstring says."""
    definition = copy.deepcopy(definition)
    for _, scope in asl.scopes(definition):
        for name, state in list(scope["States"].items()):
            if state["Type"] != "Task" or not state["Resource"].endswith(".sync"):
                continue
            stub: dict[str, Any] = {"Type": "Task"}
            if name == failing:
                stub["Resource"] = workflow.RESOURCE_S3_GET_OBJECT
                stub["Parameters"] = {"Bucket": BUCKET, "Key": "no/such/key"}
            else:
                stub["Resource"] = "arn:aws:states:::aws-sdk:s3:headBucket"
                stub["Parameters"] = {"Bucket": BUCKET}
                if name in results:
                    stub["ResultSelector"] = results[name]
            # ResultPath, Catch, Next/End stay: the stub is wired exactly like the job.
            stub.update(
                {key: state[key] for key in ("ResultPath", "Catch", "Next", "End") if key in state}
            )
            scope["States"][name] = stub
    assert asl.problems(definition) == []
    return definition


class Run:
    """One execution's outcome: description, history and the SNS messages it sent."""

    def __init__(
        self,
        description: dict[str, Any],
        history: list[dict[str, Any]],
        messages: list[dict[str, Any]],
    ):
        self.status = description["status"]
        self.output = json.loads(description["output"]) if description.get("output") else None
        self.error = description.get("error")
        self.cause = description.get("cause")
        self.history = history
        self.messages = messages

    def state_output(self, name: str) -> dict[str, Any]:
        for event in self.history:
            details = event.get("stateExitedEventDetails")
            if details and details["name"] == name:
                return json.loads(details["output"])
        raise AssertionError(f"state {name} never exited")

    def entered(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]


class Workflow:
    """Mocked AWS with the topic, queue and bucket; state machines cached per variant.

    One moto context serves the whole module (parsing a definition takes moto about a
    second): every run has its own run id, so runs never see each other's objects.
    """

    def __init__(self) -> None:
        self.clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("s3", "sns", "sqs", "sagemaker", "stepfunctions")
        }
        self.clients["s3"].create_bucket(Bucket=BUCKET)
        self.topic = self.clients["sns"].create_topic(Name="mlops-abalone-notifications")[
            "TopicArn"
        ]
        self.queue = self.clients["sqs"].create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = self.clients["sqs"].get_queue_attributes(
            QueueUrl=self.queue, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.clients["sns"].subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        self.machines: dict[tuple[str, str | None], str] = {}
        self.runs = 0

    def machine(self, cfg: config.Config, failing: str | None) -> str:
        base = naming.base(cfg)
        key = (base, failing)
        if key not in self.machines:
            if not any(k[0] == base for k in self.machines):
                self.clients["sagemaker"].create_model_package_group(
                    ModelPackageGroupName=f"{base}-models"
                )
            definition = asl.substitute(
                workflow.definition(cfg),
                {
                    "ArtifactBucket": BUCKET,
                    "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{base}-sagemaker",
                    "NotificationTopicArn": self.topic,
                    "ModelMonitorImage": "model-monitor-image",
                    "XGBoostImage": "xgboost-image",
                },
            )
            # What the real ResultSelector picks from DescribeTrainingJob.
            train_result = {
                "ModelDataUrl.$": asl.fmt(MODEL_DATA_URL, "$$.Execution.Input.RunId"),
                "ImageUri.$": "$$.Execution.Input.ImageUri",
            }
            definition = stub_jobs(definition, {"Train": train_result}, failing)
            self.machines[key] = self.clients["stepfunctions"].create_state_machine(
                name=f"{base}-training-{len(self.machines)}",
                definition=json.dumps(definition),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/{base}-states",
            )["stateMachineArn"]
        return self.machines[key]

    def run(
        self,
        cfg: config.Config,
        execution_input: dict[str, Any],
        evaluation: dict[str, Any] | None = None,
        failing: str | None = None,
    ) -> Run:
        machine = self.machine(cfg, failing)
        if evaluation is not None:
            key = f"runs/{execution_input['RunId']}/evaluation/evaluation.json"
            self.clients["s3"].put_object(
                Bucket=BUCKET, Key=key, Body=json.dumps(evaluation).encode()
            )
        sfn = self.clients["stepfunctions"]
        self.runs += 1
        execution = sfn.start_execution(
            stateMachineArn=machine, name=f"run-{self.runs}", input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + 30
        while (description := sfn.describe_execution(executionArn=execution))[
            "status"
        ] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.02)
        history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        messages = []
        while (
            received := self.clients["sqs"]
            .receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            .get("Messages")
        ):
            for message in received:
                messages.append(json.loads(message["Body"]))
                self.clients["sqs"].delete_message(
                    QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"]
                )
        return Run(description, history, messages)


@pytest.fixture(scope="module")
def aws() -> Iterator[Workflow]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        _s3_body_as_text(monkeypatch)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield Workflow()


_run_ids = iter(range(1, 1000))


def _input(**changes: Any) -> dict[str, Any]:
    """The standard input with a fresh run id (and ``changes``; ``None`` drops a key)."""
    run_id = f"{RUN_ID[:-4]}{next(_run_ids):04d}"
    values = {
        **INPUT,
        "RunId": run_id,
        "ImageUri": f"{IMAGE_URI.rsplit(':', 1)[0]}:{run_id}",
        **changes,
    }
    return {k: v for k, v in values.items() if v is not None}


def _only_notification(run: Run) -> dict[str, Any]:
    assert len(run.messages) == 1, run.messages
    [envelope] = run.messages
    assert envelope["Subject"] == "mlops-abalone: training run failed"
    return json.loads(envelope["Message"])


# --------------------------------------------------------------------------- runs


def test_a_good_model_is_registered(aws: Workflow, example_config: config.Config) -> None:
    execution_input = _input()
    run_id, image = execution_input["RunId"], execution_input["ImageUri"]
    run = aws.run(example_config, execution_input, evaluation=_metrics(2.1))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    package_arn = run.output["ModelPackageArn"]
    model_data = MODEL_DATA_URL.format(run_id)
    assert run.output == {
        "RunId": run_id,
        "ModelDataUrl": model_data,
        "ImageUri": image,
        "ModelPackageArn": package_arn,
        "BaselineStatisticsUri": f"s3://{BUCKET}/runs/{run_id}/baseline/statistics.json",
        "BaselineConstraintsUri": f"s3://{BUCKET}/runs/{run_id}/baseline/constraints.json",
        "EvaluationUri": f"s3://{BUCKET}/runs/{run_id}/evaluation/evaluation.json",
        "Metrics": _metrics(2.1)["regression_metrics"],
    }
    assert list(run.output) == list(workflow.OUTPUT_KEYS)
    sagemaker = aws.clients["sagemaker"]
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelPackageGroupName"] == "mlops-abalone-models"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"][0] == {
        "Image": image,
        "ModelDataUrl": model_data,
    }
    model = sagemaker.describe_model(ModelName=f"mlops-abalone-{run_id}-model")
    assert model["PrimaryContainer"]["Image"] == image
    assert run.messages == []
    # The input's hyperparameters win over the config's, which fill the gaps.
    context = run.state_output(workflow.INITIALIZE)
    defaults = {k: json.dumps(v) for k, v in example_config.training.hyperparameters.items()}
    assert context["Hyperparameters"] == {**defaults, "max_depth": "7", "extra": "1"}
    assert context["JobNames"]["Train"] == f"mlops-abalone-{run_id}-train"
    assert context["Paths"]["Train"] == f"s3://{BUCKET}/runs/{run_id}/preprocess/train/"
    entered = run.entered()
    assert entered.index("Baseline") < entered.index("Evaluate")


def test_hyperparameters_may_be_left_out(aws: Workflow, example_config: config.Config) -> None:
    run = aws.run(example_config, _input(Hyperparameters=None), evaluation=_metrics(2.9))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    hyperparameters = run.state_output(workflow.INITIALIZE)["Hyperparameters"]
    assert hyperparameters == {
        k: json.dumps(v) for k, v in example_config.training.hyperparameters.items()
    }


def test_a_poor_model_is_rejected_and_notified(
    aws: Workflow, example_config: config.Config
) -> None:
    execution_input = _input()
    run = aws.run(example_config, execution_input, evaluation=_metrics(3.5))
    assert run.status == "FAILED"
    assert run.error == "QualityGateFailed"
    assert run.cause == (
        "The model was not registered: rmse is 3.5 on the test split; the gate requires rmse < 3.0."
    )
    message = _only_notification(run)
    assert message["Error"] == "QualityGateFailed" and message["Cause"] == run.cause
    assert message["StateMachine"] == "mlops-abalone-training"
    assert message["Input"] == execution_input
    assert workflow.CREATE_MODEL not in run.entered()
    models = aws.clients["sagemaker"].list_models()["Models"]
    assert not [m for m in models if execution_input["RunId"] in m["ModelName"]]


def test_an_evaluation_without_the_metric_is_rejected(
    aws: Workflow, example_config: config.Config
) -> None:
    run = aws.run(
        example_config, _input(), evaluation={"regression_metrics": {"mae": {"value": 1.0}}}
    )
    assert (run.status, run.error) == ("FAILED", "EvaluationIncomplete")
    assert _only_notification(run)["Error"] == "EvaluationIncomplete"


def test_a_missing_evaluation_is_named(aws: Workflow, example_config: config.Config) -> None:
    run = aws.run(example_config, _input(), evaluation=None)
    assert (run.status, run.error) == ("FAILED", "EvaluationUnreadable")
    assert "NoSuchKey" in run.cause
    assert _only_notification(run)["Error"] == "EvaluationUnreadable"


def test_a_failed_job_in_the_parallel_is_named_notified_and_failed(
    aws: Workflow, example_config: config.Config
) -> None:
    run = aws.run(example_config, _input(), evaluation=_metrics(2.0), failing="Train")
    assert (run.status, run.error) == ("FAILED", "TrainingFailed")
    assert "NoSuchKey" in run.cause  # the raw error leads the cause
    message = _only_notification(run)
    assert message["Error"] == "TrainingFailed" and message["Cause"] == run.cause
    assert workflow.EVALUATE not in run.entered()


def test_a_failed_job_outside_the_parallel_is_named(
    aws: Workflow, example_config: config.Config
) -> None:
    run = aws.run(example_config, _input(), evaluation=_metrics(2.0), failing="Preprocess")
    assert (run.status, run.error) == ("FAILED", "PreprocessingFailed")
    assert _only_notification(run)["Error"] == "PreprocessingFailed"
    assert workflow.TRAIN_AND_BASELINE not in run.entered()


@pytest.mark.parametrize(
    "changes",
    [
        {"ImageUri": None},
        {"TrainingDataUri": "https://example.com/abalone.csv"},
        {"RunId": 42},
        {"Hyperparameters": "max_depth=5"},
    ],
    ids=["missing-image", "not-s3", "run-id-not-a-string", "hyperparameters-not-an-object"],
)
def test_invalid_input_is_refused_before_any_job(
    aws: Workflow, example_config: config.Config, changes: dict[str, Any]
) -> None:
    run = aws.run(example_config, _input(**changes))
    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert _only_notification(run)["Error"] == "InvalidInput"
    assert workflow.PREPROCESS not in run.entered()


def test_the_r2_gate_of_the_xgboost_variant(aws: Workflow) -> None:
    cfg = config.load(REPO / "tests" / "configs" / "api-key-xgboost.yaml")  # r2 >= 0.5
    run = aws.run(cfg, _input(), evaluation=_metrics(9.0))  # rmse is not gated here
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["ModelPackageArn"].split("/")[-2] == "acme-churn-models"
