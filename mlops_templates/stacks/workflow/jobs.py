"""The SageMaker jobs: preprocess, train (beside Model Monitor's baseline job with
``monitoring.engine: model_monitor``), evaluate (which writes the builtin monitor's
baseline with ``monitoring.engine: builtin``)."""

from __future__ import annotations

import json
from typing import Any

from mlops_templates.asl import Catch, Parallel, StateMachine, Task
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.names import (
    ANALYZER_INPUT,
    ANALYZER_OUTPUT,
    BASELINE,
    BASELINE_BRANCH,
    EVALUATE,
    FAILURE_PATH,
    FEATURE_BASELINE_DIR,
    KMS_KEY_ARN,
    MODEL_MONITOR_IMAGE,
    MONITORING_BASELINE_DIR,
    NOTIFY_FAILURE,
    PREPROCESS,
    PROCESSING,
    READ_EVALUATION,
    RESOURCE_TRAINING_JOB,
    SAGEMAKER_ROLE_ARN,
    SAGEMAKER_TRANSIENT,
    STEP_BASELINE,
    STEP_ERRORS,
    STEP_EVALUATE,
    STEP_PREPROCESS,
    STEP_TRAIN,
    TRAIN,
    TRAIN_AND_BASELINE,
    TRAIN_BRANCH,
    TUNE,
    XGBOOST_IMAGE,
)
from mlops_templates.stacks.workflow.tasks import (
    branch_error,
    catch_all,
    cluster,
    job_name,
    job_tags,
    placeholder,
    processing_job,
    retries,
    s3_input,
    s3_output,
    tuning,
    vpc_config,
    xgboost,
)
from mlops_templates.tuning import METRIC_DEFINITIONS


def model_monitor(config: Config) -> bool:
    """Whether SageMaker Model Monitor checks the captured data (else the project's job)."""
    return config.monitoring.engine == "model_monitor"


def preprocess_state(config: Config) -> Task:
    """Processing job running the container's ``preprocess`` entry on the raw data.

    Besides the splits it keeps the baseline input of the monitoring engine: the train
    split's feature profile (builtin), or the analyzer's baseline dataset (Model Monitor).
    """
    outputs = [
        s3_output(split, f"$.Paths.{split.capitalize()}", f"{PROCESSING}/output/{split}")
        for split in ("train", "validation", "test")
    ]
    if model_monitor(config):
        outputs.append(
            s3_output("baseline", "$.Paths.BaselineDataset", f"{PROCESSING}/output/baseline")
        )
    else:
        outputs.append(
            s3_output(
                "feature_baseline", "$.Paths.FeatureBaseline", f"{PROCESSING}/output/feature_baseline"
            )
        )
    if xgboost(config):
        outputs.append(s3_output("xgboost", "$.Paths.XGBoost", f"{PROCESSING}/output/xgboost"))
    training = config.training
    return processing_job(
        config,
        PREPROCESS,
        STEP_PREPROCESS,
        app={"ImageUri.$": "$.ImageUri", "ContainerEntrypoint": ["preprocess"]},
        inputs=[s3_input("raw", "$.TrainingDataUri", f"{PROCESSING}/input/raw")],
        outputs=outputs,
        cluster=cluster(training.processing_instance_type, 1, training.volume_size_gb),
        max_runtime_seconds=training.max_runtime_seconds,
        comment="Split the raw data into train/validation/test plus the monitoring baseline input.",
        next=TRAIN_AND_BASELINE if model_monitor(config) else (TUNE if tuning(config) else TRAIN),
    )


def training_definition(config: Config, hyperparameters: str, checkpoints: bool = True) -> dict[str, Any]:
    """What a training job runs: image, role, ``hyperparameters`` (the key that takes
    ``$.Hyperparameters``), channels, encrypted output, cluster, time limit, network and
    spot settings. The training job and the tuning job's training jobs share it."""
    training = config.training
    algorithm: dict[str, Any] = {"TrainingInputMode": "File"}
    if xgboost(config):
        algorithm["TrainingImage"] = placeholder(XGBOOST_IMAGE)
        channels = {"train": "$.Paths.XGBoostTrain", "validation": "$.Paths.XGBoostValidation"}
    else:
        algorithm["TrainingImage.$"] = "$.ImageUri"
        algorithm["MetricDefinitions"] = [dict(metric) for metric in METRIC_DEFINITIONS]
        channels = {"train": "$.Paths.Train", "validation": "$.Paths.Validation"}
    input_config = []
    for channel, path in channels.items():
        entry: dict[str, Any] = {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri.$": path,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        if xgboost(config):
            entry["ContentType"] = "text/csv"
        input_config.append(entry)
    resources = cluster(training.instance_type, training.instance_count, training.volume_size_gb)
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": training.max_runtime_seconds}
    definition: dict[str, Any] = {
        "RoleArn": placeholder(SAGEMAKER_ROLE_ARN),
        "AlgorithmSpecification": algorithm,
        f"{hyperparameters}.$": "$.Hyperparameters",
        "InputDataConfig": input_config,
        "OutputDataConfig": {
            "S3OutputPath.$": "$.Paths.Model",
            "KmsKeyId": placeholder(KMS_KEY_ARN),
        },
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": training.network_isolation,
        "EnableInterContainerTrafficEncryption": True,
    }
    if training.use_spot:
        stopping["MaxWaitTimeInSeconds"] = training.max_wait_seconds
        definition["EnableManagedSpotTraining"] = True
        if checkpoints:
            # Interrupted spot jobs resume from the last checkpoint instead of restarting.
            definition["CheckpointConfig"] = {
                "S3Uri.$": "$.Paths.Checkpoints",
                "LocalPath": "/opt/ml/checkpoints",
            }
    vpc = vpc_config(config)
    if vpc:
        definition["VpcConfig"] = vpc
    return definition


def train_state(config: Config) -> Task:
    """Training job: the project container (or built-in XGBoost) on the train split; a
    branch of ``TrainAndBaseline`` with Model Monitor, else a step of its own."""
    parameters: dict[str, Any] = {
        "TrainingJobName.$": job_name(config, STEP_TRAIN),
        **training_definition(config, "HyperParameters"),
        "Tags": job_tags(config),
    }
    return Task(
        name=TRAIN,
        resource=RESOURCE_TRAINING_JOB,
        parameters=parameters,
        result_selector={
            "ModelDataUrl.$": "$.ModelArtifacts.S3ModelArtifacts",
            "TrainingImage.$": "$.AlgorithmSpecification.TrainingImage",
        },
        result_path="$.Training",
        retry=retries(SAGEMAKER_TRANSIENT),
        catch=catch_all(TRAIN),
        **({} if model_monitor(config) else {"next": EVALUATE}),
    )


def baseline_state(config: Config) -> Task:
    """Model Monitor baseline (statistics and constraints) of the training features.

    The analyzer reads ``dataset_source`` and writes ``statistics.json`` and
    ``constraints.json`` to ``output_path``; its input is the features-only train
    split with a header, the same columns, in the same order, as the captured requests.
    """
    monitoring = config.monitoring
    return processing_job(
        config,
        BASELINE,
        STEP_BASELINE,
        app={"ImageUri": placeholder(MODEL_MONITOR_IMAGE)},
        environment={
            "dataset_format": json.dumps({"csv": {"header": True}}),
            "dataset_source": ANALYZER_INPUT,
            "output_path": ANALYZER_OUTPUT,
            "publish_cloudwatch_metrics": "Disabled",
        },
        inputs=[s3_input("baseline_dataset_input", "$.Paths.BaselineDataset", ANALYZER_INPUT)],
        outputs=[s3_output("monitoring_output", "$.Paths.Baseline", ANALYZER_OUTPUT)],
        cluster=cluster(monitoring.instance_type, 1, monitoring.volume_size_gb),
        max_runtime_seconds=monitoring.max_runtime_seconds,
    )


def train_and_baseline_state(config: Config) -> Parallel:
    """Training beside the baseline; the output is the training branch's output.

    The training branch carries the run context on with ``$.Training`` added; the
    baseline branch only writes files whose URIs are already in ``$.Paths``.
    """
    from mlops_templates.stacks.workflow.tuning import tune_states

    training = tune_states(config) if tuning(config) else [train_state(config)]
    steps = [state.name for state in training]
    branches: list[StateMachine] = [None, None]  # type: ignore[list-item]
    branches[TRAIN_BRANCH] = StateMachine([*training, *(branch_error(step) for step in steps)])
    branches[BASELINE_BRANCH] = StateMachine([baseline_state(config), branch_error(BASELINE)])
    branch_errors = (*(STEP_ERRORS[step][1] for step in steps), STEP_ERRORS[BASELINE][1])
    return Parallel(
        name=TRAIN_AND_BASELINE,
        comment="Both need only the preprocessed splits; the baseline finishes first.",
        branches=branches,
        output_path=f"$[{TRAIN_BRANCH}]",
        catch=[
            # The branches already name their failures.
            Catch(NOTIFY_FAILURE, result_path=FAILURE_PATH, errors=branch_errors),
            *catch_all(TRAIN_AND_BASELINE),
        ],
        next=EVALUATE,
    )


def evaluate_state(config: Config) -> Task:
    """Processing job running the container's ``evaluate`` entry on the test split.

    With the builtin monitoring engine it also writes the monitor's baseline: the train
    split's feature profile plus the model's prediction distribution on the test split
    (``statistics.json`` and ``constraints.json`` under ``$.Paths.Baseline``)."""
    training = config.training
    inputs = [
        s3_input("model", "$.Training.ModelDataUrl", f"{PROCESSING}/model"),
        s3_input("test", "$.Paths.Test", f"{PROCESSING}/test"),
    ]
    outputs = [s3_output("evaluation", "$.Paths.Evaluation", f"{PROCESSING}/evaluation")]
    if not model_monitor(config):
        inputs.append(s3_input("feature_baseline", "$.Paths.FeatureBaseline", FEATURE_BASELINE_DIR))
        outputs.append(s3_output("baseline", "$.Paths.Baseline", MONITORING_BASELINE_DIR))
    return processing_job(
        config,
        EVALUATE,
        STEP_EVALUATE,
        app={"ImageUri.$": "$.ImageUri", "ContainerEntrypoint": ["evaluate"]},
        inputs=inputs,
        outputs=outputs,
        cluster=cluster(training.processing_instance_type, 1, training.volume_size_gb),
        max_runtime_seconds=training.max_runtime_seconds,
        next=READ_EVALUATION,
    )

