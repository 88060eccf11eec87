"""``mlops-templates ci ...``: render and check the CI workflow, and the steps it runs.

``ci github`` / ``ci gitlab`` render the workflow of the configured orchestrator (``make
templates`` renders it too, under ``templates/ci/``); ``ci lint`` runs the linters over
the rendered workflows. ``ci env``, ``ci train`` and ``ci deploy`` are what the workflow's
jobs run (:mod:`mlops_templates.ci.steps`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_templates import config as config_mod
from mlops_templates import contract, render
from mlops_templates.errors import MlopsError

DEFAULT_CI_OUT = "templates"


def _config(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(args.config, args.project_name)


def cmd_render(args: argparse.Namespace) -> int:
    """Write the workflow of ``args.orchestrator`` under ``--out`` (``<out>/ci/...``)."""
    from mlops_templates.ci import workflows

    files = workflows.render_one(_config(args), args.orchestrator)
    for path in render.write(files, args.out):
        print(path)
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    from mlops_templates.ci import validate
    from mlops_templates.ci.workflows import CI_DIR

    directory = Path(args.out) / CI_DIR
    files = validate.workflow_files(directory)
    findings = validate.lint_directory(directory)
    for finding in findings:
        print(finding)
    print(f"{len(files)} CI workflows checked: {len(findings)} findings")
    return 1 if findings else 0


def _session(cfg: config_mod.Config):  # type: ignore[no-untyped-def]
    from mlops_templates.stackwatch import session

    return session(fallback=cfg.project.region)


def cmd_env(args: argparse.Namespace) -> int:
    """Print ``export`` lines of the build's environment, from the pipeline stack."""
    from mlops_templates import naming
    from mlops_templates.ci import steps

    cfg = _config(args)
    outputs, parameters = steps.stack_outputs(_session(cfg), naming.stack_name(cfg, "pipeline"))
    sys.stdout.write(steps.exports(steps.stack_env(cfg, outputs, parameters)))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from mlops_templates.ci import steps

    cfg = _config(args)
    train_output = Path(args.train_output) if args.train_output else None
    steps.deploy(_session(cfg), cfg, args.stack, Path(args.build), train_output, sys.stdout)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mlops_templates.ci import steps

    if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", args.attempt):
        raise MlopsError(f"--attempt '{args.attempt}': letters, digits and '-', at most 40")
    cfg = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(steps.train(_session(cfg), cfg, Path(args.build), out, args.attempt))
    return 0


def add_commands(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    """Add ``ci`` and its subcommands to the ``mlops-templates`` parser (``add`` makes a
    subcommand of the top-level parser)."""
    top = add("ci", lambda args: 2, "GitHub Actions / GitLab CI as the orchestrator: render, lint, run steps")
    sub = top.add_subparsers(dest="ci_command", required=True)

    def step(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    for orchestrator in ("github", "gitlab"):
        p = step(orchestrator, cmd_render, f"render the {orchestrator} workflow into <out>/ci/{orchestrator}/")
        p.set_defaults(orchestrator=orchestrator)
        p.add_argument("--out", default=DEFAULT_CI_OUT, help="output directory (default: %(default)s)")
    p = step("lint", cmd_lint, "actionlint, zizmor and the CI schemas over <out>/ci/")
    p.add_argument("--out", default=DEFAULT_CI_OUT, help="output directory (default: %(default)s)")
    step("env", cmd_env, "print the build's environment (export lines) from the pipeline stack's outputs")
    p = step("deploy", cmd_deploy, "deploy a packaged per-run stack with the pipeline's CloudFormation role")
    p.add_argument("stack", choices=list(contract.RUN_STACKS))
    p.add_argument("--build", required=True, help="the build job's output (packaged templates, parameters)")
    p.add_argument("--train-output", help=f"the training output ({contract.TRAIN_OUTPUT}); endpoint stacks need it")
    p = step("train", cmd_train, "run the training workflow on the build's input and wait for it")
    p.add_argument("--build", required=True, help="the build job's output (the execution input)")
    p.add_argument("--out", required=True, help=f"directory to write {contract.TRAIN_OUTPUT} into")
    p.add_argument("--attempt", required=True, help="the CI job's attempt (execution names are unique)")
