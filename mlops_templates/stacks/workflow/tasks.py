"""Building blocks of the workflow's Task states: retries, catches, clusters, network,
tags, S3 channels and the processing-job Task, and the job names."""

from __future__ import annotations

import json
from typing import Any

from mlops_templates import asl, naming
from mlops_templates.asl import Catch, Fail, Pass, Retry, Task
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.names import (
    COMPONENT,
    FAILURE_PATH,
    KMS_KEY_ARN,
    LOCAL_STORAGE_FAMILIES,
    NOTIFY_FAILURE,
    REDRIVE_COUNT,
    RESOURCE_PROCESSING_JOB,
    SAGEMAKER_ROLE_ARN,
    SAGEMAKER_TRANSIENT,
    STEP_ERRORS,
)


def placeholder(name: str) -> str:
    return "${" + name + "}"


def retries(errors: tuple[str, ...]) -> list[Retry]:
    # Full jitter spreads the retries of runs that were throttled together.
    return [
        Retry(
            errors,
            interval_seconds=5,
            max_attempts=4,
            backoff_rate=2.0,
            max_delay_seconds=60,
            jitter="FULL",
        )
    ]


def catch_all(step: str) -> list[Catch]:
    """Catch every error of ``step`` into ``$.Failure`` and describe it."""
    return [Catch(STEP_ERRORS[step][0], result_path=FAILURE_PATH)]


def raw_cause() -> str:
    return asl.fmt("{}: {}", f"{FAILURE_PATH}.Error", f"{FAILURE_PATH}.Cause")


def describe_error(step: str) -> Pass:
    """Rename the caught error after ``step``, then notify."""
    name, error = STEP_ERRORS[step]
    return Pass(
        name=name,
        parameters={"Error": error, "Cause.$": raw_cause()},
        result_path=FAILURE_PATH,
        next=NOTIFY_FAILURE,
    )


def branch_error(step: str) -> Fail:
    # A Catch inside a branch can only go to the branch's own states: fail the branch
    # with the step's error so the Parallel's Catch notifies with the real cause.
    name, error = STEP_ERRORS[step]
    return Fail(name=name, error=error, cause_path=raw_cause())


def _supports_volume_kms(instance_type: str) -> bool:
    return instance_type.split(".")[1] not in LOCAL_STORAGE_FAMILIES


def cluster(instance_type: str, count: int, volume_gb: int) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "InstanceCount": count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": volume_gb,
    }
    if _supports_volume_kms(instance_type):
        cluster["VolumeKmsKeyId"] = placeholder(KMS_KEY_ARN)
    return cluster


def vpc_config(config: Config) -> dict[str, Any] | None:
    if not config.network.subnet_ids:
        return None
    return {
        "SecurityGroupIds": list(config.network.security_group_ids),
        "Subnets": list(config.network.subnet_ids),
    }


def _network_config(config: Config) -> dict[str, Any]:
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": config.training.network_isolation,
    }
    vpc = vpc_config(config)
    if vpc:
        network["VpcConfig"] = vpc
    return network


def job_tags(config: Config) -> list[dict[str, str]]:
    return [
        {"Key": naming.PROJECT_TAG, "Value": naming.base(config)},
        {"Key": naming.COMPONENT_TAG, "Value": COMPONENT},
        {"Key": naming.RUN_ID_TAG, "Value.$": "$.RunId"},
    ]


def s3_input(name: str, uri_path: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri.$": uri_path,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def s3_output(name: str, uri_path: str, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri.$": uri_path, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def hyperparameter(value: str | float) -> str:
    # SageMaker takes hyperparameters as strings only.
    return value if isinstance(value, str) else json.dumps(value)


def processing_job(
    config: Config,
    name: str,
    step: str,
    app: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    cluster: dict[str, Any],
    max_runtime_seconds: int,
    environment: dict[str, str] | None = None,
    **state: Any,
) -> Task:
    """Processing-job Task of ``step``: outputs encrypted with the project key, the run's
    network settings and tags, transient errors retried and every error caught.

    ``state`` takes the remaining Task fields (``comment``, ``next``).
    """
    parameters: dict[str, Any] = {
        "ProcessingJobName.$": job_name(config, step),
        "RoleArn": placeholder(SAGEMAKER_ROLE_ARN),
        "AppSpecification": app,
    }
    if environment is not None:
        parameters["Environment"] = environment
    parameters.update(
        {
            "ProcessingInputs": inputs,
            "ProcessingOutputConfig": {"KmsKeyId": placeholder(KMS_KEY_ARN), "Outputs": outputs},
            "ProcessingResources": {"ClusterConfig": cluster},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
            "NetworkConfig": _network_config(config),
            "Tags": job_tags(config),
        }
    )
    return Task(
        name=name,
        resource=RESOURCE_PROCESSING_JOB,
        parameters=parameters,
        result_path=None,
        retry=retries(SAGEMAKER_TRANSIENT),
        catch=catch_all(name),
        **state,
    )


def xgboost(config: Config) -> bool:
    """Whether the built-in XGBoost image trains (else the project container)."""
    return config.training.image == "xgboost"


def tuning(config: Config) -> bool:
    """Whether a hyperparameter tuning job trains (else one training job)."""
    return config.training.tuning.enabled


def job_name(config: Config, step: str) -> str:
    """``States.Format`` expression for the name of ``step``'s job (or model),
    ``<base>-<RunId>-<step>-<Attempt>-<RedriveCount>``.

    It is evaluated by the Task that creates the job, so a redriven Task (same input,
    same context, but ``$$.Execution.RedriveCount`` one higher) names a new job, while
    the Task's own retries keep the name (see the module docstring).
    """
    return asl.fmt(naming.job_name_format(config, step), "$.RunId", "$.Attempt", REDRIVE_COUNT)


def registration_token() -> str:
    """``ClientToken`` of ``RegisterModel``: ``<RunId>-<Attempt>``, one model version per
    execution. A retry or a redrive of the registration sends the same token and gets
    the version it may already have created; a new execution trains a new model and
    registers it under a new token. (The redrive count stays out: a redrive re-runs
    ``RegisterModel`` only, with the same model, which must not be registered twice.)"""
    return asl.fmt("{}-{}", "$.RunId", "$.Attempt")


def gate_metric_path(config: Config) -> str:
    """Path of the gated metric in the state after ``ReadEvaluation``."""
    return f"$.Evaluation.Report.regression_metrics.{config.training.gate.metric}.value"


def gate_description(config: Config) -> str:
    gate = config.training.gate
    return f"{gate.metric} {gate.operator} {gate.threshold}"

