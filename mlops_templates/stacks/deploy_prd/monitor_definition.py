"""The monitor state machine's definition (``monitoring.engine: builtin``).

Flow (names are the state names)::

    Start -> [WaitForCapture] -> FindWindow -> NewAttempt -> Monitor -> ReadMetrics
          -> PublishMetrics -> Succeeded
    any Task error: <Step>Error -> NotifyFailure -> RecordFailure -> Failed

* ``WaitForCapture``: SageMaker delivers capture files to S3 a few minutes after the request
  ("The delivery of capture data to Amazon S3 can require a couple of minutes",
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html),
  so a scheduled run waits before it lists the window that just ended. A run given its
  own ``WindowEnd`` (by hand, for a past window) does not wait.
* ``FindWindow``: the window Lambda (``lambdas/monitor_window``) computes the window from
  the schedule's time (ASL has no date arithmetic), lists its capture and ground-truth
  files into manifests and returns the job's inputs.
* ``Monitor``: the project image's ``monitor`` entry as a network-isolated processing job;
  it writes ``report.json``, ``report.html`` and ``metrics.json`` to the window's prefix.
* ``ReadMetrics`` / ``PublishMetrics``: ``metrics.json`` is the body of a CloudWatch
  ``PutMetricData`` request, published as it is (a few dozen metrics, far below the
  1,000 metrics and 1 MB a request takes:
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
* ``NotifyFailure`` publishes the ``monitor_failed`` message; ``RecordFailure`` publishes
  ``MonitorFailed = 1`` (the dashboard's status), each carrying on when it fails itself.

Input: ``{"ScheduledTime": "<aws.scheduler.scheduled-time>"}`` from the schedule, or
``{"WindowEnd": "...", "WindowStart": "..."}`` (both optional) from a person.
"""

from __future__ import annotations

from typing import Any

from mlops_templates import asl, contract, naming, notifications
from mlops_templates.asl import (
    Catch,
    Choice,
    Fail,
    Pass,
    Rule,
    StateMachine,
    Succeed,
    Task,
    Wait,
)
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.names import (
    ATTEMPT_ID,
    REDRIVE_COUNT,
    RESOURCE_PROCESSING_JOB,
    RESOURCE_S3_GET_OBJECT,
    RESOURCE_SNS_PUBLISH,
    S3_TRANSIENT,
    SAGEMAKER_TRANSIENT,
    SNS_TRANSIENT,
)
from mlops_templates.stacks.workflow.tasks import (
    cluster,
    placeholder,
    retries,
    vpc_config,
)

# DefinitionSubstitutions placeholders.
WINDOW_FUNCTION_ARN = "WindowFunctionArn"
IMAGE_URI = "ImageUri"
SAGEMAKER_ROLE_ARN = "SageMakerRoleArn"
KMS_KEY_ARN = "KmsKeyArn"
NOTIFICATION_TOPIC_ARN = "NotificationTopicArn"

# State names.
START = "Start"
WAIT_FOR_CAPTURE = "WaitForCapture"
FIND_WINDOW = "FindWindow"
NEW_ATTEMPT = "NewAttempt"
MONITOR = "Monitor"
READ_METRICS = "ReadMetrics"
PUBLISH_METRICS = "PublishMetrics"
SUCCEEDED = "Succeeded"
NOTIFY_FAILURE = "NotifyFailure"
RECORD_FAILURE = "RecordFailure"
FAILED = "Failed"
#: Step -> the error the run fails with (raw errors lead the cause).
STEP_ERRORS = {
    FIND_WINDOW: "WindowNotFound",
    MONITOR: "MonitorJobFailed",
    READ_METRICS: "MetricsUnreadable",
    PUBLISH_METRICS: "MetricsNotPublished",
}
FAILURE_PATH = "$.Failure"

#: Seconds a scheduled run waits for the window's last capture files to reach S3.
CAPTURE_DELAY_SECONDS = 600
RESOURCE_LAMBDA = "arn:aws:states:::lambda:invoke"
RESOURCE_PUT_METRIC_DATA = "arn:aws:states:::aws-sdk:cloudwatch:putMetricData"
LAMBDA_TRANSIENT = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
CLOUDWATCH_TRANSIENT = ("CloudWatch.CloudWatchException", "CloudWatch.SdkClientException")
API_TIMEOUT_SECONDS = 60
WINDOW_TIMEOUT_SECONDS = 300
#: Where the job writes its outputs (``mlcontainer.paths.monitor_output_dir``).
OUTPUT_DIR = "/opt/ml/processing/monitoring"


def _catch(step: str) -> list[Catch]:
    return [Catch(f"{step}Error", result_path=FAILURE_PATH)]


def job_environment(config: Config, endpoint: str) -> dict[str, str]:
    """The monitor job's settings (``mlcontainer monitor``'s environment variables)."""
    mon = config.monitoring
    return {
        "ENDPOINT_NAME": endpoint,
        "METRICS_NAMESPACE": naming.metrics_namespace(config),
        "SYNTHETIC_PREFIX": contract.SYNTHETIC_INFERENCE_ID_PREFIX,
        "DRIFT_THRESHOLD": format(mon.drift_distance_threshold, "g"),
        "DRIFT_FEATURES": ",".join(mon.drift_features),
        "DRIFT_MIN_ROWS": str(mon.drift_min_rows),
        "DRIFT_VIOLATIONS": str(mon.drift_violations_threshold),
        "QUALITY_METRIC": mon.quality.metric,
        "QUALITY_OPERATOR": mon.quality.operator,
        "QUALITY_THRESHOLD": format(mon.quality.threshold, "g"),
        "QUALITY_MIN_ROWS": str(mon.quality.min_rows),
        "GROUND_TRUTH_LOOKBACK_HOURS": str(mon.ground_truth_lookback_hours),
    }


def _job(config: Config, endpoint: str) -> Task:
    mon = config.monitoring
    network: dict[str, Any] = {
        # The job reads and writes only through SageMaker's own channels.
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    vpc = vpc_config(config)
    if vpc:
        network["VpcConfig"] = vpc
    environment: dict[str, str] = dict(job_environment(config, endpoint))
    environment.update({"WINDOW_START.$": "$.Window.Start", "WINDOW_END.$": "$.Window.End"})
    return Task(
        name=MONITOR,
        resource=RESOURCE_PROCESSING_JOB,
        parameters={
            "ProcessingJobName.$": asl.fmt(
                naming.monitor_job_name_format(config), "$.Window.Id", "$.Attempt.Id", REDRIVE_COUNT
            ),
            "RoleArn": placeholder(SAGEMAKER_ROLE_ARN),
            "AppSpecification": {"ImageUri": placeholder(IMAGE_URI), "ContainerEntrypoint": ["monitor"]},
            "Environment": environment,
            "ProcessingInputs.$": "$.Window.Inputs",
            "ProcessingOutputConfig": {
                "KmsKeyId": placeholder(KMS_KEY_ARN),
                "Outputs": [
                    {
                        "OutputName": "monitoring",
                        "S3Output": {
                            "S3Uri.$": "$.Window.ReportUri",
                            "LocalPath": OUTPUT_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ],
            },
            "ProcessingResources": {"ClusterConfig": cluster(mon.instance_type, 1, mon.volume_size_gb)},
            "StoppingCondition": {"MaxRuntimeInSeconds": mon.max_runtime_seconds},
            "NetworkConfig": network,
            "Tags": [
                {"Key": naming.PROJECT_TAG, "Value": naming.base(config)},
                {"Key": naming.COMPONENT_TAG, "Value": "deploy-prd"},
            ],
        },
        result_path=None,
        retry=retries(SAGEMAKER_TRANSIENT),
        catch=_catch(MONITOR),
        next=READ_METRICS,
    )


def _window_states() -> list[asl.State]:
    fields = ("Start", "End", "Id", "ReportUri", "ReportBucket", "MetricsKey", "Inputs",
              "CaptureFiles", "GroundTruthFiles")
    return [
        Choice(
            name=START,
            comment="A run for a given window (WindowEnd in the input) needs no wait.",
            rules=[Rule(asl.is_present("$.WindowEnd"), FIND_WINDOW)],
            default=WAIT_FOR_CAPTURE,
        ),
        Wait(name=WAIT_FOR_CAPTURE, seconds=CAPTURE_DELAY_SECONDS, next=FIND_WINDOW),
        Task(
            name=FIND_WINDOW,
            resource=RESOURCE_LAMBDA,
            parameters={
                "FunctionName": placeholder(WINDOW_FUNCTION_ARN),
                "Payload": {"Input.$": "$", "ExecutionStartTime.$": "$$.Execution.StartTime"},
            },
            timeout_seconds=WINDOW_TIMEOUT_SECONDS,
            result_selector={f"{name}.$": f"$.Payload.{name}" for name in fields},
            result_path="$.Window",
            retry=retries(LAMBDA_TRANSIENT),
            catch=_catch(FIND_WINDOW),
            next=NEW_ATTEMPT,
        ),
        Pass(
            name=NEW_ATTEMPT,
            comment="A new job name for every execution: a window may be checked again.",
            parameters={"Id.$": ATTEMPT_ID},
            result_path="$.Attempt",
            next=MONITOR,
        ),
    ]


def _metrics_states() -> list[asl.State]:
    return [
        Task(
            name=READ_METRICS,
            resource=RESOURCE_S3_GET_OBJECT,
            parameters={"Bucket.$": "$.Window.ReportBucket", "Key.$": "$.Window.MetricsKey"},
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={"Request.$": asl.string_to_json("$.Body")},
            result_path="$.Metrics",
            retry=retries(S3_TRANSIENT),
            catch=_catch(READ_METRICS),
            next=PUBLISH_METRICS,
        ),
        Task(
            name=PUBLISH_METRICS,
            resource=RESOURCE_PUT_METRIC_DATA,
            parameters={
                "Namespace.$": "$.Metrics.Request.Namespace",
                "MetricData.$": "$.Metrics.Request.MetricData",
            },
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_path=None,
            retry=retries(CLOUDWATCH_TRANSIENT),
            catch=_catch(PUBLISH_METRICS),
            next=SUCCEEDED,
        ),
        Succeed(name=SUCCEEDED),
    ]


def _failure_states(config: Config, endpoint: str) -> list[asl.State]:
    rendered = notifications.render(
        "monitor_failed", config.notifications.messages.get("monitor_failed"), {"endpoint": endpoint}
    )
    paths = {"execution": "$$.Execution.Name", "error": f"{FAILURE_PATH}.Error",
             "cause": f"{FAILURE_PATH}.Cause"}
    described = [
        Pass(
            name=f"{step}Error",
            parameters={
                "Error": error,
                "Cause.$": asl.fmt("{}: {}", f"{FAILURE_PATH}.Error", f"{FAILURE_PATH}.Cause"),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        )
        for step, error in STEP_ERRORS.items()
    ]
    status = [{"MetricName": "MonitorFailed", "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
               "Value": 1, "Unit": "Count"}]
    return [
        *described,
        Task(
            name=NOTIFY_FAILURE,
            resource=RESOURCE_SNS_PUBLISH,
            parameters={
                "TopicArn": placeholder(NOTIFICATION_TOPIC_ARN),
                "Subject": f"{naming.base(config)}: monitoring run failed",
                "Message.$": asl.fmt(rendered.template, *(paths[a] for a in rendered.arguments)),
            },
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_path=None,
            retry=retries(SNS_TRANSIENT),
            catch=[Catch(RECORD_FAILURE, result_path="$.NotificationFailure")],
            next=RECORD_FAILURE,
        ),
        Task(
            name=RECORD_FAILURE,
            resource=RESOURCE_PUT_METRIC_DATA,
            parameters={"Namespace": naming.metrics_namespace(config), "MetricData": status},
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_path=None,
            retry=retries(CLOUDWATCH_TRANSIENT),
            catch=[Catch(FAILED, result_path="$.RecordFailure")],
            next=FAILED,
        ),
        Fail(name=FAILED, error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"),
    ]


def state_machine(config: Config) -> StateMachine:
    """The whole monitor flow as typed states (see the module docstring)."""
    endpoint = naming.physical_name(config, "prd")
    return StateMachine(
        [*_window_states(), _job(config, endpoint), *_metrics_states(),
         *_failure_states(config, endpoint)],
        comment=f"Check the captured traffic of {endpoint} against its training baseline.",
    )


def definition(config: Config) -> dict[str, Any]:
    """The rendered ASL, ``${...}`` placeholders left in."""
    return state_machine(config).render()
