"""The one shape of a stack being built: its template, the config and its component.

A builder's parts are functions that take a :class:`Stack` and what earlier parts
produced, add their resources, and return a small frozen object of what later parts need:
the call order is visible in the signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from troposphere import Tags, Template

from mlops_templates.config import Config
from mlops_templates.stacks import common, context

R = TypeVar("R")


@dataclass(frozen=True, eq=False)
class Stack:
    """A template under construction for one component (``deploy-prd``, ``pipeline``...)."""

    config: Config
    component: str
    template: Template

    @classmethod
    def new(cls, config: Config, component: str, description: str) -> Stack:
        """An empty template with the project's description line."""
        return cls(config, component, common.new_template(config, description))

    def add(self, resource: R, why: str, must: list[str] | None = None) -> R:
        """Add ``resource`` with the note of why it exists (and what must hold)."""
        return self.template.add_resource(context.describe(resource, why, must))

    def tags(self) -> Tags:
        """The project's tags for this component's resources."""
        return common.tags(self.config, self.component)

    def describe(self, arch: str, must: list[str] | None = None) -> Template:
        """Record the one-line architecture note and return the finished template."""
        context.describe_template(self.template, arch, must)
        return self.template

