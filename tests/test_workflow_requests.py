"""What the training workflow asks of SageMaker, S3 and SNS: every Task's ``Parameters``
evaluated for real, in moto's Step Functions interpreter, on a successful run.

The run is the one of tests/test_safety_workflow_selectors.py (each Task replaced by a Pass
state that records what its ``Parameters`` evaluate to, then puts an API-shaped result at
the Task's ``ResultPath``), with ``$$.Execution.RedriveCount`` set (0, as on AWS until an
execution is redriven: tests/sfn_patches.py), so the job names are evaluated too.

The expected requests are written out here, field by field, as the service APIs name them
(SageMaker API reference: CreateProcessingJob, CreateTrainingJob,
CreateHyperParameterTuningJob, CreateModel, CreateModelPackage; S3 GetObject; SNS
Publish) and as the project container reads its inputs (``/opt/ml/processing/...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from mlops_templates import config

from . import sfn_patches
from . import test_safety_workflow_selectors as run
from .conftest import FAKE_CREDENTIALS
from .variants import path

CONTEXT = {"RedriveCount": 0}
ACCOUNT, REGION, BUCKET, KEY = run.ACCOUNT, run.REGION, run.BUCKET, run.KEY_ARN
RUN_ID, IMAGE = run.RUN_ID, run.SERVING_IMAGE
DATA = "s3://mlops-data/training/abalone.csv"


def moto_sfn() -> Iterator[run.Sfn]:
    """moto's Step Functions executing definitions, ``$$.Execution.RedriveCount`` set."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        sfn_patches.redrive_count(monkeypatch, CONTEXT)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield run.Sfn()


@pytest.fixture(scope="module")
def sfn() -> Iterator[run.Sfn]:
    yield from moto_sfn()


def requests(sfn: run.Sfn, name: str, **execution_input: Any) -> tuple[dict[str, Any], str]:
    """What each Task of variant ``name``'s workflow sent (by the Task's state name), and
    the attempt id the run drew."""
    definition = run.substituted(run.machine(config.load(path(name))), sfn.topic)
    tasks = run.tasks(definition)
    stand_ins = run.with_stand_ins(definition, run.selections(sfn, definition))
    for scope in run.scopes(stand_ins):
        for state_name, state in scope["States"].items():
            if state_name in tasks:  # the whole Parameters, job names included
                state["Parameters"] = tasks[state_name].get("Parameters", {})
    given = {"RunId": RUN_ID, "TrainingDataUri": DATA, "ImageUri": IMAGE, **execution_input}
    _, history = sfn.run(stand_ins, given)
    sent = {}
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details["name"] in tasks:
            sent[details["name"]] = json.loads(details["output"])["Calls"][details["name"]]
    # Every Task ran but the notices of the failures that did not happen.
    assert set(tasks) - set(sent) == {"NotifyFailure", "NotifyGateFailed"}
    # The attempt's prefix, as the first job (preprocess) writes under it.
    attempts = set(re.findall(rf"/runs/{RUN_ID}/([0-9a-f]{{8}})/", json.dumps(sent["Preprocess"])))
    assert len(attempts) == 1, attempts
    return sent, attempts.pop()


# ------------------------------------------------------------ the requests' shapes


def tags(project: str) -> list[dict[str, str]]:
    return [
        {"Key": "mlops:project", "Value": project},
        {"Key": "mlops:component", "Value": "workflow"},
        {"Key": "mlops:run-id", "Value": RUN_ID},
    ]


def processing_input(name: str, uri: str, local: str) -> dict[str, Any]:
    """A ProcessingInput: the S3 prefix copied whole to ``local`` before the job starts."""
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated"}}


def processing_output(name: str, uri: str, local: str) -> dict[str, Any]:
    """A ProcessingOutput: ``local`` uploaded to ``uri`` when the job ends."""
    return {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"}}


def cluster(volume_gb: int = 30) -> dict[str, Any]:
    """ml.m5.xlarge has no instance storage: its volume is encrypted with the project key."""
    return {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": volume_gb,
            "VolumeKmsKeyId": KEY}


def channel(name: str, uri: str, **extra: str) -> dict[str, Any]:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}, **extra}


ISOLATED = {"EnableInterContainerTrafficEncryption": True, "EnableNetworkIsolation": True}
VPC = {"SecurityGroupIds": ["sg-0123456789abcdef0"],
       "Subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]}
#: What the project container prints while it trains (mlcontainer.train), as SageMaker reads it.
METRICS = [{"Name": "train:rmse", "Regex": "train-rmse=([0-9.]+);"},
           {"Name": "validation:rmse", "Regex": "validation-rmse=([0-9.]+);"}]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-abalone-sagemaker"


# --------------------------------------------------------------------------- tests


def test_the_jobs_of_a_run_read_and_write_the_attempts_prefix(sfn: run.Sfn) -> None:
    sent, attempt = requests(sfn, "example", Hyperparameters={"max_depth": "7"})
    prefix = f"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    assert sent["Preprocess"] == {
        "ProcessingJobName": f"mlops-abalone-{RUN_ID}-prep-{attempt}-0",
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["preprocess"]},
        "ProcessingInputs": [processing_input("raw", DATA, "/opt/ml/processing/input/raw")],
        "ProcessingOutputConfig": {"KmsKeyId": KEY, "Outputs": [
            processing_output(split, f"{prefix}/preprocess/{split}/", f"/opt/ml/processing/output/{split}")
            for split in ("train", "validation", "test", "feature_baseline")
        ]},
        "ProcessingResources": {"ClusterConfig": cluster()},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "NetworkConfig": ISOLATED,
        "Tags": tags("mlops-abalone"),
    }
    assert sent["Train"] == {
        "TrainingJobName": f"mlops-abalone-{RUN_ID}-train-{attempt}-0",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE,
                                   "MetricDefinitions": METRICS},
        # mlops.yaml's fixed hyperparameters, as strings, the input's over them.
        "HyperParameters": {"max_depth": "7", "eta": "0.05", "min_child_weight": "10",
                            "subsample": "0.8", "num_round": "500", "early_stopping_rounds": "20"},
        "InputDataConfig": [channel("train", f"{prefix}/preprocess/train/"),
                            channel("validation", f"{prefix}/preprocess/validation/")],
        "OutputDataConfig": {"S3OutputPath": f"{prefix}/model/", "KmsKeyId": KEY},
        "ResourceConfig": cluster(),
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
        "Tags": tags("mlops-abalone"),
    }
    assert sent["Evaluate"] == {
        "ProcessingJobName": f"mlops-abalone-{RUN_ID}-eval-{attempt}-0",
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["evaluate"]},
        "ProcessingInputs": [
            # The artifact the training job wrote (its DescribeTrainingJob), not a prefix.
            processing_input("model", run.MODEL_ARTIFACTS, "/opt/ml/processing/model"),
            processing_input("test", f"{prefix}/preprocess/test/", "/opt/ml/processing/test"),
            processing_input("feature_baseline", f"{prefix}/preprocess/feature_baseline/",
                             "/opt/ml/processing/feature_baseline"),
        ],
        "ProcessingOutputConfig": {"KmsKeyId": KEY, "Outputs": [
            processing_output("evaluation", f"{prefix}/evaluation/", "/opt/ml/processing/evaluation"),
            processing_output("baseline", f"{prefix}/baseline/", "/opt/ml/processing/baseline"),
        ]},
        "ProcessingResources": {"ClusterConfig": cluster()},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "NetworkConfig": ISOLATED,
        "Tags": tags("mlops-abalone"),
    }


def test_a_run_reads_its_evaluation_then_creates_registers_and_announces_the_model(sfn: run.Sfn) -> None:
    sent, attempt = requests(sfn, "example")
    prefix = f"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    assert sent["ReadEvaluation"] == {"Bucket": BUCKET, "Key": f"runs/{RUN_ID}/{attempt}/evaluation/evaluation.json"}
    model = {"Image": IMAGE, "ModelDataUrl": run.MODEL_ARTIFACTS}
    assert sent["CreateModel"] == {
        "ModelName": f"mlops-abalone-{RUN_ID}-model-{attempt}-0",
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": model,
        "EnableNetworkIsolation": True,
        "Tags": tags("mlops-abalone"),
    }
    statistics = {"ContentType": "application/json", "S3Uri": f"{prefix}/baseline/statistics.json"}
    constraints = {"ContentType": "application/json", "S3Uri": f"{prefix}/baseline/constraints.json"}
    content_types = ["text/csv", "application/json"]
    assert sent["RegisterModel"] == {
        "ModelPackageGroupName": "mlops-abalone-models",
        "ClientToken": f"{RUN_ID}-{attempt}",
        "ModelPackageDescription": f"Training run {RUN_ID} (attempt {attempt}); evaluation rmse < 3.0 passed.",
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [model],
            "SupportedContentTypes": content_types,
            "SupportedResponseMIMETypes": content_types,
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        },
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json",
                                            "S3Uri": f"{prefix}/evaluation/evaluation.json"}},
            "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
        },
        "DriftCheckBaselines": {"ModelDataQuality": {"Statistics": statistics, "Constraints": constraints}},
        "CustomerMetadataProperties": {
            "RunId": RUN_ID,
            "Attempt": attempt,
            # The name CreateModel answered with (its ARN's last part), the image that trained.
            "ModelName": run.MODEL_NAME,
            "TrainingImage": run.TRAINING_IMAGE,
        },
    }
    assert sent["NotifyRegistered"] == {
        "TopicArn": sfn.topic,
        "Subject": "mlops-abalone: model registered",
        "Message": (
            f"Training run {RUN_ID} of mlops-abalone passed the quality gate: rmse is 2.1 on the "
            "test split (rmse < 3.0). Registered version 3: " + run.PACKAGE_ARN + "."
        ),
    }


def test_a_tuned_run_searches_the_configured_ranges_and_reads_the_best_job(sfn: run.Sfn) -> None:
    sent, attempt = requests(sfn, "tuning", Hyperparameters={"max_depth": "7"})
    prefix = f"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    assert sent["Tune"] == {
        # At most 32 characters: no run id, the attempt and the redrive count only.
        "HyperParameterTuningJobName": f"acme-tuned-{attempt}-0",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3},
            # Bounds are strings; an integer range's are integers ("2", never "2.0").
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {"Name": "max_depth", "MinValue": "2", "MaxValue": "10", "ScalingType": "Auto"}],
                "ContinuousParameterRanges": [
                    {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.3", "ScalingType": "Logarithmic"},
                    {"Name": "subsample", "MinValue": "0.5", "MaxValue": "0.95",
                     "ScalingType": "ReverseLogarithmic"}],
                "CategoricalParameterRanges": [
                    {"Name": "objective", "Values": ["reg:squarederror", "reg:pseudohubererror"]}],
            },
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": {
            "RoleArn": ROLE,
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE,
                                       "MetricDefinitions": METRICS},
            # The fixed ones; the tuned ones (max_depth ...) are the search's, per trial.
            "StaticHyperParameters": {"num_round": "300", "early_stopping_rounds": "20",
                                      "min_child_weight": "10", "max_depth": "7"},
            "InputDataConfig": [channel("train", f"{prefix}/preprocess/train/"),
                                channel("validation", f"{prefix}/preprocess/validation/")],
            "OutputDataConfig": {"S3OutputPath": f"{prefix}/model/", "KmsKeyId": KEY},
            "ResourceConfig": cluster(),
            # Spot, but no CheckpointConfig: the trials would share the attempt's one prefix.
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
            "EnableNetworkIsolation": True,
            "EnableInterContainerTrafficEncryption": True,
            "EnableManagedSpotTraining": True,
            "VpcConfig": VPC,
        },
        "Tags": tags("acme-tuned"),
    }
    # The best training job of DescribeHyperParameterTuningJob, not another trial.
    assert sent["ReadBestTrainingJob"] == {"TrainingJobName": run.TRAINING_JOB}
    assert "Train" not in sent


def test_model_monitor_profiles_the_baseline_dataset_beside_training(sfn: run.Sfn) -> None:
    sent, attempt = requests(sfn, "model-monitor")
    prefix = f"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    # The analyzer's contract: its input and output locations are fixed names.
    assert sent["Baseline"] == {
        "ProcessingJobName": f"mlops-legacy-{RUN_ID}-stats-{attempt}-0",
        "RoleArn": ROLE,
        "AppSpecification": {"ImageUri": "substituted-ModelMonitorImage"},
        "Environment": {
            "dataset_format": '{"csv": {"header": true}}',
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
            "publish_cloudwatch_metrics": "Disabled",
        },
        "ProcessingInputs": [processing_input("baseline_dataset_input", f"{prefix}/preprocess/baseline/",
                                              "/opt/ml/processing/input/baseline_dataset_input")],
        "ProcessingOutputConfig": {"KmsKeyId": KEY, "Outputs": [
            processing_output("monitoring_output", f"{prefix}/baseline/", "/opt/ml/processing/output")]},
        "ProcessingResources": {"ClusterConfig": cluster(20)},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        "NetworkConfig": ISOLATED,
        "Tags": tags("mlops-legacy"),
    }
    assert sent["Preprocess"]["ProcessingOutputConfig"]["Outputs"][3:] == [
        processing_output("baseline", f"{prefix}/preprocess/baseline/", "/opt/ml/processing/output/baseline")]
    # Evaluation has no feature profile to complete: the analyzer writes the baseline.
    assert sent["Evaluate"]["ProcessingInputs"] == [
        processing_input("model", run.MODEL_ARTIFACTS, "/opt/ml/processing/model"),
        processing_input("test", f"{prefix}/preprocess/test/", "/opt/ml/processing/test"),
    ]
    assert sent["Evaluate"]["ProcessingOutputConfig"]["Outputs"] == [
        processing_output("evaluation", f"{prefix}/evaluation/", "/opt/ml/processing/evaluation")]


def test_the_builtin_xgboost_image_trains_on_the_encoded_splits_with_checkpoints(sfn: run.Sfn) -> None:
    sent, attempt = requests(sfn, "api-key-xgboost")
    prefix = f"s3://{BUCKET}/runs/{RUN_ID}/{attempt}"
    train = sent["Train"]
    assert train["TrainingJobName"] == f"acme-churn-{RUN_ID}-train-{attempt}-0"
    # The built-in image takes encoded numeric CSV and publishes its own metrics.
    assert train["AlgorithmSpecification"] == {"TrainingInputMode": "File", "TrainingImage": run.TRAINING_IMAGE}
    assert train["InputDataConfig"] == [
        channel("train", f"{prefix}/preprocess/xgboost/train/", ContentType="text/csv"),
        channel("validation", f"{prefix}/preprocess/xgboost/validation/", ContentType="text/csv"),
    ]
    # Spot: interrupted jobs resume from the attempt's checkpoints.
    assert train["EnableManagedSpotTraining"] is True
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert train["CheckpointConfig"] == {"S3Uri": f"{prefix}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
    assert train["VpcConfig"] == VPC
    preprocess = sent["Preprocess"]
    assert preprocess["ProcessingOutputConfig"]["Outputs"][4:] == [
        processing_output("xgboost", f"{prefix}/preprocess/xgboost/", "/opt/ml/processing/output/xgboost")]
    assert preprocess["NetworkConfig"] == {**ISOLATED, "VpcConfig": VPC}
    assert sent["CreateModel"]["VpcConfig"] == VPC
    # The project container serves what the built-in image trained.
    assert sent["CreateModel"]["PrimaryContainer"]["Image"] == IMAGE


# ------------------------------------------------------------- the input's routes


def routes(sfn: run.Sfn, definition: dict[str, Any], choice: str, inputs: list[Any]) -> list[str]:
    """Where the Choice state ``choice`` sends each of ``inputs``: one execution, a branch
    per input, each branch the Choice with every target it names replaced by a Pass state
    that ends with the target's name."""
    state = definition["States"][choice]
    targets = {rule["Next"] for rule in state["Choices"]} | {state["Default"]}
    branches = [
        {"StartAt": "Given", "States": {
            "Given": {"Type": "Pass", "Result": given, "Next": choice},
            choice: state,
            **{target: {"Type": "Pass", "Result": target, "End": True} for target in targets},
        }}
        for given in inputs
    ]
    wrapper = {"StartAt": "Each", "States": {"Each": {"Type": "Parallel", "Branches": branches, "End": True}}}
    output, _ = sfn.run(wrapper, {})
    return output


GOOD = {"RunId": RUN_ID, "TrainingDataUri": DATA, "ImageUri": IMAGE}
#: Execution inputs ValidateInput must refuse: each required field missing, not a string,
#: or empty (the data not on S3), and Hyperparameters that JsonMerge cannot merge.
REFUSED = [
    *({k: v for k, v in GOOD.items() if k != missing} for missing in GOOD),
    *({**GOOD, field: 42} for field in GOOD),
    *({**GOOD, field: ""} for field in GOOD),
    {**GOOD, "TrainingDataUri": "https://example.com/abalone.csv"},
    *({**GOOD, "Hyperparameters": value} for value in ("max_depth=5", 5, True, None)),
]


def test_validate_input_refuses_what_no_job_could_run_and_completes_the_rest(sfn: run.Sfn) -> None:
    definition = run.substituted(run.machine(config.load(path("example"))), sfn.topic)
    start = definition["StartAt"]
    accepted = [GOOD, {**GOOD, "Hyperparameters": {}}, {**GOOD, "Hyperparameters": {"max_depth": "5"}}]
    reached = routes(sfn, definition, start, [*accepted, *REFUSED])
    # Without Hyperparameters the run gets the config's (an empty object merged over them).
    assert reached[: len(accepted)] == ["AddDefaultHyperparameters", "LoadSettings", "LoadSettings"]
    assert reached[len(accepted):] == ["InvalidInput"] * len(REFUSED), list(zip(REFUSED, reached[len(accepted):]))
    refusal = definition["States"]["InvalidInput"]
    assert refusal["Parameters"]["Error"] == "InvalidInput"
    assert refusal["ResultPath"] == "$.Failure"
    assert definition["States"]["AddDefaultHyperparameters"] == {
        "Type": "Pass", "Result": {}, "ResultPath": "$.Hyperparameters", "Next": "LoadSettings"}
