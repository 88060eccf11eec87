"""Hyperparameter tuning (``training.tuning.enabled``): ``Tune`` runs a SageMaker tuning job
where ``Train`` would run one training job, and ``ReadBestTrainingJob`` reads its best
training job, so that evaluation, the gate and registration go on as after ``Train``.

``Tune`` (``createHyperParameterTuningJob.sync``) launches the training jobs with what
``Train`` gives its one job (:func:`.jobs.training_definition`: image, channels, KMS keys,
VPC, network isolation, spot, the time limit per job), the run's hyperparameters as the
static ones and the configured ranges. The ``.sync`` integration returns what
``DescribeHyperParameterTuningJob`` returns once the job is done (Step Functions developer
guide, "Create and manage Amazon SageMaker AI jobs with Step Functions",
https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html), whose
``BestTrainingJob`` (a ``TrainingJobSummary``: ``TrainingJobName``,
``TunedHyperParameters``, ...) names the winner but not its artifact. ``ReadBestTrainingJob``
(``aws-sdk:sagemaker:describeTrainingJob``) reads the artifact and image of that job into
``$.Training``, the shape ``Train`` leaves: ``{ModelDataUrl, TrainingImage}``.

Names: the tuning job is ``<base>-<Attempt>-<RedriveCount>`` (SageMaker allows tuning job
names 32 characters; :func:`mlops_templates.naming.check_tuning_job_name`), its training
jobs ``<tuning job>-<nnn>-<8 characters>``; the ``mlops:run-id`` tag, which SageMaker adds to
every training job of the tuning job, carries the run id. A redrive re-runs ``Tune`` under a
new name, a Task's own retries keep it, as for the training job.

Spot training without checkpoints: the training jobs of one tuning job would share the
one checkpoint prefix of the attempt; an interrupted trial starts over.
"""

from __future__ import annotations

from typing import Any

from mlops_templates import asl, naming
from mlops_templates.asl import Task
from mlops_templates.config import Config
from mlops_templates.config_training import ParameterRange
from mlops_templates.stacks.workflow.jobs import model_monitor, training_definition
from mlops_templates.stacks.workflow.names import (
    API_TIMEOUT_SECONDS,
    EVALUATE,
    READ_BEST_TRAINING_JOB,
    REDRIVE_COUNT,
    RESOURCE_DESCRIBE_TRAINING_JOB,
    RESOURCE_TUNING_JOB,
    SAGEMAKER_SDK_TRANSIENT,
    SAGEMAKER_TRANSIENT,
    TUNE,
)
from mlops_templates.stacks.workflow.tasks import (
    catch_all,
    hyperparameter,
    job_tags,
    retries,
)
from mlops_templates.tuning import OBJECTIVES

#: ``ParameterRanges`` key of each range type.
RANGE_KEYS = {
    "integer": "IntegerParameterRanges",
    "continuous": "ContinuousParameterRanges",
    "categorical": "CategoricalParameterRanges",
}


def tuning_job_name(config: Config) -> str:
    """``States.Format`` expression of the tuning job's name: ``<base>-<Attempt>-<RedriveCount>``."""
    return asl.fmt(naming.tuning_job_name_format(config), "$.Attempt", REDRIVE_COUNT)


def _bound(spec: ParameterRange, value: float) -> str:
    # SageMaker takes range bounds as strings; integer ranges as integers.
    return str(int(value)) if spec.type == "integer" else hyperparameter(float(value))


def parameter_ranges(config: Config) -> dict[str, list[dict[str, Any]]]:
    """``ParameterRanges``: the configured ranges, by type, in config order."""
    ranges: dict[str, list[dict[str, Any]]] = {}
    for name, spec in config.training.tuning.ranges.items():
        if spec.type == "categorical":
            entry: dict[str, Any] = {"Name": name, "Values": [hyperparameter(v) for v in spec.values]}
        else:
            assert spec.min is not None and spec.max is not None  # ParameterRange._shape
            entry = {
                "Name": name,
                "MinValue": _bound(spec, spec.min),
                "MaxValue": _bound(spec, spec.max),
                "ScalingType": spec.scaling,
            }
        ranges.setdefault(RANGE_KEYS[spec.type], []).append(entry)
    return ranges


def tuning_job_config(config: Config) -> dict[str, Any]:
    """``HyperParameterTuningJobConfig``: strategy, objective, limits, ranges, early stopping."""
    tuning = config.training.tuning
    return {
        "Strategy": tuning.strategy,
        "HyperParameterTuningJobObjective": {
            "Type": OBJECTIVES[tuning.objective_metric],
            "MetricName": tuning.objective_metric,
        },
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": tuning.max_jobs,
            "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
        },
        "ParameterRanges": parameter_ranges(config),
        "TrainingJobEarlyStoppingType": tuning.early_stopping,
    }


def tune_states(config: Config) -> list[Task]:
    """``Tune`` and ``ReadBestTrainingJob``: a branch of ``TrainAndBaseline`` with Model
    Monitor, else steps of their own."""
    then = {} if model_monitor(config) else {"next": EVALUATE}
    return [
        Task(
            name=TUNE,
            resource=RESOURCE_TUNING_JOB,
            parameters={
                "HyperParameterTuningJobName.$": tuning_job_name(config),
                "HyperParameterTuningJobConfig": tuning_job_config(config),
                "TrainingJobDefinition": training_definition(
                    config, "StaticHyperParameters", checkpoints=False
                ),
                "Tags": job_tags(config),
            },
            result_selector={
                "BestTrainingJobName.$": "$.BestTrainingJob.TrainingJobName",
                "BestHyperparameters.$": "$.BestTrainingJob.TunedHyperParameters",
            },
            result_path="$.Tuning",
            retry=retries(SAGEMAKER_TRANSIENT),
            catch=catch_all(TUNE),
            next=READ_BEST_TRAINING_JOB,
        ),
        Task(
            name=READ_BEST_TRAINING_JOB,
            resource=RESOURCE_DESCRIBE_TRAINING_JOB,
            parameters={"TrainingJobName.$": "$.Tuning.BestTrainingJobName"},
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={
                "ModelDataUrl.$": "$.ModelArtifacts.S3ModelArtifacts",
                "TrainingImage.$": "$.AlgorithmSpecification.TrainingImage",
            },
            result_path="$.Training",
            retry=retries(SAGEMAKER_SDK_TRANSIENT),
            catch=catch_all(READ_BEST_TRAINING_JOB),
            **then,
        ),
    ]
