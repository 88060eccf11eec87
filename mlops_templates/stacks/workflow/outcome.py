"""How a run ends: the quality gate, model creation and registration, or the failure
notice."""

from __future__ import annotations

from typing import Any

from mlops_templates import asl, naming, notifications
from mlops_templates.asl import (
    Catch,
    Choice,
    Compare,
    Fail,
    Not,
    Pass,
    Rule,
    Succeed,
    Task,
)
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.jobs import model_monitor
from mlops_templates.stacks.workflow.names import (
    API_TIMEOUT_SECONDS,
    ARTIFACT_BUCKET,
    BASELINE,
    CREATE_MODEL,
    FAILED,
    FAILURE_PATH,
    GATE_FAILED,
    GATE_OPERATORS,
    METRIC_MISSING,
    NOTIFICATION_TOPIC_ARN,
    NOTIFY_FAILURE,
    NOTIFY_GATE_FAILED,
    NOTIFY_REGISTERED,
    OUTPUT,
    QUALITY_GATE,
    READ_BEST_TRAINING_JOB,
    READ_EVALUATION,
    REGISTER_MODEL,
    RESOURCE_MODEL,
    RESOURCE_MODEL_PACKAGE,
    RESOURCE_S3_GET_OBJECT,
    RESOURCE_SNS_PUBLISH,
    S3_TRANSIENT,
    SAGEMAKER_ROLE_ARN,
    SAGEMAKER_SDK_TRANSIENT,
    SAGEMAKER_TRANSIENT,
    SNS_TRANSIENT,
    STEP_ERRORS,
    STEP_MODEL,
    SUCCEEDED,
    TRAIN,
    TRAIN_AND_BASELINE,
    TUNE,
)
from mlops_templates.stacks.workflow.tasks import (
    catch_all,
    describe_error,
    gate_description,
    gate_metric_path,
    job_name,
    job_tags,
    placeholder,
    registration_token,
    retries,
    tuning,
    vpc_config,
)


def gate_states(config: Config) -> list[asl.State]:
    """Read ``evaluation.json`` back and gate on the configured metric.

    The Choice first routes a missing or non-numeric metric to ``MetricMissing``
    (comparing a missing value would be an uncatchable runtime error), then passes
    the model on to ``CreateModel`` when the metric meets the threshold; anything
    else, by ``Default``, is ``GateFailed``.
    """
    gate = config.training.gate
    metric = gate_metric_path(config)
    return [
        Task(
            name=READ_EVALUATION,
            resource=RESOURCE_S3_GET_OBJECT,
            parameters={"Bucket": placeholder(ARTIFACT_BUCKET), "Key.$": "$.Paths.EvaluationKey"},
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={"Report.$": asl.string_to_json("$.Body")},
            result_path="$.Evaluation",
            retry=retries(S3_TRANSIENT),
            catch=catch_all(READ_EVALUATION),
            next=QUALITY_GATE,
        ),
        Choice(
            name=QUALITY_GATE,
            comment=f"Register the model only if {gate_description(config)} on the test split.",
            rules=[
                Rule(asl.is_present(metric, False), METRIC_MISSING),
                Rule(Not(asl.is_numeric(metric)), METRIC_MISSING),
                Rule(Compare(metric, GATE_OPERATORS[gate.operator], gate.threshold), CREATE_MODEL),
            ],
            default=GATE_FAILED,
        ),
        Pass(
            name=METRIC_MISSING,
            parameters={
                "Error": "EvaluationIncomplete",
                "Cause": (
                    f"evaluation.json has no numeric regression_metrics.{gate.metric}.value "
                    "to gate on."
                ),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        ),
        Pass(
            name=GATE_FAILED,
            comment="The cause is the gate_failed notification, published as it is.",
            parameters={
                "Error": "QualityGateFailed",
                "Cause.$": message(config, "gate_failed", {"run_id": "$.RunId", "value": metric}),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_GATE_FAILED,
        ),
        notify(config, NOTIFY_GATE_FAILED, "training run rejected", f"{FAILURE_PATH}.Cause", FAILED),
    ]


def message(config: Config, event: str, paths: dict[str, str]) -> str:
    """``States.Format`` of ``event``'s text (``notifications.messages`` or its default),
    each dynamic ``{name}`` read from ``paths[name]``."""
    gate = config.training.gate
    static = {"project": naming.base(config), "metric": gate.metric, "rule": gate_description(config)}
    rendered = notifications.render(event, config.notifications.messages.get(event), static)
    return asl.fmt(rendered.template, *(paths[name] for name in rendered.arguments))


def notify(config: Config, name: str, subject: str, text: str, next_state: str) -> Task:
    """Publish ``text`` (a path or an intrinsic) to the project topic; a failed publish goes
    on to ``next_state`` with the state's data as it was (the notice never hides the outcome)."""
    return Task(
        name=name,
        resource=RESOURCE_SNS_PUBLISH,
        parameters={
            "TopicArn": placeholder(NOTIFICATION_TOPIC_ARN),
            "Subject": f"{naming.base(config)}: {subject}",
            "Message.$": text,
        },
        timeout_seconds=API_TIMEOUT_SECONDS,
        result_path=None,
        retry=retries(SNS_TRANSIENT),
        catch=[Catch(next_state, result_path="$.NotificationFailure")],
        next=next_state,
    )


def model_parameters(config: Config) -> dict[str, Any]:
    """``CreateModel``: the project container serving the trained artifact."""
    model: dict[str, Any] = {
        "ModelName.$": job_name(config, STEP_MODEL),
        "ExecutionRoleArn": placeholder(SAGEMAKER_ROLE_ARN),
        "PrimaryContainer": {
            "Image.$": "$.ImageUri",
            "ModelDataUrl.$": "$.Training.ModelDataUrl",
        },
        "EnableNetworkIsolation": config.training.network_isolation,
    }
    vpc = vpc_config(config)
    if vpc:
        model["VpcConfig"] = vpc
    model["Tags"] = job_tags(config)
    return model


def model_package_parameters(config: Config) -> dict[str, Any]:
    """``CreateModelPackage``: the model version with its evaluation and baselines."""
    content_types = ["text/csv", "application/json"]
    instance_types = sorted(
        {config.endpoints.dev.instance_type, config.endpoints.prd.instance_type}
    )
    statistics = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineStatistics"}
    constraints = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineConstraints"}
    return {
        "ModelPackageGroupName": naming.physical_name(config, "models"),
        "ClientToken.$": registration_token(),
        "ModelPackageDescription.$": asl.fmt(
            "Training run {} (attempt {}); evaluation "
            + gate_description(config)
            + " passed.",
            "$.RunId",
            "$.Attempt",
        ),
        "ModelApprovalStatus": config.training.model_approval_status,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image.$": "$.ImageUri",
                    "ModelDataUrl.$": "$.Training.ModelDataUrl",
                }
            ],
            "SupportedContentTypes": content_types,
            "SupportedResponseMIMETypes": content_types,
            "SupportedRealtimeInferenceInstanceTypes": instance_types,
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri.$": "$.Paths.EvaluationReport",
                }
            },
            "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
        },
        "DriftCheckBaselines": {
            "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints}
        },
        "CustomerMetadataProperties": {
            "RunId.$": "$.RunId",
            "Attempt.$": "$.Attempt",
            "ModelName.$": "$.Model.ModelName",
            "TrainingImage.$": "$.Training.TrainingImage",
        },
    }


def register_states(config: Config) -> list[asl.State]:
    """Create the SageMaker model and register it in the model package group.

    Both serve the model with the project container (``$.ImageUri``), also when the
    built-in XGBoost image trained it: the container reads the built-in artifact and
    answers the same raw rows as for its own models, where the built-in image takes
    only encoded, numeric CSV.
    """
    return [
        Task(
            name=CREATE_MODEL,
            resource=RESOURCE_MODEL,
            parameters=model_parameters(config),
            timeout_seconds=API_TIMEOUT_SECONDS,
            # The name the Task gave (its redrive count is known only there).
            result_selector={
                "ModelArn.$": "$.ModelArn",
                "ModelName.$": asl.array_get_item(asl.string_split("$.ModelArn", "/"), 1),
            },
            result_path="$.Model",
            retry=retries(SAGEMAKER_TRANSIENT),
            catch=catch_all(CREATE_MODEL),
            next=REGISTER_MODEL,
        ),
        Task(
            name=REGISTER_MODEL,
            resource=RESOURCE_MODEL_PACKAGE,
            parameters=model_package_parameters(config),
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={"ModelPackageArn.$": "$.ModelPackageArn"},
            result_path="$.Registration",
            retry=retries(SAGEMAKER_SDK_TRANSIENT),
            catch=catch_all(REGISTER_MODEL),
            next=NOTIFY_REGISTERED,
        ),
        notify(
            config,
            NOTIFY_REGISTERED,
            "model registered",
            message(
                config,
                "gate_passed",
                {
                    "run_id": "$.RunId",
                    "value": gate_metric_path(config),
                    "model_package": "$.Registration.ModelPackageArn",
                    # arn:...:model-package/<group>/<version>
                    "version": asl.array_get_item(
                        asl.string_split("$.Registration.ModelPackageArn", "/"), 2
                    ),
                },
            ),
            OUTPUT,
        ),
        Pass(
            name=OUTPUT,
            comment="The execution's output, read by the pipeline's deploy stages.",
            parameters={
                "RunId.$": "$.RunId",
                "ModelDataUrl.$": "$.Training.ModelDataUrl",
                "ImageUri.$": "$.ImageUri",
                "ModelPackageArn.$": "$.Registration.ModelPackageArn",
                "BaselineStatisticsUri.$": "$.Paths.BaselineStatistics",
                "BaselineConstraintsUri.$": "$.Paths.BaselineConstraints",
                "EvaluationUri.$": "$.Paths.EvaluationReport",
                "Metrics.$": "$.Evaluation.Report.regression_metrics",
            },
            next=SUCCEEDED,
        ),
        Succeed(name=SUCCEEDED),
    ]


def failure_states(config: Config) -> list[asl.State]:
    """Name each step's failure, publish it to the project topic, then fail with it.

    Every error reaching ``NotifyFailure`` has a name of this workflow (one of
    ``STEP_ERRORS`` or ``REJECTION_ERRORS``), so ``Failed`` re-raises it as is.
    """
    # Steps inside TrainAndBaseline's branches fail their branch (Model Monitor); without
    # it the training steps are steps of their own. Train, or Tune and ReadBestTrainingJob.
    training = (TUNE, READ_BEST_TRAINING_JOB) if tuning(config) else (TRAIN,)
    absent = {TRAIN, TUNE, READ_BEST_TRAINING_JOB} - set(training)
    nested = (*training, BASELINE) if model_monitor(config) else (BASELINE, TRAIN_AND_BASELINE)
    top_level = [step for step in STEP_ERRORS if step not in nested and step not in absent]
    text = message(
        config,
        "training_failed",
        # The execution's name: an input refused by ValidateInput may have no RunId.
        {"execution": "$$.Execution.Name", "error": f"{FAILURE_PATH}.Error",
         "cause": f"{FAILURE_PATH}.Cause"},
    )
    return [
        *(describe_error(step) for step in top_level),
        # A failed notification must not hide the original error: $.Failure stays.
        notify(config, NOTIFY_FAILURE, "training run failed", text, FAILED),
        Fail(name=FAILED, error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"),
    ]

