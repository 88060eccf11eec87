"""The account checks: credentials, Studio projects, the API Gateway logging role, the
source connection, quotas, the deployment bucket and Model Monitor."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from awacs import (
    apigateway,
    codeconnections,
    codestar_connections,
    s3,
    sagemaker,
    servicequotas,
    sts,
)
from awacs import iam as iam_actions
from awacs.aws import Action

from mlops_templates import naming, regions
from mlops_templates.config import Config
from mlops_templates.doctor.context import (
    FAIL,
    MARKER_KEY,
    PASS,
    SKIP,
    WARN,
    AwsError,
    Check,
    Context,
    _check,
)

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
    if ctx.config.pipeline.orchestrator != "codepipeline":
        return Check(name, SKIP, f"pipeline.orchestrator is {ctx.config.pipeline.orchestrator}: its CI checks out the code")
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
    # The workflow runs its processing jobs one at a time (Model Monitor's baseline beside
    # training); the scheduled monitoring job is a processing job too, and can overlap them.
    if training.processing_instance_type == monitor:
        needs.append(Need(f"{monitor} for processing job usage", 2,
                          "1 workflow job at a time + 1 scheduled monitoring job that can overlap it"))
    else:
        baseline = config.monitoring.engine == "model_monitor"  # its baseline job runs on `monitor`
        needs += [
            Need(f"{training.processing_instance_type} for processing job usage", 1,
                 "preprocessing and evaluation, one at a time"),
            Need(f"{monitor} for processing job usage", 2 if baseline else 1,
                 "the baseline job + 1 scheduled monitoring job that can overlap it" if baseline
                 else "the scheduled monitoring job"),
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


@_check("Model Monitor")
def check_model_monitor(ctx: Context) -> Check:
    """Only monitoring.engine model_monitor uses Model Monitor; builtin needs nothing of it."""
    name = "Model Monitor"
    if ctx.config.monitoring.engine != "model_monitor":
        return Check(name, SKIP, f"monitoring.engine is {ctx.config.monitoring.engine}: "
                                 "the project's own monitor job does not use Model Monitor")
    try:
        ctx.call("sagemaker", "list_monitoring_schedules", sagemaker.ListMonitoringSchedules, MaxResults=1)
    except AwsError as err:
        closed = re.search(r"availab|new customer", err.message, re.IGNORECASE)
        if not (closed and (err.denied or err.code == "ValidationException")):
            raise
        return Check(name, FAIL, f"Model Monitor is not available to this account ({err.code}: "
                     f"{err.message}), and monitoring.engine model_monitor uses it",
                     "set monitoring.engine: builtin in mlops.yaml (the project's own monitor job)")
    return Check(name, PASS, "Model Monitor API answers")

