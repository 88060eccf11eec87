"""mlops-templates: generate, validate and deploy a safe MLOps system on SageMaker.

Typical use::

    from mlops_templates import load, render_templates, write_templates

    files = render_templates(load("mlops.yaml"))   # {"deploy-prd.yaml": "...", ...}
    write_templates(files, "templates")
"""

from mlops_templates.config import Config, load, parse
from mlops_templates.errors import ConfigError, LintError, MlopsError
from mlops_templates.render import render as render_templates
from mlops_templates.render import write as write_templates

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
