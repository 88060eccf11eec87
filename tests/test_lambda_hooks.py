"""The CodeDeploy traffic hooks (lambdas/pre_traffic_hook, lambdas/post_traffic_hook).

SageMaker (a real moto model, endpoint config with data capture, endpoint), S3 and the
CodeDeploy deployment come from moto; sample answers come from moto's SageMaker runtime
results API. moto does not implement ``PutLifecycleEventHookExecutionStatus``, so that one
call is replaced by :class:`tests.lambda_helpers.HookStatusRecorder`, which validates the
parameters against the botocore model and records them. Error answers of InvokeEndpoint,
which moto cannot produce, use ``botocore.stub.Stubber``. The post hook's clock and sleep
are fakes: no test waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from tests.lambda_helpers import (
    FakeContext,
    HookStatusRecorder,
    VersionInvoker,
    client_error,
    load_lambda,
    mocked_aws,
    reset_moto,
    set_endpoint_results,
)

REGION = "us-east-1"
ENDPOINT = "mlops-abalone-prd"
BUCKET = "mlops-abalone-artifacts"
CAPTURE_PREFIX = "datacapture"
CAPTURE_URI = f"s3://{BUCKET}/{CAPTURE_PREFIX}"
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
HOOK_ID = "eyJlbmNyeXB0ZWREYXRhIjoiZXhhbXBsZSJ9"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/mlops-abalone-test"


@pytest.fixture(scope="module")
def aws() -> Iterator[SimpleNamespace]:
    with mocked_aws():
        yield SimpleNamespace(
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            s3=boto3.client("s3", region_name=REGION),
            codedeploy=boto3.client("codedeploy", region_name=REGION),
            pre=load_lambda("pre_traffic_hook"),
            post=load_lambda("post_traffic_hook"),
            api=load_lambda("api"),
        )


def create_endpoint(sagemaker: Any, capture: bool = True) -> None:
    sagemaker.create_model(
        ModelName=f"{ENDPOINT}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/mlops-abalone:1",
            "ModelDataUrl": f"s3://{BUCKET}/runs/r1/model/model.tar.gz",
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{ENDPOINT}-model",
                "InitialInstanceCount": 3,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig={
            "EnableCapture": capture,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": CAPTURE_URI,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config")


def create_deployment(codedeploy: Any) -> str:
    """A CodeDeploy Lambda deployment, as SAM's DeploymentPreference creates it."""
    codedeploy.create_application(applicationName="mlops-abalone-api", computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName="mlops-abalone-api",
        deploymentGroupName="api",
        serviceRoleArn=ROLE,
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        deploymentStyle={
            "deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"
        },
    )
    return codedeploy.create_deployment(
        applicationName="mlops-abalone-api",
        deploymentGroupName="api",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}},
    )["deploymentId"]


def hook_event(deployment_id: str) -> dict[str, str]:
    return {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": HOOK_ID}


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The hooks' own log lines (the API version the pre hook invokes logs too)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    return [line for line in lines if line.get("logger") != "mlops.api"]


def install_recorder(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> HookStatusRecorder:
    recorder = HookStatusRecorder(module.CODEDEPLOY)
    monkeypatch.setattr(
        module.CODEDEPLOY, "put_lifecycle_event_hook_execution_status", recorder
    )
    return recorder


def raise_from(error: Exception) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise error

    return fail


# --- pre-traffic hook ---------------------------------------------------------------------


API_VERSION = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:mlops-abalone-api:7"


@dataclass
class PreHook:
    module: ModuleType
    recorder: HookStatusRecorder
    deployment_id: str
    invoker: VersionInvoker

    def run(self) -> dict[str, str]:
        return self.module.handler(hook_event(self.deployment_id), FakeContext())


@pytest.fixture
def pre(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> PreHook:
    reset_moto()
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("SAMPLE_CSV", ROW)
    monkeypatch.setenv("API_FUNCTION_VERSION", API_VERSION)
    create_endpoint(aws.sagemaker)
    # The new API version is the real API function, run in-process (see VersionInvoker).
    invoker = VersionInvoker(aws.pre.LAMBDA, aws.api.handler)
    monkeypatch.setattr(aws.pre.LAMBDA, "invoke", invoker)
    return PreHook(aws.pre, install_recorder(aws.pre, monkeypatch), "d-PRE0000001", invoker)


def test_pre_hook_succeeds_and_reports(pre: PreHook, capsys: pytest.CaptureFixture[str]) -> None:
    set_endpoint_results(
        {"Body": "9.87\n", "ContentType": "text/csv"}, {"Body": "9.5\n", "ContentType": "text/csv"}
    )
    result = pre.run()
    assert result["status"] == "Succeeded", result
    assert "predicted [9.87]" in result["reason"]
    assert f"the new API version {API_VERSION} answered [9.5]" in result["reason"]
    assert pre.recorder.calls == [
        {
            "deploymentId": pre.deployment_id,
            "lifecycleEventHookExecutionId": HOOK_ID,
            "status": "Succeeded",
        }
    ]
    [line] = log_lines(capsys)
    assert line["message"] == "checks_passed"
    assert line["deployment_id"] == pre.deployment_id


def test_pre_hook_sends_the_sample_as_csv(pre: PreHook, aws: SimpleNamespace) -> None:
    from io import BytesIO

    from botocore.response import StreamingBody

    with Stubber(pre.module.RUNTIME) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(BytesIO(b"[10.5]"), 6), "ContentType": "application/json"},
            expected_params={
                "EndpointName": ENDPOINT, "ContentType": "text/csv", "Body": ROW.encode(),
                "InferenceId": f"synthetic-pre-traffic-{pre.deployment_id}",
            },
        )
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(BytesIO(b"10.5"), 4), "ContentType": "text/csv"},
            expected_params={
                "EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv",
                "Body": ROW.encode(), "InferenceId": f"synthetic-pre-traffic-{pre.deployment_id}",
            },
        )
        # The second call is the API version's own: the hook's module and the API module
        # share botocore's client class but not the client, so stub the API's client too.
        with Stubber(aws.api.RUNTIME) as api_stub:
            api_stub.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(BytesIO(b"10.5"), 4), "ContentType": "text/csv"},
                expected_params={
                    "EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv",
                    "Body": ROW.encode(), "InferenceId": f"synthetic-pre-traffic-{pre.deployment_id}",
                },
            )
            assert pre.run()["status"] == "Succeeded"
            api_stub.assert_no_pending_responses()
        (call,) = pre.invoker.calls
        assert call["FunctionName"] == API_VERSION
        assert call["InvocationType"] == "RequestResponse"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"9.87", [9.87]),
        (b" 9.87\n", [9.87]),
        (b"7", [7.0]),
        (b"[9.87]", [9.87]),
        (b"[[9.87], [10]]", [9.87, 10.0]),
        (b'{"predictions": [1.5, 2.5]}', [1.5, 2.5]),
        (b"1.5,2.5", [1.5, 2.5]),
        (b"1.5\n2.5\n", [1.5, 2.5]),
    ],
)
def test_parse_prediction_accepts_numbers(
    aws: SimpleNamespace, body: bytes, expected: list[float]
) -> None:
    assert aws.pre.parse_prediction(body) == expected


@pytest.mark.parametrize(
    "body",
    [b"", b"  ", b"garbage", b"<html>error</html>", b"NaN", b"Infinity", b"[]", b'["a"]',
     b"true", b'{"score": 1}', b"[[1, [2]]]", b"1,abc", b'"9.87"'],
)
def test_parse_prediction_rejects_anything_else(aws: SimpleNamespace, body: bytes) -> None:
    with pytest.raises(ValueError):
        aws.pre.parse_prediction(body)


def set_endpoint_status(status: str) -> None:
    # moto creates endpoints InService at once; a deployment in progress is set directly.
    endpoint = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[ENDPOINT]
    endpoint.endpoint_status = status


@pytest.mark.parametrize(
    ("arrange", "words"),
    [
        pytest.param(
            lambda aws, mp: aws.sagemaker.delete_endpoint(EndpointName=ENDPOINT),
            f"endpoint {ENDPOINT} not found",
            id="endpoint-missing",
        ),
        pytest.param(
            lambda aws, mp: set_endpoint_status("Updating"),
            "is Updating, not InService",
            id="not-in-service",
        ),
        pytest.param(
            lambda aws, mp: set_endpoint_results(
                {"Body": "<html>oops</html>", "ContentType": "text/html"}
            ),
            "sample request returned no number",
            id="garbage-answer",
        ),
        pytest.param(
            lambda aws, mp: mp.delenv("ENDPOINT_NAME"),
            "ENDPOINT_NAME is not set",
            id="no-endpoint-name",
        ),
        pytest.param(
            lambda aws, mp: mp.setenv("SAMPLE_CSV", " "),
            "SAMPLE_CSV is not set",
            id="no-sample",
        ),
    ],
)
def test_pre_hook_failed_checks_report_failed(
    pre: PreHook,
    aws: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arrange: Callable[[SimpleNamespace, pytest.MonkeyPatch], Any],
    words: str,
) -> None:
    arrange(aws, monkeypatch)
    result = pre.run()
    assert result["status"] == "Failed"
    assert words in result["reason"]
    assert pre.recorder.statuses == ["Failed"]
    [line] = log_lines(capsys)
    assert line["message"] == "check_failed" and line["level"] == "WARNING"


def test_pre_hook_fails_when_capture_is_off(
    pre: PreHook, aws: SimpleNamespace
) -> None:
    reset_moto()
    create_endpoint(aws.sagemaker, capture=False)
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"})
    result = pre.run()
    assert result == {
        "status": "Failed",
        "reason": f"data capture is not enabled on endpoint {ENDPOINT}",
    }
    assert pre.recorder.statuses == ["Failed"]


def test_pre_hook_fails_on_a_model_error(pre: PreHook) -> None:
    with Stubber(pre.module.RUNTIME) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received server error (500) from primary",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "boom"},
        )
        result = pre.run()
    assert result["status"] == "Failed"
    assert "ModelError" in result["reason"]
    assert pre.recorder.statuses == ["Failed"]


def test_pre_hook_unexpected_error_still_reports(
    pre: PreHook, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        pre.module.SAGEMAKER, "describe_endpoint", raise_from(RuntimeError("kaboom"))
    )
    result = pre.run()
    assert result == {"status": "Failed", "reason": "unexpected error: RuntimeError: kaboom"}
    assert pre.recorder.statuses == ["Failed"]
    [line] = log_lines(capsys)
    assert line["message"] == "check_error" and "Traceback" in line["exception"]


@pytest.mark.parametrize("answer", ["9.87", "garbage"], ids=["after-success", "after-failure"])
def test_pre_hook_raises_when_the_report_fails(
    pre: PreHook, capsys: pytest.CaptureFixture[str], answer: str
) -> None:
    set_endpoint_results({"Body": answer, "ContentType": "text/csv"})
    pre.recorder.error = client_error(
        "LifecycleEventAlreadyCompletedException", "already completed",
        "PutLifecycleEventHookExecutionStatus",
    )
    with pytest.raises(ClientError, match="LifecycleEventAlreadyCompleted"):
        pre.run()
    assert len(pre.recorder.calls) == 1
    assert log_lines(capsys)[-1]["message"] == "report_failed"


@pytest.mark.parametrize(
    ("api_answer", "words"),
    [
        pytest.param(RuntimeError("import failed"), "raised an error", id="version-raises"),
        pytest.param({"statusCode": 500, "body": '{"message": "boom"}'}, "answered 500", id="version-500"),
        pytest.param({"statusCode": 400, "body": '{"message": "bad"}'}, "answered 400", id="version-400"),
        pytest.param({"statusCode": 200, "body": "no number"}, "answered no prediction", id="version-garbage"),
        pytest.param("not an object", "answered None", id="version-not-a-response"),
    ],
)
def test_pre_hook_fails_when_the_new_api_version_does_not_answer_a_prediction(
    pre: PreHook, monkeypatch: pytest.MonkeyPatch, api_answer: Any, words: str
) -> None:
    """A broken API version is caught before CodeDeploy shifts traffic to it."""
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"})

    def broken_version(event: dict[str, Any], context: Any) -> Any:
        if isinstance(api_answer, Exception):
            raise api_answer
        return api_answer

    monkeypatch.setattr(pre.invoker, "handler", broken_version)
    result = pre.run()
    assert result["status"] == "Failed"
    assert words in result["reason"]
    assert API_VERSION in result["reason"] or "new API version" in result["reason"]
    assert pre.recorder.statuses == ["Failed"]


def test_pre_hook_fails_when_the_new_version_cannot_be_invoked(pre: PreHook, monkeypatch: pytest.MonkeyPatch) -> None:
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"})
    monkeypatch.setattr(
        pre.module.LAMBDA, "invoke",
        raise_from(client_error("AccessDeniedException", "not authorized to perform: lambda:InvokeFunction", "Invoke", 403)),
    )
    result = pre.run()
    assert result["status"] == "Failed"
    assert "AccessDeniedException" in result["reason"]


def test_pre_hook_needs_the_version_to_check(pre: PreHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_FUNCTION_VERSION")
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"})
    result = pre.run()
    assert result == {"status": "Failed", "reason": "environment variable API_FUNCTION_VERSION is not set"}


@pytest.mark.parametrize("event", [{}, {"DeploymentId": "d-1"}, None])
def test_pre_hook_without_ids_fails_loudly(pre: PreHook, event: Any) -> None:
    with pytest.raises(ValueError, match="LifecycleEventHookExecutionId"):
        pre.module.handler(event, FakeContext())
    assert pre.recorder.calls == []


# --- post-traffic hook --------------------------------------------------------------------


@dataclass
class FakeClock:
    """Wall clock that only moves when the hook sleeps; ``on_sleep`` runs after each sleep."""

    now: float
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] | None = None

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


@dataclass
class PostHook:
    module: ModuleType
    recorder: HookStatusRecorder
    clock: FakeClock
    s3: Any
    deployment_id: str

    def run(self, context: FakeContext | None = None) -> dict[str, str]:
        return self.module.handler(hook_event(self.deployment_id), context or FakeContext())

    def put_capture(
        self,
        prefix: str = CAPTURE_PREFIX,
        endpoint: str = ENDPOINT,
        suffix: str = ".jsonl",
        hour: datetime | None = None,
    ) -> str:
        """Write a capture object now, in the partition of ``hour`` (the current hour)."""
        when = hour or datetime.now(UTC)
        base = f"{prefix}/" if prefix else ""
        key = f"{base}{endpoint}/AllTraffic/{when:%Y/%m/%d/%H}/{when:%M-%S}-000-0a1b2c3d{suffix}"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"captureData": {}}\n')
        return key


@pytest.fixture
def post(aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> PostHook:
    reset_moto()
    for name, value in {
        "ENDPOINT_NAME": ENDPOINT,
        "DATA_CAPTURE_URI": CAPTURE_URI,
        "MAX_WAIT_SECONDS": "60",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SAMPLE_CSV", raising=False)
    aws.s3.create_bucket(Bucket=BUCKET)
    deployment_id = create_deployment(aws.codedeploy)
    clock = FakeClock(now=time.time())
    monkeypatch.setattr(aws.post, "_clock", clock.time)
    monkeypatch.setattr(aws.post, "_sleep", clock.sleep)
    recorder = install_recorder(aws.post, monkeypatch)
    return PostHook(aws.post, recorder, clock, aws.s3, deployment_id)


@pytest.mark.parametrize(
    ("uri", "prefix"),
    [
        (CAPTURE_URI, CAPTURE_PREFIX),
        (f"{CAPTURE_URI}/", CAPTURE_PREFIX),
        (f"s3://{BUCKET}", ""),
        (f"s3://{BUCKET}/", ""),
        (f"s3://{BUCKET}/prd/capture", "prd/capture"),
    ],
)
def test_post_hook_finds_a_capture_file(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, uri: str, prefix: str
) -> None:
    monkeypatch.setenv("DATA_CAPTURE_URI", uri)
    key = post.put_capture(prefix)
    result = post.run()
    assert result["status"] == "Succeeded", result
    assert f"s3://{BUCKET}/{key}" in result["reason"]
    assert post.clock.sleeps == []
    assert post.recorder.calls == [
        {
            "deploymentId": post.deployment_id,
            "lifecycleEventHookExecutionId": HOOK_ID,
            "status": "Succeeded",
        }
    ]


def test_post_hook_polls_until_the_capture_arrives(post: PostHook) -> None:
    post.clock.on_sleep = lambda count: post.put_capture() if count == 2 else None
    result = post.run()
    assert result["status"] == "Succeeded"
    assert "after 3 poll(s)" in result["reason"]
    assert post.clock.sleeps == [15, 15]


def test_post_hook_fails_when_nothing_arrives_in_time(
    post: PostHook, capsys: pytest.CaptureFixture[str]
) -> None:
    # Neither another endpoint's capture nor a non-capture object counts.
    post.put_capture(endpoint=f"{ENDPOINT}-old")
    post.put_capture(suffix=".json")
    result = post.run()
    assert result["status"] == "Failed"
    assert f"no capture file under {CAPTURE_URI}/{ENDPOINT}/" in result["reason"]
    assert "within 60 s (5 poll(s))" in result["reason"]
    assert post.clock.sleeps == [15, 15, 15, 15]
    assert post.recorder.statuses == ["Failed"]
    assert log_lines(capsys)[-1]["message"] == "check_failed"


def test_post_hook_default_wait_is_240_seconds(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAX_WAIT_SECONDS")
    assert post.run()["status"] == "Failed"
    assert sum(post.clock.sleeps) == 240


def test_post_hook_stops_before_the_function_timeout(post: PostHook) -> None:
    # 50 s left, 20 s of them kept for the report: 30 s of polling, not MAX_WAIT_SECONDS.
    result = post.run(FakeContext(remaining_ms=50_000))
    assert result["status"] == "Failed"
    assert sum(post.clock.sleeps) == 30
    assert post.recorder.statuses == ["Failed"]


def test_post_hook_ignores_captures_older_than_the_last_hour(
    post: PostHook, capsys: pytest.CaptureFixture[str]
) -> None:
    # An unknown deployment falls back to "the last hour"; two hours later the file is old.
    post.deployment_id = "d-UNKNOWN01"
    post.put_capture()
    post.clock.now += timedelta(hours=2).total_seconds()
    assert post.run()["status"] == "Failed"
    assert log_lines(capsys)[0]["message"] == "deployment_start_unknown"


def test_post_hook_ignores_captures_written_before_the_start(post: PostHook) -> None:
    # The start ("the last hour") lies 5 s ahead of the object's LastModified, in the same
    # hourly partition: only the LastModified comparison can reject it.
    post.deployment_id = "d-UNKNOWN01"
    post.clock.now = time.time() + 3600 + 5
    since = datetime.fromtimestamp(post.clock.now, UTC) - timedelta(hours=1)
    post.put_capture(hour=since)
    assert post.run()["status"] == "Failed"


def test_post_hook_without_deployment_start_accepts_the_last_hour(post: PostHook) -> None:
    post.deployment_id = "d-UNKNOWN01"
    post.put_capture()
    assert post.run()["status"] == "Succeeded"


def test_post_hook_sends_the_sample_first(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from io import BytesIO

    from botocore.response import StreamingBody

    monkeypatch.setenv("SAMPLE_CSV", ROW)
    post.put_capture()
    with Stubber(post.module.RUNTIME) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(BytesIO(b"9.8"), 3), "ContentType": "text/csv"},
            expected_params={
                "EndpointName": ENDPOINT, "ContentType": "text/csv", "Body": ROW.encode(),
                # Marked synthetic: the monitor leaves the hooks' requests out of live data.
                "InferenceId": f"synthetic-post-traffic-{post.deployment_id}",
            },
        )
        assert post.run()["status"] == "Succeeded"
        stub.assert_no_pending_responses()


def test_post_hook_fails_when_the_sample_fails(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMPLE_CSV", ROW)
    with Stubber(post.module.RUNTIME) as stub:
        stub.add_client_error(
            "invoke_endpoint", service_error_code="ValidationError",
            service_message=f"Endpoint {ENDPOINT} of account 123456789012 not found.",
        )
        result = post.run()
    assert result["status"] == "Failed"
    assert "sample request failed: An error occurred (ValidationError)" in result["reason"]
    assert post.clock.sleeps == []
    assert post.recorder.statuses == ["Failed"]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ENDPOINT_NAME", None, "ENDPOINT_NAME is not set"),
        ("DATA_CAPTURE_URI", None, "DATA_CAPTURE_URI is not set"),
        ("DATA_CAPTURE_URI", "https://bucket/prefix", "must start with s3://"),
        ("DATA_CAPTURE_URI", "s3:///prefix", "has no bucket"),
        ("MAX_WAIT_SECONDS", "4 minutes", "whole number of seconds"),
        ("MAX_WAIT_SECONDS", "-1", "must not be negative"),
    ],
)
def test_post_hook_configuration_errors_report_failed(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, name: str, value: str | None, words: str
) -> None:
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    result = post.run()
    assert result["status"] == "Failed"
    assert words in result["reason"]
    assert post.recorder.statuses == ["Failed"]


def test_post_hook_unexpected_error_still_reports(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_CAPTURE_URI", "s3://no-such-bucket-here/capture")
    result = post.run()
    assert result["status"] == "Failed"
    assert result["reason"].startswith("unexpected error: NoSuchBucket")
    assert post.recorder.statuses == ["Failed"]
    assert any(line["message"] == "check_error" for line in log_lines(capsys))


def test_post_hook_raises_when_the_report_fails(post: PostHook) -> None:
    post.put_capture()
    post.recorder.error = client_error(
        "DeploymentDoesNotExistException", "no such deployment",
        "PutLifecycleEventHookExecutionStatus",
    )
    with pytest.raises(ClientError, match="DeploymentDoesNotExist"):
        post.run()
    assert post.recorder.statuses == ["Succeeded"]


def test_post_hook_without_ids_fails_loudly(post: PostHook) -> None:
    with pytest.raises(ValueError, match="DeploymentId"):
        post.module.handler({"LifecycleEventHookExecutionId": HOOK_ID}, FakeContext())
    assert post.recorder.calls == []



def test_the_api_request_is_an_api_gateway_rest_proxy_event_for_post_predict(aws: SimpleNamespace) -> None:
    """The fields of API Gateway's REST proxy integration input ("Input format of a Lambda
    function for proxy integration", API Gateway developer guide) that the API function
    and its logs read, written out here."""
    assert aws.pre.api_request("M,0.5,0.4,0.1,0.5,0.2,0.1,0.15", "synthetic-pre-traffic-d-1") == {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {
            "Content-Type": "text/csv",
            "Accept": "text/csv",
            "X-Amzn-SageMaker-Inference-Id": "synthetic-pre-traffic-d-1",
        },
        "body": "M,0.5,0.4,0.1,0.5,0.2,0.1,0.15",
        "isBase64Encoded": False,
        "requestContext": {"stage": "pre-traffic-hook", "httpMethod": "POST", "path": "/predict"},
    }


def test_the_new_version_is_invoked_synchronously_with_that_event(pre: PreHook, monkeypatch: pytest.MonkeyPatch) -> None:
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"}, {"Body": "9.5", "ContentType": "text/csv"})
    calls: list[dict[str, Any]] = []
    real = pre.invoker

    def record(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(pre.module.LAMBDA, "invoke", record)
    assert pre.run()["status"] == "Succeeded"
    (call,) = calls
    assert call["FunctionName"] == API_VERSION and call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == pre.module.api_request(ROW, f"synthetic-pre-traffic-{pre.deployment_id}")


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"  \n", "empty response"), (b"[]", "no prediction in the response"), (b"nan", "not a finite number: nan")],
)
def test_parse_prediction_says_what_is_wrong(aws: SimpleNamespace, body: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        aws.pre.parse_prediction(body)
    assert str(info.value) == message


def test_an_endpoint_that_is_not_in_service_is_named_with_its_status_and_reason(
    aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [
        {"EndpointStatus": "Failed", "FailureReason": "image not found"},
        {"EndpointStatus": "Updating"},
    ]
    monkeypatch.setattr(aws.pre.SAGEMAKER, "describe_endpoint", lambda **kwargs: answers.pop(0))
    with pytest.raises(aws.pre.CheckFailed) as info:
        aws.pre.check_endpoint("e")
    assert str(info.value) == "endpoint e is Failed, not InService: image not found"
    with pytest.raises(aws.pre.CheckFailed) as info:
        aws.pre.check_endpoint("e")
    assert str(info.value) == "endpoint e is Updating, not InService"


@pytest.mark.parametrize("response", [{}, {"Error": {"Code": "ValidationException"}}])
def test_describe_errors_without_a_message_are_raised_not_misread(
    aws: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, response: dict[str, Any]
) -> None:
    from botocore.exceptions import ClientError

    monkeypatch.setattr(aws.pre.SAGEMAKER, "describe_endpoint", raise_from(ClientError(response, "DescribeEndpoint")))
    with pytest.raises(ClientError):
        aws.pre.check_endpoint("e")


def test_a_zero_wait_is_allowed_and_the_report_margin_is_kept(post: PostHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_WAIT_SECONDS", "0")
    assert post.module.max_wait_seconds(FakeContext()) == 0.0
    monkeypatch.setenv("MAX_WAIT_SECONDS", "100")
    # 25 s left, 20 s kept to report: 5 s of waiting; 10 s left: none at all.
    assert post.module.max_wait_seconds(FakeContext(remaining_ms=25_000)) == 5.0
    assert post.module.max_wait_seconds(FakeContext(remaining_ms=10_000)) == 0.0
    # A context without a clock (a local call) keeps the configured wait.
    assert post.module.max_wait_seconds(None) == 100.0


def test_a_capture_prefix_keeps_every_character_but_its_end_slashes(post: PostHook) -> None:
    assert post.module.parse_s3_uri("s3://b/Xray/cap/") == ("b", "Xray/cap")


def test_the_deployment_start_is_read_in_utc(post: PostHook, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def get_deployment(deploymentId: str) -> dict[str, Any]:
        asked.append(deploymentId)
        return {"deploymentInfo": {"createTime": datetime(2026, 11, 30, 10, 15)}}

    monkeypatch.setattr(post.module.CODEDEPLOY, "get_deployment", get_deployment)
    assert post.module.deployment_start("d-ABC") == datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    assert asked == ["d-ABC"]


def test_an_unreadable_deployment_start_means_the_last_hour_in_utc(post: PostHook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(post.module.CODEDEPLOY, "get_deployment", lambda **kwargs: {"deploymentInfo": {}})
    started = post.module.deployment_start("d-ABC")
    assert started == datetime.fromtimestamp(post.clock.now, UTC) - timedelta(hours=1)
    assert started.tzinfo is not None


def test_another_endpoints_later_capture_does_not_count(post: PostHook) -> None:
    """Listing after the hour's key must stay inside this endpoint's variant folder."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    post.put_capture(hour=since - timedelta(hours=2))  # this endpoint's folder, an old hour
    post.put_capture(endpoint=f"{ENDPOINT}_z")  # sorts after this endpoint's keys
    assert post.module.find_capture(BUCKET, CAPTURE_PREFIX, ENDPOINT, since) is None
    key = post.put_capture()
    assert post.module.find_capture(BUCKET, CAPTURE_PREFIX, ENDPOINT, since) == key
