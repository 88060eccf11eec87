"""Safety: every config rule holds at its boundary, and a refusal names the field.

One row per rule of ``mlops_templates/config.py`` (and the name-length rule of
``naming.py`` it runs): the last value the rule accepts and the first it refuses, both
written here literally, with the settings the rule needs beside them. The refused value's
error must name the field (the dotted path ``_format_errors`` prints at the start of its
line, or the fields a cross-field rule compares) and, where given, say the rule.

Instance families: a customer-managed volume key is refused by SageMaker on families with
local NVMe instance storage (the SageMaker API reference, ``ProductionVariant`` /
``ResourceConfig.VolumeKmsKeyId``: "You can't request a VolumeKmsKeyId when using an
instance type with local storage"); the EBS/NVMe split below follows the EC2 instance store
documentation (the ``d`` variants, g4dn, g5, g6, g6e, p4d, p5, trn1 have local NVMe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mlops_templates import config
from mlops_templates.errors import ConfigError

SOURCE = "mlops.yaml"
SUBNET = "subnet-0123456789abcdef0"
SG = "sg-0123456789abcdef0"
PRINCIPAL = "arn:aws:iam::111122223333:role/SageMakerStudioExecutionRole"


@dataclass(frozen=True)
class Rule:
    """``path`` = ``accepted`` parses; ``path`` = ``refused`` fails naming ``field``."""

    name: str
    path: str
    accepted: Any
    refused: Any
    context: dict[str, Any] = field(default_factory=dict)
    #: Where the error is reported; ``path`` by default.
    field: str | None = None
    #: Words the error must contain (the fields a cross-field rule compares, the rule).
    says: tuple[str, ...] = ()
    #: Whole documents, where the two values differ by more than ``path``.
    accepted_doc: dict[str, Any] | None = None
    refused_doc: dict[str, Any] | None = None


def nest(path: str, value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(path.split(".")):
        node = {part: node}
    return node


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def prd(**settings: Any) -> dict[str, Any]:
    return {"endpoints": {"prd": settings}}


ALL_AT_ONCE_SMALL = prd(
    instance_count=1, deployment={"type": "all_at_once"},
    autoscaling={"min_capacity": 1, "max_capacity": 2},
)
WITH_SG = {"network": {"security_group_ids": [SG]}}
WITH_SUBNET = {"network": {"subnet_ids": [SUBNET]}}
CODECOMMIT = {"pipeline": {"source": {"provider": "codecommit"}}}


def subnets(n: int) -> list[str]:
    return [f"subnet-{i:017x}" for i in range(n)]


def sgs(n: int) -> list[str]:
    return [f"sg-{i:017x}" for i in range(n)]


R = Rule
RULES = [
    # ---------------------------------------------------------------- project
    R("name-shortest", "project.name", "ab", "a"),
    R("name-longest", "project.name", "a" * 20, "a" * 21),
    R("name-starts-with-a-letter", "project.name", "a1", "1a"),
    R("name-ends-without-hyphen", "project.name", "a-b", "ab-"),
    R("name-lower-case", "project.name", "abalone", "Abalone"),
    R("name-no-underscore", "project.name", "aba-lone", "aba_lone"),
    R("prefix-shortest", "project.prefix", "ml", "m"),
    R("prefix-longest", "project.prefix", "p" * 20, "p" * 21),
    R("prefix-starts-with-a-letter", "project.prefix", "m1", "1m"),
    R("prefix-ends-without-hyphen", "project.prefix", "m-l", "ml-"),
    R("prefix-lower-case", "project.prefix", "mlops", "MLOps"),
    # prefix + "-" + name must leave room for the longest SageMaker job name (63 chars).
    R("prefix-and-name-fit-job-names", "project.prefix", "abcdefgh", "abcdefghi",
      context={"project": {"name": "n" * 20}}, field="(top level)",
      says=("project.prefix/project.name", "SageMaker job names")),
    R("region-pattern", "project.region", "eu-west-1", "eu-west-10"),
    R("region-in-image-table", "project.region", "us-east-2", "xx-east-1",
      says=("no SageMaker image table entry",)),
    R("tag-key-longest", "project.tags", {"k" * 128: "v"}, {"k" * 129: "v"}),
    R("tag-key-not-empty", "project.tags", {"k": "v"}, {"": "v"}),
    R("tag-value-longest", "project.tags", {"k": "v" * 256}, {"k": "v" * 257}),
    R("tag-key-not-aws-reserved", "project.tags", {"awsx": "v"}, {"aws:owner": "v"},
      says=("reserved 'aws:' prefix",)),
    R("tag-key-not-aws-reserved-any-case", "project.tags", {"aws-owner": "v"}, {"AWS:owner": "v"},
      says=("reserved 'aws:' prefix",)),
    # ---------------------------------------------------------------- network
    R("subnet-id-shortest", "network.subnet_ids", ["subnet-01234567"], ["subnet-0123456"],
      context=WITH_SG, field="network.subnet_ids.0"),
    R("subnet-id-longest", "network.subnet_ids", ["subnet-" + "a" * 17], ["subnet-" + "a" * 18],
      context=WITH_SG, field="network.subnet_ids.0"),
    R("subnet-id-hex", "network.subnet_ids", ["subnet-0123abcd"], ["subnet-0123abcg"],
      context=WITH_SG, field="network.subnet_ids.0"),
    R("subnets-at-most-16", "network.subnet_ids", subnets(16), subnets(17), context=WITH_SG),
    R("security-group-id-shortest", "network.security_group_ids", ["sg-01234567"], ["sg-0123456"],
      context=WITH_SUBNET, field="network.security_group_ids.0"),
    R("security-group-id-longest", "network.security_group_ids", ["sg-" + "b" * 17], ["sg-" + "b" * 18],
      context=WITH_SUBNET, field="network.security_group_ids.0"),
    R("security-groups-at-most-5", "network.security_group_ids", sgs(5), sgs(6), context=WITH_SUBNET),
    R("subnets-need-security-groups", "network.subnet_ids", [], [SUBNET], field="network",
      says=("subnet_ids and security_group_ids",)),
    R("security-groups-need-subnets", "network.security_group_ids", [], [SG], field="network",
      says=("subnet_ids and security_group_ids",)),
    R("create-vpc-excludes-subnets", "network.create_vpc", False, True,
      context={"network": {"subnet_ids": [SUBNET], "security_group_ids": [SG]}}, field="network",
      says=("create_vpc", "subnet_ids")),
    R("vpc-id-pattern", "network.vpc_id", "vpc-01234567", "vpc-0123456",
      context={"network": {"subnet_ids": [SUBNET], "security_group_ids": [SG]}}),
    R("vpc-id-needs-subnets", "network.vpc_id", "vpc-01234567", "vpc-01234567",
      field="network", says=("vpc_id", "subnet_ids"),
      accepted_doc={"network": {"vpc_id": "vpc-01234567", "subnet_ids": [SUBNET],
                                "security_group_ids": [SG]}},
      refused_doc={"network": {"vpc_id": "vpc-01234567"}}),
    # ---------------------------------------------------------------- endpoints.dev
    R("dev-instance-count-least", "endpoints.dev.instance_count", 1, 0),
    R("dev-instance-count-most", "endpoints.dev.instance_count", 10, 11),
    R("dev-instance-ebs-not-nvme", "endpoints.dev.instance_type", "ml.m5.large", "ml.m5d.large",
      says=("local NVMe",)),
    R("dev-instance-c5-not-c5d", "endpoints.dev.instance_type", "ml.c5.xlarge", "ml.c5d.xlarge",
      says=("local NVMe",)),
    R("dev-instance-p3-not-g5", "endpoints.dev.instance_type", "ml.p3.2xlarge", "ml.g5.xlarge",
      says=("local NVMe",)),
    R("dev-instance-inf2-not-trn1", "endpoints.dev.instance_type", "ml.inf2.xlarge", "ml.trn1.2xlarge",
      says=("local NVMe",)),
    R("dev-instance-format", "endpoints.dev.instance_type", "ml.m5.large", "m5.large",
      says=("must look like 'ml.<family>.<size>'",)),
    R("dev-instance-family-known", "endpoints.dev.instance_type", "ml.m5.large", "ml.m5x.large",
      says=("unknown instance family 'm5x'",)),
    R("dev-instance-size-known", "endpoints.dev.instance_type", "ml.m5.48xlarge", "ml.m5.64xlarge",
      says=("unknown instance size '64xlarge'",)),
    # ---------------------------------------------------------------- endpoints.prd
    R("prd-instance-ebs-not-nvme", "endpoints.prd.instance_type", "ml.r5.large", "ml.r5d.large",
      says=("local NVMe",)),
    R("prd-instance-g4dn-refused", "endpoints.prd.instance_type", "ml.c5.large", "ml.g4dn.xlarge",
      says=("local NVMe",)),
    R("prd-instance-p4d-refused", "endpoints.prd.instance_type", "ml.p3.8xlarge", "ml.p4d.24xlarge",
      says=("local NVMe",)),
    R("prd-canary-needs-three-instances", "endpoints.prd.instance_count", 3, 2,
      context=prd(autoscaling={"min_capacity": 1}), field="endpoints.prd",
      says=("canary deployment needs instance_count >= 3",)),
    R("prd-linear-needs-three-instances", "endpoints.prd.instance_count", 3, 2,
      context=prd(deployment={"type": "linear"}, autoscaling={"min_capacity": 1}),
      field="endpoints.prd", says=("linear deployment needs instance_count >= 3",)),
    R("prd-all-at-once-instance-count-least", "endpoints.prd.instance_count", 1, 0,
      context=ALL_AT_ONCE_SMALL),
    R("prd-instance-count-most", "endpoints.prd.instance_count", 100, 101,
      context=prd(autoscaling={"max_capacity": 100})),
    R("prd-instance-count-within-max-capacity", "endpoints.prd.instance_count", 6, 7,
      field="endpoints.prd", says=("instance_count (7)", "min_capacity..max_capacity")),
    R("prd-instance-count-within-min-capacity", "endpoints.prd.instance_count", 4, 3,
      context=prd(autoscaling={"min_capacity": 4, "max_capacity": 8}), field="endpoints.prd",
      says=("instance_count (3)", "min_capacity..max_capacity")),
    R("prd-capture-percentage-least", "endpoints.prd.data_capture_sampling_percentage", 1, 0),
    R("prd-capture-percentage-most", "endpoints.prd.data_capture_sampling_percentage", 100, 101),
    R("prd-max-5xx-least", "endpoints.prd.max_5xx_errors", 1, 0),
    R("prd-max-5xx-most", "endpoints.prd.max_5xx_errors", 100000, 100001),
    R("prd-max-latency-least", "endpoints.prd.max_model_latency_ms", 1, 0),
    R("prd-max-latency-most", "endpoints.prd.max_model_latency_ms", 600000, 600001),
    # deployment guardrails
    R("deployment-type", "endpoints.prd.deployment.type", "linear", "blue_green"),
    R("traffic-percent-least", "endpoints.prd.deployment.traffic_percent", 1, 0),
    R("traffic-percent-most", "endpoints.prd.deployment.traffic_percent", 50, 51),
    R("linear-step-at-least-10", "endpoints.prd.deployment.traffic_percent", 10, 9,
      context=prd(deployment={"type": "linear"}), field="endpoints.prd.deployment",
      says=("traffic_percent 9", "LinearStepSize")),
    R("wait-interval-least", "endpoints.prd.deployment.wait_interval_seconds", 0, -1),
    R("wait-interval-most", "endpoints.prd.deployment.wait_interval_seconds", 3600, 3601),
    R("termination-wait-least", "endpoints.prd.deployment.termination_wait_seconds", 0, -1),
    R("termination-wait-most", "endpoints.prd.deployment.termination_wait_seconds", 3600, 3601),
    R("deployment-timeout-least", "endpoints.prd.deployment.maximum_execution_timeout_seconds", 600, 599),
    R("deployment-timeout-most", "endpoints.prd.deployment.maximum_execution_timeout_seconds", 14400, 14401),
    # auto-scaling
    R("min-capacity-least", "endpoints.prd.autoscaling.min_capacity", 1, 0),
    R("min-capacity-most", "endpoints.prd.autoscaling.min_capacity", 100, 101,
      context=prd(instance_count=100, autoscaling={"max_capacity": 100})),
    R("max-capacity-least", "endpoints.prd.autoscaling.max_capacity", 1, 0,
      context=prd(instance_count=1, deployment={"type": "all_at_once"}, autoscaling={"min_capacity": 1})),
    R("max-capacity-most", "endpoints.prd.autoscaling.max_capacity", 100, 101),
    R("min-capacity-not-above-max", "endpoints.prd.autoscaling.min_capacity", 6, 7,
      context=prd(instance_count=6, autoscaling={"max_capacity": 6}),
      field="endpoints.prd.autoscaling", says=("min_capacity (7)", "max_capacity (6)")),
    R("target-invocations-least", "endpoints.prd.autoscaling.target_invocations_per_instance", 1, 0),
    R("target-invocations-most", "endpoints.prd.autoscaling.target_invocations_per_instance", 100000, 100001),
    R("scale-in-cooldown-least", "endpoints.prd.autoscaling.scale_in_cooldown_seconds", 0, -1),
    R("scale-in-cooldown-most", "endpoints.prd.autoscaling.scale_in_cooldown_seconds", 3600, 3601),
    R("scale-out-cooldown-least", "endpoints.prd.autoscaling.scale_out_cooldown_seconds", 0, -1),
    R("scale-out-cooldown-most", "endpoints.prd.autoscaling.scale_out_cooldown_seconds", 3600, 3601),
    # ---------------------------------------------------------------- monitoring
    R("monitor-instance-ebs-not-nvme", "monitoring.instance_type", "ml.m5.xlarge", "ml.m5d.xlarge",
      says=("local NVMe",)),
    R("monitor-volume-least", "monitoring.volume_size_gb", 1, 0),
    R("monitor-volume-most", "monitoring.volume_size_gb", 512, 513),
    R("monitor-runtime-least", "monitoring.max_runtime_seconds", 60, 59),
    R("monitor-runtime-most", "monitoring.max_runtime_seconds", 3600, 3601),
    R("drift-violations-least", "monitoring.drift_violations_threshold", 1, 0),
    R("drift-violations-most", "monitoring.drift_violations_threshold", 1000, 1001),
    R("drift-features-not-empty", "monitoring.drift_features", ["length"], []),
    R("drift-features-at-most-10", "monitoring.drift_features",
      [f"f{i}" for i in range(10)], [f"f{i}" for i in range(11)]),
    R("drift-feature-name-longest", "monitoring.drift_features", ["a" * 64], ["a" * 65],
      field="monitoring.drift_features.0"),
    R("drift-feature-name-characters", "monitoring.drift_features", ["shell_weight.v-2"], ["shell weight"],
      field="monitoring.drift_features.0"),
    R("drift-features-unique", "monitoring.drift_features", ["length", "height"], ["length", "length"],
      says=("must be unique",)),
    R("drift-distance-above-zero", "monitoring.drift_distance_threshold", 0.0001, 0),
    R("drift-distance-most", "monitoring.drift_distance_threshold", 1, 1.0001),
    R("monitor-schedule-allowed", "monitoring.schedule_expression", "cron(0 */6 ? * * *)",
      "cron(0 */2 ? * * *)"),
    R("monitor-engine", "monitoring.engine", "model_monitor", "clarify"),
    R("drift-min-rows-least", "monitoring.drift_min_rows", 1, 0),
    R("drift-min-rows-most", "monitoring.drift_min_rows", 10_000_000, 10_000_001),
    R("ground-truth-lookback-least", "monitoring.ground_truth_lookback_hours", 1, 0),
    R("ground-truth-lookback-a-week", "monitoring.ground_truth_lookback_hours", 168, 169),
    R("quality-metric", "monitoring.quality.metric", "r2", "mape"),
    R("quality-operator", "monitoring.quality.operator", "<=", "=="),
    R("quality-min-rows-least", "monitoring.quality.min_rows", 1, 0),
    R("quality-min-rows-most", "monitoring.quality.min_rows", 100000, 100001),
    # ---------------------------------------------------------------- api
    R("api-auth-never-open", "api.auth", "api_key", "none"),
    R("ip-allow-list-cidr", "api.ip_allow_list", ["10.0.0.0/8"], ["10.0.0.0"], field="api.ip_allow_list.0"),
    R("ip-allow-list-at-most-50", "api.ip_allow_list",
      [f"10.0.{i}.0/24" for i in range(50)], [f"10.0.{i}.0/24" for i in range(51)]),
    R("api-deployment-preference", "api.deployment_preference", "Canary10Percent30Minutes",
      "Canary10Percent1Minute"),
    R("throttle-rate-above-zero", "api.throttle.rate_limit", 0.01, 0),
    R("throttle-rate-most", "api.throttle.rate_limit", 10000, 10000.01),
    R("throttle-burst-least", "api.throttle.burst_limit", 1, 0),
    R("throttle-burst-most", "api.throttle.burst_limit", 5000, 5001),
    R("quota-least", "api.quota_per_day", 1, 0),
    R("api-memory-least", "api.memory_mb", 128, 127),
    R("api-memory-most", "api.memory_mb", 10240, 10241),
    R("api-timeout-least", "api.timeout_seconds", 1, 0),
    R("api-timeout-below-api-gateway", "api.timeout_seconds", 29, 30),
    R("api-log-retention-allowed", "api.log_retention_days", 3653, 3654),
    R("stage-name-longest", "api.stage_name", "s" * 64, "s" * 65),
    R("stage-name-characters", "api.stage_name", "prod_v2", "prod-v2"),
    # ---------------------------------------------------------------- training
    R("training-image", "training.image", "xgboost", "sklearn"),
    R("xgboost-version-in-image-table", "training.xgboost_version", "3.0-5", "0.90-1",
      says=("not in the image table",)),
    R("training-instance-local-nvme-allowed", "training.instance_type", "ml.g5.xlarge", "ml.g5x.xlarge",
      says=("unknown instance family",)),
    R("training-instance-count-least", "training.instance_count", 1, 0),
    R("training-instance-count-most", "training.instance_count", 20, 21),
    R("training-volume-least", "training.volume_size_gb", 1, 0),
    R("training-volume-most", "training.volume_size_gb", 16384, 16385),
    R("training-runtime-least", "training.max_runtime_seconds", 60, 59),
    R("training-runtime-most", "training.max_runtime_seconds", 432000, 432001),
    R("spot-wait-least", "training.max_wait_seconds", 60, 59, context={"training": {"max_runtime_seconds": 60}}),
    R("spot-wait-most", "training.max_wait_seconds", 432000, 432001),
    R("spot-wait-not-below-runtime", "training.max_wait_seconds", 3600, 3599,
      context={"training": {"use_spot": True, "max_runtime_seconds": 3600}}, field="training",
      says=("max_wait_seconds (3599) must be >= max_runtime_seconds (3600)",)),
    R("spot-rule-only-with-spot", "training.use_spot", False, True,
      context={"training": {"max_runtime_seconds": 3600, "max_wait_seconds": 3599}}, field="training",
      says=("max_wait_seconds", "max_runtime_seconds")),
    R("processing-instance-format", "training.processing_instance_type", "ml.m5.xlarge", "ml.m5.xl",
      says=("unknown instance size 'xl'",)),
    R("hyperparameter-values-scalar", "training.hyperparameters", {"max_depth": 3}, {"max_depth": [3]},
      field="training.hyperparameters.max_depth"),
    R("tuning-strategy", "training.tuning.strategy", "Random", "Grid"),
    R("tuning-objective-is-the-validation-metric", "training.tuning.objective_metric",
      "validation:rmse", "train:rmse"),
    R("tuning-early-stopping", "training.tuning.early_stopping", "Auto", "On"),
    R("tuning-jobs-least", "training.tuning.max_jobs", 1, 0,
      context={"training": {"tuning": {"max_parallel_jobs": 1}}}),
    R("tuning-jobs-most", "training.tuning.max_jobs", 500, 501),
    R("tuning-parallel-least", "training.tuning.max_parallel_jobs", 1, 0),
    R("tuning-parallel-most", "training.tuning.max_parallel_jobs", 100, 101,
      context={"training": {"tuning": {"max_jobs": 100}}}),
    R("tuning-parallel-not-above-jobs", "training.tuning.max_parallel_jobs", 4, 5,
      context={"training": {"tuning": {"max_jobs": 4}}}, field="training.tuning",
      says=("max_parallel_jobs (5) must not exceed max_jobs (4)",)),
    R("tuning-range-within-the-container-rule", "training.tuning.ranges.eta.max", 1, 1.01,
      context={"training": {"tuning": {"ranges": {"eta": {"type": "continuous", "min": 0.01}}}}},
      field="training.tuning",
      says=("ranges.eta.max: 1.01 is not a number in (0, 1]", "the container's rule for eta")),
    R("tuning-ranges-least", "training.tuning.ranges.eta.min", 0.01, None,
      context={"training": {"tuning": {"ranges": {"eta": {"type": "continuous", "max": 0.3}}}}},
      refused_doc={"training": {"tuning": {"ranges": {}}}}, field="training.tuning.ranges",
      says=("at least 1 item",)),
    R("gate-metric", "training.gate.metric", "r2", "mse"),
    R("gate-operator", "training.gate.operator", ">=", "=="),
    R("model-approval-status", "training.model_approval_status", "Approved", "Rejected"),
    # ---------------------------------------------------------------- pipeline
    R("source-provider", "pipeline.source.provider", "codecommit", "github"),
    R("connection-arn-service", "pipeline.source.connection_arn",
      "arn:aws:codestar-connections:us-east-1:111122223333:connection/x",
      "arn:aws:codestar:us-east-1:111122223333:connection/x"),
    R("codeconnections-repository-owner-repo", "pipeline.source.repository", "owner/repo", "repo",
      field="pipeline.source", says=("must be 'owner/repo'",)),
    R("codecommit-repository-one-level", "pipeline.source.repository", "repo", "a/b/c",
      context=CODECOMMIT),
    R("branch-not-empty", "pipeline.source.branch", "b", ""),
    R("branch-longest", "pipeline.source.branch", "b" * 255, "b" * 256),
    R("retrain-schedule-expression", "pipeline.retrain_schedule", "rate(1 day)", "rate()"),
    R("retrain-on-known-alarms", "pipeline.retrain_on", ["quality"], ["latency"], field="pipeline.retrain_on.0"),
    R("retrain-on-each-alarm-once", "pipeline.retrain_on", ["drift", "quality"], ["drift", "drift"],
      says=("names an alarm twice",)),
    R("retrain-on-drift-moved", "pipeline.retrain_on", [], [], field="pipeline",
      says=("retrain_on_drift became retrain_on",),
      refused_doc={"pipeline": {"retrain_on_drift": False}}),
    R("retrain-schedule-rate-or-cron", "pipeline.retrain_schedule", "cron(0 3 ? * MON *)", "daily"),
    R("codebuild-compute-type", "pipeline.codebuild_compute_type", "BUILD_GENERAL1_LARGE",
      "BUILD_GENERAL1_2XLARGE"),
    R("data-prefix-ends-with-slash", "pipeline.data_prefix", "training/", "training"),
    R("data-prefix-characters", "pipeline.data_prefix", "a_b.c-d/", "a b/"),
    R("pipeline-log-retention-allowed", "pipeline.log_retention_days", 30, 31),
    # ---------------------------------------------------------------- deployment, batch
    R("deployment-mode", "deployment.mode", "both", "stream"),
    R("batch-input-prefix-ends-with-slash", "batch.input_prefix", "in/", "in"),
    R("batch-output-not-under-input", "batch.output_prefix", "out/", "batch/input/out/", field="batch",
      says=("batch.input_prefix 'batch/input/'", "batch.output_prefix 'batch/input/out/'")),
    R("batch-ground-truth-not-under-input", "batch.ground_truth_prefix", "labels/", "batch/input/labels/",
      field="batch", says=("ground_truth_prefix",)),
    R("batch-prefix-apart-from-training-data", "batch.input_prefix", "in/", "training/in/",
      context={"deployment": {"mode": "batch"}}, field="(top level)", says=("pipeline.data_prefix",)),
    R("batch-schedule-expression", "batch.schedule_expression", "rate(1 day)", "daily"),
    R("batch-instance-type-kms-volume", "batch.instance_type", "ml.c5.xlarge", "ml.m5d.xlarge"),
    R("batch-instance-count-least", "batch.instance_count", 1, 0),
    R("batch-instance-count-most", "batch.instance_count", 100, 101),
    R("batch-runtime-least", "batch.max_runtime_seconds", 60, 59),
    R("batch-runtime-most", "batch.max_runtime_seconds", 86400, 86401),
    # ---------------------------------------------------------------- pipeline.ci (OIDC trust)
    R("orchestrator", "pipeline.orchestrator", "gitlab", "jenkins"),
    R("ci-repository-has-an-owner", "pipeline.ci.repository", "group/sub/project", "project"),
    R("ci-repository-longest", "pipeline.ci.repository", "g/" + "p" * 253, "g/" + "p" * 254),
    R("ci-repository-characters", "pipeline.ci.repository", "org/repo.name_x-1", "org/repo*"),
    R("ci-environment-characters", "pipeline.ci.environment", "prod_eu-1.a", "prod eu"),
    R("ci-environment-longest", "pipeline.ci.environment", "e" * 255, "e" * 256),
    R("ci-owner-id-least", "pipeline.ci.owner_id", 1, 0, context=nest("pipeline.ci.repository_id", 1)),
    R("ci-repository-id-least", "pipeline.ci.repository_id", 1, 0, context=nest("pipeline.ci.owner_id", 1)),
    # The immutable subject claim carries both IDs.
    R("ci-ids-together", "pipeline.ci.owner_id", 1, 1, field="pipeline.ci", says=("given together",),
      accepted_doc=nest("pipeline.ci", {"owner_id": 1, "repository_id": 2}),
      refused_doc=nest("pipeline.ci", {"owner_id": 1})),
    R("gitlab-url-https", "pipeline.ci.gitlab_url", "https://gitlab.example.com", "http://gitlab.example.com"),
    R("gitlab-url-no-trailing-slash", "pipeline.ci.gitlab_url", "https://gitlab.com", "https://gitlab.com/"),
    R("ci-audience-characters", "pipeline.ci.audience", "sts.amazonaws.com", "sts amazonaws.com"),
    R("ci-audience-longest", "pipeline.ci.audience", "a" * 255, "a" * 256),
    R("oidc-provider-arn-pattern", "pipeline.ci.oidc_provider_arn",
      "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com",
      "arn:aws:iam::111122223333:saml-provider/token.actions.githubusercontent.com"),
    # A configured provider must be the issuer's: the trust policy's keys are its host's.
    R("oidc-provider-arn-is-the-issuers", "pipeline.ci.oidc_provider_arn",
      "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com",
      "arn:aws:iam::111122223333:oidc-provider/gitlab.com",
      context=nest("pipeline.orchestrator", "github"), field="pipeline", says=("is not the provider of",)),
    # The branch is matched exactly by the OIDC subject and the workflow's branch filter.
    R("ci-branch-exact", "pipeline.source.branch", "release/v1.2_x-y", "release/*",
      context=nest("pipeline.orchestrator", "gitlab"), field="pipeline", says=("matched exactly",)),
    R("ci-github-repository-owner-repo", "pipeline.ci.repository", "owner/repo", "group/sub/repo",
      context=nest("pipeline.orchestrator", "github"), field="pipeline", says=("must be 'owner/repo'",)),
    # ---------------------------------------------------------------- studio
    R("portfolio-name-not-empty", "studio.portfolio_name", "p", ""),
    R("portfolio-name-longest", "studio.portfolio_name", "p" * 100, "p" * 101),
    R("product-name-longest", "studio.product_name", "p" * 100, "p" * 101),
    R("provider-name-longest", "studio.provider_name", "p" * 50, "p" * 51),
    R("product-version", "studio.product_version", "1.0.0", "v1"),
    R("principals-at-least-one", "studio.principal_arns", [PRINCIPAL], []),
    R("principals-at-most-20", "studio.principal_arns", [PRINCIPAL] * 20, [PRINCIPAL] * 21),
    R("principal-is-an-arn", "studio.principal_arns", [PRINCIPAL], ["role/SageMakerStudioExecutionRole"],
      field="studio.principal_arns.0"),
    R("publish-mode-known", "studio.publish_mode", "s3", "ftp"),
    R("s3-readers-are-roles", "studio.principal_arns", [PRINCIPAL], ["arn:aws:iam::111122223333:user/alice"],
      context=nest("studio.publish_mode", "s3"), field="studio", says=("is not an IAM role ARN",)),
    # After "role/": the path without its leading "/" (a path is at most 512 characters)
    # and the name (at most 64): 575 characters (IAM API Reference, CreateRole).
    R("s3-reader-role-longest-path", "studio.principal_arns",
      ["arn:aws:iam::111122223333:role/" + "p/" * 255 + "r" * 65], ["arn:aws:iam::111122223333:role/" + "p/" * 255 + "r" * 66],
      context=nest("studio.publish_mode", "s3"), field="studio", says=("is not an IAM role ARN",)),
    R("studio-logging-role-moved", "account.api_gateway_logging_role", True, True,
      field="studio", says=("moved to account.api_gateway_logging_role",),
      refused_doc={"studio": {"api_gateway_logging_role": True}}),
    # ---------------------------------------------------------------- notifications
    R("notification-event-known", "notifications.messages", {"drift": "Drift: {reason}"},
      {"drifted": "Drift"}, field="notifications.messages.drifted"),
    R("notification-placeholders-known", "notifications.messages", {"gate_failed": "{run_id}: {value}"},
      {"gate_failed": "{run}: {value}"}, says=("unknown placeholder", "{run_id}")),
    R("notification-no-angle-brackets-for-eventbridge", "notifications.messages",
      {"quality_breach": "{rule} breached"}, {"quality_breach": "rmse > 3"}, says=("without < or >",)),
    R("notification-text-longest", "notifications.messages", {"drift": "d" * 1000}, {"drift": "d" * 1001},
      field="notifications.messages.drift"),
    # ---------------------------------------------------------------- account, parameters
    R("account-logging-role-boolean", "account.api_gateway_logging_role", False, "maybe"),
    R("parameters-stack-known", "parameters", {"deploy-prd": {}}, {"deploy-prod": {}},
      field="parameters.deploy-prod"),
    R("parameter-name-longest", "parameters.workflow", {"P" * 255: "v"}, {"P" * 256: "v"},
      field="parameters.workflow"),
    R("parameter-name-characters", "parameters.workflow", {"KmsKeyArn": "v"}, {"Kms-Key": "v"},
      field="parameters.workflow.Kms-Key"),
    R("unknown-setting", "endpoints.prd.max_model_latency_ms", 500, 500,
      field="endpoints.prd.max_latency_ms", says=("unknown setting",),
      refused_doc={"endpoints": {"prd": {"max_latency_ms": 500}}}),
]


def document(rule: Rule, accepted: bool) -> dict[str, Any]:
    whole = rule.accepted_doc if accepted else rule.refused_doc
    if whole is not None:
        return whole
    return merge(rule.context, nest(rule.path, rule.accepted if accepted else rule.refused))


def attribute(cfg: config.Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_last_value_a_config_rule_accepts(rule: Rule) -> None:
    cfg = config.parse(document(rule, True), SOURCE)
    value = attribute(cfg, rule.path)
    expected = rule.accepted
    if isinstance(value, (list, tuple)):
        value = list(value)
    assert value == expected


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_first_value_a_config_rule_refuses_names_the_field(rule: Rule) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(document(rule, False), SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: invalid configuration\n")
    where = rule.field or rule.path
    lines = message.splitlines()[1:]
    assert any(line.startswith(f"  {where}") for line in lines), message
    for words in rule.says:
        assert words in message, message


def test_every_constrained_setting_has_a_boundary_row() -> None:
    """A new constrained setting of config.py needs its row here (the table is the spec).

    Constrained: a bound or pattern (field metadata, ``Annotated`` constraints), a closed
    set of values (``Literal``), or a field validator. Booleans, free text and unbounded
    numbers have no boundary to test."""
    from pydantic import BaseModel

    constrained: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        validated = {
            name
            for decorator in model.__pydantic_decorators__.field_validators.values()
            for name in decorator.info.fields
        }
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{path}.")
            elif info.metadata or name in validated or any(
                word in str(annotation) for word in ("Literal", "Annotated")
            ):
                constrained.add(path)

    walk(config.Config, "")
    assert len(constrained) >= 60, sorted(constrained)
    covered = {r.path for r in RULES} | {r.field for r in RULES if r.field}
    missing = sorted(constrained - covered)
    assert not missing, f"add boundary rows for: {missing}"
