"""``mlops-templates registry ...``: the model registry drives production.

``approve`` / ``reject`` set a version's status (``make approve VERSION=n``, ``make reject
VERSION=n REASON=...``); ``rollback`` registers the previous approved version's artifact
again as a new approved version (``make rollback``); ``status`` says which version serves
each stage (``make status``); ``promote`` is what the pipeline's promote project runs
(:mod:`mlops_templates.promotion`). Approving, rejecting and rolling back only change the
registry: the promotion, started by the registry's event, deploys production.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_templates import config as config_mod
from mlops_templates import registry

#: What the registry commands write into ApprovalDescription about who asked.
VIA = "mlops-templates registry"


def _context(args: argparse.Namespace) -> tuple[config_mod.Config, Any]:
    from mlops_templates.stackwatch import session

    cfg = config_mod.load(args.config, args.project_name)
    return cfg, session(fallback=cfg.project.region)


def _caller(boto: Any) -> str:
    """The caller's ARN, for the record (``unknown caller`` if STS does not say)."""
    try:
        return str(boto.client("sts").get_caller_identity()["Arn"])
    except Exception:  # noqa: BLE001 - the record is best effort, the change is not
        return "unknown caller"


def cmd_approve(args: argparse.Namespace) -> int:
    cfg, boto = _context(args)
    arn = registry.approve(
        boto.client("sagemaker"), registry.group_name(cfg), args.version, f"Approved by {_caller(boto)} ({VIA} approve)"
    )
    print(f"approved {arn}: the promotion deploys the newest approved version to production")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    cfg, boto = _context(args)
    arn = registry.reject(boto.client("sagemaker"), registry.group_name(cfg), args.version, args.reason or "")
    print(f"rejected {arn}: if it served production, the promotion moves production to the newest approved version")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    cfg, boto = _context(args)
    note = args.note or f"requested by {_caller(boto)} ({VIA} rollback)"
    arn, previous = registry.rollback(boto.client("sagemaker"), registry.group_name(cfg), note)
    print(
        f"registered {arn}, approved: a copy of version {previous.get('ModelPackageVersion')}; the promotion "
        "deploys it to production through the endpoint's canary and rollback alarms"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from mlops_templates import promotion

    cfg, boto = _context(args)
    for line in promotion.status(boto, cfg):
        print(line)
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from mlops_templates import promotion

    cfg, boto = _context(args)
    outcome = promotion.promote(boto, cfg, os.environ, Path(args.work), sys.stdout)
    print(f"promotion: {outcome.action}")
    return 0


def add_commands(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    """Add ``registry`` and its subcommands to the ``mlops-templates`` parser."""
    top = add("registry", lambda args: 2, "the model registry drives production: approve, reject, rollback, status")
    sub = top.add_subparsers(dest="registry_command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = command("approve", cmd_approve, "approve a model version: production follows the newest approved one")
    p.add_argument("version", help="the model package version (make approve VERSION=n)")
    p = command("reject", cmd_reject, "reject a model version, saying why")
    p.add_argument("version", help="the model package version (make reject VERSION=n REASON=...)")
    p.add_argument("--reason", help="why (kept as the version's ApprovalDescription); required")
    p = command("rollback", cmd_rollback, "register the previous approved version again, approved")
    p.add_argument("--note", help="why (kept in the new version's description)")
    command("status", cmd_status, "which model version serves dev and production, and the last monitoring result")
    p = command("promote", cmd_promote, "converge production to the newest approved version (the promote project)")
    p.add_argument("--work", default="build/promote", help="directory for the run's build output")
