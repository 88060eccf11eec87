"""Shared code for the Lambda tests: load a handler by path, a fake context, a status recorder.

Every function's handler module is called ``app.py`` and is deployed from its own folder,
so the tests load each one by path under a distinct module name: its path's dotted name,
``lambdas.<name>.app``, which is also the name the mutation tester (``make mutate``) gives
the file's functions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters
from moto import mock_aws

from tests.conftest import FAKE_CREDENTIALS

LAMBDAS = Path(__file__).resolve().parent.parent / "lambdas"
MOTO_API = "http://motoapi.amazonaws.com/moto-api"


def load_lambda(name: str) -> ModuleType:
    """Import ``lambdas/<name>/app.py`` afresh, as a Lambda cold start does.

    Call it inside ``mock_aws`` with the function's environment set: the module creates
    its boto3 clients at import time.
    """
    path = LAMBDAS / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"lambdas.{name}.app", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def mocked_aws() -> Iterator[None]:
    """``mock_aws`` with fake credentials, for fixtures wider than one test.

    Loading a function creates boto3 clients, the slow part of these tests, so each test
    module loads its functions once (as a warm execution environment keeps them) and
    resets moto's state between tests with :func:`reset_moto`.
    """
    with pytest.MonkeyPatch.context() as patch:
        for key, value in FAKE_CREDENTIALS.items():
            patch.setenv(key, value)
        patch.delenv("AWS_PROFILE", raising=False)
        with mock_aws():
            yield


def reset_moto() -> None:
    """Forget every resource and queued result of the active ``mock_aws``."""
    assert requests.post(f"{MOTO_API}/reset", timeout=10).status_code == 200


def set_endpoint_results(*results: dict[str, str]) -> None:
    """Queue answers of moto's ``sagemaker-runtime:InvokeEndpoint`` (moto's results API)."""
    response = requests.post(
        f"{MOTO_API}/static/sagemaker/endpoint-results", json={"results": list(results)}, timeout=10
    )
    assert response.status_code == 201


@dataclass
class FakeContext:
    """The parts of the Lambda context object the handlers read."""

    remaining_ms: int = 300_000
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_stream_name: str = "2026/11/30/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class HookStatusRecorder:
    """Stands in for ``codedeploy.put_lifecycle_event_hook_execution_status``.

    moto does not implement this operation. The recorder validates each call's parameters
    against the botocore service model (as the real client does before sending), records
    them, and answers like the service, or raises ``error`` when one is set.
    """

    client: Any
    error: ClientError | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **params: Any) -> dict[str, Any]:
        shape = self.client.meta.service_model.operation_model(
            "PutLifecycleEventHookExecutionStatus"
        ).input_shape
        validate_parameters(params, shape)
        self.calls.append(params)
        if self.error is not None:
            raise self.error
        return {"lifecycleEventHookExecutionId": params["lifecycleEventHookExecutionId"]}

    @property
    def statuses(self) -> list[str]:
        return [call["status"] for call in self.calls]


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    """A ``ClientError`` shaped like the one botocore raises for a service error."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@dataclass
class VersionInvoker:
    """Stands in for ``lambda.invoke`` of a function version: runs ``handler`` in-process.

    moto runs Lambda functions in Docker, which the tests do not have. The invoker
    validates each call against the botocore model, calls the function's real handler
    with the JSON payload, and answers as Lambda does (``FunctionError`` and the error
    object when the handler raises).
    """

    client: Any
    handler: Any
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **params: Any) -> dict[str, Any]:
        import io
        import json

        from botocore.response import StreamingBody

        shape = self.client.meta.service_model.operation_model("Invoke").input_shape
        validate_parameters(params, shape)
        self.calls.append(params)
        answer: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": params["FunctionName"].rsplit(":", 1)[-1]}
        try:
            result = self.handler(json.loads(params["Payload"]), FakeContext())
            body = json.dumps(result).encode()
        except Exception as err:  # noqa: BLE001 - Lambda turns it into FunctionError
            body = json.dumps({"errorMessage": str(err), "errorType": type(err).__name__}).encode()
            answer["FunctionError"] = "Unhandled"
        answer["Payload"] = StreamingBody(io.BytesIO(body), len(body))
        return answer


class CloudFormationResponses:
    """A real HTTP server on 127.0.0.1 standing in for a custom resource's pre-signed
    ``ResponseURL``: it records every answer a function PUTs."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        received: list[dict[str, Any]] = []
        self.received = received
        #: Each answer's request headers (name lower-cased) and raw body, in order.
        requests: list[tuple[dict[str, str], bytes]] = []
        self.requests = requests

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                import json

                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/response"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def statuses(self) -> list[str]:
        return [answer["Status"] for answer in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
