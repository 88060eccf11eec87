"""Typed, validated project configuration (``mlops.yaml``).

Every setting has a default, so an empty file is a valid config. Validation runs
before any template is built; an invalid value raises :class:`ConfigError` whose
message names the field, the value and the rule.

Long because it is the schema of the settings, read top to bottom like the config file
it describes (the README's config reference is generated from it). The largest sections
live beside it: ``training`` in :mod:`.config_training`, ``pipeline`` in
:mod:`.config_pipeline`, and the shared base class and instance-type rules in
:mod:`.config_base`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_templates import naming, notifications
from mlops_templates.config_base import (
    IAM_ROLE_ARN,
    REGION_PATTERN,
    ArnList,
    KmsVolumeInstanceType,
    Name,
    _Model,
)
from mlops_templates.config_pipeline import (
    PipelineConfig,
)
from mlops_templates.config_training import (
    TrainingConfig,
)
from mlops_templates.errors import ConfigError


class ProjectConfig(_Model):
    """Identity of the project: every physical name starts ``<prefix>-<name>``."""

    #: Project name: physical names are `<prefix>-<name>-<component>`; Studio projects pass
    #: their own name.
    name: Name = "abalone"
    #: Organisation prefix of every physical name; prefix + name must leave room for SageMaker
    #: job names.
    prefix: Name = "mlops"
    #: Default region of deploy commands (the templates themselves deploy to any region of the
    #: image table).
    region: Annotated[str, StringConstraints(pattern=REGION_PATTERN)] = "us-east-1"
    #: Tags on every taggable resource, beside `mlops:project` and `mlops:component`.
    tags: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=128)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(default_factory=dict)

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        from mlops_templates.regions import table

        if region not in table():
            raise ValueError(
                f"region '{region}' has no SageMaker image table entry "
                f"(known: {', '.join(sorted(table()))})"
            )
        return region

    @field_validator("tags")
    @classmethod
    def _no_aws_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            if key.lower().startswith("aws:"):
                raise ValueError(f"tag key '{key}' uses the reserved 'aws:' prefix")
        return tags


class NetworkConfig(_Model):
    """Optional VPC placement for models, jobs and Lambdas.

    Empty lists mean "no VPC". Subnets and security groups are used as given.
    """

    #: Existing private subnets for models, jobs and Lambdas; empty = no VPC.
    subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = (
        Field(default_factory=list, max_length=16)
    )
    #: Security groups used with `subnet_ids` (both or neither).
    security_group_ids: list[
        Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]
    ] = Field(default_factory=list, max_length=5)
    #: Create a private VPC with the interface endpoints SageMaker needs
    #: (pipeline stack) instead of using existing subnets.
    create_vpc: bool = False
    #: The VPC of ``subnet_ids``. When given, the pipeline's CodeBuild build runs in
    #: those subnets too (they then need a route to PyPI and the Docker base image).
    vpc_id: Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.subnet_ids) or self.create_vpc

    @model_validator(mode="after")
    def _both_or_neither(self) -> NetworkConfig:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError(
                "subnet_ids and security_group_ids must be given together (or neither)"
            )
        if self.create_vpc and self.subnet_ids:
            raise ValueError("create_vpc cannot be combined with existing subnet_ids")
        if self.vpc_id and not self.subnet_ids:
            raise ValueError(
                "vpc_id names the VPC of subnet_ids: give subnet_ids with it "
                "(create_vpc creates its own VPC)"
            )
        return self


class DevEndpointConfig(_Model):
    #: Instance type of the development endpoint (EBS-backed, so its volume takes the KMS
    #: key).
    instance_type: KmsVolumeInstanceType = "ml.m5.large"
    #: Instances behind the development endpoint.
    instance_count: int = Field(default=1, ge=1, le=10)


class DeploymentPolicy(_Model):
    """SageMaker deployment guardrails for the production endpoint (blue/green)."""

    #: Blue/green traffic shifting of a new model: canary, linear steps, or all at once.
    type: Literal["canary", "linear", "all_at_once"] = "canary"
    #: Canary size, or the linear step, in percent of the fleet.
    traffic_percent: int = Field(default=34, ge=1, le=50)
    #: Bake time after each traffic shift, watched by the rollback alarms.
    wait_interval_seconds: int = Field(default=300, ge=0, le=3600)
    #: Time the old fleet is kept after full shift, for a fast rollback.
    termination_wait_seconds: int = Field(default=120, ge=0, le=3600)
    #: Upper bound of one blue/green deployment.
    maximum_execution_timeout_seconds: int = Field(default=3600, ge=600, le=14400)

    @model_validator(mode="after")
    def _linear_step(self) -> DeploymentPolicy:
        if self.type == "linear" and self.traffic_percent < 10:
            raise ValueError(
                f"a linear deployment shifts 10-50% of the fleet per step (SageMaker's "
                f"limit on LinearStepSize); got traffic_percent {self.traffic_percent}"
            )
        return self


class AutoScalingConfig(_Model):
    #: Fewest production instances auto-scaling keeps.
    min_capacity: int = Field(default=3, ge=1, le=100)
    #: Most production instances auto-scaling starts.
    max_capacity: int = Field(default=6, ge=1, le=100)
    #: Target of `SageMakerVariantInvocationsPerInstance` (per minute) for target tracking.
    target_invocations_per_instance: int = Field(default=1000, ge=1, le=100000)
    #: Wait after a scale-in before the next one.
    scale_in_cooldown_seconds: int = Field(default=300, ge=0, le=3600)
    #: Wait after a scale-out before the next one.
    scale_out_cooldown_seconds: int = Field(default=60, ge=0, le=3600)

    @model_validator(mode="after")
    def _ordered(self) -> AutoScalingConfig:
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"min_capacity ({self.min_capacity}) must not exceed "
                f"max_capacity ({self.max_capacity})"
            )
        return self


class PrdEndpointConfig(_Model):
    #: Instance type of the production endpoint (EBS-backed, so its volume takes the KMS key).
    instance_type: KmsVolumeInstanceType = "ml.m5.large"
    #: Initial instance count; canary and linear rollouts need at least 3.
    instance_count: int = Field(default=3, ge=1, le=100)
    #: Share of requests and responses captured for Model Monitor.
    data_capture_sampling_percentage: int = Field(default=100, ge=1, le=100)
    deployment: DeploymentPolicy = Field(default_factory=DeploymentPolicy)
    autoscaling: AutoScalingConfig = Field(default_factory=AutoScalingConfig)
    #: Rollback alarm: invocation 5XX errors of the endpoint in one minute at which a
    #: deployment rolls back.
    max_5xx_errors: int = Field(default=1, ge=1, le=100000)
    #: Rollback alarm: average model latency, in milliseconds, above which a deployment rolls
    #: back.
    max_model_latency_ms: int = Field(default=500, ge=1, le=600000)

    @model_validator(mode="after")
    def _capacity(self) -> PrdEndpointConfig:
        kind = self.deployment.type
        if kind in ("canary", "linear") and self.instance_count < 3:
            raise ValueError(
                f"a {kind} deployment needs instance_count >= 3 so that the canary fleet "
                f"is smaller than the rest (got {self.instance_count})"
            )
        scaling = self.autoscaling
        if not scaling.min_capacity <= self.instance_count <= scaling.max_capacity:
            raise ValueError(
                f"instance_count ({self.instance_count}) must lie within autoscaling "
                f"min_capacity..max_capacity ({scaling.min_capacity}..{scaling.max_capacity})"
            )
        return self


class EndpointsConfig(_Model):
    dev: DevEndpointConfig = Field(default_factory=DevEndpointConfig)
    prd: PrdEndpointConfig = Field(default_factory=PrdEndpointConfig)


class QualityAlarmConfig(_Model):
    """The model-quality alarm: a metric of the labelled predictions against a threshold."""

    #: Metric of the predictions joined with uploaded ground truth that the alarm watches.
    metric: Literal["rmse", "mae", "r2"] = "rmse"
    #: How the metric breaches the threshold (`rmse > 3.0`, `r2 < 0.5`).
    operator: Literal[">", ">=", "<", "<="] = ">"
    #: Threshold of the quality alarm (the reference system retrains when the error on ground
    #: truth passes it).
    threshold: float = 3.0
    #: Fewest labelled rows in one run for its quality to be judged (fewer: no datapoint, which
    #: the alarm treats as not breaching).
    min_rows: int = Field(default=30, ge=1, le=100000)


class MonitoringConfig(_Model):
    """Scheduled checks of the production endpoint's captured traffic: data quality, drift
    and model quality, the alarms on them and the dashboard."""

    #: What checks the traffic: the project's own `monitor` job (every account), or SageMaker
    #: Model Monitor's data-quality schedule (closed to new customers; accounts that have it).
    engine: Literal["builtin", "model_monitor"] = "builtin"
    #: Instance type of the monitoring job.
    instance_type: KmsVolumeInstanceType = "ml.m5.xlarge"
    #: Volume of the monitoring job (KMS-encrypted).
    volume_size_gb: int = Field(default=20, ge=1, le=512)
    #: Time limit of one monitoring run.
    max_runtime_seconds: int = Field(default=1800, ge=60, le=3600)
    #: Drift alarm: fires when this many watched features drifted in one run.
    drift_violations_threshold: int = Field(default=1, ge=1, le=1000)
    #: Features whose drift counts toward the drift alarm (builtin: names of the monitoring
    #: baseline; model_monitor: of the baseline dataset's header, read by a metric-math alarm,
    #: which takes at most 10 metrics).
    drift_features: list[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    ] = Field(
        default_factory=lambda: [
            "sex", "length", "diameter", "height",
            "whole_weight", "shucked_weight", "viscera_weight", "shell_weight",
        ],
        min_length=1,
        max_length=10,
    )
    #: Distance from the baseline above which a feature counts as drifted: the Jensen-Shannon
    #: distance (0 to 1) with builtin, Model Monitor's baseline distance with model_monitor
    #: (whose suggested `comparison_threshold` is also 0.1).
    drift_distance_threshold: float = Field(default=0.1, gt=0, le=1)
    #: builtin: fewest live rows in a run for its drift to be judged. A small sample's
    #: histogram is noisy: 500 rows from the baseline's own distribution stay under 0.1
    #: (a 95th percentile near 0.08 over 10 bins).
    drift_min_rows: int = Field(default=500, ge=1, le=10_000_000)
    #: How often captured data is checked against the baseline (hourly, 6-hourly or daily).
    schedule_expression: Literal["cron(0 * ? * * *)", "cron(0 */6 ? * * *)", "cron(0 0 ? * * *)"] = (
        "cron(0 * ? * * *)"
    )
    #: builtin: the model-quality alarm on predictions joined with uploaded ground truth.
    quality: QualityAlarmConfig = Field(default_factory=QualityAlarmConfig)
    #: builtin: how old a captured prediction may be and still be joined with a label uploaded
    #: in the run's window (labels arrive after the prediction).
    ground_truth_lookback_hours: int = Field(default=24, ge=1, le=168)

    @field_validator("drift_features")
    @classmethod
    def _unique_features(cls, features: list[str]) -> list[str]:
        duplicates = sorted({f for f in features if features.count(f) > 1})
        if duplicates:
            raise ValueError(f"drift_features must be unique (repeated: {', '.join(duplicates)})")
        return features


CANARY_TYPES = (
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
)


class ThrottleConfig(_Model):
    #: Steady-state requests per second of the API stage.
    rate_limit: float = Field(default=100.0, gt=0, le=10000)
    #: Burst of requests the API stage admits.
    burst_limit: int = Field(default=200, ge=1, le=5000)


class ApiConfig(_Model):
    """The public API: Lambda behind API Gateway, canary-deployed by CodeDeploy."""

    #: How callers authenticate: IAM (SigV4) or an API key with a usage plan. The API is never
    #: open.
    auth: Literal["iam", "api_key"] = "iam"
    #: CIDR blocks allowed to call the API (resource policy); empty = no IP filter.
    ip_allow_list: list[
        Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
    ] = Field(default_factory=list, max_length=50)
    #: CodeDeploy traffic shifting of a new API Lambda version.
    deployment_preference: Literal[CANARY_TYPES] = "Canary10Percent5Minutes"  # type: ignore[valid-type]
    throttle: ThrottleConfig = Field(default_factory=ThrottleConfig)
    #: Daily request quota of the usage plan (api_key auth only).
    quota_per_day: int = Field(default=100000, ge=1)
    #: Memory of the API Lambda function.
    memory_mb: int = Field(default=256, ge=128, le=10240)
    #: Timeout of the API Lambda function (API Gateway stops waiting at 29 s).
    timeout_seconds: int = Field(default=29, ge=1, le=29)
    #: Retention of the API access logs and function logs.
    log_retention_days: Literal[30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 365
    #: API Gateway stage name (part of the API URL).
    stage_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")] = "prod"


class StudioConfig(_Model):
    """How Studio users get the pipeline as a SageMaker project template: a Service Catalog
    product (``service_catalog``) or a template in an S3 bucket of the studio stack (``s3``)."""

    #: How `make publish` offers the pipeline template to Studio: `service_catalog` (a
    #: portfolio and product, launched with a launch constraint) or `s3` (a tagged object in the
    #: studio stack's template bucket, created with `CreateProject`'s `TemplateProviders`).
    #: `MODE=` on `make publish`/`make project` overrides it.
    publish_mode: Literal["service_catalog", "s3"] = "service_catalog"
    #: Display name of the Service Catalog portfolio.
    portfolio_name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = (
        "MLOps templates"
    )
    #: Name of the project template as Studio lists it.
    product_name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = (
        "mlops-templates: train, canary-deploy and monitor"
    )
    #: Provider shown on the portfolio and product.
    provider_name: Annotated[str, StringConstraints(min_length=1, max_length=50)] = (
        "Platform team"
    )
    #: Version name of the product's provisioning artifact; bump it to publish a new version.
    product_version: Annotated[str, StringConstraints(pattern=r"^v?\d+\.\d+(\.\d+)?$")] = "v1.0"
    #: IAM role ARNs of the Studio execution roles allowed to launch the product (s3: to read
    #: the template bucket and to have projects created with the launch role).
    principal_arns: ArnList = Field(
        default_factory=lambda: ["arn:aws:iam::111122223333:role/SageMakerStudioExecutionRole"],
        min_length=1,
        max_length=20,
    )

    @model_validator(mode="after")
    def _s3_readers(self) -> StudioConfig:
        if self.publish_mode != "s3":
            return self
        for arn in self.principal_arns:
            if not re.fullmatch(IAM_ROLE_ARN, arn):
                raise ValueError(
                    f"principal_arns: '{arn}' is not an IAM role ARN; with publish_mode s3 every "
                    "entry is a Studio execution role the template bucket's policy, its key's "
                    "policy and the launch role's trust policy name (arn:aws:iam::<account>:role/<name>)"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_gateway_logging_role" in data:
            raise ValueError(
                "studio.api_gateway_logging_role moved to account.api_gateway_logging_role "
                "(the account stack now sets it, with or without Studio)"
            )
        return data


class AccountConfig(_Model):
    """Account-wide settings, deployed once per account and region (the ``account`` stack)."""

    #: Set the account's API Gateway CloudWatch Logs role: REST API access logs need it
    #: once per account and region. The ``account`` stack sets it (retrying while IAM
    #: propagates the new role). Turn off if the account already manages that setting.
    api_gateway_logging_role: bool = True


#: An object key prefix in the project's data bucket (``batch/input/``): no leading slash,
#: ends with a slash.
KeyPrefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]*/$", max_length=200)]


class DeploymentConfig(_Model):
    """How the approved model serves: endpoints, batch transform, or both."""

    #: `realtime`: the dev and production endpoints (the deploy-dev and deploy-prd stacks);
    #: `batch`: no endpoints, the batch stack transforms files uploaded to `batch.input_prefix`
    #: with the newest approved model; `both`: all three stacks.
    mode: Literal["realtime", "batch", "both"] = "realtime"

    @property
    def realtime(self) -> bool:
        return self.mode in ("realtime", "both")

    @property
    def batch(self) -> bool:
        return self.mode in ("batch", "both")


class BatchConfig(_Model):
    """Batch inference (`deployment.mode: batch` or `both`): an upload under the input prefix of
    the data bucket (or the schedule) starts a batch transform with the newest approved model
    package, then the monitor job over its output."""

    #: Key prefix in the data bucket whose uploads (lines `<row id>,<features>`) start a run.
    input_prefix: KeyPrefix = "batch/input/"
    #: Key prefix in the data bucket the transform writes under (`<prefix><execution>/`); never
    #: under the input prefix, whose uploads start runs.
    output_prefix: KeyPrefix = "batch/output/"
    #: Key prefix in the data bucket of the batches' ground truth (Model Monitor's format, one
    #: record per row id: `"eventId": "<row id>"`), joined by the monitor job.
    ground_truth_prefix: KeyPrefix = "batch/ground-truth/"
    #: EventBridge Scheduler expression of a run over the whole input prefix, or none.
    schedule_expression: (
        Annotated[str, StringConstraints(pattern=r"^(rate|cron|at)\(.+\)$")] | None
    ) = None
    #: Instance type of the transform job.
    instance_type: KmsVolumeInstanceType = "ml.m5.xlarge"
    #: Instances of the transform job (SageMaker splits the input files among them).
    instance_count: int = Field(default=1, ge=1, le=100)
    #: Time limit of the transform job (its Task's timeout: CreateTransformJob has no
    #: stopping condition of its own).
    max_runtime_seconds: int = Field(default=3600, ge=60, le=86400)

    @model_validator(mode="after")
    def _separate_prefixes(self) -> BatchConfig:
        named = {"input_prefix": self.input_prefix, "output_prefix": self.output_prefix,
                 "ground_truth_prefix": self.ground_truth_prefix}
        for (a, x), (b, y) in ((p, q) for p in named.items() for q in named.items() if p[0] < q[0]):
            if x.startswith(y) or y.startswith(x):
                raise ValueError(
                    f"batch.{a} '{x}' and batch.{b} '{y}' overlap: uploads under the input "
                    "prefix start a run, so a run's output or ground truth there would start "
                    "another; give each its own prefix"
                )
        return self


class NotificationsConfig(_Model):
    """The texts of the notifications (``mlops_templates/notifications.py`` has the events,
    their default texts and the ``{names}`` each may use)."""

    #: Text per event, replacing its default: `run_started`, `run_failed`, `training_failed`,
    #: `gate_failed`, `gate_passed`, `deployed`, `rejected`, `promoted`, `promotion_blocked`,
    #: `rolled_back`, `api_deployment`, `drift`, `quality_breach`, `monitor_failed`,
    #: `batch_failed`. `{name}` inserts a value of the event.
    messages: dict[
        Literal[tuple(notifications.EVENTS)],  # type: ignore[valid-type]
        Annotated[str, StringConstraints(min_length=1, max_length=1000)],
    ] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _placeholders(cls, messages: dict[str, str]) -> dict[str, str]:
        for event, text in messages.items():
            notifications.check(event, text)
        return messages


class Config(_Model):
    """The whole project configuration (``mlops.yaml``)."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    endpoints: EndpointsConfig = Field(default_factory=EndpointsConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    studio: StudioConfig = Field(default_factory=StudioConfig)
    account: AccountConfig = Field(default_factory=AccountConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    #: Deploy-time values of CloudFormation Parameters, per stack
    #: (``make deploy`` passes them; ``PARAMS=Key=Value`` on the command line wins).
    parameters: dict[
        Literal["account", "studio", "pipeline", "workflow", "deploy-dev", "deploy-prd", "batch"],
        dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,255}$")], str],
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        try:
            naming.check_lengths(self)
            if self.training.tuning.enabled:
                naming.check_tuning_job_name(self)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        if self.deployment.batch:
            self._check_batch()
        return self

    def _check_batch(self) -> None:
        data = self.pipeline.data_prefix
        for field in ("input_prefix", "output_prefix", "ground_truth_prefix"):
            prefix = getattr(self.batch, field)
            if prefix.startswith(data) or data.startswith(prefix):
                raise ValueError(
                    f"batch.{field} '{prefix}' and pipeline.data_prefix '{data}' overlap: "
                    "uploads under the data prefix start a training run; give batch files "
                    "their own prefix"
                )
        if self.pipeline.orchestrator != "codepipeline":
            raise ValueError(
                f"deployment.mode {self.deployment.mode}: batch inference is deployed by the "
                f"CodePipeline (pipeline.orchestrator codepipeline), not by "
                f"{self.pipeline.orchestrator}; use deployment.mode realtime there"
            )


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in err.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling against the config reference)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {field}: {msg}{shown}")
    return "\n".join(lines)


def parse(data: dict[str, Any] | None, source: str = "config") -> Config:
    """Validate a mapping into a :class:`Config`, raising :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load(path: str | Path, project_name: str | None = None, publish_mode: str | None = None) -> Config:
    """Read and validate ``mlops.yaml``.

    ``project_name`` overrides ``project.name`` (CodeBuild passes the Studio project's
    name, so per-run stacks carry the names the pipeline stack expects); ``publish_mode``
    overrides ``studio.publish_mode`` (``make publish MODE=...``), validated the same way.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:  # an empty file: every default, and the overrides below
        data = {}
    if project_name is not None and isinstance(data, dict):
        data = {**data, "project": {**(data.get("project") or {}), "name": project_name}}
    if publish_mode is not None and isinstance(data, dict):
        data = {**data, "studio": {**(data.get("studio") or {}), "publish_mode": publish_mode}}
    return parse(data, str(path))
