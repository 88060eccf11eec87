"""mlops-templates: generate, validate and deploy a safe MLOps system on SageMaker.

Typical use::

    from mlops_templates import load, render_templates, write_templates

    files = render_templates(load("mlops.yaml"))   # {"deploy-prd.yaml": "...", ...}
    write_templates(files, "templates")

The names below are imported on first use: importing a submodule (such as the
standard-library-only :mod:`mlops_templates.contract`) does not load pydantic,
troposphere or the config.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_templates.config import Config, load, parse
    from mlops_templates.errors import ConfigError, LintError, MlopsError
    from mlops_templates.render import render as render_templates
    from mlops_templates.render import write as write_templates

#: Public name -> (module, attribute).
_EXPORTS = {
    "Config": ("mlops_templates.config", "Config"),
    "load": ("mlops_templates.config", "load"),
    "parse": ("mlops_templates.config", "parse"),
    "ConfigError": ("mlops_templates.errors", "ConfigError"),
    "LintError": ("mlops_templates.errors", "LintError"),
    "MlopsError": ("mlops_templates.errors", "MlopsError"),
    "render_templates": ("mlops_templates.render", "render"),
    "write_templates": ("mlops_templates.render", "write"),
}

__all__ = [
    "Config",
    "ConfigError",
    "LintError",
    "MlopsError",
    "load",
    "parse",
    "render_templates",
    "write_templates",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'mlops_templates' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value
