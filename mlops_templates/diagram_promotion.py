"""The architecture diagram's promotion: the model registry starts the project that deploys
production (:mod:`mlops_templates.stacks.pipeline.promotion`), drawn from the templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def promotion(graph: Any, stacks: Mapping[str, Any], starts: dict[str, str]) -> None:
    """Registry -> (rule) -> the CodeBuild project a registry rule starts; that project
    deploys production, so it replaces any pipeline action as deploy-prd's start."""
    from mlops_templates.diagram import _resources, _text

    template = stacks.get("pipeline", {})
    groups = [i for i, _ in _resources(stacks.get("workflow", {}), "AWS::SageMaker::ModelPackageGroup")]
    for rule_id, rule in _resources(template, "AWS::Events::Rule"):
        if "aws.sagemaker" not in rule.get("EventPattern", {}).get("source", []):
            continue
        for project_id, project in _resources(template, "AWS::CodeBuild::Project"):
            arn = f":project/{_text(project.get('Name', ''))}"
            if not any(_text(target.get("Arn", "")).endswith(arn) for target in rule.get("Targets", [])):
                continue
            node = graph.node(
                f"action{project_id}", f"{project_id}: CodeBuild, newest approved version", group="pipeline"
            )
            for group in groups:
                graph.edge(group, node, rule_id)
            starts["deploy-prd"] = node
