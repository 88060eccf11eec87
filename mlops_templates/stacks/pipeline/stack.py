"""The pipeline template under construction: the shared :class:`~mlops_templates.stacks.
stack.Stack`, with the names of a stack instantiated once per Studio project."""

from __future__ import annotations

from functools import cached_property

from troposphere import Sub

from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks import stack as base
from mlops_templates.stacks.pipeline.names import ProjectNames


class Stack(base.Stack):
    """The pipeline template being built, with its config and names.

    Each part of the stack adds its resources to ``template`` and returns what the
    later parts need; nothing else passes between them. Resources are tagged with the
    Studio project's name (``mlops:project`` is ``<prefix>-${SageMakerProjectName}``).
    """

    @classmethod
    def of(cls, config: Config) -> Stack:
        names = ProjectNames.of(config)
        template = common.new_template(config, "SageMaker project pipeline")
        return cls(config, "pipeline", template, Sub(names.base))

    @cached_property
    def names(self) -> ProjectNames:
        return ProjectNames(self.config.project.prefix)
