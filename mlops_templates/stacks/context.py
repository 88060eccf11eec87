"""Architecture notes in template Metadata (``com.aws.cloudformation.Context``).

cfn-lint (rules I4010/W4011/W4012) asks every architecture-relevant resource to say
why it exists, and the template to summarise its architecture in one line.
"""

from __future__ import annotations

from typing import Any

from troposphere import Template

CONTEXT_KEY = "com.aws.cloudformation.Context"


def describe(resource: Any, why: str, must: list[str] | None = None) -> Any:
    """Record why ``resource`` exists (and what must hold) in its Metadata."""
    metadata = dict(getattr(resource, "Metadata", None) or {})
    block: dict[str, Any] = {"why": why}
    if must:
        block["must"] = list(must)
    metadata[CONTEXT_KEY] = block
    resource.Metadata = metadata
    return resource


def describe_template(template: Template, arch: str, must: list[str] | None = None) -> None:
    """The template-level note: the architecture in one line, cross-cutting rules."""
    block: dict[str, Any] = {"arch": arch}
    if must:
        block["must"] = list(must)
    metadata = dict(template.metadata or {})
    metadata[CONTEXT_KEY] = block
    template.set_metadata(metadata)
