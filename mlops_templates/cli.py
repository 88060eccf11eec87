"""``mlops-templates``: build, lint and inspect the project's templates.

Errors in the config or the templates are printed as one clear message, without a
traceback, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlops_templates import config as config_mod
from mlops_templates import naming, render, stacks
from mlops_templates.errors import MlopsError

DEFAULT_CONFIG = "mlops.yaml"
DEFAULT_OUT = "templates"


def _load(args: argparse.Namespace, project_name: str | None = None) -> config_mod.Config:
    return config_mod.load(args.config, project_name or args.project_name, args.publish_mode)


def cmd_validate(args: argparse.Namespace) -> int:
    _load(args)
    print(f"{args.config}: valid")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    cfg = _load(args)
    files = render.render(cfg, args.stack or None)
    for path in render.write(files, args.out):
        print(path)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 1 if ``--out`` differs from what the config renders now."""
    cfg = _load(args)
    files = render.render(cfg, args.stack or None)
    changed = 0
    for name, text in files.items():
        path = Path(args.out) / name
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old != text:
            changed += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True), text.splitlines(keepends=True),
                    fromfile=str(path), tofile=f"{path} (rendered)",
                )
            )
    return 1 if changed else 0


def cmd_lint(args: argparse.Namespace) -> int:
    cfg = _load(args)
    regions = sorted({"us-east-1", cfg.project.region})
    from mlops_templates import lint  # cfn-lint: half the start-up time, only here

    findings = lint.lint_directory(args.out, regions=regions, checkov=not args.no_checkov)
    for finding in findings:
        print(finding)
    checked = len(lint.template_files(args.out))
    tools = "cfn-lint" if args.no_checkov else "cfn-lint and checkov"
    print(f"{checked} templates checked with {tools}: {len(findings)} findings")
    return 1 if findings else 0


def cmd_stack_name(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(naming.stack_name(cfg, args.stack))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """Print ``Key=Value`` overrides for ``aws cloudformation deploy``."""
    cfg = _load(args)
    template = stacks.module(args.stack).build(cfg)
    values = cfg.parameters.get(args.stack, {})
    unknown = sorted(set(values) - set(template.parameters))
    if unknown:
        raise config_mod.ConfigError(
            f"{args.config}: parameters.{args.stack}: unknown parameter(s) {', '.join(unknown)} "
            f"(the stack has: {', '.join(sorted(template.parameters))})"
        )
    print(" ".join(f"{key}={value}" for key, value in sorted(values.items())))
    return 0


def _readme_section(
    args: argparse.Namespace, text: str, update: Callable[[str, bool], bool], what: str
) -> int:
    """Print ``text``, or with ``--readme`` rewrite (``--check``: only check) its section."""
    if args.readme is None:
        sys.stdout.write(text)
        return 0
    try:
        changed = update(args.readme, args.check)
    except (OSError, ValueError) as err:
        raise MlopsError(str(err)) from None
    if args.check and changed:
        print(f"{args.readme}: the {what} is stale; run `make templates`", file=sys.stderr)
        return 1
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Print the config reference, or rewrite (or check) its section in a README."""
    from mlops_templates import docs

    return _readme_section(args, docs.config_reference(), docs.update_readme, "config reference")


def cmd_diagram(args: argparse.Namespace) -> int:
    """Print the architecture diagram read from the templates (and the config's other studio
    and batch settings), or rewrite (or check) it in a README."""
    from mlops_templates import diagram, diagram_modes

    stacks_found = diagram.load(args.out)
    if "pipeline" not in stacks_found:
        raise MlopsError(f"{args.out}: no pipeline.yaml; run `make templates` first")
    text = diagram.architecture(stacks_found, diagram_modes.variants(_load(args)))
    return _readme_section(
        args,
        text,
        lambda path, check: diagram.update_readme(path, text, check),
        "architecture diagram",
    )


def cmd_get(args: argparse.Namespace) -> int:
    """Print one config value (after defaults and validation), e.g. ``project.name``."""
    value: object = _load(args).model_dump(mode="json")
    for part in args.path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise MlopsError(f"no config setting '{args.path}' (see `mlops-templates docs`)")
        value = value[part]
    print(value if isinstance(value, str) else json.dumps(value))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the AWS account before a deployment; exit 1 if any check fails."""
    from mlops_templates import doctor  # boto3: only this command needs it

    cfg = _load(args)
    options = doctor.Options(args.bucket or None, args.project or None, args.connection_arn or None)
    checks = doctor.run(cfg, doctor.session(cfg, args.region), options)
    print(doctor.format_checks(checks))
    return doctor.exit_status(checks)


# -- Deploying and tearing down (boto3: imported by these commands only) --------------------


def _blank(value: str | None) -> str | None:
    return value or None


def cmd_stage(args: argparse.Namespace) -> int:
    """Print the stacks ``make deploy STAGE=...`` (or ``make publish``) deploys, in order."""
    from mlops_templates import deploy

    cfg = _load(args)
    if [args.stage is not None, args.publish, args.all].count(True) != 1:
        raise MlopsError("stage: give one of STAGE, --publish and --all")
    if args.all:
        names = [name for name in stacks.STACKS if stacks.enabled(name, cfg)]
    else:
        names = deploy.publish_stacks(cfg) if args.publish else deploy.stage_stacks(cfg, args.stage)
    print(" ".join(names))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploy the library's stacks from packaged templates, in the order given."""
    from mlops_templates import deploy

    cfg = _load(args)
    deploy.deploy(
        cfg, args.stacks, Path(args.packaged), args.s3_bucket,
        deploy.parse_overrides(args.parameter_overrides),
        _blank(args.connection_arn), _blank(args.email),
    )
    return 0


def cmd_deploy_stack(args: argparse.Namespace) -> int:
    """Create or update one stack from a template file, printing its events."""
    from mlops_templates import deploy
    from mlops_templates.stackwatch import session

    spec = deploy.StackSpec(
        args.stack_name, Path(args.template_file), args.s3_bucket, args.s3_prefix or args.stack_name,
        deploy.parse_overrides(args.parameter_overrides), args.capabilities,
    )
    deploy.deploy_stack(session(), spec)
    return 0


def cmd_create_project(args: argparse.Namespace) -> int:
    """Create a SageMaker project from the published product and wait for it."""
    from mlops_templates import projects

    _load(args, args.name)  # the name must make valid resource names
    projects.create_project(_load(args), args.name, _blank(args.connection_arn), _blank(args.email))
    return 0


def cmd_publish_s3(args: argparse.Namespace) -> int:
    """Deploy the s3-mode studio stack and upload the pipeline template to its bucket."""
    from mlops_templates import deploy, publish

    publish.publish_s3(
        _load(args), Path(args.packaged), args.s3_bucket, deploy.parse_overrides(args.parameter_overrides)
    )
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    """Tear down one project, in order; report (or purge) what it retained."""
    from mlops_templates import teardown

    cfg = config_mod.load(args.config, args.name)
    spec = (args.purge or "").strip()
    kinds = [] if spec in {"", "0"} else list(teardown.KINDS) if spec in {"1", "all"} else spec.split(",")
    teardown.destroy(cfg, [k.strip() for k in kinds if k.strip()], yes=args.yes)
    return 0

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mlops-templates",
        description="Generate, lint and inspect the CloudFormation templates of a SageMaker MLOps project.",
    )
    top.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="project config (default: %(default)s)")
    top.add_argument(
        "--project-name",
        help="override project.name (the pipeline's build passes the Studio project name)",
    )
    top.add_argument(
        "--publish-mode",
        help="override studio.publish_mode: service_catalog or s3 (make publish/project MODE=...)",
    )
    sub = top.add_subparsers(dest="command", required=True)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("validate", cmd_validate, "validate the config and exit")
    for name, func, help_text in (
        ("build", cmd_build, "render the stacks into the output directory"),
        ("diff", cmd_diff, "show how the output directory differs from a fresh render"),
    ):
        p = add(name, func, help_text)
        p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
        p.add_argument("--stack", action="append", choices=list(stacks.STACKS), help="only this stack (repeatable)")
    p = add("lint", cmd_lint, "run cfn-lint and checkov over the rendered templates")
    p.add_argument("--out", default=DEFAULT_OUT, help="template directory (default: %(default)s)")
    p.add_argument("--no-checkov", action="store_true", help="run cfn-lint only")
    p = add("get", cmd_get, "print one config value, e.g. project.name")
    p.add_argument("path", help="dotted setting path")
    p = add("docs", cmd_docs, "print the config reference, or update it in a README")
    p.add_argument("--readme", help="rewrite the generated section of this file")
    p.add_argument("--check", action="store_true", help="with --readme: exit 1 if it is stale")
    p = add("diagram", cmd_diagram, "draw the architecture (Mermaid) from the rendered templates and the config")
    p.add_argument("--out", default=DEFAULT_OUT, help="template directory (default: %(default)s)")
    p.add_argument("--readme", help="rewrite the generated section of this file")
    p.add_argument("--check", action="store_true", help="with --readme: exit 1 if it is stale")
    p = add("doctor", cmd_doctor, "check the AWS account for what a deployment needs, before anything is created")
    p.add_argument("--bucket", help="the bucket `make package` uploads to (BUCKET)")
    p.add_argument("--project", help="project whose leftover resources to look for (default: project.name)")
    p.add_argument("--connection-arn", help="CodeConnections ARN (default: pipeline.source.connection_arn)")
    p.add_argument("--region", help="region to check (default: the AWS session's, else project.region)")
    for name, func, help_text in (
        ("stack-name", cmd_stack_name, "print the CloudFormation stack name of a stack"),
        ("params", cmd_params, "print the parameter overrides for a stack from the config"),
    ):
        p = add(name, func, help_text)
        p.add_argument("stack", choices=list(stacks.STACKS))
    _add_deploy_commands(add)
    from mlops_templates.ci import cli as ci_cli

    ci_cli.add_commands(add)
    from mlops_templates import registry_cli

    registry_cli.add_commands(add)
    return top


def _add_deploy_commands(add) -> None:
    overrides = {"nargs": "*", "default": [], "metavar": "KEY=VALUE", "help": "CloudFormation Parameter values"}
    p = add("stage", cmd_stage, "print the stacks a deploy stage (or make publish) deploys, in order")
    p.add_argument("stage", nargs="?", help="system, or one stack (dev and prd for deploy-dev and deploy-prd)")
    p.add_argument("--publish", action="store_true", help="the stacks of make publish instead")
    p.add_argument("--all", action="store_true", help="every stack the config renders instead")
    p = add("deploy", cmd_deploy, "deploy the library's stacks from packaged templates, printing their events")
    p.add_argument("stacks", nargs="+", choices=list(stacks.STACKS), help="stacks, in deployment order")
    p.add_argument("--packaged", required=True, help="directory of the packaged <stack>.yaml files")
    p.add_argument("--s3-bucket", required=True, help="bucket the templates are uploaded to")
    p.add_argument("--parameter-overrides", **overrides)
    p.add_argument("--connection-arn", help="the pipeline's CodeConnectionArn, when its template takes one")
    p.add_argument("--email", help="the pipeline's NotificationEmail")
    p = add("deploy-stack", cmd_deploy_stack, "create or update one stack from a template file, printing its events")
    p.add_argument("--stack-name", required=True)
    p.add_argument("--template-file", required=True)
    p.add_argument("--s3-bucket", required=True, help="bucket the template is uploaded to")
    p.add_argument("--s3-prefix", help="key prefix in the bucket (default: the stack name)")
    p.add_argument(
        "--capabilities", nargs="*", default=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    )
    p.add_argument("--parameter-overrides", **overrides)
    p = add(
        "publish-s3",
        cmd_publish_s3,
        "deploy the publish stacks with the s3-mode studio stack and upload the pipeline template, tagged for Studio",
    )
    p.add_argument("--packaged", required=True, help="directory of the packaged pipeline.yaml (and account.yaml)")
    p.add_argument("--s3-bucket", required=True, help="bucket the stack templates are uploaded to for deploying")
    p.add_argument("--parameter-overrides", **overrides)
    p = add("create-project", cmd_create_project, "create a SageMaker project from the published template")
    p.add_argument("--name", required=True, help="the project's name")
    p.add_argument("--connection-arn", help="CodeConnectionArn, when the product takes one")
    p.add_argument("--email", help="the project's NotificationEmail")
    p = add("destroy", cmd_destroy, "delete one project's stacks in order; report or purge what they retained")
    p.add_argument("--name", required=True, help="the project's name")
    p.add_argument("--purge", help="1 (all) or kinds, comma-separated: buckets,repository,models,logs,key")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except MlopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
