"""``mlops-templates doctor``: an account preflight, run before anything is created.

Each check is one small function that reads the account with boto3 and returns a
:class:`Check` (or one per resource it found): ``PASS``, ``FAIL``, ``WARN`` or ``SKIP``,
what it found and, when something is wrong, the exact command or console step that fixes
it. Nothing here prints except :func:`format_checks`, and nothing is created except the
deployment bucket's write probe, whose marker object is deleted again.

Every AWS error becomes a line with its error code (for a denied call, the IAM action
the caller lacks), never a traceback. A check that cannot decide says ``WARN``.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from awacs import (
    apigateway,
    cloudformation,
    codeconnections,
    codestar_connections,
    ecr,
    logs,
    s3,
    sagemaker,
    servicequotas,
    sts,
)
from awacs import iam as iam_actions
from awacs.aws import Action
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import naming, regions
from mlops_templates.config import Config
from mlops_templates.errors import MlopsError
from mlops_templates.stacks.pipeline_names import NAME_PATTERN, max_project_name_length

Status = Literal["PASS", "FAIL", "WARN", "SKIP"]
PASS: Status = "PASS"
FAIL: Status = "FAIL"
WARN: Status = "WARN"
SKIP: Status = "SKIP"

#: Key of the write probe in the deployment bucket (deleted again by the probe).
MARKER_KEY = ".mlops-templates-doctor/write-probe"
STACK_TAG = "aws:cloudformation:stack-name"
#: The project's stacks, named ``<prefix>-<project>-<suffix>`` by ``make deploy`` and the pipeline.
PROJECT_STACKS = ("pipeline", "workflow", "deploy-dev", "deploy-prd")
#: Stack states that own nothing any more: what such a stack retained is a leftover.
DEAD_STACK_STATES = frozenset({"DELETE_COMPLETE", "ROLLBACK_COMPLETE"})
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
NOT_FOUND = frozenset({"404", "NoSuchBucket", "NoSuchEntity", "RepositoryNotFoundException",
                       "ResourceNotFoundException", "NoSuchTagSet"})
_BOTO = BotoConfig(connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


@dataclass(frozen=True)
class Check:
    """One line of the report; ``fix`` is the command or console step (may be several lines)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Options:
    """What the command line adds to the config (``None``: use the config's value)."""

    bucket: str | None = None
    project: str | None = None
    connection_arn: str | None = None


class AwsError(Exception):
    """A failed AWS call, with the IAM action it needed."""

    def __init__(self, action: Action, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.action, self.code, self.message = action.JSONrepr(), code, message

    @property
    def denied(self) -> bool:
        return self.code in ACCESS_DENIED

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND or (
            self.code in ("ValidationException", "ValidationError")
            and re.search(r"does not exist|could not find", self.message, re.IGNORECASE) is not None
        )

    @property
    def detail(self) -> str:
        if self.denied:
            return f"{self.code}: the caller lacks {self.action} ({self.message})"
        if self.code in THROTTLED:
            return f"{self.code}: AWS throttled {self.action}; this check could not finish"
        return f"{self.code} from {self.action}: {self.message}"

    @property
    def fix(self) -> str:
        if self.denied:
            return f"grant {self.action} to the identity running doctor (or run it with a role that has it)"
        return "run doctor again in a minute" if self.code in THROTTLED else ""


@dataclass
class Context:
    """What every check reads: the config, the session, the account and the region."""

    config: Config
    session: boto3.Session
    region: str
    options: Options = field(default_factory=Options)
    account: str = ""
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _stacks: dict[str, str | None] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.options.project or self.config.project.name

    @property
    def base(self) -> str:
        return f"{self.config.project.prefix}-{self.project}"

    @property
    def destroy(self) -> str:
        return f"or remove everything the project left: make destroy NAME={self.project} PURGE=1"

    @contextmanager
    def _errors(self, action: Action) -> Iterator[None]:
        try:
            yield
        except ClientError as err:
            error = err.response.get("Error", {})
            raise AwsError(action, str(error.get("Code", "Unknown")), str(error.get("Message", ""))) from None
        except BotoCoreError as err:
            raise AwsError(action, type(err).__name__, str(err)) from None

    def _client(self, service: str, region: str | None) -> Any:
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=key[1], config=_BOTO)
        return self._clients[key]

    def call(self, service: str, operation: str, action: Action, region: str | None = None,
             **kwargs: Any) -> Any:
        """``client.operation(**kwargs)``; any error is raised as :class:`AwsError`."""
        with self._errors(action):
            return getattr(self._client(service, region), operation)(**kwargs)

    def pages(self, service: str, operation: str, action: Action, key: str, **kwargs: Any) -> list[Any]:
        """The items under ``key`` of every page of a paginated call."""
        with self._errors(action):
            paginator = self._client(service, None).get_paginator(operation)
            return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    def stack_status(self, name: str) -> str | None:
        """The stack's status, ``None`` if no stack of that name exists."""
        if name not in self._stacks:
            try:
                found = self.call("cloudformation", "describe_stacks", cloudformation.DescribeStacks,
                                  StackName=name)
                self._stacks[name] = found["Stacks"][0]["StackStatus"]
            except AwsError as err:
                if not err.not_found:
                    raise
                self._stacks[name] = None
        return self._stacks[name]


def _check(name: str, on_error: Status = WARN) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn an :class:`AwsError` the check does not handle itself into one line."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def run(ctx: Context) -> Check | list[Check]:
            try:
                return func(ctx)
            except AwsError as err:
                return Check(name, on_error, err.detail, err.fix)

        run.check_name = name  # type: ignore[attr-defined]
        return run

    return wrap


# -- 1. credentials and region -------------------------------------------------------------


@_check("credentials and region", on_error=FAIL)
def check_credentials(ctx: Context) -> Check:
    name = "credentials and region"
    try:
        identity = ctx.call("sts", "get_caller_identity", sts.GetCallerIdentity)
    except AwsError as err:
        fix = "configure credentials: aws configure, aws sso login, or export AWS_PROFILE=<profile>"
        if err.code == "EndpointConnectionError":
            fix = f"check the network, the region ({ctx.region}: --region or AWS_REGION) and AWS_ENDPOINT_URL"
        return Check(name, FAIL, f"{err.code}: {err.message}", fix)
    ctx.account = identity["Account"]
    detail = f"account {ctx.account}, region {ctx.region}, as {identity['Arn']}"
    if ctx.region != ctx.config.project.region:
        detail += f" (project.region is {ctx.config.project.region}; doctor checks the session's region)"
    if ctx.region not in regions.table():
        return Check(name, FAIL, f"{detail}: the templates have no image table entry for {ctx.region}",
                     f"deploy to one of: {', '.join(sorted(regions.table()))} (--region, or AWS_REGION)")
    return Check(name, PASS, detail)


# -- 2. SageMaker projects ------------------------------------------------------------------


@_check("SageMaker projects")
def check_sagemaker_projects(ctx: Context) -> Check:
    status = ctx.call("sagemaker", "get_sagemaker_servicecatalog_portfolio_status",
                      sagemaker.GetSagemakerServicecatalogPortfolioStatus)["Status"]
    detail = f"the SageMaker Service Catalog portfolio is {status}"
    if status == "Enabled":
        return Check("SageMaker projects", PASS, detail)
    return Check("SageMaker projects", FAIL, f"{detail}: Studio cannot create projects",
                 f"aws sagemaker enable-sagemaker-servicecatalog-portfolio --region {ctx.region}")


# -- 3. API Gateway logging role ------------------------------------------------------------


def _logging_role_fix(ctx: Context) -> str:
    manual = (
        f"aws apigateway update-account --region {ctx.region} --patch-operations op=replace,"
        "path=/cloudwatchRoleArn,value=<ARN of a role that trusts apigateway.amazonaws.com and has "
        "the AmazonAPIGatewayPushToCloudWatchLogs managed policy>"
    )
    # The setting lives in ``account`` (earlier releases: ``studio``), deployed by that stack.
    for section in ("account", "studio"):
        enabled = getattr(getattr(ctx.config, section, None), "api_gateway_logging_role", None)
        if enabled is None:
            continue
        setting = f"{section}.api_gateway_logging_role"
        if not enabled:
            return f"{setting} is false, so no stack of this library sets it: {manual}"
        stack = naming.stack_name(ctx.config, section)
        return f"deploy the {stack} stack ({setting}: true sets the role)\nor set it yourself: {manual}"
    return manual


@_check("API Gateway logging role")
def check_api_gateway_logging(ctx: Context) -> Check:
    name, why = "API Gateway logging role", "the production API's access logs need it"
    arn = ctx.call("apigateway", "get_account", apigateway.GET).get("cloudwatchRoleArn")
    if not arn:
        return Check(name, WARN, f"the account has no API Gateway CloudWatch Logs role in {ctx.region}: "
                     f"{why}", _logging_role_fix(ctx))
    try:
        role = ctx.call("iam", "get_role", iam_actions.GetRole, RoleName=arn.rsplit("/", 1)[-1])["Role"]
    except AwsError as err:
        if not err.not_found:
            raise
        return Check(name, WARN, f"cloudwatchRoleArn {arn} names a role that no longer exists: {why}",
                     _logging_role_fix(ctx))
    if "apigateway.amazonaws.com" not in json.dumps(role.get("AssumeRolePolicyDocument", {})):
        return Check(name, WARN, f"{arn} does not trust apigateway.amazonaws.com: {why}",
                     _logging_role_fix(ctx))
    return Check(name, PASS, f"cloudwatchRoleArn {arn} exists")


# -- 4. source connection -------------------------------------------------------------------


@_check("source connection")
def check_connection(ctx: Context) -> Check:
    name, source = "source connection", ctx.config.pipeline.source
    if source.provider != "codeconnections":
        return Check(name, SKIP, f"pipeline.source.provider is {source.provider}")
    arn = ctx.options.connection_arn or source.connection_arn
    if not arn:
        return Check(name, SKIP, "no connection ARN: pass --connection-arn (make doctor CONNECTION_ARN=...)")
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] not in ("codeconnections", "codestar-connections"):
        return Check(name, FAIL, f"{arn} is not a CodeConnections connection ARN",
                     "use an ARN that `aws codeconnections list-connections` prints")
    service, region, owner = parts[2], parts[3], parts[4]
    foreign = f" readable from account {ctx.account} (it belongs to {owner})" if owner != ctx.account else ""
    # A connection made before the 2024 rename has a codestar-connections ARN and API.
    action = codestar_connections.GetConnection if service == "codestar-connections" else (
        codeconnections.GetConnection)
    console = f"https://console.aws.amazon.com/codesuite/settings/connections?region={region}"
    try:
        connection = ctx.call(service, "get_connection", action, region=region,
                              ConnectionArn=arn)["Connection"]
    except AwsError as err:
        if not (err.not_found or (foreign and err.denied)):
            raise
        return Check(name, FAIL, f"no connection {arn}{foreign}",
                     f"aws codeconnections create-connection --provider-type GitHub --connection-name "
                     f"{ctx.base} --region {region}\nthen complete the handshake in the console: {console}")
    status = connection.get("ConnectionStatus", "")
    what = f"{connection.get('ConnectionName', arn)} ({connection.get('ProviderType', 'unknown provider')})"
    if status == "AVAILABLE":
        return Check(name, PASS, f"{what} is AVAILABLE")
    if status == "PENDING":
        return Check(name, FAIL, f"{what} is PENDING",
                     f"complete the handshake in the console: {console} (Update pending connection)")
    return Check(name, FAIL, f"{what} is {status}",
                 f"reconnect it in the console, or create a new connection: {console}")


# -- 5. service quotas ----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """Instances of one SageMaker quota the config needs at its peak, and why."""

    quota: str
    count: int
    why: str


def quota_needs(config: Config) -> list[Need]:
    """The SageMaker instance quotas the config needs (a pure function of the config)."""
    training, monitor = config.training, config.monitoring.instance_type
    spot = "spot " if training.use_spot else ""
    needs = [Need(f"{training.instance_type} for {spot}training job usage", training.instance_count,
                  f"training.instance_count {training.instance_count}")]
    # The workflow runs its processing jobs one at a time (the baseline beside training); the
    # scheduled data-quality job is a processing job too, and can start while a run's job goes.
    if training.processing_instance_type == monitor:
        needs.append(Need(f"{monitor} for processing job usage", 2,
                          "1 workflow job at a time + 1 scheduled data-quality job that can overlap it"))
    else:
        needs += [
            Need(f"{training.processing_instance_type} for processing job usage", 1,
                 "preprocessing and evaluation, one at a time"),
            Need(f"{monitor} for processing job usage", 2,
                 "the baseline job + 1 scheduled data-quality job that can overlap it"),
        ]
    # SageMaker updates an endpoint blue/green: a second fleet runs beside the old one until
    # traffic has moved. Dev and prd deploy in separate stages, so one doubles at a time.
    dev, prd = config.endpoints.dev, config.endpoints.prd
    top = prd.autoscaling.max_capacity
    prd_why = f"prd up to {top} (autoscaling.max_capacity)"
    if dev.instance_type == prd.instance_type:
        second = max(dev.instance_count, top)
        return [*needs, Need(f"{dev.instance_type} for endpoint usage", dev.instance_count + top + second,
                             f"dev {dev.instance_count} + {prd_why} + a second fleet of {second} during a "
                             "blue/green update")]
    return [
        *needs,
        Need(f"{dev.instance_type} for endpoint usage", 2 * dev.instance_count,
             f"dev {dev.instance_count} + a second fleet of {dev.instance_count} during an update"),
        Need(f"{prd.instance_type} for endpoint usage", 2 * top,
             f"{prd_why} + a second fleet of {top} during a blue/green update"),
    ]


def _quotas(ctx: Context, operation: str, action: Action) -> dict[str, dict[str, Any]]:
    quotas = ctx.pages("service-quotas", operation, action, "Quotas", ServiceCode="sagemaker")
    return {quota["QuotaName"].lower(): quota for quota in quotas}


@_check("SageMaker quotas")
def check_quotas(ctx: Context) -> list[Check]:
    applied = _quotas(ctx, "list_service_quotas", servicequotas.ListServiceQuotas)
    defaults: dict[str, dict[str, Any]] | None = None
    checks = []
    for need in quota_needs(ctx.config):
        name, key = f"quota {need.quota}", need.quota.lower()
        quota, source = applied.get(key), "applied"
        if quota is None:  # no applied value: the account has AWS's default
            if defaults is None:
                defaults = _quotas(ctx, "list_aws_default_service_quotas",
                                   servicequotas.ListAWSDefaultServiceQuotas)
            quota, source = defaults.get(key), "AWS default"
        if quota is None:
            checks.append(Check(name, WARN, f"no SageMaker quota of that name in {ctx.region} (is the "
                                            f"instance type offered here?); needs {need.count}"))
            continue
        detail = f"{source} value {quota.get('Value', 0):g}, needs {need.count} ({need.why})"
        if quota.get("Value", 0) >= need.count:
            checks.append(Check(name, PASS, detail))
            continue
        fix = (f"aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code "
               f"{quota['QuotaCode']} --desired-value {need.count} --region {ctx.region}")
        if quota.get("Adjustable") is False:
            fix = "the quota is not adjustable: choose another instance type in mlops.yaml"
        checks.append(Check(name, FAIL, f"{detail}; the account's other jobs and endpoints share it", fix))
    return checks


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


# -- 7. deployment bucket -------------------------------------------------------------------


@_check("deployment bucket", on_error=FAIL)
def check_bucket(ctx: Context) -> Check:
    name, bucket = "deployment bucket", ctx.options.bucket
    if not bucket:
        return Check(name, SKIP, "no --bucket given (make doctor BUCKET=<the bucket `make package` uses>)")
    try:
        ctx.call("s3", "head_bucket", s3.ListBucket, Bucket=bucket)
    except AwsError as err:
        if err.not_found:
            return Check(name, FAIL, f"bucket {bucket} does not exist",
                         f"aws s3 mb s3://{bucket} --region {ctx.region}")
        if err.denied:
            return Check(name, FAIL, f"bucket {bucket}: {err.detail}, or another account owns it",
                         f"grant s3:ListBucket, s3:GetBucketLocation and s3:PutObject on {bucket}, "
                         f"or use a bucket of account {ctx.account}")
        raise
    found = ctx.call("s3", "get_bucket_location", s3.GetBucketLocation, Bucket=bucket)
    location = found.get("LocationConstraint")
    location = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
    if location != ctx.region:
        return Check(name, FAIL, f"bucket {bucket} is in {location}, the deployment region is {ctx.region}: "
                     "Lambda code must come from a bucket in the function's region",
                     f"aws s3 mb s3://<new bucket> --region {ctx.region}, then pass BUCKET=<new bucket>")
    try:
        put = ctx.call("s3", "put_object", s3.PutObject, Bucket=bucket, Key=MARKER_KEY,
                       Body=b"mlops-templates doctor write probe\n")
    except AwsError as err:
        return Check(name, FAIL, f"bucket {bucket} is not writable: {err.detail}",
                     err.fix or f"grant s3:PutObject on arn:aws:s3:::{bucket}/*")
    # A versioned bucket keeps a deleted object's versions: delete the probe's version itself.
    version = {"VersionId": put["VersionId"]} if put.get("VersionId") else {}
    try:
        ctx.call("s3", "delete_object", s3.DeleteObjectVersion if version else s3.DeleteObject,
                 Bucket=bucket, Key=MARKER_KEY, **version)
    except AwsError as err:
        return Check(name, WARN, f"bucket {bucket} ({location}) is writable, but the probe "
                     f"s3://{bucket}/{MARKER_KEY} stays: {err.detail}", err.fix)
    return Check(name, PASS, f"bucket {bucket} is in {location} and writable")


# -- 8. Model Monitor -----------------------------------------------------------------------


def monitoring_engine(config: Config) -> str | None:
    """``monitoring.engine``; ``None`` where the config has no such setting (Model Monitor only)."""
    return getattr(config.monitoring, "engine", None)


@_check("Model Monitor")
def check_model_monitor(ctx: Context) -> Check:
    name = "Model Monitor"
    try:
        ctx.call("sagemaker", "list_monitoring_schedules", sagemaker.ListMonitoringSchedules, MaxResults=1)
    except AwsError as err:
        closed = re.search(r"availab|new customer", err.message, re.IGNORECASE)
        if not (closed and (err.denied or err.code == "ValidationException")):
            raise
        engine = monitoring_engine(ctx.config)
        if engine == "builtin":
            return Check(name, WARN, "Model Monitor is not available to this account: monitoring.engine "
                                     "builtin (the default) does not need it")
        user = f"monitoring.engine {engine}" if engine else (
            "deploy-prd's data-quality schedule and the baseline")
        fix = "set monitoring.engine: builtin in mlops.yaml" if engine else (
            "this release monitors with Model Monitor only: use one with monitoring.engine builtin")
        return Check(name, FAIL, f"Model Monitor is not available to this account ({err.code}: "
                     f"{err.message}), and {user} use it", fix)
    return Check(name, PASS, "Model Monitor API answers")


# -- running and reporting ------------------------------------------------------------------

#: The checks after the credentials, in report order; each needs the caller's account.
CHECKS: tuple[Callable[[Context], Check | list[Check]], ...] = (
    check_sagemaker_projects, check_api_gateway_logging, check_connection, check_quotas,
    check_leftover_buckets, check_leftover_repository, check_leftover_model_group,
    check_leftover_endpoints, check_leftover_stacks, check_leftover_log_groups,
    check_bucket, check_model_monitor,
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
