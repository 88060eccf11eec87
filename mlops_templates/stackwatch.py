"""Watching CloudFormation stacks: one line per new stack event, and the first failure.

``aws cloudformation deploy`` and ``wait`` are silent for the minutes a stack takes and
end with "Waiter failed", leaving the reason to the console. :class:`Watcher` prints
each new event while it waits (time, logical id, type, status, reason) and, when the
operation fails, the first failed resource with its reason: the cause, not the
"Resource creation cancelled" of the resources CloudFormation stopped because of it.

boto3 reads ``AWS_ENDPOINT_URL``, so the same code runs against a local endpoint.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates.errors import MlopsError

#: Seconds between two polls; ``MLOPS_TEMPLATES_POLL_SECONDS`` overrides it.
POLL_SECONDS = 5.0
STACK_TYPE = "AWS::CloudFormation::Stack"
#: After an operation starts, how long a final status without its event is not trusted.
SETTLE_SECONDS = 60.0
#: Reasons CloudFormation gives resources it stopped because another one failed.
CONSEQUENTIAL = ("Resource creation cancelled", "Resource update cancelled", "Resource deletion cancelled")


class DeployError(MlopsError):
    """An AWS call or a stack operation failed; the message says what to do."""


def poll_seconds() -> float:
    """The polling interval (``MLOPS_TEMPLATES_POLL_SECONDS``, default 5 s)."""
    value = os.environ.get("MLOPS_TEMPLATES_POLL_SECONDS", "")
    try:
        return float(value) if value else POLL_SECONDS
    except ValueError:
        raise DeployError(
            f"MLOPS_TEMPLATES_POLL_SECONDS must be a number of seconds (got '{value}')"
        ) from None


def session(fallback: str | None = None) -> boto3.session.Session:
    """A boto3 session in the region of the environment or AWS config, else ``fallback``
    (the config's ``project.region``)."""
    try:
        found = boto3.session.Session()
        if found.region_name is None and fallback:
            found = boto3.session.Session(region_name=fallback)
    except BotoCoreError as err:
        raise DeployError(f"AWS configuration: {err}") from None
    if found.region_name is None:
        raise DeployError("no AWS region: set AWS_REGION or run `aws configure set region <region>`")
    return found


def aws_error(err: Exception, doing: str) -> DeployError:
    """A :class:`DeployError` for a failed AWS call."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return DeployError(f"{doing}: {error.get('Code', 'Error')}: {error.get('Message', err)}")
    return DeployError(f"{doing}: {err}")


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def not_found(err: ClientError) -> bool:
    """Whether ``err`` says the stack (or project) does not exist."""
    message = str(err.response.get("Error", {}).get("Message", ""))
    return error_code(err) in {"ValidationError", "ValidationException"} and "does not exist" in message


def terminal(status: str) -> bool:
    """Whether a stack status is final (``REVIEW_IN_PROGRESS``: an unexecuted change set)."""
    return not status.endswith("_IN_PROGRESS") or status == "REVIEW_IN_PROGRESS"


@dataclass(frozen=True)
class Stack:
    """A stack as described now: ``id`` stays valid after deletion, the name does not."""

    name: str
    id: str
    status: str
    reason: str


def describe(cloudformation: Any, name_or_id: str) -> Stack | None:
    """The stack, or None if no stack of that name exists (or it is deleted)."""
    try:
        found = cloudformation.describe_stacks(StackName=name_or_id)["Stacks"]
    except ClientError as err:
        if not_found(err):
            return None
        raise aws_error(err, f"describe stack {name_or_id}") from None
    except BotoCoreError as err:
        raise aws_error(err, f"describe stack {name_or_id}") from None
    if not found:
        return None
    stack = found[0]
    return Stack(
        stack["StackName"], stack["StackId"], stack["StackStatus"], stack.get("StackStatusReason", "")
    )


def format_event(event: dict[str, Any]) -> str:
    """One line: time, logical id, type, status, reason."""
    stamp = event["Timestamp"]
    when = stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp)
    reason = " ".join(str(event.get("ResourceStatusReason") or "").split())
    line = (
        f"{when}  {event.get('LogicalResourceId', ''):<34} {event.get('ResourceType', ''):<40} "
        f"{event.get('ResourceStatus', ''):<24} {reason}"
    )
    return line.rstrip()


def first_failure(events: Iterable[dict[str, Any]], stack_name: str = "") -> dict[str, Any] | None:
    """The first failed event (oldest first) that is a cause, not a consequence.

    Resources come before the stack's own events: the stack's ``ROLLBACK_IN_PROGRESS``
    only lists the failed resources, whose events carry the reason.
    """
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]

    def cause(event: dict[str, Any]) -> bool:
        return not str(event.get("ResourceStatusReason") or "").startswith(CONSEQUENTIAL)

    def own(event: dict[str, Any]) -> bool:
        return event.get("ResourceType") == STACK_TYPE and event.get("LogicalResourceId") == stack_name

    for candidates in (
        [e for e in failed if cause(e) and not own(e)],
        [e for e in failed if not own(e)],
        failed,
    ):
        if candidates:
            return candidates[0]
    return None


def failure_line(event: dict[str, Any]) -> str:
    reason = " ".join(str(event.get("ResourceStatusReason") or "no reason given").split())
    return (
        f"first failure: {event.get('LogicalResourceId')} ({event.get('ResourceType')}) "
        f"{event.get('ResourceStatus')}: {reason}"
    )


class Watcher:
    """Prints the new events of some stacks until each reaches a final status."""

    def __init__(
        self, cloudformation: Any, out: TextIO | None = None, sleep: Callable[[float], None] = time.sleep
    ):
        self.cloudformation = cloudformation
        self.out = out or sys.stdout
        self.sleep = sleep
        self.interval = poll_seconds()
        self._seen: dict[str, set[str]] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def mark(self, stack_id: str) -> None:
        """Treat the events so far as old: only later ones are printed and judged."""
        self._seen[stack_id] = {e["EventId"] for e in self._page(stack_id)}
        self._events[stack_id] = []

    def _page(self, stack_id: str, token: str | None = None) -> list[dict[str, Any]]:
        kwargs = {"StackName": stack_id, **({"NextToken": token} if token else {})}
        try:
            return self.cloudformation.describe_stack_events(**kwargs)["StackEvents"]
        except ClientError as err:
            if not_found(err):
                return []
            raise aws_error(err, "describe stack events") from None

    def _new_events(self, stack_id: str) -> list[dict[str, Any]]:
        """Events not seen yet, oldest first (CloudFormation lists newest first)."""
        seen = self._seen.setdefault(stack_id, set())
        fresh: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs = {"StackName": stack_id, **({"NextToken": token} if token else {})}
            try:
                answer = self.cloudformation.describe_stack_events(**kwargs)
            except ClientError as err:
                if not_found(err):
                    return []
                raise aws_error(err, "describe stack events") from None
            page = answer["StackEvents"]
            unseen = [e for e in page if e["EventId"] not in seen]
            fresh.extend(unseen)
            token = answer.get("NextToken")
            if len(unseen) < len(page) or not token:
                break
        fresh.reverse()  # pages list newest first; keep that order for equal timestamps
        fresh.sort(key=lambda e: e["Timestamp"])
        seen.update(e["EventId"] for e in fresh)
        return fresh

    def events(self, stack_id: str) -> list[dict[str, Any]]:
        """Events printed for ``stack_id`` since :meth:`mark`, oldest first."""
        return list(self._events.get(stack_id, []))

    def poll(self, stack_id: str) -> None:
        """Print the events of ``stack_id`` that are new since the last poll."""
        for event in self._new_events(stack_id):
            self._events.setdefault(stack_id, []).append(event)
            self.say(f"  {format_event(event)}")

    def wait(self, stacks: dict[str, str], started: bool = False) -> dict[str, Stack]:
        """Poll ``{stack id: name}`` until every stack is final; their final states.

        ``started``: the caller has just started an operation on the stacks. CloudFormation
        may still show the status from before it for a moment, so a stack counts as done
        only once its own event with the final status has come (or after
        :data:`SETTLE_SECONDS` of that status without one). A stack that no longer exists
        (deleted) is ``DELETE_COMPLETE``.
        """
        pending = dict(stacks)
        final: dict[str, Stack] = {}
        since: dict[str, float] = {}
        while True:
            for stack_id, name in list(pending.items()):
                self.poll(stack_id)
                now = describe(self.cloudformation, stack_id) or Stack(name, stack_id, "DELETE_COMPLETE", "")
                if not terminal(now.status):
                    since.pop(stack_id, None)
                    continue
                settled = time.monotonic() - since.setdefault(stack_id, time.monotonic()) >= SETTLE_SECONDS
                if started and not self._ended(stack_id, now) and not settled:
                    continue
                self.poll(stack_id)
                final[stack_id] = now
                del pending[stack_id]
            if not pending:
                return final
            self.sleep(self.interval)

    def _ended(self, stack_id: str, stack: Stack) -> bool:
        """Whether the watched events include the stack's own event with its status."""
        return any(
            e.get("ResourceType") == STACK_TYPE
            and e.get("PhysicalResourceId", stack_id) in (stack_id, "")
            and e.get("ResourceStatus") == stack.status
            for e in self._events.get(stack_id, [])
        )

    def failure(self, stack: Stack) -> str:
        """The first-failure line of ``stack``'s watched events (or its status reason)."""
        found = first_failure(self.events(stack.id), stack.name)
        if found is not None:
            return failure_line(found)
        return f"first failure: {stack.name} {stack.status}: {stack.reason or 'no reason given'}"
