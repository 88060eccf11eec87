"""mlops-templates: generate, validate and deploy a safe MLOps system on SageMaker."""

from mlops_templates.config import Config, load, parse
from mlops_templates.errors import ConfigError, LintError, MlopsError
from mlops_templates.render import render, write

__all__ = ["Config", "ConfigError", "LintError", "MlopsError", "load", "parse", "render", "write"]
__version__ = "0.1.0"
