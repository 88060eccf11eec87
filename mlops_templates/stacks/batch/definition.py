"""The batch state machine's definition (``deployment.mode`` batch or both).

Flow (names are the state names)::

    Start -> ObjectInput | PrefixInput -> FindModel -> HasModel -> DescribeModel
          -> CreateModel -> Transform -> CheckGroundTruth -> WithGroundTruth | WithoutGroundTruth
          -> Monitor -> ReadMetrics -> PublishMetrics -> DeleteModel -> Succeeded
    no approved model: NoApprovedModel -> NotifyFailure -> Failed
    any Task error:    <Step>Error -> NotifyFailure -> Failed

* Input: ``{"Bucket": ..., "Key": ...}`` from the upload rule (the uploaded object is the
  transform's input), anything else (the schedule's ``{"ScheduledTime": ...}``, a person's
  ``{}``) transforms the whole input prefix.
* ``FindModel``: the newest **Approved** version of the project's model package group
  (``ListModelPackages``, ``ModelApprovalStatus: Approved``, ``SortBy: CreationTime``,
  ``SortOrder: Descending``, ``MaxResults: 1``); none fails the run with ``NoApprovedModel``
  and a notice saying how to approve one. ``DescribeModelPackage`` gives its image, model
  data and drift baselines (the workflow registers them: ``DriftCheckBaselines``).
* ``CreateModel``: a model per execution, with the project's SageMaker role, network-isolated.
* ``Transform``: ``createTransformJob.sync``. ``SplitType: Line`` and ``BatchStrategy:
  MultiRecord``; ``MaxPayloadInMB`` and ``MaxConcurrentTransforms`` are left unset, so
  SageMaker asks the container (``GET /execution-parameters``: "If MaxConcurrentTransforms is
  set to 0 or left unset, Amazon SageMaker checks the optional execution-parameters",
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html);
  ``DataProcessing`` keeps each row's id (``contract.BATCH_*``,
  https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html).
  CreateTransformJob has no stopping condition: ``batch.max_runtime_seconds`` is the Task's
  timeout, on which Step Functions stops the job (the role may ``StopTransformJob``).
* ``Monitor``: the project image's ``monitor`` job over the transform's output
  (``INPUT_FORMAT=batch``) with the model's drift baselines and, when any is uploaded, the
  ground-truth prefix (a Processing input must match at least one object, hence
  ``CheckGroundTruth``); ``ReadMetrics`` / ``PublishMetrics`` as the monitor state machine.
* ``DeleteModel``: a run's model is deleted when it succeeded. A failed run keeps it: a
  redrive resumes at the failed state and needs it (it is named after the run).

Names are unique per execution and redrive: ``<base>-batch-<attempt>-<redrive count>`` for
the model and the transform job, ``<base>-batch-mon-...`` for the monitor job; a run's files
are under ``<output prefix><transform job>/`` (``predictions/``, ``monitoring/``).
"""

from __future__ import annotations

from typing import Any

from mlops_templates import asl, contract, naming, notifications
from mlops_templates.asl import (
    Catch,
    Choice,
    Compare,
    Fail,
    Pass,
    Rule,
    StateMachine,
    Succeed,
    Task,
)
from mlops_templates.config import Config
from mlops_templates.stacks.batch import names as n
from mlops_templates.stacks.deploy_prd import monitor_definition as md
from mlops_templates.stacks.workflow.names import (
    ATTEMPT_ID,
    REDRIVE_COUNT,
    RESOURCE_MODEL,
    RESOURCE_PROCESSING_JOB,
    RESOURCE_S3_GET_OBJECT,
    RESOURCE_SNS_PUBLISH,
    S3_TRANSIENT,
    SAGEMAKER_SDK_TRANSIENT,
    SAGEMAKER_TRANSIENT,
    SNS_TRANSIENT,
)
from mlops_templates.stacks.workflow.tasks import (
    cluster,
    placeholder,
    retries,
    vpc_config,
)

RESOURCE_LIST_PACKAGES = "arn:aws:states:::aws-sdk:sagemaker:listModelPackages"
RESOURCE_DESCRIBE_PACKAGE = "arn:aws:states:::aws-sdk:sagemaker:describeModelPackage"
RESOURCE_DELETE_MODEL = "arn:aws:states:::aws-sdk:sagemaker:deleteModel"
RESOURCE_TRANSFORM_JOB = "arn:aws:states:::sagemaker:createTransformJob.sync"
RESOURCE_LIST_OBJECTS = "arn:aws:states:::aws-sdk:s3:listObjectsV2"

# State names.
START = "Start"
OBJECT_INPUT = "ObjectInput"
PREFIX_INPUT = "PrefixInput"
FIND_MODEL = "FindModel"
HAS_MODEL = "HasModel"
NO_APPROVED_MODEL = "NoApprovedModel"
DESCRIBE_MODEL = "DescribeModel"
CREATE_MODEL = "CreateModel"
TRANSFORM = "Transform"
CHECK_GROUND_TRUTH = "CheckGroundTruth"
HAS_GROUND_TRUTH = "HasGroundTruth"
WITH_GROUND_TRUTH = "WithGroundTruth"
WITHOUT_GROUND_TRUTH = "WithoutGroundTruth"
MONITOR = "Monitor"
READ_METRICS = "ReadMetrics"
PUBLISH_METRICS = "PublishMetrics"
DELETE_MODEL = "DeleteModel"
SUCCEEDED = "Succeeded"
NOTIFY_FAILURE = "NotifyFailure"
FAILED = "Failed"
#: Step -> the error the run fails with (raw errors lead the cause).
STEP_ERRORS = {
    FIND_MODEL: "ModelNotFound",
    DESCRIBE_MODEL: "ModelNotFound",
    CREATE_MODEL: "ModelNotCreated",
    TRANSFORM: "TransformJobFailed",
    CHECK_GROUND_TRUTH: "GroundTruthUnreadable",
    MONITOR: "MonitorJobFailed",
    READ_METRICS: "MetricsUnreadable",
    PUBLISH_METRICS: "MetricsNotPublished",
    DELETE_MODEL: "ModelNotDeleted",
}
NO_APPROVED_MODEL_ERROR = "NoApprovedModel"
FAILURE_PATH = "$.Failure"
#: Where the container finds its inputs (``mlcontainer.paths``, lambdas/monitor_window).
LOCAL_PATHS = {
    "capture": "/opt/ml/processing/input/capture",
    "ground_truth": "/opt/ml/processing/input/ground_truth",
    "statistics": "/opt/ml/processing/baseline/statistics",
    "constraints": "/opt/ml/processing/baseline/constraints",
}
_PACKAGE = "$.Packages.ModelPackageSummaryList[0]"
_CONTAINER = "$.Package.InferenceSpecification.Containers[0]"
_BASELINES = "$.Package.DriftCheckBaselines.ModelDataQuality"
_MODEL_NAME = asl.array_get_item(asl.string_split("$.Model.ModelArn", "/"), 1)


def _catch(step: str) -> list[Catch]:
    return [Catch(f"{step}Error", result_path=FAILURE_PATH)]


def _tags(config: Config) -> list[dict[str, str]]:
    return [{"Key": naming.PROJECT_TAG, "Value": naming.base(config)},
            {"Key": naming.COMPONENT_TAG, "Value": n.COMPONENT}]


def _input_states(config: Config) -> list[asl.State]:
    bucket = placeholder(n.DATA_BUCKET)
    return [
        Choice(
            name=START,
            comment="An upload (Bucket and Key) is transformed alone; any other start, the whole input prefix.",
            rules=[Rule(asl.is_present("$.Key"), OBJECT_INPUT)],
            default=PREFIX_INPUT,
        ),
        Pass(
            name=OBJECT_INPUT,
            parameters={"Id.$": ATTEMPT_ID, "Bucket": bucket,
                        "InputUri.$": asl.fmt("s3://{}/{}", "$.Bucket", "$.Key")},
            result_path="$.Run",
            next=FIND_MODEL,
        ),
        Pass(
            name=PREFIX_INPUT,
            parameters={"Id.$": ATTEMPT_ID, "Bucket": bucket,
                        "InputUri": f"s3://{bucket}/{config.batch.input_prefix}"},
            result_path="$.Run",
            next=FIND_MODEL,
        ),
    ]


def _model_states(config: Config) -> list[asl.State]:
    group = naming.physical_name(config, "models")
    primary: dict[str, Any] = {"Image.$": f"{_CONTAINER}.Image", "ModelDataUrl.$": f"{_CONTAINER}.ModelDataUrl"}
    model: dict[str, Any] = {
        "ModelName.$": asl.fmt(naming.batch_name_format(config), "$.Run.Id", REDRIVE_COUNT),
        "ExecutionRoleArn": placeholder(n.SAGEMAKER_ROLE_ARN),
        "PrimaryContainer": primary,
        "EnableNetworkIsolation": True,
        "Tags": _tags(config),
    }
    vpc = vpc_config(config)
    if vpc:
        model["VpcConfig"] = vpc
    return [
        Task(
            name=FIND_MODEL, resource=RESOURCE_LIST_PACKAGES,
            parameters={"ModelPackageGroupName": group, "ModelApprovalStatus": "Approved",
                        "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1},
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path="$.Packages",
            retry=retries(SAGEMAKER_SDK_TRANSIENT), catch=_catch(FIND_MODEL), next=HAS_MODEL,
        ),
        Choice(name=HAS_MODEL, rules=[Rule(asl.is_present(_PACKAGE), DESCRIBE_MODEL)],
               default=NO_APPROVED_MODEL),
        Pass(
            name=NO_APPROVED_MODEL,
            parameters={"Error": NO_APPROVED_MODEL_ERROR,
                        "Cause": f"model package group {group} has no Approved version: approve "
                                 "one (SageMaker Studio, or aws sagemaker update-model-package "
                                 "--model-approval-status Approved) and upload the batch again"},
            result_path=FAILURE_PATH, next=NOTIFY_FAILURE,
        ),
        Task(
            name=DESCRIBE_MODEL, resource=RESOURCE_DESCRIBE_PACKAGE,
            parameters={"ModelPackageName.$": f"{_PACKAGE}.ModelPackageArn"},
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path="$.Package",
            retry=retries(SAGEMAKER_SDK_TRANSIENT), catch=_catch(DESCRIBE_MODEL), next=CREATE_MODEL,
        ),
        Task(
            name=CREATE_MODEL, resource=RESOURCE_MODEL, parameters=model,
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path="$.Model",
            retry=retries(SAGEMAKER_TRANSIENT), catch=_catch(CREATE_MODEL), next=TRANSFORM,
        ),
    ]


def _transform(config: Config) -> Task:
    batch = config.batch
    job = asl.fmt(naming.batch_name_format(config), "$.Run.Id", REDRIVE_COUNT)
    output = asl.fmt(f"s3://{{}}/{batch.output_prefix}{naming.batch_name_format(config)}/predictions",
                     "$.Run.Bucket", "$.Run.Id", REDRIVE_COUNT)
    return Task(
        name=TRANSFORM,
        resource=RESOURCE_TRANSFORM_JOB,
        parameters={
            "TransformJobName.$": job,
            "ModelName.$": _MODEL_NAME,
            "BatchStrategy": "MultiRecord",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": "$.Run.InputUri"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {"S3OutputPath.$": output, "Accept": "text/csv", "AssembleWith": "Line",
                                "KmsKeyId": placeholder(n.KMS_KEY_ARN)},
            "TransformResources": {"InstanceType": batch.instance_type, "InstanceCount": batch.instance_count,
                                   "VolumeKmsKeyId": placeholder(n.KMS_KEY_ARN)},
            "DataProcessing": {"InputFilter": contract.BATCH_INPUT_FILTER,
                               "JoinSource": contract.BATCH_JOIN_SOURCE,
                               "OutputFilter": contract.BATCH_OUTPUT_FILTER},
            "Tags": _tags(config),
        },
        timeout_seconds=batch.max_runtime_seconds,
        result_path="$.Transform",
        retry=retries(SAGEMAKER_TRANSIENT),
        catch=_catch(TRANSFORM),
        next=CHECK_GROUND_TRUTH,
    )


def _s3_input(name: str, uri: str, path: bool) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "S3Uri.$" if path else "S3Uri": uri, "LocalPath": LOCAL_PATHS[name], "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}


def _monitor_input_states(config: Config) -> list[asl.State]:
    truth = config.batch.ground_truth_prefix
    common = [_s3_input("capture", "$.Transform.TransformOutput.S3OutputPath", True),
              _s3_input("statistics", f"{_BASELINES}.Statistics.S3Uri", True),
              _s3_input("constraints", f"{_BASELINES}.Constraints.S3Uri", True)]
    labelled = [*common, _s3_input("ground_truth", f"s3://{placeholder(n.DATA_BUCKET)}/{truth}", False)]
    return [
        Task(
            name=CHECK_GROUND_TRUTH, resource=RESOURCE_LIST_OBJECTS,
            parameters={"Bucket.$": "$.Run.Bucket", "Prefix": truth, "MaxKeys": 1},
            timeout_seconds=md.API_TIMEOUT_SECONDS,
            result_selector={"KeyCount.$": "$.KeyCount"}, result_path="$.GroundTruth",
            retry=retries(S3_TRANSIENT), catch=_catch(CHECK_GROUND_TRUTH), next=HAS_GROUND_TRUTH,
        ),
        Choice(name=HAS_GROUND_TRUTH,
               rules=[Rule(Compare("$.GroundTruth.KeyCount", "NumericGreaterThan", 0), WITH_GROUND_TRUTH)],
               default=WITHOUT_GROUND_TRUTH),
        Pass(name=WITH_GROUND_TRUTH, parameters={"Inputs": labelled}, result_path="$.MonitorInputs", next=MONITOR),
        Pass(name=WITHOUT_GROUND_TRUTH, parameters={"Inputs": common}, result_path="$.MonitorInputs", next=MONITOR),
    ]


def _monitor(config: Config, endpoint: str) -> Task:
    mon = config.monitoring
    network: dict[str, Any] = {"EnableNetworkIsolation": True, "EnableInterContainerTrafficEncryption": True}
    vpc = vpc_config(config)
    if vpc:
        network["VpcConfig"] = vpc
    report = asl.fmt(f"s3://{{}}/{config.batch.output_prefix}{{}}/monitoring", "$.Run.Bucket",
                     "$.Transform.TransformJobName")
    return Task(
        name=MONITOR,
        resource=RESOURCE_PROCESSING_JOB,
        parameters={
            "ProcessingJobName.$": asl.fmt(naming.batch_name_format(config, "mon"), "$.Run.Id", REDRIVE_COUNT),
            "RoleArn": placeholder(n.SAGEMAKER_ROLE_ARN),
            "AppSpecification": {"ImageUri.$": f"{_CONTAINER}.Image", "ContainerEntrypoint": ["monitor"]},
            "Environment": {**md.job_environment(config, endpoint), "INPUT_FORMAT": "batch"},
            "ProcessingInputs.$": "$.MonitorInputs.Inputs",
            "ProcessingOutputConfig": {
                "KmsKeyId": placeholder(n.KMS_KEY_ARN),
                "Outputs": [{"OutputName": "monitoring", "S3Output": {
                    "S3Uri.$": report, "LocalPath": md.OUTPUT_DIR, "S3UploadMode": "EndOfJob"}}],
            },
            "ProcessingResources": {"ClusterConfig": cluster(mon.instance_type, 1, mon.volume_size_gb)},
            "StoppingCondition": {"MaxRuntimeInSeconds": mon.max_runtime_seconds},
            "NetworkConfig": network,
            "Tags": _tags(config),
        },
        result_path=None,
        retry=retries(SAGEMAKER_TRANSIENT),
        catch=_catch(MONITOR),
        next=READ_METRICS,
    )


def _metrics_states(config: Config) -> list[asl.State]:
    key = asl.fmt(f"{config.batch.output_prefix}{{}}/monitoring/metrics.json", "$.Transform.TransformJobName")
    return [
        Task(
            name=READ_METRICS, resource=RESOURCE_S3_GET_OBJECT,
            parameters={"Bucket.$": "$.Run.Bucket", "Key.$": key},
            timeout_seconds=md.API_TIMEOUT_SECONDS,
            result_selector={"Request.$": asl.string_to_json("$.Body")}, result_path="$.Metrics",
            retry=retries(S3_TRANSIENT), catch=_catch(READ_METRICS), next=PUBLISH_METRICS,
        ),
        Task(
            name=PUBLISH_METRICS, resource=md.RESOURCE_PUT_METRIC_DATA,
            parameters={"Namespace.$": "$.Metrics.Request.Namespace",
                        "MetricData.$": "$.Metrics.Request.MetricData"},
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path=None,
            retry=retries(md.CLOUDWATCH_TRANSIENT), catch=_catch(PUBLISH_METRICS), next=DELETE_MODEL,
        ),
        Task(
            name=DELETE_MODEL, resource=RESOURCE_DELETE_MODEL, parameters={"ModelName.$": _MODEL_NAME},
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path=None,
            retry=retries(SAGEMAKER_SDK_TRANSIENT), catch=_catch(DELETE_MODEL), next=SUCCEEDED,
        ),
        Succeed(name=SUCCEEDED),
    ]


def _failure_states(config: Config) -> list[asl.State]:
    project = naming.base(config)
    rendered = notifications.render(
        "batch_failed", config.notifications.messages.get("batch_failed"), {"project": project})
    paths = {"execution": "$$.Execution.Name", "error": f"{FAILURE_PATH}.Error",
             "cause": f"{FAILURE_PATH}.Cause"}
    described = [
        Pass(
            name=f"{step}Error",
            parameters={"Error": error,
                        "Cause.$": asl.fmt("{}: {}", f"{FAILURE_PATH}.Error", f"{FAILURE_PATH}.Cause")},
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        )
        for step, error in STEP_ERRORS.items()
    ]
    return [
        *described,
        Task(
            name=NOTIFY_FAILURE, resource=RESOURCE_SNS_PUBLISH,
            parameters={"TopicArn": placeholder(n.NOTIFICATION_TOPIC_ARN),
                        "Subject": f"{project}: batch run failed",
                        "Message.$": asl.fmt(rendered.template, *(paths[a] for a in rendered.arguments))},
            timeout_seconds=md.API_TIMEOUT_SECONDS, result_path=None, retry=retries(SNS_TRANSIENT),
            catch=[Catch(FAILED, result_path="$.NotificationFailure")], next=FAILED,
        ),
        Fail(name=FAILED, error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"),
    ]


def state_machine(config: Config) -> StateMachine:
    """The whole batch flow as typed states (see the module docstring)."""
    names = n.Names.of(config)
    return StateMachine(
        [*_input_states(config), *_model_states(config), _transform(config),
         *_monitor_input_states(config), _monitor(config, names.endpoint), *_metrics_states(config),
         *_failure_states(config)],
        comment=f"Batch-transform uploads to {config.batch.input_prefix} with the newest approved model, then monitor them.",
    )


def definition(config: Config) -> dict[str, Any]:
    """The rendered ASL, ``${...}`` placeholders left in."""
    return state_machine(config).render()
