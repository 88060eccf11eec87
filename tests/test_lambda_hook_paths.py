"""The traffic hooks' paths in detail: failure messages, log fields, ids, time and time zones.

Same set-up as ``tests/test_lambda_hooks.py`` (moto, the status recorder, the post hook's
fake clock), whose fixtures and constants this module reuses; what is pinned here is
what an operator reads (the reason, the log fields, the error of a broken invocation)
and the edges of the post hook's wait and of its deployment start.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests import test_lambda_hooks as hooks
from tests.lambda_helpers import FakeContext, set_endpoint_results
from tests.test_lambda_hooks import (
    API_VERSION,
    BUCKET,
    CAPTURE_URI,
    ENDPOINT,
    HOOK_ID,
    ROW,
    PostHook,
    PreHook,
    log_lines,
)

# The fixtures of tests/test_lambda_hooks.py (moto, the recorder, the fake clock).
aws = hooks.aws
pre = hooks.pre
post = hooks.post

#: botocore checks no maximum length; SageMaker refuses an InferenceId over 64 characters.
LONG_DEPLOYMENT_ID = "d-" + "0123456789" * 6


@contextmanager
def local_time_zone(tz: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``tz`` (a POSIX TZ string)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize("hook", ["pre", "post"])
def test_an_event_without_ids_fails_the_invocation_with_a_clear_message(
    hook: str, request: pytest.FixtureRequest
) -> None:
    """With nothing to report to, the invocation's error is all an operator sees."""
    runner = request.getfixturevalue(hook)
    with pytest.raises(ValueError) as info:
        runner.module.handler({"DeploymentId": "d-1"}, FakeContext())
    assert str(info.value) == "event needs DeploymentId and LifecycleEventHookExecutionId"
    assert runner.recorder.calls == []


@pytest.mark.parametrize("outcome", ["checks_passed", "check_failed"])
@pytest.mark.parametrize("hook", ["pre", "post"])
def test_the_outcome_log_line_names_the_deployment_and_the_endpoint(
    hook: str, outcome: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Logs Insights finds a deployment's hook runs by these two fields."""
    runner = request.getfixturevalue(hook)
    if hook == "pre":
        answer = "9.87" if outcome == "checks_passed" else "garbage"
        set_endpoint_results(*[{"Body": answer, "ContentType": "text/csv"}] * 2)
    elif outcome == "checks_passed":
        runner.put_capture()
    capsys.readouterr()
    assert runner.run()["status"] == ("Succeeded" if outcome == "checks_passed" else "Failed")
    line = log_lines(capsys)[-1]
    assert line["message"] == outcome
    assert (line["deployment_id"], line["endpoint"]) == (runner.deployment_id, ENDPOINT)


# --- pre-traffic hook ---------------------------------------------------------------------


def test_the_pre_hook_summary_shows_the_first_five_predictions(pre: PreHook) -> None:
    """A batch answer is summed up by its head, from the endpoint and from the new version."""
    set_endpoint_results(
        {"Body": "1,2,3,4,5,6,7", "ContentType": "text/csv"},
        {"Body": "11,12,13,14,15,16,17", "ContentType": "text/csv"},
    )
    assert pre.run()["reason"] == (
        f"endpoint {ENDPOINT} is InService, captures data and predicted "
        f"[1.0, 2.0, 3.0, 4.0, 5.0]; the new API version {API_VERSION} answered "
        "[11.0, 12.0, 13.0, 14.0, 15.0]"
    )


def test_a_long_non_numeric_answer_is_quoted_up_to_200_bytes(pre: PreHook) -> None:
    """The reason quotes what the endpoint answered, cut to a readable length."""
    body = "abcdefghij" * 30
    set_endpoint_results({"Body": body, "ContentType": "text/csv"})
    result = pre.run()
    assert result["reason"] == (
        f"sample request returned no number (could not convert string to float: {body!r}): "
        f"{body.encode()[:200]!r}"
    )
    assert pre.recorder.statuses == ["Failed"]


@pytest.mark.parametrize(
    ("payload", "function_error", "reason"),
    [
        pytest.param(
            b"\x80 not json", None,
            "the new API version answered no JSON ('utf-8' codec can't decode byte 0x80 in "
            "position 0: invalid start byte): \ufffd not json",
            id="not-utf8",
        ),
        pytest.param(
            b"Runtime.ImportModuleError \xff", "Unhandled",
            f"the new API version {API_VERSION} raised an error: Runtime.ImportModuleError \ufffd",
            id="error-not-utf8",
        ),
        pytest.param(
            b'{"statusCode": 503, "body": "' + b"0123456789" * 40 + b'"}', None,
            "the new API version answered 503 to the sample request: "
            + ('{"statusCode": 503, "body": "' + "0123456789" * 40)[:300],
            id="long-answer",
        ),
    ],
)
def test_the_new_versions_answer_is_quoted_readably_in_the_reason(
    pre: PreHook,
    monkeypatch: pytest.MonkeyPatch,
    payload: bytes,
    function_error: str | None,
    reason: str,
) -> None:
    """Bytes that are not UTF-8 are replaced, not an unexpected error; 300 characters at most."""
    set_endpoint_results({"Body": "9.87", "ContentType": "text/csv"})
    answer: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(BytesIO(payload), len(payload))}
    if function_error:
        answer["FunctionError"] = function_error
    monkeypatch.setattr(pre.module.LAMBDA, "invoke", lambda **kwargs: answer)
    assert pre.run() == {"status": "Failed", "reason": reason}
    assert pre.recorder.statuses == ["Failed"]


def expect_sample(stub: Stubber, answer: bytes, inference_id: str) -> None:
    """The endpoint call of the sample row, answered with ``answer``."""
    stub.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(BytesIO(answer), len(answer)), "ContentType": "text/csv"},
        expected_params={"EndpointName": ENDPOINT, "ContentType": "text/csv", "Body": ROW.encode(),
                         "InferenceId": inference_id},
    )


def test_the_pre_hooks_inference_id_fits_sagemakers_64_characters(pre: PreHook) -> None:
    """Cut to 64 characters, to the endpoint and to the new version (which refuses more)."""
    pre.deployment_id = LONG_DEPLOYMENT_ID
    inference_id = f"synthetic-pre-traffic-{LONG_DEPLOYMENT_ID}"[:64]
    set_endpoint_results({"Body": "9.5", "ContentType": "text/csv"})  # the API version's call
    with Stubber(pre.module.RUNTIME) as stub:
        expect_sample(stub, b"9.87", inference_id)
        assert pre.run()["status"] == "Succeeded"
    (call,) = pre.invoker.calls
    assert json.loads(call["Payload"])["headers"]["X-Amzn-SageMaker-Inference-Id"] == inference_id


# --- post-traffic hook --------------------------------------------------------------------


def test_the_post_hooks_inference_id_fits_sagemakers_64_characters(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's inference id is cut to 64 characters, or SageMaker refuses it."""
    post.deployment_id = LONG_DEPLOYMENT_ID
    monkeypatch.setenv("SAMPLE_CSV", ROW)
    post.put_capture()
    with Stubber(post.module.RUNTIME) as stub:
        expect_sample(stub, b"9.8", f"synthetic-post-traffic-{LONG_DEPLOYMENT_ID}"[:64])
        assert post.run()["status"] == "Succeeded"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("sample", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_without_a_sample_the_post_hook_sends_no_request(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, sample: str | None
) -> None:
    """Live traffic writes the capture; the hook itself invokes nothing."""
    if sample is not None:
        monkeypatch.setenv("SAMPLE_CSV", sample)
    post.put_capture()
    with Stubber(post.module.RUNTIME):  # nothing queued: any call would fail the run
        assert post.run()["status"] == "Succeeded"


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        (f"s3://{BUCKET}", f"s3://{BUCKET}/{ENDPOINT}/"),
        (f"s3://{BUCKET}/", f"s3://{BUCKET}/{ENDPOINT}/"),
        (f"{CAPTURE_URI}/", f"{CAPTURE_URI}/{ENDPOINT}/"),
    ],
)
def test_the_failure_names_the_folder_that_was_searched(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, uri: str, location: str
) -> None:
    """The reason names the S3 folder an operator should look in, without a stray slash."""
    monkeypatch.setenv("DATA_CAPTURE_URI", uri)
    reason = post.run()["reason"]
    assert reason.startswith(f"no capture file under {location} written since "), reason


def test_the_last_second_of_the_wait_still_gets_a_poll(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole wait is used: while any of it is left, the hook sleeps and polls again."""
    monkeypatch.setenv("MAX_WAIT_SECONDS", "1")
    post.clock.on_sleep = lambda count: post.put_capture()
    result = post.run()
    assert result["status"] == "Succeeded", result
    assert "after 2 poll(s)" in result["reason"]
    assert post.clock.sleeps == [1]


def test_the_wait_is_shortened_only_when_it_would_outlast_the_function(
    post: PostHook, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exactly the time left before the report margin is no shortening, and says none."""
    monkeypatch.setenv("MAX_WAIT_SECONDS", "30")
    capsys.readouterr()
    assert post.module.max_wait_seconds(FakeContext(remaining_ms=50_000)) == 30.0
    assert log_lines(capsys) == []
    assert post.module.max_wait_seconds(FakeContext(remaining_ms=49_000)) == 29.0
    [line] = log_lines(capsys)
    assert (line["message"], line["max_wait_seconds"], line["allowed_seconds"]) == ("wait_shortened", 30, 29.0)


def test_a_start_in_another_time_zone_is_kept_as_the_same_instant(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore gives timestamps in the local zone: 12:15+02:00 is 10:15 UTC, not 12:15."""
    created = datetime(2026, 11, 30, 12, 15, tzinfo=timezone(timedelta(hours=2)))
    monkeypatch.setattr(
        post.module.CODEDEPLOY, "get_deployment",
        lambda **kwargs: {"deploymentInfo": {"createTime": created}},
    )
    assert post.module.deployment_start("d-ABC") == datetime(2026, 11, 30, 10, 15, tzinfo=UTC)


def test_a_capture_older_than_this_deployment_does_not_count(
    post: PostHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start is this deployment's own, not the fallback hour: a capture written in the
    last hour but before the deployment started is not the new version's."""
    real = post.module.CODEDEPLOY.get_deployment

    def started_later(**kwargs: Any) -> dict[str, Any]:
        answer = real(**kwargs)
        answer["deploymentInfo"]["createTime"] += timedelta(minutes=5)
        return answer

    start = real(deploymentId=post.deployment_id)["deploymentInfo"]["createTime"]
    since = (start + timedelta(minutes=5)).astimezone(UTC)
    monkeypatch.setattr(post.module.CODEDEPLOY, "get_deployment", started_later)
    post.put_capture()
    result = post.run()
    assert result["status"] == "Failed"
    assert f"written since {since.isoformat()} within 60 s" in result["reason"]


def test_the_capture_partitions_are_read_in_utc_whatever_the_local_zone(post: PostHook) -> None:
    """SageMaker names the hourly folders in UTC; a local zone ahead of UTC must not make
    the hook skip the current hour's folder."""
    key = post.put_capture()
    with local_time_zone("JST-9"):
        result = post.run()
    assert result == {
        "status": "Succeeded", "reason": f"capture file s3://{BUCKET}/{key} found after 1 poll(s)"
    }
    assert post.recorder.calls[0]["lifecycleEventHookExecutionId"] == HOOK_ID
