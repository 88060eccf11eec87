"""Typed, validated project configuration (``mlops.yaml``).

Every setting has a default, so an empty file is a valid config. Validation runs
before any template is built; an invalid value raises :class:`ConfigError` whose
message names the field, the value and the rule.

Long because it is the one schema of every setting, read top to bottom like the config
file it describes (the README's config reference is generated from it): split, a
setting's rule would sit away from its siblings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from mlops_templates import naming, notifications
from mlops_templates.errors import ConfigError

#: SageMaker instance families this library knows how to size and price-check.
#: An unknown family is almost always a typo (``ml.m5d.large`` vs ``ml.m5.large``).
INSTANCE_FAMILIES = frozenset(
    {
        "t2", "t3", "m4", "m5", "m5d", "m6i", "m6id", "m7i", "c4", "c5", "c5d", "c6i",
        "c6id", "c7i", "r5", "r5d", "r6i", "r7i", "g4dn", "g5", "g6", "g6e", "p3", "p4d",
        "p5", "inf1", "inf2", "trn1",
    }
)
INSTANCE_SIZES = frozenset(
    {
        "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "9xlarge",
        "12xlarge", "16xlarge", "18xlarge", "24xlarge", "32xlarge", "48xlarge",
    }
)
GPU_FAMILIES = frozenset({"g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"})

#: Regions the generated image-URI table covers (see ``regions.py``).
REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$", min_length=2, max_length=20),
]
#: An IAM role's ARN (any partition, with an optional path).
IAM_ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
ArnList = list[Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:[a-z0-9-]+:")]]


def _instance_type(value: str) -> str:
    match = re.fullmatch(r"ml\.([a-z0-9]+)\.([a-z0-9]+)", value)
    if not match:
        raise ValueError("must look like 'ml.<family>.<size>', e.g. 'ml.m5.large'")
    family, size = match.groups()
    if family not in INSTANCE_FAMILIES:
        known = ", ".join(sorted(INSTANCE_FAMILIES))
        raise ValueError(f"unknown instance family '{family}' (known: {known})")
    if size not in INSTANCE_SIZES:
        raise ValueError(f"unknown instance size '{size}'")
    return value


InstanceType = Annotated[str, AfterValidator(_instance_type)]

#: Instance families with local NVMe instance storage. SageMaker encrypts that storage
#: with a hardware key and rejects a customer-managed volume key for these families.
LOCAL_STORAGE_FAMILIES = frozenset(
    {"m5d", "m6id", "c5d", "c6id", "r5d", "g4dn", "g5", "g6", "g6e", "p4d", "p5", "trn1"}
)


def _kms_volume(value: str) -> str:
    family = value.split(".")[1]
    if family in LOCAL_STORAGE_FAMILIES:
        raise ValueError(
            f"instance family '{family}' has local NVMe storage, for which SageMaker rejects "
            "the customer-managed KMS volume key that endpoint and monitoring volumes must "
            "have; choose an EBS-backed family (e.g. ml.m5, ml.c5, ml.r5, ml.p3, ml.inf2)"
        )
    return value


#: An instance type whose volume can be encrypted with a customer-managed KMS key.
KmsVolumeInstanceType = Annotated[str, AfterValidator(_instance_type), AfterValidator(_kms_volume)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    timeout_seconds: int = Field(default=30, ge=1, le=29)
    #: Retention of the API access logs and function logs.
    log_retention_days: Literal[30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 365
    #: API Gateway stage name (part of the API URL).
    stage_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")] = "prod"


class QualityGate(_Model):
    """Training quality gate: the model is registered only if the metric passes."""

    #: Test-split metric of `evaluation.json` the gate compares.
    metric: Literal["rmse", "mae", "r2"] = "rmse"
    #: Comparison the metric must pass against the threshold.
    operator: Literal["<", "<=", ">", ">="] = "<"
    #: Threshold of the quality gate.
    threshold: float = 3.0


class ParameterRange(_Model):
    """One hyperparameter's search range: numeric (`min`, `max`, `scaling`) or categorical
    (`values`)."""

    #: `integer` or `continuous` (with `min` and `max`), or `categorical` (with `values`).
    type: Literal["integer", "continuous", "categorical"]
    #: Numeric ranges: the smallest value tried.
    min: float | None = None
    #: Numeric ranges: the largest value tried.
    max: float | None = None
    #: Numeric ranges: how SageMaker samples between min and max (`Logarithmic` needs values
    #: above 0; `ReverseLogarithmic`, continuous only, values within 0 <= x < 1).
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"
    #: Categorical ranges: the values tried.
    values: list[str | int | float] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def _shape(self) -> ParameterRange:
        if self.type == "categorical":
            if not self.values or self.min is not None or self.max is not None:
                raise ValueError("a categorical range takes values (and no min or max)")
            if self.scaling != "Auto":
                raise ValueError("a categorical range has no scaling")
        elif self.min is None or self.max is None or self.values:
            raise ValueError(f"an {self.type} range takes min and max (and no values)")
        return self


def _default_ranges() -> dict[str, ParameterRange]:
    return {
        "max_depth": ParameterRange(type="integer", min=2, max=8),
        "eta": ParameterRange(type="continuous", min=0.01, max=0.3, scaling="Logarithmic"),
        "min_child_weight": ParameterRange(type="continuous", min=1, max=20),
    }


class TuningConfig(_Model):
    """Hyperparameter tuning: a SageMaker tuning job instead of the single training job; its
    best training job's model goes on to evaluation, the gate and registration."""

    #: Run a hyperparameter tuning job instead of one training job (custom image only).
    enabled: bool = False
    #: The metric the search minimises: the validation RMSE the container prints per round.
    objective_metric: Literal["validation:rmse"] = "validation:rmse"
    #: How SageMaker chooses the next hyperparameters.
    strategy: Literal["Bayesian", "Random"] = "Bayesian"
    #: Training jobs the search runs in all.
    max_jobs: int = Field(default=10, ge=1, le=500)
    #: Training jobs run at the same time.
    max_parallel_jobs: int = Field(default=2, ge=1, le=100)
    #: `Auto`: SageMaker stops training jobs whose objective lags behind the earlier ones'.
    early_stopping: Literal["Auto", "Off"] = "Off"
    #: Hyperparameter name -> range, each checked against the container's own rule for it.
    #: A tuned hyperparameter is left out of the fixed `hyperparameters` (the range wins over
    #: a default); naming it in an explicit `hyperparameters` is refused.
    ranges: dict[str, ParameterRange] = Field(
        default_factory=_default_ranges, min_length=1, max_length=30
    )

    @model_validator(mode="after")
    def _ranges(self) -> TuningConfig:
        from mlops_templates.tuning import check_range

        for name, spec in self.ranges.items():
            check_range(name, spec.type, spec.min, spec.max, spec.scaling, spec.values)
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(
                f"max_parallel_jobs ({self.max_parallel_jobs}) must not exceed max_jobs "
                f"({self.max_jobs})"
            )
        return self


class TrainingConfig(_Model):
    #: Training image: the project's container (`container/`) or SageMaker's built-in XGBoost.
    image: Literal["custom", "xgboost"] = "custom"
    #: Version of the built-in XGBoost image (`image: xgboost`).
    xgboost_version: str = "1.7-1"

    @field_validator("xgboost_version")
    @classmethod
    def _known_xgboost(cls, version: str) -> str:
        from mlops_templates.regions import xgboost_versions

        if version not in xgboost_versions():
            raise ValueError(
                f"built-in XGBoost version '{version}' is not in the image table "
                f"(known: {', '.join(xgboost_versions())})"
            )
        return version

    #: Instance type of the training job (a GPU family trains with CUDA).
    instance_type: InstanceType = "ml.m5.xlarge"
    #: Instances of the training job.
    instance_count: int = Field(default=1, ge=1, le=20)
    #: Volume of the training job (KMS-encrypted).
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    #: Time limit of the training job.
    max_runtime_seconds: int = Field(default=3600, ge=60, le=432000)
    #: Managed spot training, with checkpoints in S3.
    use_spot: bool = False
    #: Spot only: total wait including interruptions; must be >= max_runtime_seconds.
    max_wait_seconds: int = Field(default=7200, ge=60, le=432000)
    #: Run the training container without network access.
    network_isolation: bool = True
    #: Instance type of the preprocessing, baseline and evaluation jobs.
    processing_instance_type: InstanceType = "ml.m5.xlarge"
    #: Default hyperparameters; a run's execution input may override them.
    hyperparameters: dict[str, str | int | float] = Field(
        default_factory=lambda: {
            "max_depth": 3,
            "eta": 0.05,
            "min_child_weight": 10,
            "subsample": 0.8,
            "num_round": 500,
            "early_stopping_rounds": 20,
        }
    )
    #: Hyperparameter tuning (off by default).
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    gate: QualityGate = Field(default_factory=QualityGate)
    #: Approval status of a newly registered model package. Production serves the newest
    #: approved version: `Approved` sends every model that passes the gate to production.
    model_approval_status: Literal["PendingManualApproval", "Approved"] = (
        "PendingManualApproval"
    )

    @model_validator(mode="after")
    def _spot(self) -> TrainingConfig:
        if self.use_spot and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError(
                f"max_wait_seconds ({self.max_wait_seconds}) must be >= "
                f"max_runtime_seconds ({self.max_runtime_seconds}) for spot training"
            )
        return self

    @model_validator(mode="after")
    def _tuning(self) -> TrainingConfig:
        if not self.tuning.enabled:
            return self
        if self.image != "custom":
            raise ValueError(
                "tuning.enabled needs image 'custom': the ranges are checked against the project "
                "container's rules and its metric (validation:rmse); the built-in XGBoost image "
                "has other hyperparameters and metrics"
            )
        if "hyperparameters" in self.model_fields_set:
            fixed = sorted(set(self.hyperparameters) & set(self.tuning.ranges))
            if fixed:
                raise ValueError(
                    f"hyperparameters fixes {', '.join(fixed)}, which tuning.ranges also tunes: "
                    "remove one of the two"
                )
        return self

    @property
    def fixed_hyperparameters(self) -> dict[str, str | int | float]:
        """The hyperparameters every training job gets: all of ``hyperparameters``, less the
        tuned ones when tuning is on (the range wins over a default)."""
        if not self.tuning.enabled:
            return dict(self.hyperparameters)
        return {k: v for k, v in self.hyperparameters.items() if k not in self.tuning.ranges}


class SourceConfig(_Model):
    #: Where the project's code lives: a CodeConnections repository (GitHub, GitLab,
    #: Bitbucket) or CodeCommit.
    provider: Literal["codeconnections", "codecommit"] = "codeconnections"
    #: CodeConnections only: ARN of an existing, authorized connection.
    connection_arn: Annotated[
        str,
        StringConstraints(pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):"),
    ] | None = None
    #: ``owner/repo`` for CodeConnections; a repository name for CodeCommit.
    repository: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")] = (
        "my-org/abalone-mlops"
    )
    #: Branch whose pushes start the pipeline.
    branch: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "main"

    @model_validator(mode="after")
    def _connection(self) -> SourceConfig:
        if self.provider == "codeconnections" and "/" not in self.repository:
            raise ValueError(
                f"repository '{self.repository}' must be 'owner/repo' for codeconnections"
            )
        return self


#: The OIDC issuer of GitHub Actions tokens (GitHub docs, "Configuring OpenID Connect in
#: Amazon Web Services": provider URL https://token.actions.githubusercontent.com).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: A branch name the CI path puts into an OIDC subject claim and a branch filter: no glob
#: or space characters, so both name exactly this branch.
CI_BRANCH_PATTERN = r"^[A-Za-z0-9._/-]+$"


class CiConfig(_Model):
    """GitHub Actions or GitLab CI as the orchestrator (``pipeline.orchestrator``): who may
    assume the ``ci-oidc`` stack's role, and the workflow ``make templates`` renders."""

    #: The repository whose workflow may deploy: `owner/repo` on GitHub, the full project path
    #: (`group/subgroup/project`) on GitLab, spelled as the OIDC subject claim spells it (case
    #: included). Default: `pipeline.source.repository`.
    repository: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", max_length=255)
    ] | None = None
    #: The environment of the production deployment: a GitHub environment with required
    #: reviewers (the approval), or a GitLab protected environment whose manual job is the
    #: approval.
    environment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")] = "production"
    #: GitHub only: the owner's numeric ID, for repositories that emit the immutable subject
    #: claim (`repo:<owner>@<owner_id>/<repo>@<repository_id>:...`); with `repository_id`.
    owner_id: int | None = Field(default=None, ge=1)
    #: GitHub only: the repository's numeric ID, for the immutable subject claim; with
    #: `owner_id`.
    repository_id: int | None = Field(default=None, ge=1)
    #: GitLab only: the instance URL, which is the OIDC issuer (`https://`, no trailing slash).
    gitlab_url: Annotated[
        str, StringConstraints(pattern=r"^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
    ] = "https://gitlab.com"
    #: The audience (`aud`) of the CI job's ID token; none: `sts.amazonaws.com` on GitHub (the
    #: default of aws-actions/configure-aws-credentials), the instance URL on GitLab (GitLab's
    #: documented value).
    audience: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:/._-]{1,255}$")] | None = None
    #: ARN of the account's existing OIDC provider of the issuer; none: the `ci-oidc` stack
    #: creates it. IAM allows one provider per issuer URL in an account: a second project, or
    #: an account that already trusts the issuer, names the existing one here.
    oidc_provider_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[A-Za-z0-9.:/_-]+$")
    ] | None = None

    @model_validator(mode="after")
    def _ids_together(self) -> CiConfig:
        if (self.owner_id is None) != (self.repository_id is None):
            raise ValueError(
                "owner_id and repository_id must be given together (or neither): the immutable "
                "subject claim carries both"
            )
        return self


class PipelineConfig(_Model):
    source: SourceConfig = Field(default_factory=SourceConfig)
    #: What runs the build, training and deployments: CodePipeline (in the pipeline stack), or
    #: a GitHub Actions workflow / GitLab CI pipeline (rendered into `templates/ci/`) that
    #: assumes the `ci-oidc` stack's role with OIDC, without long-lived keys.
    orchestrator: Literal["codepipeline", "github", "gitlab"] = "codepipeline"
    ci: CiConfig = Field(default_factory=CiConfig)
    #: EventBridge schedule expression of periodic retraining.
    retrain_schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = (
        "rate(30 days)"
    )
    #: Whether the retraining schedule is enabled (CodePipeline; a CI orchestrator runs on pushes,
    #: by hand, or on the CI system's own schedules).
    retrain_schedule_enabled: bool = False
    #: The production alarms whose firing starts the pipeline (CodePipeline only): `drift`,
    #: `quality` (builtin monitoring only), both, or none.
    retrain_on: list[Literal["drift", "quality"]] = Field(
        default_factory=lambda: ["drift", "quality"], max_length=2
    )
    #: CodeBuild image of the build stage.
    codebuild_image: str = "aws/codebuild/standard:7.0"
    #: CodeBuild compute type of the build stage.
    codebuild_compute_type: Literal[
        "BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"
    ] = "BUILD_GENERAL1_SMALL"
    #: Object key prefix in the data bucket whose uploads start a run.
    data_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]*/$")] = "training/"
    #: Retention of the pipeline's build, workflow and flow logs.
    log_retention_days: Literal[30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 365

    @property
    def ci_repository(self) -> str:
        """The repository the CI workflow runs in (``ci.repository``, else the source's)."""
        return self.ci.repository or self.source.repository

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "retrain_on_drift" in data:
            raise ValueError(
                "retrain_on_drift became retrain_on, the list of production alarms that start "
                "the pipeline: [drift, quality] (the default), [drift] for drift only, [] for none"
            )
        return data

    @field_validator("retrain_on")
    @classmethod
    def _unique_alarms(cls, alarms: list[str]) -> list[str]:
        if len(set(alarms)) != len(alarms):
            raise ValueError(f"retrain_on names an alarm twice ({', '.join(alarms)})")
        return alarms

    @model_validator(mode="after")
    def _ci(self) -> PipelineConfig:
        if self.orchestrator == "codepipeline":
            return self
        if not re.fullmatch(CI_BRANCH_PATTERN, self.source.branch):
            raise ValueError(
                f"source.branch '{self.source.branch}': with orchestrator {self.orchestrator} the "
                "branch is matched exactly by the OIDC subject and the workflow's branch filter; "
                "use letters, digits, '.', '_', '/' and '-' only"
            )
        if self.orchestrator == "github" and self.ci_repository.count("/") != 1:
            raise ValueError(
                f"ci.repository '{self.ci_repository}' must be 'owner/repo' for orchestrator github"
            )
        issuer = GITHUB_ISSUER if self.orchestrator == "github" else self.ci.gitlab_url
        host = issuer.removeprefix("https://")
        arn = self.ci.oidc_provider_arn
        if arn is not None and not arn.endswith(f":oidc-provider/{host}"):
            raise ValueError(
                f"ci.oidc_provider_arn '{arn}' is not the provider of {issuer}: its ARN ends with "
                f"':oidc-provider/{host}'"
            )
        return self


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
    if project_name is not None and isinstance(data, dict):
        data = {**data, "project": {**(data.get("project") or {}), "name": project_name}}
    if publish_mode is not None and (data is None or isinstance(data, dict)):
        data = data or {}
        data = {**data, "studio": {**(data.get("studio") or {}), "publish_mode": publish_mode}}
    return parse(data, str(path))
