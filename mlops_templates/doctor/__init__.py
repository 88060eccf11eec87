"""``mlops-templates doctor``: an account preflight, run before anything is created.

Each check is one small function that reads the account with boto3 and returns a
:class:`Check` (or one per resource it found): ``PASS``, ``FAIL``, ``WARN`` or ``SKIP``,
what it found and, when something is wrong, the exact command or console step that fixes
it. Nothing here prints except :func:`format_checks`, and nothing is created except the
deployment bucket's write probe, whose marker object is deleted again.

Every AWS error becomes a line with its error code (for a denied call, the IAM action
the caller lacks), never a traceback. A check that cannot decide says ``WARN``.

:mod:`.context` holds what every check works with, :mod:`.checks` the account checks,
:mod:`.leftovers` what an earlier project left behind; this module runs and reports them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import boto3
from botocore.exceptions import BotoCoreError

from mlops_templates.config import Config
from mlops_templates.doctor.checks import (
    check_api_gateway_logging,
    check_bucket,
    check_connection,
    check_credentials,
    check_model_monitor,
    check_quotas,
    check_sagemaker_projects,
    quota_needs,
)
from mlops_templates.doctor.ci import check_oidc_provider
from mlops_templates.doctor.context import (
    FAIL,
    PASS,
    SKIP,
    STACK_TAG,
    WARN,
    Check,
    Context,
    Options,
)
from mlops_templates.doctor.leftovers import (
    check_leftover_buckets,
    check_leftover_endpoints,
    check_leftover_log_groups,
    check_leftover_model_group,
    check_leftover_repository,
    check_leftover_stacks,
)
from mlops_templates.errors import MlopsError
from mlops_templates.stacks.pipeline.names import NAME_PATTERN, max_project_name_length

__all__ = [
    "CHECKS", "FAIL", "PASS", "SKIP", "STACK_TAG", "WARN", "Check", "Options",
    "exit_status", "format_checks", "quota_needs", "run", "session",
]

#: The checks after the credentials, in report order; each needs the caller's account.
CHECKS: tuple[Callable[[Context], Check | list[Check]], ...] = (
    check_sagemaker_projects, check_api_gateway_logging, check_connection, check_quotas,
    check_leftover_buckets, check_leftover_repository, check_leftover_model_group,
    check_leftover_endpoints, check_leftover_stacks, check_leftover_log_groups,
    check_bucket, check_model_monitor, check_oidc_provider,
)


def session(config: Config, region: str | None = None) -> boto3.Session:
    """A session in ``region``, else the environment's region, else ``project.region``."""
    try:
        found = boto3.Session(region_name=region or None)
        return found if found.region_name else boto3.Session(region_name=config.project.region)
    except BotoCoreError as err:
        raise MlopsError(f"AWS session: {err}") from None


def run(config: Config, boto_session: boto3.Session, options: Options | None = None) -> list[Check]:
    """Every check against the account of ``boto_session``, in report order."""
    options = options or Options()
    if options.project:
        longest = max_project_name_length(config.project.prefix)
        if not re.fullmatch(NAME_PATTERN, options.project) or len(options.project) > longest:
            raise MlopsError(f"--project '{options.project}': a project name is lower-case letters, digits "
                             f"and '-', at most {longest} characters with prefix '{config.project.prefix}'")
    ctx = Context(config, boto_session, boto_session.region_name or config.project.region, options)
    checks: list[Check] = [check_credentials(ctx)]
    if not ctx.account:
        skipped = [check.check_name for check in CHECKS]  # type: ignore[attr-defined]
        return checks + [Check(name, SKIP, "needs working credentials") for name in skipped]
    for check in CHECKS:
        result = check(ctx)
        checks.extend([result] if isinstance(result, Check) else result)
    return checks


def format_checks(checks: list[Check]) -> str:
    """The report: one line per check, its fix indented below, and a summary line."""
    lines = []
    for check in checks:
        lines.append(f"{check.status:<4}  {check.name}: {check.detail}")
        fix = check.fix.splitlines()
        lines += [f"      {'fix: ' if n == 0 else '     '}{text}" for n, text in enumerate(fix)]
    counts = Counter(check.status for check in checks)
    lines.append(f"{len(checks)} checks: {counts[PASS]} passed, {counts[FAIL]} failed, "
                 f"{counts[WARN]} warned, {counts[SKIP]} skipped")
    return "\n".join(lines)


def exit_status(checks: list[Check]) -> int:
    """1 if any check failed, else 0."""
    return 1 if any(check.status == FAIL for check in checks) else 0
