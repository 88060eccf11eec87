"""Where moto's Step Functions interpreter differs from the service, patched the same way
for every state machine the tests execute (the training workflow, the monitor).

- GetObject through the aws-sdk integration: moto hands the state a stream as ``Body``;
  Step Functions passes the object's text.
- ``$$.Execution.RedriveCount``: moto's context object has none; Step Functions sets it
  (0 until the execution is redriven). The test sets it through ``context``, a dict read
  at each evaluation (Parallel branches share it, as they share the context on AWS).
"""

from __future__ import annotations

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
