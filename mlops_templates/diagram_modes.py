"""The architecture diagram's studio and batch stacks, in each of their settings.

The studio stack publishes the pipeline template to Studio through Service Catalog or, with
``studio.publish_mode: s3``, as an object in a template bucket; the batch stack exists with
``deployment.mode`` batch or both. A config draws the ones its templates contain; the other
setting (:func:`variants`: the same config rendered with the batch stack, or with S3
publishing) is drawn beside them, its subgraph titled with the setting, so the README's one
diagram shows every stack. As for the rest of the diagram, every node and edge comes from the
templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_templates.config import Config, parse

Template = dict[str, Any]
#: The keys of :func:`variants`.
BATCH_VARIANT, S3_VARIANT = "deployment.mode batch or both", "studio.publish_mode s3"
#: What a batch run's Task does, by the integration it calls (the states drawn).
BATCH_STEPS = {
    "listModelPackages": "newest approved version",
    "createTransformJob": "batch transform job",
    "createProcessingJob": "monitor job (drift, model quality)",
}


def _parsed(files: Mapping[str, str]) -> dict[str, Template]:
    """Rendered YAML templates parsed as :func:`mlops_templates.diagram.load` parses files."""
    from mlops_templates.diagram import parse_template

    return {name.removesuffix(".yaml"): parse_template(text)
            for name, text in files.items() if name.endswith(".yaml")}


def variants(config: Config) -> dict[str, dict[str, Template]]:
    """``config`` rendered with the settings it does not use: the batch stack (with its
    pipeline, ``deployment.mode`` both) and the S3-published studio stack."""
    from mlops_templates import render

    found: dict[str, dict[str, Template]] = {}
    data = config.model_dump(mode="json", exclude_defaults=True)
    if not config.deployment.batch and config.pipeline.orchestrator == "codepipeline":
        both = parse({**data, "deployment": {**data.get("deployment", {}), "mode": "both"}})
        found[BATCH_VARIANT] = _parsed(render.render(both, ["pipeline", "batch"]))
    if config.studio.publish_mode != "s3":
        s3 = parse({**data, "studio": {**data.get("studio", {}), "publish_mode": "s3"}})
        found[S3_VARIANT] = _parsed(render.render(s3, ["studio"]))
    return found


def studio(graph: Any, template: Template | None, setting: str = "") -> None:
    """The Service Catalog product, or the template bucket, Studio creates projects from."""
    from mlops_templates.diagram import _resources

    if template is None:
        return
    products = list(_resources(template, "AWS::ServiceCatalog::CloudFormationProduct"))
    key = template.get("Outputs", {}).get("TemplateObjectKey", {}).get("Value")
    title = "studio stack: Service Catalog" if products else "studio stack: S3 project templates"
    group = graph.group("studios3" if setting else "studio", title + (f" ({setting})" if setting else ""))
    nodes = [graph.node(i, f"SageMaker project template {p['Name']}", group=group) for i, p in products]
    for bucket_id, props in _resources(template, "AWS::S3::Bucket"):
        if key and props.get("CorsConfiguration"):
            nodes.append(graph.node(bucket_id, f"S3 project template {key}<br/>read by Studio (CORS)", group=group))
    for node in nodes:
        graph.node("user", "Studio user", "round")
        graph.edge("user", node, "create project")
        graph.edge(node, "pipeline", "provisions", dotted=True)


def _machine(template: Template) -> tuple[str, dict[str, Any]] | None:
    from mlops_templates.diagram import _resources

    return next(iter(_resources(template, "AWS::StepFunctions::StateMachine")), None)


def _triggers(graph: Any, template: Template, machine_id: str, first: str) -> None:
    """The upload rule and the schedule that start the batch state machine."""
    from mlops_templates.diagram import _refers, _resources, _rule_trigger

    for rule_id, props in _resources(template, "AWS::Events::Rule"):
        if any(_refers(target.get("Arn"), machine_id) for target in props.get("Targets", [])):
            trigger = _rule_trigger(props)
            if trigger is not None:
                node = graph.node(f"batch{trigger[0]}", trigger[1], "round")
                graph.edge(node, first, rule_id)
    for schedule_id, props in _resources(template, "AWS::Scheduler::Schedule"):
        if _refers(props["Target"].get("Arn"), machine_id):
            node = graph.node("batchschedule", f"schedule {props['ScheduleExpression']}", "round")
            graph.edge(node, first, schedule_id)


def batch(graph: Any, template: Template | None, start: str | None, retrain: list[str],
          registries: Mapping[str, str], setting: str = "") -> None:
    """Upload or schedule -> the batch run's steps (the newest approved version from the
    registry, the transform, the monitor job) -> the drift and quality alarms -> retraining.
    ``registries``: model package group name -> its node."""
    from mlops_templates.diagram import _names_match, _resources, success_path

    found = _machine(template or {})
    if found is None:
        return
    machine_id, machine = found
    title = "batch stack: Step Functions batch run" + (f" ({setting})" if setting else "")
    group = graph.group("batch", title)
    definition = machine["Definition"]
    steps = []
    for name in success_path(definition):
        state = definition["States"][name]
        words = next((w for api, w in BATCH_STEPS.items() if api in state.get("Resource", "")), None)
        if words is None:
            continue
        node = graph.node(f"batch{name}", f"{name}: {words}", group=group)
        if steps:
            graph.edge(steps[-1], node)
        steps.append(node)
        registry = registries.get(state.get("Parameters", {}).get("ModelPackageGroupName", ""))
        if registry in graph.nodes:
            graph.edge(registry, node, "reads", dotted=True)
    if not steps:
        return
    if start:
        graph.edge(start, steps[0], "deploys", dotted=True)
    _triggers(graph, template or {}, machine_id, steps[0])
    for alarm_id, props in _resources(template or {}, "AWS::CloudWatch::Alarm"):
        alarm = graph.node(f"batch{alarm_id}", f"alarm {props['AlarmName']}", "alarm", group)
        graph.edge(steps[-1], alarm)
        if any(_names_match(pattern, props["AlarmName"]) for pattern in retrain):
            graph.edge(alarm, "pipeline", "retrain")


def studios(graph: Any, stacks: Mapping[str, Template],
            drawn_variants: Mapping[str, Mapping[str, Template]] | None = None) -> None:
    """The studio stack of ``stacks``, and the S3-published one of the S3 variant."""
    studio(graph, stacks.get("studio"))
    if S3_VARIANT in (drawn_variants or {}):
        studio(graph, drawn_variants[S3_VARIANT].get("studio"), S3_VARIANT)


def batches(graph: Any, stacks: Mapping[str, Template], starts: Mapping[str, str],
            drawn_variants: Mapping[str, Mapping[str, Template]] | None = None) -> None:
    """The batch stack of ``stacks`` or, failing that, of the batch variant, with the
    pipeline action that deploys it."""
    from mlops_templates.diagram import Graph, _resources, pipeline

    groups = _resources(stacks.get("workflow", {}), "AWS::SageMaker::ModelPackageGroup")
    registries = {props["ModelPackageGroupName"]: logical_id for logical_id, props in groups}
    batch(graph, stacks.get("batch"), starts.get("batch"), graph.retrain_alarms, registries)
    other = (drawn_variants or {}).get(BATCH_VARIANT)
    if "batch" in stacks or not other or "pipeline" not in graph.groups:
        return
    scratch = Graph()
    scratch.group("pipeline", "")
    action = pipeline(scratch, {**stacks, **other}).get("batch")
    if action is not None:
        graph.node(action, scratch.nodes[action][2:-2] + f" ({BATCH_VARIANT})", group="pipeline")
        for edge in scratch.edges:
            source, _, target = edge.partition(" --> ")
            if target == action and source in graph.nodes:
                graph.edge(source, action, dotted=True)
    batch(graph, other.get("batch"), action, scratch.retrain_alarms, registries, BATCH_VARIANT)
