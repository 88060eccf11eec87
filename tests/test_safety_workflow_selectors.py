"""Safety: the training workflow hands the model it trained, and nothing else, to deployment.

The selectors of the rendered state machine are executed for real, in moto's Step
Functions interpreter, on responses shaped like the service APIs' own:

* a ``.sync`` SageMaker job's result is the job's Describe response ("the output of a
  .sync integration is the Describe* response", Step Functions developer guide, "Create and
  manage Amazon SageMaker AI jobs with Step Functions"); DescribeTrainingJob answers
  ``ModelArtifacts.S3ModelArtifacts`` (the model.tar.gz the job wrote),
  ``AlgorithmSpecification.TrainingImage``, ``OutputDataConfig.S3OutputPath`` (the prefix
  above it), ``CheckpointConfig.S3Uri`` ... (SageMaker API reference, DescribeTrainingJob);
* CreateModel answers ``ModelArn``; CreateModelPackage answers ``ModelPackageArn``;
  S3 GetObject (``aws-sdk:s3:getObject``) answers ``Body`` as text.

A selector is run as the ``Parameters`` of a Pass state whose input is the response:
``ResultSelector`` takes the same payload template as ``Parameters`` ("Using
ResultSelector ... uses the same syntax as Parameters", Step Functions developer guide,
"Filtering state output using ResultSelector"). Then the whole definition runs with every
Task replaced by a Pass state that returns the selected result at the Task's own
``ResultPath`` (and records what the Task's ``Parameters`` evaluate to), so the
execution's output is the Output state evaluated on what the real run would hold.

States are found by their ``Resource`` (and the Output state by following ``Next`` from the
registration to the end), never by the builder's state-name constants.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_templates import config, stacks

from . import variants
from .conftest import FAKE_CREDENTIALS

REPO = Path(__file__).resolve().parent.parent
CONFIGS = variants.paths()
IDS = [str(p.relative_to(REPO)) for p in CONFIGS]

REGION = "us-east-1"
ACCOUNT = "111122223333"
BUCKET = "mlops-artifacts"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RUN_ID = "0f1e2d3c-4b5a"
ATTEMPT = "5f2c9a1e"
SERVING_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-abalone:{RUN_ID}"
TRAINING_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
TRAINING_JOB = f"mlops-abalone-{RUN_ID}-train-{ATTEMPT}-0"
OUTPUT_PATH = f"s3://{BUCKET}/runs/{RUN_ID}/{ATTEMPT}/model/"
MODEL_ARTIFACTS = f"{OUTPUT_PATH}{TRAINING_JOB}/output/model.tar.gz"
MODEL_NAME = f"mlops-abalone-{RUN_ID}-model-{ATTEMPT}-0"
MODEL_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{MODEL_NAME}"
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-abalone-models/3"
REPORT = {
    "regression_metrics": {
        "mse": {"value": 4.41, "standard_deviation": 0.2},
        "rmse": {"value": 2.1, "standard_deviation": 0.1},
        "mae": {"value": 1.5, "standard_deviation": 0.1},
        "r2": {"value": 0.6, "standard_deviation": 0.02},
    }
}

#: DescribeTrainingJob, as the SageMaker API reference names its fields.
DESCRIBE_TRAINING_JOB = {
    "TrainingJobName": TRAINING_JOB,
    "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{TRAINING_JOB}",
    "ModelArtifacts": {"S3ModelArtifacts": MODEL_ARTIFACTS},
    "TrainingJobStatus": "Completed",
    "SecondaryStatus": "Completed",
    "HyperParameters": {"max_depth": "3", "eta": "0.05"},
    "AlgorithmSpecification": {"TrainingImage": TRAINING_IMAGE, "TrainingInputMode": "File"},
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/mlops-abalone-sagemaker",
    "InputDataConfig": [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{BUCKET}/runs/{RUN_ID}/{ATTEMPT}/preprocess/train/",
                }
            },
        }
    ],
    "OutputDataConfig": {"KmsKeyId": KEY_ARN, "S3OutputPath": OUTPUT_PATH},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/runs/{RUN_ID}/{ATTEMPT}/checkpoints/"},
    "EnableNetworkIsolation": True,
    "BillableTimeInSeconds": 61,
}
#: DescribeHyperParameterTuningJob, which the tuning job's ``.sync`` result is (SageMaker API
#: reference): ``BestTrainingJob`` is a TrainingJobSummary, without the artifact.
TUNING_JOB = f"mlops-abalone-{ATTEMPT}-0"
OTHER_TRIAL = f"{TUNING_JOB}-001-0f0f0f0f"
DESCRIBE_TUNING_JOB = {
    "HyperParameterTuningJobName": TUNING_JOB,
    "HyperParameterTuningJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/{TUNING_JOB}",
    "HyperParameterTuningJobStatus": "Completed",
    "TrainingJobStatusCounters": {"Completed": 3, "InProgress": 0, "RetryableError": 0,
                                  "NonRetryableError": 0, "Stopped": 0},
    "ObjectiveStatusCounters": {"Succeeded": 3, "Pending": 0, "Failed": 0},
    "BestTrainingJob": {
        "TrainingJobName": TRAINING_JOB,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{TRAINING_JOB}",
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": {"eta": "0.12", "max_depth": "5"},
        "FinalHyperParameterTuningJobObjectiveMetric": {
            "Type": "Minimize", "MetricName": "validation:rmse", "Value": 2.05,
        },
        "ObjectiveStatus": "Succeeded",
    },
    "OverallBestTrainingJob": {
        "TrainingJobName": OTHER_TRIAL,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{OTHER_TRIAL}",
        "TrainingJobStatus": "Completed",
        "TunedHyperParameters": {"eta": "0.3", "max_depth": "2"},
    },
}
DESCRIBE_PROCESSING_JOB = {
    "ProcessingJobName": f"mlops-abalone-{RUN_ID}-prep-{ATTEMPT}-0",
    "ProcessingJobStatus": "Completed",
    "ProcessingOutputConfig": {"KmsKeyId": KEY_ARN, "Outputs": []},
}

#: Each Task's result, by the service call of its Resource.
RESPONSES: dict[str, dict[str, Any]] = {
    "arn:aws:states:::sagemaker:createTrainingJob.sync": DESCRIBE_TRAINING_JOB,
    "arn:aws:states:::sagemaker:createProcessingJob.sync": DESCRIBE_PROCESSING_JOB,
    "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync": DESCRIBE_TUNING_JOB,
    # The best training job, described by the AWS SDK integration (the API's response).
    "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob": DESCRIBE_TRAINING_JOB,
    "arn:aws:states:::sagemaker:createModel": {"ModelArn": MODEL_ARN},
    "arn:aws:states:::aws-sdk:sagemaker:createModelPackage": {"ModelPackageArn": PACKAGE_ARN},
    "arn:aws:states:::aws-sdk:s3:getObject": {
        "Body": json.dumps(REPORT),
        "ContentType": "application/json",
        "ContentLength": len(json.dumps(REPORT)),
        "ETag": '"0123456789abcdef0123456789abcdef"',
    },
    "arn:aws:states:::sns:publish": {"MessageId": "00000000-0000-4000-8000-000000000000"},
}

#: What each selector must pick from those responses.
EXPECTED_SELECTIONS: dict[str, dict[str, Any]] = {
    "arn:aws:states:::sagemaker:createTrainingJob.sync": {
        "ModelDataUrl": MODEL_ARTIFACTS,
        "TrainingImage": TRAINING_IMAGE,
    },
    "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync": {
        "BestTrainingJobName": TRAINING_JOB,
        "BestHyperparameters": {"eta": "0.12", "max_depth": "5"},
    },
    "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob": {
        "ModelDataUrl": MODEL_ARTIFACTS,
        "TrainingImage": TRAINING_IMAGE,
    },
    "arn:aws:states:::sagemaker:createModel": {"ModelArn": MODEL_ARN, "ModelName": MODEL_NAME},
    "arn:aws:states:::aws-sdk:sagemaker:createModelPackage": {"ModelPackageArn": PACKAGE_ARN},
    "arn:aws:states:::aws-sdk:s3:getObject": {"Report": REPORT},
}
#: One training job, or a tuning job and the description of its best training job.
TRAINING = ("arn:aws:states:::sagemaker:createTrainingJob.sync",)
TUNING = (
    "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync",
    "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
)


def expected_selections(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``EXPECTED_SELECTIONS`` of the resources ``definition`` has: it trains one way."""
    present = {state["Resource"] for state in tasks(definition).values()}
    tuned = TUNING[0] in present
    assert set(TUNING if tuned else TRAINING) <= present
    absent = TRAINING if tuned else TUNING
    assert not set(absent) & present
    return {r: e for r, e in EXPECTED_SELECTIONS.items() if r not in absent}


# ----------------------------------------------------------------------------- helpers


def scopes(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield definition
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            yield from scopes(branch)


def tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: state
        for scope in scopes(definition)
        for name, state in scope["States"].items()
        if state["Type"] == "Task"
    }


def the_task(definition: dict[str, Any], resource: str) -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in tasks(definition).items() if s["Resource"] == resource]
    assert len(found) == 1, f"{resource}: {[n for n, _ in found]}"
    return found[0]


def output_state(definition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The Pass state between the registration and the Succeed state."""
    name, state = the_task(definition, "arn:aws:states:::aws-sdk:sagemaker:createModelPackage")
    states = definition["States"]
    passes = []
    while "Next" in state:
        name, state = state["Next"], states[state["Next"]]
        if state["Type"] == "Pass":
            passes.append((name, state))
    assert state["Type"] == "Succeed", name
    assert len(passes) == 1, [n for n, _ in passes]
    return passes[0]


def machine(cfg: config.Config) -> dict[str, Any]:
    t = json.loads(json.dumps(stacks.module("workflow").build(cfg).to_dict()))
    found = [r["Properties"] for r in t["Resources"].values()
             if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert len(found) == 1
    return found[0]


def substituted(props: dict[str, Any], topic: str) -> dict[str, Any]:
    """The definition with its DefinitionSubstitutions filled in, as CloudFormation does."""
    values = {
        "ArtifactBucket": BUCKET,
        "KmsKeyArn": KEY_ARN,
        "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/mlops-abalone-sagemaker",
        "NotificationTopicArn": topic,
        "XGBoostImage": TRAINING_IMAGE,
    }
    text = json.dumps(props["Definition"])
    for name in props.get("DefinitionSubstitutions", {}):
        text = text.replace("${" + name + "}", values.get(name, f"substituted-{name}"))
    assert "${" not in text, "an unsubstituted ${...} is left"
    return json.loads(text)


class Sfn:
    """moto's Step Functions, executing definitions for real."""

    def __init__(self) -> None:
        self.client = boto3.client("stepfunctions", region_name=REGION)
        self.topic = boto3.client("sns", region_name=REGION).create_topic(Name="notices")["TopicArn"]
        self.count = 0

    def run(self, definition: dict[str, Any], execution_input: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
        """The output of one execution (which must succeed) and its history."""
        self.count += 1
        arn = self.client.create_state_machine(
            name=f"safety-{self.count}",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-abalone-states",
        )["stateMachineArn"]
        execution = self.client.start_execution(
            stateMachineArn=arn, name=f"run-{self.count}", input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + 60
        while (description := self.client.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.02)
        history = self.client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        assert description["status"] == "SUCCEEDED", (description.get("error"), description.get("cause"))
        return json.loads(description["output"]), history


@pytest.fixture(scope="module")
def sfn() -> Iterator[Sfn]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield Sfn()


def select(sfn: Sfn, selectors: dict[str, dict[str, Any]], responses: dict[str, Any]) -> dict[str, Any]:
    """Each selector applied to its response, by moto, in one execution (a Parallel of
    Pass states: ``InputPath`` picks the response, ``Parameters`` is the selector)."""
    names = sorted(selectors)
    definition = {
        "StartAt": "Select",
        "States": {
            "Select": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Apply",
                        "States": {
                            "Apply": {
                                "Type": "Pass",
                                "InputPath": f"$.{name}",
                                "Parameters": selectors[name],
                                "End": True,
                            }
                        },
                    }
                    for name in names
                ],
                "End": True,
            }
        },
    }
    output, _ = sfn.run(definition, {name: responses[name] for name in names})
    return dict(zip(names, output))


def selections(sfn: Sfn, definition: dict[str, Any]) -> dict[str, Any]:
    """Every Task's result after its ResultSelector (or the response itself), by state."""
    found = tasks(definition)
    for name, state in found.items():
        assert state["Resource"] in RESPONSES, f"{name}: no API-shaped response for {state['Resource']}"
    selectors = {n: s["ResultSelector"] for n, s in found.items() if "ResultSelector" in s}
    selected = select(sfn, selectors, {n: RESPONSES[found[n]["Resource"]] for n in selectors})
    return {n: selected.get(n, RESPONSES[s["Resource"]]) for n, s in found.items()}


def _recordable(node: Any) -> Any:
    """A Task's Parameters without the entries moto cannot evaluate (it has no
    ``$$.Execution.RedriveCount``); those only build job names."""
    if isinstance(node, dict):
        return {k: _recordable(v) for k, v in node.items()
                if not (isinstance(v, str) and "RedriveCount" in v)}
    if isinstance(node, list):
        return [_recordable(v) for v in node]
    return node


def with_stand_ins(definition: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """``definition`` with each Task replaced by two Pass states: the first records what
    the Task's Parameters evaluate to (at ``$.Calls.<name>``), the second puts the Task's
    selected result at the Task's own ResultPath, then goes where the Task went."""
    definition = copy.deepcopy(definition)
    for scope in scopes(definition):
        for name, state in list(scope["States"].items()):
            if state["Type"] != "Task":
                continue
            assert "InputPath" not in state and "OutputPath" not in state, name
            scope["States"][name] = {
                "Type": "Pass",
                "Parameters": _recordable(state.get("Parameters", {})),
                "ResultPath": f"$.Calls.{name}",
                "Next": f"{name}Result",
            }
            result: dict[str, Any] = {"Type": "Pass", "Result": results[name]}
            if "ResultPath" in state:
                result["ResultPath"] = state["ResultPath"]
            for key in ("Next", "End"):
                if key in state:
                    result[key] = state[key]
            scope["States"][f"{name}Result"] = result
    return definition


def run_workflow(sfn: Sfn, definition: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The execution output and what the registration's and model's calls received."""
    results = selections(sfn, definition)
    execution_input = {
        "RunId": RUN_ID,
        "TrainingDataUri": "s3://mlops-data/training/abalone.csv",
        "ImageUri": SERVING_IMAGE,
    }
    output, history = sfn.run(with_stand_ins(definition, results), execution_input)
    out_name, _ = output_state(definition)
    entered = [
        json.loads(e["stateEnteredEventDetails"]["input"])
        for e in history
        if e.get("stateEnteredEventDetails", {}).get("name") == out_name
    ]
    assert len(entered) == 1
    return output, entered[0]["Calls"]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_result_selectors_pick_the_trained_artifact_the_model_arn_and_the_package_arn(
    sfn: Sfn, path: Path
) -> None:
    definition = substituted(machine(config.load(path)), sfn.topic)
    selected = selections(sfn, definition)
    for resource, expected in expected_selections(definition).items():
        name, _ = the_task(definition, resource)
        assert selected[name] == expected, resource


def test_a_model_data_url_selector_on_the_wrong_field_is_caught(sfn: Sfn) -> None:
    definition = substituted(machine(config.load(REPO / "mlops.yaml")), sfn.topic)
    name, train = the_task(definition, "arn:aws:states:::sagemaker:createTrainingJob.sync")
    expected = EXPECTED_SELECTIONS[train["Resource"]]
    assert selections(sfn, definition)[name] == expected
    for wrong in ("$.OutputDataConfig.S3OutputPath", "$.CheckpointConfig.S3Uri"):
        mutated = copy.deepcopy(definition)
        _, state = the_task(mutated, train["Resource"])
        key = next(k for k, v in state["ResultSelector"].items()
                   if v == "$.ModelArtifacts.S3ModelArtifacts")
        state["ResultSelector"][key] = wrong
        assert selections(sfn, mutated)[name] != expected, wrong


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_workflow_output_and_registration_carry_the_trained_model(sfn: Sfn, path: Path) -> None:
    definition = substituted(machine(config.load(path)), sfn.topic)
    output, calls = run_workflow(sfn, definition)
    attempt = r"[0-9a-f]{8}"
    prefix = rf"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    assert set(output) == {
        "RunId", "ModelDataUrl", "ImageUri", "ModelPackageArn", "BaselineStatisticsUri",
        "BaselineConstraintsUri", "EvaluationUri", "Metrics",
    }
    assert output["RunId"] == RUN_ID
    assert output["ModelDataUrl"] == MODEL_ARTIFACTS
    # The run's own image serves (for the built-in XGBoost variant too, which trains with
    # another image but whose model the project's container serves).
    assert output["ImageUri"] == SERVING_IMAGE
    assert output["ModelPackageArn"] == PACKAGE_ARN
    assert re.fullmatch(rf"{prefix}/baseline/statistics\.json", output["BaselineStatisticsUri"])
    assert re.fullmatch(rf"{prefix}/baseline/constraints\.json", output["BaselineConstraintsUri"])
    assert re.fullmatch(rf"{prefix}/evaluation/evaluation\.json", output["EvaluationUri"])
    assert output["Metrics"] == REPORT["regression_metrics"]

    # A tuning job's model is its best training job's (BestTrainingJob, not another trial).
    if TUNING[0] in {state["Resource"] for state in tasks(definition).values()}:
        describe_name, _ = the_task(definition, TUNING[1])
        assert calls[describe_name] == {"TrainingJobName": TRAINING_JOB}
    # The model that is created and registered is the trained artifact with the run's image.
    model_name, _ = the_task(definition, "arn:aws:states:::sagemaker:createModel")
    register_name, _ = the_task(definition, "arn:aws:states:::aws-sdk:sagemaker:createModelPackage")
    assert calls[model_name]["PrimaryContainer"] == {
        "Image": SERVING_IMAGE, "ModelDataUrl": MODEL_ARTIFACTS,
    }
    registration = calls[register_name]
    assert registration["InferenceSpecification"]["Containers"] == [
        {"Image": SERVING_IMAGE, "ModelDataUrl": MODEL_ARTIFACTS}
    ]
    metadata = registration["CustomerMetadataProperties"]
    assert metadata["ModelName"] == MODEL_NAME
    assert metadata["TrainingImage"] == TRAINING_IMAGE


def test_an_output_field_read_from_the_wrong_place_is_caught(sfn: Sfn) -> None:
    definition = substituted(machine(config.load(REPO / "mlops.yaml")), sfn.topic)
    output, _ = run_workflow(sfn, definition)
    assert output["ModelDataUrl"] == MODEL_ARTIFACTS
    mutated = copy.deepcopy(definition)
    _, out = output_state(mutated)
    key = next(k for k in out["Parameters"] if k.startswith("ModelDataUrl"))
    out["Parameters"][key] = "$.Paths.Model"  # the output prefix, not the artifact
    assert run_workflow(sfn, mutated)[0]["ModelDataUrl"] != MODEL_ARTIFACTS
