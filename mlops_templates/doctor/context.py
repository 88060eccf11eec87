"""What every check works with: the result type, the options, the AWS call wrapper that
turns every error into a line, and the decorator that names a check."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from awacs import (
    cloudformation,
)
from awacs.aws import Action
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates.config import Config

Status = Literal["PASS", "FAIL", "WARN", "SKIP"]
PASS: Status = "PASS"
FAIL: Status = "FAIL"
WARN: Status = "WARN"
SKIP: Status = "SKIP"

#: Key of the write probe in the deployment bucket (deleted again by the probe).
MARKER_KEY = ".mlops-templates-doctor/write-probe"
STACK_TAG = "aws:cloudformation:stack-name"
#: The project's stacks, named ``<prefix>-<project>-<suffix>`` by ``make deploy`` and the pipeline.
PROJECT_STACKS = ("pipeline", "workflow", "deploy-dev", "deploy-prd")
#: Stack states that own nothing any more: what such a stack retained is a leftover.
DEAD_STACK_STATES = frozenset({"DELETE_COMPLETE", "ROLLBACK_COMPLETE"})
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
NOT_FOUND = frozenset({"404", "NoSuchBucket", "NoSuchEntity", "RepositoryNotFoundException",
                       "ResourceNotFoundException", "NoSuchTagSet"})
_BOTO = BotoConfig(connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


@dataclass(frozen=True)
class Check:
    """One line of the report; ``fix`` is the command or console step (may be several lines)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Options:
    """What the command line adds to the config (``None``: use the config's value)."""

    bucket: str | None = None
    project: str | None = None
    connection_arn: str | None = None


class AwsError(Exception):
    """A failed AWS call, with the IAM action it needed."""

    def __init__(self, action: Action, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.action, self.code, self.message = action.JSONrepr(), code, message

    @property
    def denied(self) -> bool:
        return self.code in ACCESS_DENIED

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND or (
            self.code in ("ValidationException", "ValidationError")
            and re.search(r"does not exist|could not find", self.message, re.IGNORECASE) is not None
        )

    @property
    def detail(self) -> str:
        if self.denied:
            return f"{self.code}: the caller lacks {self.action} ({self.message})"
        if self.code in THROTTLED:
            return f"{self.code}: AWS throttled {self.action}; this check could not finish"
        return f"{self.code} from {self.action}: {self.message}"

    @property
    def fix(self) -> str:
        if self.denied:
            return f"grant {self.action} to the identity running doctor (or run it with a role that has it)"
        return "run doctor again in a minute" if self.code in THROTTLED else ""


@dataclass
class Context:
    """What every check reads: the config, the session, the account and the region."""

    config: Config
    session: boto3.Session
    region: str
    options: Options = field(default_factory=Options)
    account: str = ""
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _stacks: dict[str, str | None] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.options.project or self.config.project.name

    @property
    def base(self) -> str:
        return f"{self.config.project.prefix}-{self.project}"

    @property
    def destroy(self) -> str:
        return f"or remove everything the project left: make destroy NAME={self.project} PURGE=1"

    @contextmanager
    def _errors(self, action: Action) -> Iterator[None]:
        try:
            yield
        except ClientError as err:
            error = err.response.get("Error", {})
            raise AwsError(action, str(error.get("Code", "Unknown")), str(error.get("Message", ""))) from None
        except BotoCoreError as err:
            raise AwsError(action, type(err).__name__, str(err)) from None

    def _client(self, service: str, region: str | None) -> Any:
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=key[1], config=_BOTO)
        return self._clients[key]

    def call(self, service: str, operation: str, action: Action, region: str | None = None,
             **kwargs: Any) -> Any:
        """``client.operation(**kwargs)``; any error is raised as :class:`AwsError`."""
        with self._errors(action):
            return getattr(self._client(service, region), operation)(**kwargs)

    def pages(self, service: str, operation: str, action: Action, key: str, **kwargs: Any) -> list[Any]:
        """The items under ``key`` of every page of a paginated call."""
        with self._errors(action):
            paginator = self._client(service, None).get_paginator(operation)
            return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    def stack_status(self, name: str) -> str | None:
        """The stack's status, ``None`` if no stack of that name exists."""
        if name not in self._stacks:
            try:
                found = self.call("cloudformation", "describe_stacks", cloudformation.DescribeStacks,
                                  StackName=name)
                self._stacks[name] = found["Stacks"][0]["StackStatus"]
            except AwsError as err:
                if not err.not_found:
                    raise
                self._stacks[name] = None
        return self._stacks[name]


def _check(name: str, on_error: Status = WARN) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn an :class:`AwsError` the check does not handle itself into one line."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(ctx: Context) -> Check | list[Check]:
            try:
                return func(ctx)
            except AwsError as err:
                return Check(name, on_error, err.detail, err.fix)

        run.check_name = name  # type: ignore[attr-defined]
        return run

    return wrap

