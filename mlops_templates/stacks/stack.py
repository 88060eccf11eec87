"""The one shape of a stack being built: its template, the config and its component.

A builder's parts are functions that take a :class:`Stack` and what earlier parts
produced, add their resources, and return a small frozen object of what later parts need:
the call order is visible in the signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from troposphere import Tags, Template

from mlops_templates import contract
from mlops_templates.config import Config
from mlops_templates.stacks import common, context

R = TypeVar("R")


@dataclass(frozen=True, eq=False)
class Stack:
    """A template under construction for one component (``deploy-prd``, ``pipeline``...)."""

    config: Config
    component: str
    template: Template
    #: The ``mlops:project`` tag's value where the project's name is known only at deploy
    #: time (the pipeline stack: the Studio project's name); None: ``<prefix>-<name>``.
    project: Any = None

    @classmethod
    def new(cls, config: Config, component: str, description: str) -> Stack:
        """An empty template with the project's description line."""
        return cls(config, component, common.new_template(config, description))

    def add(self, resource: R, why: str | None = None, must: list[str] | None = None) -> R:
        """Add ``resource``, with the note of why it exists (and what must hold) when
        given here rather than by the builder at the end."""
        if why is not None:
            context.describe(resource, why, must)
        return self.template.add_resource(resource)

    def tags(self, component: str | None = None) -> Tags:
        """The project's tags for the resources of ``component`` (default: the stack's)."""
        return common.tags(self.config, component or self.component, self.project)

    def describe(self, arch: str, must: list[str] | None = None) -> Template:
        """Record the one-line architecture note and return the finished template; in a
        per-run stack, every role gets the project's permissions boundary."""
        if self.component in contract.RUN_STACKS:
            common.bound_roles(self.template, self.config)
        context.describe_template(self.template, arch, must)
        return self.template

