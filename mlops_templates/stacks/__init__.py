"""One module per stack, each exposing ``build(config) -> Template``.

A stack module may also expose ``artifacts(config) -> dict[str, str]``: extra files
(file name -> text) rendered beside the template, such as the workflow's ASL
definition for validators; and ``enabled(config) -> bool``, False when the config
turns the stack off (it is then neither rendered nor deployed).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mlops_templates import contract

#: Stack name (the file name in ``templates/``) -> module.
STACKS: dict[str, str] = {
    "account": "mlops_templates.stacks.account",
    "studio": "mlops_templates.stacks.studio",
    "pipeline": "mlops_templates.stacks.pipeline",
    "workflow": "mlops_templates.stacks.workflow",
    "deploy-dev": "mlops_templates.stacks.deploy_dev",
    "deploy-prd": "mlops_templates.stacks.deploy_prd",
    "batch": "mlops_templates.stacks.batch",
    "ci-oidc": "mlops_templates.stacks.ci_oidc",
}


def module(name: str) -> ModuleType:
    """The module that builds stack ``name``."""
    try:
        return importlib.import_module(STACKS[name])
    except KeyError:
        known = ", ".join(STACKS)
        raise KeyError(f"unknown stack '{name}' (known: {known})") from None


def enabled(name: str, config: object) -> bool:
    """Whether stack ``name`` is rendered and deployed for ``config``."""
    check = getattr(module(name), "enabled", None)
    return True if check is None else bool(check(config))


def run_stacks(config: object) -> tuple[str, ...]:
    """The per-run stacks (``contract.RUN_STACKS``) ``config`` enables, in deployment order."""
    return tuple(name for name in contract.RUN_STACKS if enabled(name, config))
