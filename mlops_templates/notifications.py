"""The notification messages: one readable text per event that matters, in one place.

Every message the project's topics carry is written here, with the values it may name.
The config overrides any text (``notifications.messages.<event>``); the builders render it
where the event happens, never the raw event:

* EventBridge rules (a pipeline run started or failed, production deployed, an alarm
  fired, an API deployment ended) send the text through an input transformer: each
  ``{name}`` becomes ``<name>``, read from the event by ``InputPathsMap``
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html);
* Step Functions tasks (the quality gate, a failed training run, a failed monitoring run)
  publish it with ``States.Format``, each ``{name}`` an argument read from the state;
* the promotion (:mod:`mlops_templates.promotion`) formats it with the version it deployed.

``{name}``s that are settings (the gate's rule, the endpoint, what retraining does) are
filled in at build time. An input template reads ``<...>`` as a variable, so texts rendered
by EventBridge may not contain ``<`` or ``>`` (write "above", "below").

Standard library only: :mod:`mlops_templates.config` validates overrides with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Where an event's text is rendered (``promotion``: by the promote step, in Python).
EVENTBRIDGE, STEP_FUNCTIONS, PROMOTION = "eventbridge", "step-functions", "promotion"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_OPERATOR_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


@dataclass(frozen=True)
class Event:
    """An event worth a message: where it is rendered, its default text, the values its
    text may name (``dynamic``: read from the event or state; ``static``: settings)."""

    renderer: str
    text: str
    dynamic: tuple[str, ...]
    static: tuple[str, ...] = ()
    what: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return self.dynamic + self.static


_ALARM = ("alarm", "reason", "time")
#: Every event, by the key ``notifications.messages`` uses.
EVENTS: dict[str, Event] = {
    "run_started": Event(
        EVENTBRIDGE, "Pipeline {pipeline} started run {execution} at {time}.",
        ("pipeline", "execution", "time", "region"), what="a pipeline run starts"),
    "run_failed": Event(
        EVENTBRIDGE,
        "Pipeline {pipeline} failed at {time} (execution {execution}). See "
        "https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline}"
        "/executions/{execution}/timeline?region={region}",
        ("pipeline", "execution", "time", "region"), what="a pipeline run fails"),
    "training_failed": Event(
        STEP_FUNCTIONS, "Training execution {execution} of {project} failed: {error}: {cause}",
        ("execution", "error", "cause"), ("project",),
        what="a training run fails (other than at the gate)"),
    "gate_failed": Event(
        STEP_FUNCTIONS,
        "Training run {run_id} of {project} did not pass the quality gate: {metric} is {value} on "
        "the test split, the gate requires {rule}. The model was not registered.",
        ("run_id", "value"), ("project", "metric", "rule"), what="a model fails the quality gate"),
    "gate_passed": Event(
        STEP_FUNCTIONS,
        "Training run {run_id} of {project} passed the quality gate: {metric} is {value} on the "
        "test split ({rule}). Registered version {version}: {model_package}.",
        ("run_id", "value", "model_package", "version"), ("project", "metric", "rule"),
        what="a model passes the gate and is registered"),
    "deployed": Event(
        EVENTBRIDGE,
        "Pipeline {pipeline} finished run {execution} at {time}: its model serves the dev endpoint "
        "and waits in the model registry (the model registered notice names its version). "
        "Production follows the newest approved version: approve it with make approve "
        "VERSION=n, or in SageMaker Studio's model registry.",
        ("pipeline", "execution", "time", "region"),
        what="a run ends: dev is deployed, the model waits for approval"),
    "rejected": Event(
        EVENTBRIDGE,
        "Model package version {version} of {group} was rejected at {time}: {reason} If it "
        "served production, production moves to the newest approved version.",
        ("version", "group", "time", "reason"), what="a model version is rejected in the registry"),
    "promoted": Event(
        PROMOTION,
        "Production endpoint {endpoint} now serves version {version} of {group} (run {run_id}), "
        "the newest approved version; before, it served {previous}.",
        ("version", "run_id", "previous"), ("endpoint", "group"),
        what="production is deployed with the newest approved version"),
    "promotion_blocked": Event(
        PROMOTION,
        "Version {version} of {group} serves {endpoint} but is no longer approved, and no "
        "approved version remains: production stays on it. Approve another version (make "
        "approve VERSION=n, or in SageMaker Studio) to replace it.",
        ("version",), ("endpoint", "group"),
        what="the live version is rejected and no approved version remains"),
    "rolled_back": Event(
        EVENTBRIDGE,
        "Rollback alarm {alarm} of {endpoint} fired at {time}: a deployment in progress rolls "
        "back. {reason}",
        _ALARM, ("endpoint",), what="a rollback alarm fires (endpoint or API)"),
    "api_deployment": Event(
        EVENTBRIDGE,
        "API deployment {deployment} of {endpoint} is {state} at {time} (CodeDeploy rolls back "
        "a failed or stopped one).",
        ("deployment", "state", "time"), ("endpoint",), what="an API deployment ends"),
    "drift": Event(
        EVENTBRIDGE,
        "Data drift on {endpoint} at {time}: {reason} {retrain}",
        _ALARM, ("endpoint", "retrain"), what="the drift alarm fires"),
    "quality_breach": Event(
        EVENTBRIDGE,
        "Model quality of {endpoint} breached {rule} at {time}: {reason} {retrain}",
        _ALARM, ("endpoint", "rule", "retrain"), what="the model-quality alarm fires"),
    "monitor_failed": Event(
        STEP_FUNCTIONS, "Monitoring run {execution} of {endpoint} failed: {error}: {cause}",
        ("execution", "error", "cause"), ("endpoint",), what="a monitoring run fails"),
    "batch_failed": Event(
        STEP_FUNCTIONS, "Batch run {execution} of {project} failed: {error}: {cause}",
        ("execution", "error", "cause"), ("project",),
        what="a batch inference run fails (or finds no approved model)"),
}


def operator_words(operator: str) -> str:
    """``>`` as "above" (EventBridge texts cannot hold ``<`` or ``>``)."""
    return _OPERATOR_WORDS[operator]


def check(event: str, text: str) -> str:
    """``text`` if it is a valid message for ``event``; raises ValueError naming the fix."""
    spec = EVENTS[event]
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(spec.names))
    if unknown:
        raise ValueError(
            f"{event}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"this message may use {', '.join('{' + n + '}' for n in spec.names)}"
        )
    stray = _PLACEHOLDER.sub("", text)
    if "{" in stray or "}" in stray:
        raise ValueError(f"{event}: braces are for placeholders only ({{name}}), got {text!r}")
    if spec.renderer == EVENTBRIDGE and ("<" in text or ">" in text):
        raise ValueError(
            f"{event}: EventBridge reads <...> as a variable; write the text without < or > "
            "(e.g. 'above', 'below')"
        )
    return text


@dataclass(frozen=True)
class Rendered:
    """A message as a format string with ``{}`` for each dynamic value, in order."""

    template: str
    arguments: tuple[str, ...] = field(default_factory=tuple)

    def eventbridge(self, paths: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """(InputPathsMap, InputTemplate): the text as a JSON string with ``<name>`` variables."""
        pieces = self.template.split("{}")
        text = pieces[0]
        for name, piece in zip(self.arguments, pieces[1:]):
            text += f"<{name}>" + piece
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        return {name: paths[name] for name in dict.fromkeys(self.arguments)}, f'"{quoted}"'


def render(event: str, text: str | None, static: Mapping[str, str]) -> Rendered:
    """The message of ``event`` (``text`` overrides the default) with its settings filled in."""
    spec = EVENTS[event]
    body = check(event, text if text is not None else spec.text)
    missing = sorted(set(spec.static) - set(static))
    if missing:  # pragma: no cover - a builder bug
        raise ValueError(f"{event}: no value for {', '.join(missing)}")
    arguments: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in spec.static:
            return static[name].replace("{", "(").replace("}", ")")
        arguments.append(name)
        return "{}"

    return Rendered(_PLACEHOLDER.sub(fill, body), tuple(arguments))
