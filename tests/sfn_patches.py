"""Where moto's Step Functions interpreter differs from the service, patched the same way
for every state machine the tests execute (the training workflow, the monitor, batch),
and the helpers that run one and read its notices.

- GetObject through the aws-sdk integration: moto hands the state a stream as ``Body``;
  Step Functions passes the object's text.
- ``$$.Execution.RedriveCount``: moto's context object has none; Step Functions sets it
  (0 until the execution is redriven). The test sets it through ``context``, a dict read
  at each evaluation (Parallel branches share it, as they share the context on AWS).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest


def s3_body_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    original = aws_sdk.StateTaskServiceAwsSdk._eval_service_task

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original(self, env, *args, **kwargs)
        result = env.stack[-1]
        if isinstance(result, dict) and hasattr(result.get("Body"), "read"):
            result["Body"] = result["Body"].read().decode("utf-8")

    monkeypatch.setattr(aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", eval_service_task)


def redrive_count(monkeypatch: pytest.MonkeyPatch, context: dict[str, int]) -> None:
    """``$$.Execution.RedriveCount`` is ``context["RedriveCount"]``."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_environment

    def environment(self: Any) -> Any:
        env = original(self)
        env.states.context_object.context_object_data["Execution"]["RedriveCount"] = context["RedriveCount"]
        return env

    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_environment", environment)


def execute(aws: dict[str, Any], definition: dict[str, Any], execution_input: dict[str, Any],
            name: str) -> dict[str, Any]:
    """Run ``definition`` once in moto (clients in ``aws["clients"]``), wait up to 30 s for
    its end, and return the execution's description with its ``history``."""
    sfn = aws["clients"]["stepfunctions"]
    machine = sfn.create_state_machine(name=f"{name}-{time.monotonic_ns()}", definition=json.dumps(definition),
                                       roleArn=f"arn:aws:iam::123456789012:role/{name}")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{time.monotonic_ns()}",
                                    input=json.dumps(execution_input))["executionArn"]
    deadline = time.monotonic() + 30
    while (description := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    description["history"] = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return description


def notices(aws: dict[str, Any]) -> list[dict[str, Any]]:
    """The SNS envelopes the topic delivered to the test's queue (``aws["queue"]``), read
    and deleted."""
    sqs, found = aws["clients"]["sqs"], []
    while received := sqs.receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages"):
        for message in received:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws["queue"], ReceiptHandle=message["ReceiptHandle"])
    return found
