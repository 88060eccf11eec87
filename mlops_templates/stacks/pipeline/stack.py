"""The template under construction, and what every part of the pipeline stack reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from troposphere import Sub, Tags, Template

from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.names import ProjectNames

_Resource = TypeVar("_Resource")


@dataclass(frozen=True)
class Stack:
    """The pipeline template being built, with its config and names.

    Each part of the stack adds its resources to ``template`` and returns what the
    later parts need; nothing else passes between them.
    """

    config: Config
    names: ProjectNames
    template: Template

    @classmethod
    def of(cls, config: Config) -> Stack:
        names = ProjectNames.of(config)
        return cls(config, names, common.new_template(config, "SageMaker project pipeline"))

    def tags(self, component: str) -> Tags:
        """The project's tags, with ``mlops:project`` the Studio project's name."""
        return common.tags(self.config, component, Sub(self.names.base))

    def add(self, resource: _Resource) -> _Resource:
        self.template.add_resource(resource)
        return resource
