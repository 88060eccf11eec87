"""Execute the workflow's definition in moto's Step Functions interpreter.

moto runs the real definition (``workflow.definition``: the same builders as the
template) with every state it can execute for real: input validation, the intrinsic
functions that draw the attempt id, build paths and job names and merge the
hyperparameters, the Parallel, ``aws-sdk:s3:getObject`` of ``evaluation.json`` with
``States.StringToJson``, the quality gate Choice, ``sagemaker:createModel`` and
``aws-sdk:sagemaker:createModelPackage`` against moto's SageMaker, ``sns:publish`` to a
topic an SQS queue subscribes to, and the Fail states.

What replaces what moto cannot run:

* The ``.sync`` SageMaker jobs (Preprocess, Train or Tune, Baseline, Evaluate): moto's
  interpreter does not implement the ``.sync`` pattern for SageMaker. Each becomes a
  Task with the job's own ``ResultPath``, ``Catch`` and ``Next``/``End`` (no ``Retry``:
  nothing transient happens here) that evaluates the job's real name expression:
  Preprocess, Train and Baseline ``aws-sdk:s3:putObject`` an empty object named after
  the job into the bucket ``JOB_NAMES`` with ``IfNoneMatch: *``, which refuses a name
  used before, as SageMaker refuses a job name used before in the account and region.
  Evaluate copies the run's prepared report (``evaluations/<RunId>.json``) to where the
  real job writes ``evaluation.json``, with the job name in its metadata; a machine
  with ``writes_evaluation=False`` has it write nothing. The Train stub's
  ``ResultSelector`` yields what the real one selects (``ModelDataUrl`` and
  ``TrainingImage``); the Tune stub's yields the best training job's name
  (``BEST_TRAINING_JOB``), a job the test creates in moto's SageMaker, which
  ``ReadBestTrainingJob`` then describes for real. A job expected to fail calls ``aws-sdk:s3:getObject`` for a
  missing key instead, which fails for real into the job's ``Catch``.
* moto hands S3 GetObject's ``Body`` to the aws-sdk integration as a stream, where Step
  Functions passes the object's text; ``sfn_patches.s3_body_as_text`` reads the stream into text,
  as Step Functions does, so ``States.StringToJson`` sees what it sees on AWS.
* moto's context object has no ``$$.Execution.RedriveCount`` (nor a RedriveExecution
  API); ``sfn_patches.redrive_count`` adds it, 0 as on AWS until an execution is
  redriven. A redrive is simulated the way Step Functions runs one: the state that did
  not complete runs again with its recorded input and a higher ``RedriveCount``
  (``Workflow.run(start_at=..., redrive_count=...)``).
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

from . import sfn_patches
from .conftest import FAKE_CREDENTIALS, REPO

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "mlops-artifacts"
#: Stands in for SageMaker's job names: one object per job created (see the docstring).
JOB_NAMES = "sagemaker-job-names"
RUN_ID = "0f1e2d3c-4b5a"
MODEL_DATA_URL = f"s3://{BUCKET}/runs/{{}}/model/{{}}/output/model.tar.gz"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-abalone:{RUN_ID}"
XGBOOST_IMAGE = "xgboost-image"
INPUT = {
    "RunId": RUN_ID,
    "TrainingDataUri": "s3://mlops-data/training/abalone.csv",
    "ImageUri": IMAGE_URI,
    "Hyperparameters": {"max_depth": "7", "extra": "1"},
}
#: The best training job of a stubbed tuning job, by execution name.
BEST_TRAINING_JOB = "tuned-{}-003-a1b2c3d4"
#: ``$$.Execution.RedriveCount`` of the executions started next (see the docstring).
CONTEXT = {"RedriveCount": 0}


def _variant_path(name: str) -> Any:
    from .variants import path

    return path(name)


def _metrics(rmse: float) -> dict[str, Any]:
    return {
        "regression_metrics": {
            "rmse": {"value": rmse, "standard_deviation": 0.1},
            "mae": {"value": 1.5, "standard_deviation": 0.1},
            "r2": {"value": 0.6, "standard_deviation": 0.0},
            "mse": {"value": rmse * rmse, "standard_deviation": 0.2},
        }
    }


def _job_name_expression(state: dict[str, Any]) -> str:
    params = state["Parameters"]
    return (
        params.get("ProcessingJobName.$")
        or params.get("HyperParameterTuningJobName.$")
        or params["TrainingJobName.$"]
    )


def stub_jobs(
    definition: dict[str, Any],
    results: dict[str, Any],
    failing: str | None = None,
    writes_evaluation: bool = True,
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
            elif name == workflow.EVALUATE and not writes_evaluation:
                stub["Resource"] = "arn:aws:states:::aws-sdk:s3:headBucket"
                stub["Parameters"] = {"Bucket": BUCKET}
            elif name == workflow.EVALUATE:
                stub["Resource"] = "arn:aws:states:::aws-sdk:s3:copyObject"
                stub["Parameters"] = {
                    "Bucket": BUCKET,
                    "Key.$": "$.Paths.EvaluationKey",
                    "CopySource.$": asl.fmt(f"{BUCKET}/evaluations/{{}}.json", "$.RunId"),
                    "MetadataDirective": "REPLACE",
                    "Metadata": {"job-name.$": _job_name_expression(state)},
                }
            else:
                stub["Resource"] = "arn:aws:states:::aws-sdk:s3:putObject"
                stub["Parameters"] = {
                    "Bucket": JOB_NAMES,
                    "Key.$": _job_name_expression(state),
                    "Body": "",
                    "IfNoneMatch": "*",
                }
            if name in results and name != failing:
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

    def state_input(self, name: str) -> dict[str, Any]:
        for event in self.history:
            details = event.get("stateEnteredEventDetails")
            if details and details["name"] == name:
                return json.loads(details["input"])
        raise AssertionError(f"state {name} never entered")

    def entered(self) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]


class Workflow:
    """Mocked AWS with the topic, queue and buckets; state machines cached per variant.

    One moto context serves the whole module (parsing a definition takes moto about a
    second): runs have their own run ids, or their own attempt ids where they share
    one, so runs never see each other's objects.
    """

    def __init__(self) -> None:
        self.clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("s3", "sns", "sqs", "sagemaker", "stepfunctions")
        }
        self.clients["s3"].create_bucket(Bucket=BUCKET)
        self.clients["s3"].create_bucket(Bucket=JOB_NAMES)
        self.topic = self.clients["sns"].create_topic(Name="mlops-abalone-notifications")[
            "TopicArn"
        ]
        self.queue = self.clients["sqs"].create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = self.clients["sqs"].get_queue_attributes(
            QueueUrl=self.queue, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.clients["sns"].subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        self.machines: dict[tuple[str, str | None, bool, str | None], str] = {}
        self.groups: set[str] = set()
        self.runs = 0

    def machine(
        self,
        cfg: config.Config,
        failing: str | None,
        writes_evaluation: bool,
        start_at: str | None = None,
    ) -> str:
        base = naming.base(cfg)
        # Variants may share a project name (and its model package group) but not a machine.
        key = (cfg.model_dump_json(), failing, writes_evaluation, start_at)
        if key not in self.machines:
            if base not in self.groups:
                self.clients["sagemaker"].create_model_package_group(
                    ModelPackageGroupName=f"{base}-models"
                )
                self.groups.add(base)
            definition = asl.substitute(
                workflow.definition(cfg),
                {
                    "ArtifactBucket": BUCKET,
                    "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{base}-sagemaker",
                    "NotificationTopicArn": self.topic,
                    "ModelMonitorImage": "model-monitor-image",
                    "XGBoostImage": XGBOOST_IMAGE,
                },
            )
            # What the real ResultSelector picks from DescribeTrainingJob.
            train_result = {
                "ModelDataUrl.$": asl.fmt(
                    MODEL_DATA_URL, "$$.Execution.Input.RunId", "$$.Execution.Name"
                ),
                **(
                    {"TrainingImage": XGBOOST_IMAGE}
                    if workflow.xgboost(cfg)
                    else {"TrainingImage.$": "$$.Execution.Input.ImageUri"}
                ),
            }
            # What the real ResultSelector picks from DescribeHyperParameterTuningJob: the best
            # training job, which ReadBestTrainingJob then describes in moto's SageMaker.
            tune_result = {"BestTrainingJobName.$": asl.fmt(BEST_TRAINING_JOB, "$$.Execution.Name")}
            definition = stub_jobs(
                definition, {"Train": train_result, "Tune": tune_result}, failing, writes_evaluation
            )
            if start_at:
                definition["StartAt"] = start_at
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
        start_at: str | None = None,
        redrive_count: int = 0,
    ) -> Run:
        """Run ``execution_input`` to its end; ``start_at`` and ``redrive_count`` replay a
        redrive (``execution_input`` is then the recorded input of ``start_at``)."""
        machine = self.machine(cfg, failing, evaluation is not None, start_at)
        if evaluation is not None:
            key = f"evaluations/{execution_input['RunId']}.json"
            self.clients["s3"].put_object(
                Bucket=BUCKET, Key=key, Body=json.dumps(evaluation).encode()
            )
        sfn = self.clients["stepfunctions"]
        description = self.execute(machine, execution_input, redrive_count)
        history = sfn.get_execution_history(
            executionArn=description["executionArn"], maxResults=1000
        )["events"]
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

    def execute(
        self, machine: str, execution_input: dict[str, Any], redrive_count: int = 0
    ) -> dict[str, Any]:
        """Start an execution of ``machine`` and wait for its end; its description."""
        sfn = self.clients["stepfunctions"]
        self.runs += 1
        CONTEXT["RedriveCount"] = redrive_count
        try:
            execution = sfn.start_execution(
                stateMachineArn=machine, name=f"run-{self.runs}", input=json.dumps(execution_input)
            )["executionArn"]
            deadline = time.monotonic() + 30
            while (description := sfn.describe_execution(executionArn=execution))[
                "status"
            ] == "RUNNING":
                assert time.monotonic() < deadline, "execution did not finish"
                time.sleep(0.02)
        finally:
            CONTEXT["RedriveCount"] = 0
        return description

    def job_names(self, run_id: str) -> set[str]:
        """Names of the Preprocess, Train and Baseline jobs created for ``run_id``."""
        listed = self.clients["s3"].list_objects_v2(Bucket=JOB_NAMES)
        return {o["Key"] for o in listed.get("Contents", []) if f"-{run_id}-" in o["Key"]}

    def evaluation_job_name(self, context: dict[str, Any]) -> str:
        """The Evaluate job's name, which its stub keeps with ``evaluation.json``."""
        head = self.clients["s3"].head_object(Bucket=BUCKET, Key=context["Paths"]["EvaluationKey"])
        return head["Metadata"]["job-name"]


@pytest.fixture(scope="module")
def aws() -> Iterator[Workflow]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        sfn_patches.s3_body_as_text(monkeypatch)
        sfn_patches.redrive_count(monkeypatch, CONTEXT)
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


def _only_notification(run: Run, subject: str = "mlops-abalone: training run failed") -> str:
    """The one message the run sent: a readable text (notifications.py), never JSON."""
    assert len(run.messages) == 1, run.messages
    [envelope] = run.messages
    assert envelope["Subject"] == subject
    text = envelope["Message"]
    assert not text.lstrip().startswith("{"), text
    return text


def _batch_steps(cfg: config.Config) -> tuple[str, ...]:
    """The steps of the jobs the stubs record by name: Model Monitor adds its baseline."""
    steps = (workflow.STEP_PREPROCESS, workflow.STEP_TRAIN)
    return (*steps, workflow.STEP_BASELINE) if cfg.monitoring.engine == "model_monitor" else steps


# --------------------------------------------------------------------------- runs


def test_a_good_model_is_registered(aws: Workflow, example_config: config.Config) -> None:
    execution_input = _input()
    run_id, image = execution_input["RunId"], execution_input["ImageUri"]
    run = aws.run(example_config, execution_input, evaluation=_metrics(2.1))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    context = run.state_output(workflow.INITIALIZE)
    attempt = context["Attempt"]
    assert len(attempt) == naming.ATTEMPT_ID_LENGTH and int(attempt, 16) >= 0
    package_arn = run.output["ModelPackageArn"]
    model_data = MODEL_DATA_URL.format(run_id, "run-" + str(aws.runs))
    prefix = f"s3://{BUCKET}/runs/{run_id}/{attempt}"
    assert run.output == {
        "RunId": run_id,
        "ModelDataUrl": model_data,
        "ImageUri": image,
        "ModelPackageArn": package_arn,
        "BaselineStatisticsUri": f"{prefix}/baseline/statistics.json",
        "BaselineConstraintsUri": f"{prefix}/baseline/constraints.json",
        "EvaluationUri": f"{prefix}/evaluation/evaluation.json",
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
    model_name = f"mlops-abalone-{run_id}-model-{attempt}-0"
    assert package["CustomerMetadataProperties"] == {
        "RunId": run_id,
        "Attempt": attempt,
        "ModelName": model_name,
        "TrainingImage": image,
    }
    model = sagemaker.describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["Image"] == image
    text = _only_notification(run, "mlops-abalone: model registered")
    assert text == (
        f"Training run {run_id} of mlops-abalone passed the quality gate: rmse is 2.1 on the test "
        f"split (rmse < 3.0). Registered version {package_arn.rsplit('/', 1)[1]}: {package_arn}."
    )
    # The input's hyperparameters win over the config's, which fill the gaps.
    defaults = {k: json.dumps(v) for k, v in example_config.training.hyperparameters.items()}
    assert context["Hyperparameters"] == {**defaults, "max_depth": "7", "extra": "1"}
    assert context["Paths"]["Train"] == f"{prefix}/preprocess/train/"
    assert aws.job_names(run_id) == {
        f"mlops-abalone-{run_id}-{step}-{attempt}-0" for step in _batch_steps(example_config)
    }
    assert aws.evaluation_job_name(context) == f"mlops-abalone-{run_id}-eval-{attempt}-0"
    entered = run.entered()
    assert entered.index("Train") < entered.index("Evaluate")
    assert workflow.TRAIN_AND_BASELINE not in entered  # no Model Monitor analyzer


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
        f"Training run {execution_input['RunId']} of mlops-abalone did not pass the quality gate: "
        "rmse is 3.5 on the test split, the gate requires rmse < 3.0. The model was not registered."
    )
    # The gate's own notice: the cause, word for word.
    assert _only_notification(run, "mlops-abalone: training run rejected") == run.cause
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
    assert run.cause == "evaluation.json has no numeric regression_metrics.rmse.value to gate on."
    text = _only_notification(run)
    assert text.startswith(f"Training execution run-{aws.runs} of mlops-abalone failed: EvaluationIncomplete: ")
    assert run.cause in text


def test_a_missing_evaluation_is_named(aws: Workflow, example_config: config.Config) -> None:
    run = aws.run(example_config, _input(), evaluation=None)
    assert (run.status, run.error) == ("FAILED", "EvaluationUnreadable")
    assert "NoSuchKey" in run.cause
    assert f"failed: EvaluationUnreadable: {run.cause}" in _only_notification(run)


@pytest.mark.parametrize("name", ["example", "model-monitor"])
def test_a_failed_training_job_is_named_notified_and_failed(aws: Workflow, name: str) -> None:
    """A step of its own (builtin monitoring), or a branch of TrainAndBaseline (Model Monitor)."""
    cfg = config.load(_variant_path(name))
    run = aws.run(cfg, _input(), evaluation=_metrics(2.0), failing="Train")
    assert (run.status, run.error) == ("FAILED", "TrainingFailed")
    assert "NoSuchKey" in run.cause  # the raw error leads the cause
    base = naming.base(cfg)
    # Model Monitor's variant words its training_failed message itself (notifications.messages).
    expected = (f"Training run-{aws.runs} failed (TrainingFailed)" if name == "model-monitor"
                else f"Training execution run-{aws.runs} of {base} failed: TrainingFailed: {run.cause}")
    assert _only_notification(run, f"{base}: training run failed") == expected
    assert workflow.EVALUATE not in run.entered()
    assert (workflow.TRAIN_AND_BASELINE in run.entered()) is (name == "model-monitor")


def test_a_failed_job_outside_the_parallel_is_named(
    aws: Workflow, example_config: config.Config
) -> None:
    run = aws.run(example_config, _input(), evaluation=_metrics(2.0), failing="Preprocess")
    assert (run.status, run.error) == ("FAILED", "PreprocessingFailed")
    assert "failed: PreprocessingFailed: " in _only_notification(run)
    assert workflow.TRAIN not in run.entered()


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
    # Named after the execution: an input without a RunId still gets its message.
    assert f"Training execution run-{aws.runs} of mlops-abalone failed: InvalidInput: " in _only_notification(run)
    assert workflow.PREPROCESS not in run.entered()


def test_the_r2_gate_of_the_xgboost_variant(aws: Workflow) -> None:
    cfg = config.load(REPO / "tests" / "configs" / "api-key-xgboost.yaml")  # r2 >= 0.5
    run = aws.run(cfg, _input(), evaluation=_metrics(9.0))  # rmse is not gated here
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["ModelPackageArn"].split("/")[-2] == "acme-churn-models"


def test_the_project_container_serves_a_builtin_xgboost_model(aws: Workflow) -> None:
    """The built-in image trains; the run's own image (raw rows in) serves."""
    cfg = config.load(REPO / "tests" / "configs" / "api-key-xgboost.yaml")
    execution_input = _input()
    image = execution_input["ImageUri"]
    run = aws.run(cfg, execution_input, evaluation=_metrics(2.0))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.state_output(workflow.TRAIN)["Training"]["TrainingImage"] == XGBOOST_IMAGE
    assert run.output["ImageUri"] == image  # what deploy-dev and deploy-prd serve
    sagemaker = aws.clients["sagemaker"]
    package = sagemaker.describe_model_package(ModelPackageName=run.output["ModelPackageArn"])
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == image
    assert package["CustomerMetadataProperties"]["TrainingImage"] == XGBOOST_IMAGE
    model = sagemaker.describe_model(ModelName=package["CustomerMetadataProperties"]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == image


# ------------------------------------------------------------------ retries and redrives


def test_a_retried_run_gets_new_names_and_registers_its_own_model(
    aws: Workflow, example_config: config.Config
) -> None:
    """The same input twice (the pipeline's Train stage retried): both executions run.

    Each trains its own model, so each registers a version: they are different models
    with their own evaluation and baseline, and the registry keeps both, the first one's
    files untouched by the second (per-attempt S3 prefixes).
    """
    execution_input = _input()
    run_id = execution_input["RunId"]
    first = aws.run(example_config, execution_input, evaluation=_metrics(2.1))
    second = aws.run(example_config, execution_input, evaluation=_metrics(2.2))
    assert first.status == second.status == "SUCCEEDED", (second.error, second.cause)
    attempts = [r.state_output(workflow.INITIALIZE)["Attempt"] for r in (first, second)]
    assert attempts[0] != attempts[1]
    # Four SageMaker jobs: no name of the first execution was used again.
    assert aws.job_names(run_id) == {
        f"mlops-abalone-{run_id}-{step}-{attempt}-0"
        for step in _batch_steps(example_config)
        for attempt in attempts
    }
    evaluations = {aws.evaluation_job_name(r.state_output(workflow.INITIALIZE)) for r in (first, second)}
    assert evaluations == {f"mlops-abalone-{run_id}-eval-{a}-0" for a in attempts}
    sagemaker = aws.clients["sagemaker"]
    packages = [
        sagemaker.describe_model_package(ModelPackageName=r.output["ModelPackageArn"])
        for r in (first, second)
    ]
    assert packages[0]["ModelPackageArn"] != packages[1]["ModelPackageArn"]
    assert [p["CustomerMetadataProperties"]["ModelName"] for p in packages] == [
        f"mlops-abalone-{run_id}-model-{attempt}-0" for attempt in attempts
    ]
    for package, run, attempt in zip(packages, (first, second), attempts):
        quality = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        assert quality == run.output["EvaluationUri"]
        assert f"/runs/{run_id}/{attempt}/" in quality
    report = aws.clients["s3"].get_object(
        Bucket=BUCKET, Key=first.state_output(workflow.INITIALIZE)["Paths"]["EvaluationKey"]
    )
    assert json.loads(report["Body"].read()) == _metrics(2.1)  # still the first model's


def test_a_redriven_job_gets_a_new_name(aws: Workflow, example_config: config.Config) -> None:
    """A redrive runs a state again with its recorded input and context, RedriveCount + 1.

    The replay re-runs Preprocess of a finished execution, whose job was created, as
    a redriven job's was: with the same RedriveCount the names collide (what a redrive
    met when names came from the input alone); one higher, every job is new.
    """
    execution_input = _input()
    run_id = execution_input["RunId"]
    original = aws.run(example_config, execution_input, evaluation=_metrics(2.1))
    assert original.status == "SUCCEEDED", (original.error, original.cause)
    recorded = original.state_input(workflow.PREPROCESS)
    attempt = recorded["Attempt"]

    same = aws.run(example_config, recorded, _metrics(2.1), start_at=workflow.PREPROCESS)
    assert (same.status, same.error) == ("FAILED", "PreprocessingFailed")
    assert "Status Code: 412" in same.cause  # IfNoneMatch: the name is taken

    redriven = aws.run(
        example_config, recorded, _metrics(2.1), start_at=workflow.PREPROCESS, redrive_count=1
    )
    assert redriven.status == "SUCCEEDED", (redriven.error, redriven.cause)
    assert aws.job_names(run_id) == {
        f"mlops-abalone-{run_id}-{step}-{attempt}-{count}"
        for step in _batch_steps(example_config)
        for count in (0, 1)
    }
    assert aws.evaluation_job_name(recorded) == f"mlops-abalone-{run_id}-eval-{attempt}-1"
    package = aws.clients["sagemaker"].describe_model_package(
        ModelPackageName=redriven.output["ModelPackageArn"]
    )
    assert package["CustomerMetadataProperties"]["ModelName"] == (
        f"mlops-abalone-{run_id}-model-{attempt}-1"
    )
    # Same run, same attempt: the redrive writes under the attempt's own prefix.
    assert redriven.output["EvaluationUri"] == original.output["EvaluationUri"]


@pytest.mark.parametrize("name", ["example", "model-monitor"])
def test_name_expressions_follow_the_redrive_count_and_the_token_does_not(
    aws: Workflow, name: str
) -> None:
    """Every job and model name of the real definition, evaluated by moto for a redrive
    count of 0 and 1; the registration's ClientToken stays (one version per attempt)."""
    cfg = config.load(_variant_path(name))
    base = naming.base(cfg)
    tasks = {
        name: state for name, state in asl.all_states(workflow.definition(cfg))
        if state["Type"] == "Task"
    }
    steps = {"Preprocess": "prep", "Train": "train", "Baseline": "stats", "Evaluate": "eval",
             "CreateModel": "model"}
    if "Baseline" not in tasks:
        del steps["Baseline"]
    expressions = {
        task: _job_name_expression(tasks[task]) for task in steps if task != "CreateModel"
    }
    expressions["CreateModel"] = tasks[workflow.CREATE_MODEL]["Parameters"]["ModelName.$"]
    expressions["RegisterModel"] = tasks[workflow.REGISTER_MODEL]["Parameters"]["ClientToken.$"]
    definition = {
        "StartAt": "Names",
        "States": {
            "Names": {
                "Type": "Pass",
                "Parameters": {f"{name}.$": expr for name, expr in expressions.items()},
                "End": True,
            }
        },
    }
    machine = aws.clients["stepfunctions"].create_state_machine(
        name=f"job-names-{name}", definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-abalone-states",
    )["stateMachineArn"]
    context = {"RunId": "1624a1d1-3699", "Attempt": "5f2c9a1e"}
    names = {}
    for count in (0, 1):
        description = aws.execute(machine, context, redrive_count=count)
        assert description["status"] == "SUCCEEDED", description
        names[count] = json.loads(description["output"])
    for count in (0, 1):
        assert names[count] == {
            **{
                state: f"{base}-1624a1d1-3699-{step}-5f2c9a1e-{count}"
                for state, step in steps.items()
            },
            "RegisterModel": "1624a1d1-3699-5f2c9a1e",
        }


# --------------------------------------------------------------------------- tuning


def _best_training_job(aws: Workflow, run_id: str, image: str) -> str:
    """Create, in moto's SageMaker, the training job the next execution's tuning job names
    best; its model artifact."""
    name = BEST_TRAINING_JOB.format(f"run-{aws.runs + 1}")
    job = aws.clients["sagemaker"].create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/acme-tuned-sagemaker",
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/runs/{run_id}/tuned/model"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    assert job["TrainingJobArn"].endswith(name)
    return f"s3://{BUCKET}/runs/{run_id}/tuned/model/{name}/output/model.tar.gz"


@pytest.mark.parametrize("name", ["tuning", "tuning-model-monitor"])
def test_a_tuning_job_hands_its_best_training_job_on(aws: Workflow, name: str) -> None:
    cfg = config.load(_variant_path(name))
    execution_input = _input()
    run_id, image = execution_input["RunId"], execution_input["ImageUri"]
    model_data = _best_training_job(aws, run_id, image)
    run = aws.run(cfg, execution_input, evaluation=_metrics(2.1))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    attempt = run.state_output(workflow.INITIALIZE)["Attempt"]
    # ReadBestTrainingJob's selectors take the best job's artifact and image ($.Training, as
    # Train leaves it), which the model, the registration and the output then carry.
    assert run.output["ModelDataUrl"] == model_data
    package = aws.clients["sagemaker"].describe_model_package(
        ModelPackageName=run.output["ModelPackageArn"]
    )
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_data
    assert package["CustomerMetadataProperties"]["TrainingImage"] == image
    entered = run.entered()
    assert workflow.TRAIN not in entered
    assert entered.index("Tune") < entered.index("ReadBestTrainingJob") < entered.index("Evaluate")
    # The tuning job's name: <base>-<attempt>-<redrive count>, within SageMaker's 32.
    base = naming.base(cfg)
    listed = aws.clients["s3"].list_objects_v2(Bucket=JOB_NAMES, Prefix=f"{base}-{attempt}-")
    assert [o["Key"] for o in listed["Contents"]] == [f"{base}-{attempt}-0"]
    assert len(f"{base}-{attempt}-9999") <= naming.LIMITS["tuning-job"]
    # The tuned hyperparameters are left out of the static ones (the range wins).
    static = run.state_output(workflow.INITIALIZE)["Hyperparameters"]
    assert not set(static) & set(cfg.training.tuning.ranges) - set(INPUT["Hyperparameters"])


@pytest.mark.parametrize(
    ("failing", "error"), [("Tune", "TuningFailed"), (None, "BestTrainingJobUnreadable")]
)
def test_a_failed_tuning_job_or_best_job_is_named_notified_and_failed(
    aws: Workflow, failing: str | None, error: str
) -> None:
    cfg = config.load(_variant_path("tuning"))
    # Without a failing Tune, the best training job does not exist: describing it fails.
    run = aws.run(cfg, _input(), evaluation=_metrics(2.1), failing=failing)
    assert run.status == "FAILED" and run.error == error, (run.error, run.cause)
    text = _only_notification(run, "acme-tuned: training run failed")
    assert error in text
    assert workflow.EVALUATE not in run.entered()
