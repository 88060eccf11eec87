"""The config file: defaults, and a clear message naming field, value and rule for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_templates import config, naming
from mlops_templates.errors import ConfigError


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse(data, "mlops.yaml")
    return str(info.value)


def test_empty_config_is_valid_with_defaults() -> None:
    cfg = config.parse(None)
    assert cfg.project.prefix == "mlops"
    assert cfg.endpoints.prd.deployment.type == "canary"
    assert cfg.api.auth == "iam"
    assert cfg.training.gate.metric == "rmse"


def test_example_config_is_valid(example_config: config.Config) -> None:
    assert naming.base(example_config) == "mlops-abalone"


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        (
            {"endpoints": {"prd": {"instance_count": 2, "autoscaling": {"min_capacity": 1}}}},
            "endpoints.prd",
            "a canary deployment needs instance_count >= 3",
        ),
        (
            {"endpoints": {"dev": {"instance_type": "ml.m5x.large"}}},
            "endpoints.dev.instance_type",
            "unknown instance family 'm5x'",
        ),
        (
            {"endpoints": {"dev": {"instance_type": "m5.large"}}},
            "endpoints.dev.instance_type",
            "must look like 'ml.<family>.<size>'",
        ),
        ({"project": {"name": "Abalone"}}, "project.name", "should match pattern"),
        ({"project": {"region": "xx-east-1"}}, "project.region", "has no SageMaker image table entry"),
        ({"project": {"tags": {"aws:owner": "me"}}}, "project.tags", "reserved 'aws:' prefix"),
        ({"endpints": {}}, "endpints", "unknown setting"),
        (
            {"training": {"use_spot": True, "max_runtime_seconds": 7200, "max_wait_seconds": 3600}},
            "training",
            "max_wait_seconds (3600) must be >= max_runtime_seconds (7200)",
        ),
        (
            {"network": {"subnet_ids": ["subnet-0123456789abcdef0"]}},
            "network",
            "must be given together",
        ),
        ({"training": {"xgboost_version": "0.90-1"}}, "training.xgboost_version", "not in the image table"),
        (
            {"endpoints": {"prd": {"autoscaling": {"min_capacity": 5, "max_capacity": 4}}}},
            "endpoints.prd.autoscaling",
            "must not exceed",
        ),
        ({"parameters": {"deploy-prod": {}}}, "parameters.deploy-prod", "Input should be"),
    ],
)
def test_invalid_values_name_field_and_rule(data: dict, field: str, rule: str) -> None:
    message = error_of(data)
    assert message.startswith("mlops.yaml: invalid configuration")
    assert f"  {field}" in message
    assert rule in message


def test_error_shows_the_offending_value() -> None:
    assert "(got 'ml.m5x.large')" in error_of({"endpoints": {"dev": {"instance_type": "ml.m5x.large"}}})


def test_names_over_aws_limits_fail_before_any_build() -> None:
    message = error_of({"project": {"prefix": "platform-team-ml", "name": "abalone-age-model"}})
    assert "project.prefix/project.name" in message
    assert "SageMaker job names" in message


def test_all_errors_are_reported_at_once() -> None:
    message = error_of({"project": {"name": "X"}, "api": {"auth": "none"}})
    assert "project.name" in message and "api.auth" in message


def test_load_reports_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config.load(listing)


def test_project_name_override(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("project:\n  name: abalone\n")
    assert config.load(path, project_name="churn").project.name == "churn"
    with pytest.raises(ConfigError, match="project.name"):
        config.load(path, project_name="Bad_Name")


def test_config_is_immutable(example_config: config.Config) -> None:
    with pytest.raises(Exception, match="frozen"):
        example_config.project.name = "other"  # type: ignore[misc]


def test_a_name_outside_the_length_table_is_refused() -> None:
    cfg = config.parse({})
    assert naming.physical_name(cfg, "launch-12") == "mlops-abalone-launch-12"
    assert naming.kind("cloudformation-3") == "iam-policy"
    for component in ("launch-x", "unknown", "prd-drift-2"):
        with pytest.raises(ValueError, match="naming.COMPONENTS has no component"):
            naming.physical_name(cfg, component)


NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,18}[a-z0-9]", fullmatch=True)


@given(prefix=NAMES, name=NAMES)
def test_every_accepted_name_fits_every_aws_limit(prefix: str, name: str) -> None:
    try:
        cfg = config.parse({"project": {"prefix": prefix, "name": name}})
    except ConfigError as err:
        assert "project.prefix/project.name" in str(err)
        return
    for component, limit in naming.COMPONENTS.items():
        component = component.replace("<n>", "99")
        assert len(naming.physical_name(cfg, component)) <= naming.LIMITS[limit]
    # The longest workflow job name: longest run id and step, the most redrives.
    from mlops_templates.stacks import workflow

    step = max(workflow.STEPS, key=len)
    longest_job = naming.job_name_format(cfg, step).format(
        "r" * naming.RUN_ID_MAX_LENGTH,
        "a" * naming.ATTEMPT_ID_LENGTH,
        "9" * naming.REDRIVE_COUNT_MAX_DIGITS,
    )
    assert len(longest_job) <= naming.LIMITS["sagemaker"]


def test_the_default_api_function_timeout_is_within_api_gateways_wait() -> None:
    # API Gateway (REST) waits at most 29 s for an integration by default
    # (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html); a function
    # allowed longer keeps running after the client got the gateway's 504.
    assert config.parse({}).api.timeout_seconds == 29


def test_a_default_outside_its_own_rule_is_refused() -> None:
    # Pydantic skips checking defaults unless told to; the models are told to, so a default
    # that breaks its field's rule fails loudly instead of rendering a template.
    from pydantic import Field

    from mlops_templates.config_base import _Model

    class Broken(_Model):
        seconds: int = Field(default=30, le=29)

    with pytest.raises(ValueError, match="less than or equal to 29"):
        Broken()
