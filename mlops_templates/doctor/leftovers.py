"""Leftovers: what an earlier project of the same name kept or left behind (buckets,
repository, model group, endpoints, stacks, log groups), and whether it blocks a deploy."""

from __future__ import annotations

from typing import Any

from awacs import (
    ecr,
    logs,
    s3,
    sagemaker,
)
from awacs.aws import Action

from mlops_templates import naming
from mlops_templates.doctor.context import (
    DEAD_STACK_STATES,
    FAIL,
    PASS,
    PROJECT_STACKS,
    STACK_TAG,
    WARN,
    AwsError,
    Check,
    Context,
    _check,
)

# -- 6. leftovers ---------------------------------------------------------------------------

#: One existing resource: what it is, its tags, and the command that removes it.
Found = tuple[str, dict[str, str], str]


def _owner(ctx: Context, tags: dict[str, str]) -> tuple[bool, str]:
    """Whether a live stack owns the tagged resource, and a phrase saying so."""
    stack = tags.get(STACK_TAG)
    if not stack:
        return False, f"no stack owns it (no {STACK_TAG} tag)"
    status = ctx.stack_status(stack)
    if status is None:
        return False, f"retained by stack {stack}, which no longer exists"
    if status in DEAD_STACK_STATES:
        return False, f"retained by stack {stack}, which is {status}"
    return True, f"owned by stack {stack} ({status})"


def _leftovers(ctx: Context, kind: str, found: list[Found], checked: str) -> list[Check]:
    """One line per existing resource; one PASS line if none exists."""
    if not found:
        return [Check(f"leftover {kind}", PASS, f"none ({checked})")]
    checks = []
    for resource, tags, remove in found:
        live, owner = _owner(ctx, tags)
        if live:
            checks.append(Check(f"leftover {kind}", PASS, f"{resource} exists, {owner}"))
        else:
            checks.append(Check(f"leftover {kind}", FAIL, f"{resource} exists and {owner}: creating it "
                                "again fails with AlreadyExists", f"{remove}\n{ctx.destroy}"))
    return checks


def _tags(items: list[dict[str, str]]) -> dict[str, str]:
    return {item.get("Key", item.get("key", "")): item.get("Value", item.get("value", "")) for item in items}


@_check("leftover S3 buckets")
def check_leftover_buckets(ctx: Context) -> list[Check]:
    names = [f"{ctx.base}-{ctx.account}-{ctx.region}-{suffix}" for suffix in naming.BUCKET_SUFFIXES]
    found: list[Found] = []
    denied = []
    for name in names:
        try:
            ctx.call("s3", "head_bucket", s3.ListBucket, Bucket=name)
        except AwsError as err:
            if err.denied:  # bucket names are global: a 403 may be another account's bucket
                denied.append(Check("leftover S3 buckets", WARN, f"bucket {name} exists, but {err.detail}, "
                                    "or another account owns the name (then creating it fails)", err.fix))
            elif not err.not_found:
                raise
            continue
        try:
            tags = _tags(ctx.call("s3", "get_bucket_tagging", s3.GetBucketTagging, Bucket=name)["TagSet"])
        except AwsError as err:
            if not err.not_found:  # NoSuchTagSet: an untagged bucket
                raise
            tags = {}
        remove = (f"empty it, every version included (S3 console: {name} > Empty), then "
                  f"aws s3api delete-bucket --bucket {name} --region {ctx.region}")
        found.append((f"bucket {name}", tags, remove))
    if denied:
        return denied + (_leftovers(ctx, "S3 buckets", found, "") if found else [])
    return _leftovers(ctx, "S3 buckets", found, ", ".join(names))


@_check("leftover ECR repository")
def check_leftover_repository(ctx: Context) -> list[Check]:
    found: list[Found] = []
    try:
        repo = ctx.call("ecr", "describe_repositories", ecr.DescribeRepositories,
                        repositoryNames=[ctx.base])["repositories"][0]
    except AwsError as err:
        if not err.not_found:
            raise
    else:
        tags = ctx.call("ecr", "list_tags_for_resource", ecr.ListTagsForResource,
                        resourceArn=repo["repositoryArn"])["tags"]
        remove = f"aws ecr delete-repository --repository-name {ctx.base} --force --region {ctx.region}"
        found.append((f"repository {ctx.base}", _tags(tags), remove))
    return _leftovers(ctx, "ECR repository", found, ctx.base)


def _sagemaker_tags(ctx: Context, operation: str, action: Action, arn_key: str,
                    **kwargs: Any) -> dict[str, str] | None:
    """The tags of a SageMaker resource, ``None`` if it does not exist."""
    try:
        arn = ctx.call("sagemaker", operation, action, **kwargs)[arn_key]
    except AwsError as err:
        if err.not_found:
            return None
        raise
    return _tags(ctx.call("sagemaker", "list_tags", sagemaker.ListTags, ResourceArn=arn).get("Tags", []))


@_check("leftover model package group")
def check_leftover_model_group(ctx: Context) -> list[Check]:
    name, at = f"{ctx.base}-models", f"--region {ctx.region}"
    tags = _sagemaker_tags(ctx, "describe_model_package_group", sagemaker.DescribeModelPackageGroup,
                           "ModelPackageGroupArn", ModelPackageGroupName=name)
    remove = (
        "its model versions are the registry's audit trail: export what you need, then\n"
        f"aws sagemaker list-model-packages --model-package-group-name {name} {at} --query "
        f"'ModelPackageSummaryList[].ModelPackageArn' --output text | xargs -n1 "
        f"aws sagemaker delete-model-package {at} --model-package-name\n"
        f"aws sagemaker delete-model-package-group --model-package-group-name {name} {at}"
    )
    found = [] if tags is None else [(f"model package group {name}", tags, remove)]
    return _leftovers(ctx, "model package group", found, name)


@_check("leftover endpoints")
def check_leftover_endpoints(ctx: Context) -> list[Check]:
    names = [f"{ctx.base}-{stage}" for stage in ("dev", "prd")]
    found: list[Found] = []
    for name in names:
        tags = _sagemaker_tags(ctx, "describe_endpoint", sagemaker.DescribeEndpoint, "EndpointArn",
                               EndpointName=name)
        if tags is not None:
            found.append((f"endpoint {name}", tags,
                          f"aws sagemaker delete-endpoint --endpoint-name {name} --region {ctx.region}"))
    return _leftovers(ctx, "endpoints", found, ", ".join(names))


def _stack_line(ctx: Context, stack: str, status: str) -> Check:
    name, cli = "leftover stacks", f"--stack-name {stack} --region {ctx.region}"
    delete = f"aws cloudformation delete-stack {cli} && aws cloudformation wait stack-delete-complete {cli}"
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
        return Check(name, FAIL, f"stack {stack} is {status}: a stack that failed to create must be deleted "
                     "before it can be created again", f"{delete}\n{ctx.destroy}")
    if status == "UPDATE_ROLLBACK_FAILED":
        return Check(name, FAIL, f"stack {stack} is {status}: it takes no update until its rollback finishes",
                     f"aws cloudformation continue-update-rollback {cli}")
    if status.endswith("_FAILED"):
        return Check(name, FAIL, f"stack {stack} is {status}",
                     f"see why: aws cloudformation describe-stack-events {cli}\nremove what blocks it "
                     f"(often a non-empty bucket), then: {delete}\n{ctx.destroy}")
    if status.endswith("_IN_PROGRESS"):
        return Check(name, WARN, f"stack {stack} is {status}",
                     "wait until it finishes, then run doctor again")
    return Check(name, PASS, f"stack {stack} is live ({status}): a deploy updates it")


@_check("leftover stacks")
def check_leftover_stacks(ctx: Context) -> list[Check]:
    stacks = [f"{ctx.base}-{suffix}" for suffix in PROJECT_STACKS]
    checks = [_stack_line(ctx, stack, status) for stack in stacks if (status := ctx.stack_status(stack))]
    return checks or [Check("leftover stacks", PASS, f"none ({', '.join(stacks)})")]


@_check("kept log groups")
def check_leftover_log_groups(ctx: Context) -> list[Check]:
    """Log groups deleted stacks kept. Their names carry the stack's ID (see
    ``common.stack_suffix``), so they never block a re-creation: listed, never a failure."""
    prefix = f"/{ctx.config.project.prefix}/{ctx.project}/"
    workflow = f"/aws/vendedlogs/states/{ctx.base}-training"
    groups = [
        group["logGroupName"]
        for start in (prefix, workflow)
        for group in ctx.pages("logs", "describe_log_groups", logs.DescribeLogGroups, "logGroups",
                               logGroupNamePrefix=start)
    ]
    if not groups:
        return [Check("kept log groups", PASS, f"none (under {prefix}, and {workflow}-*)")]
    shown = ", ".join(groups[:5]) + (f" and {len(groups) - 5} more" if len(groups) > 5 else "")
    return [
        Check(
            "kept log groups",
            PASS,
            f"{len(groups)} log group(s) of this project's stacks: {shown}; their names carry "
            "their stack's ID, so they never block a re-creation (remove them with "
            f"make destroy NAME={ctx.project} PURGE=1 once you no longer need the logs)",
        )
    ]


