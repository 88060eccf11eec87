"""The config file: defaults, and a clear message naming field, value and rule for bad input."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
# ---------------------------------------------------------------- whole error messages
# The lines a user reads: `<source>: invalid configuration`, then `  <field>: <rule>` with
# ` (got <value>)` when the refused value is not a whole section.

LOCAL_NVME_RULE = (
    "instance family 'm5d' has local NVMe storage, for which SageMaker rejects the "
    "customer-managed KMS volume key that endpoint and monitoring volumes must have; "
    "choose an EBS-backed family (e.g. ml.m5, ml.c5, ml.r5, ml.p3, ml.inf2)"
)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (
            {"endpoints": {"dev": {"instance_type": "m5.large"}}},
            ("  endpoints.dev.instance_type: must look like 'ml.<family>.<size>', "
            "e.g. 'ml.m5.large' (got 'm5.large')"),
        ),
        (
            {"endpoints": {"dev": {"instance_type": "ml.m5d.large"}}},
            f"  endpoints.dev.instance_type: {LOCAL_NVME_RULE} (got 'ml.m5d.large')",
        ),
        (
            {"endpints": {}},
            "  endpints: unknown setting (check the spelling against the config reference)",
        ),
        # A rule over a whole section shows no value: the section is not repeated.
        (
            {"endpoints": {"prd": {"autoscaling": {"min_capacity": 5, "max_capacity": 4}}}},
            "  endpoints.prd.autoscaling: min_capacity (5) must not exceed max_capacity (4)",
        ),
        (
            {"deployment": {"mode": "batch"}, "batch": {"input_prefix": "training/in/"}},
            ("  (top level): batch.input_prefix 'training/in/' and pipeline.data_prefix "
            "'training/' overlap: uploads under the data prefix start a training run; give "
            "batch files their own prefix"),
        ),
        (
            {"deployment": {"mode": "batch"}, "pipeline": {"orchestrator": "github"}},
            ("  (top level): deployment.mode batch: batch inference is deployed by the "
            "CodePipeline (pipeline.orchestrator codepipeline), not by github; use "
            "deployment.mode realtime there"),
        ),
        (
            {"project": {"prefix": "abcdefghi", "name": "n" * 20}},
            ("  (top level): project.prefix/project.name: 'abcdefghi-nnnnnnnnnnnnnnnnnnnn' "
            "leaves too little room for SageMaker job names (<name>-<run id of up to 13>-"
            "<step>-<attempt>-<redrive count> must fit in 63 characters); keep prefix + name "
            "(with the hyphen between) within 29 characters"),
        ),
    ],
)
def test_an_error_line_is_the_field_and_the_whole_rule(data: dict, line: str) -> None:
    assert error_of(data).splitlines() == ["mlops.yaml: invalid configuration", line]


def test_an_unknown_instance_family_lists_the_known_ones() -> None:
    message = error_of({"endpoints": {"dev": {"instance_type": "ml.m5x.large"}}})
    known = message.split("(known: ", 1)[1].split(")", 1)[0].split(", ")
    assert known == sorted(known)
    assert {"c5", "g5", "inf2", "m5", "m5d", "p3", "r5", "t3", "trn1"} <= set(known)


def test_the_source_is_config_unless_named() -> None:
    with pytest.raises(ConfigError) as info:
        config.parse({"project": {"name": "X"}})
    assert str(info.value).startswith("config: invalid configuration\n  project.name:")
    with pytest.raises(ConfigError) as info:
        config.parse(["a", "b"])  # type: ignore[arg-type]
    assert str(info.value) == "config: the top level must be a mapping, got list"


# ---------------------------------------------------------------- load and its overrides


def test_an_error_of_a_loaded_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("project:\n  name: X\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: invalid configuration\n  project.name:")


def test_the_project_name_override_keeps_the_other_project_settings(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("project:\n  prefix: acme\n  name: abalone\n  tags:\n    team: ml\n")
    cfg = config.load(path, project_name="churn")
    assert (cfg.project.prefix, cfg.project.name, cfg.project.tags) == ("acme", "churn", {"team": "ml"})


def test_the_publish_mode_override_keeps_the_other_studio_settings(tmp_path: Path) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text("studio:\n  portfolio_name: Team models\n  publish_mode: service_catalog\n")
    cfg = config.load(path, publish_mode="s3")
    assert (cfg.studio.publish_mode, cfg.studio.portfolio_name) == ("s3", "Team models")
    assert config.load(path).studio.publish_mode == "service_catalog"


def test_the_overrides_apply_to_an_empty_file(tmp_path: Path) -> None:
    """An empty file is a valid config: the Studio project's name still names its stacks."""
    path = tmp_path / "mlops.yaml"
    path.write_text("")
    assert config.load(path, project_name="churn").project.name == "churn"
    assert config.load(path, publish_mode="s3").studio.publish_mode == "s3"
    cfg = config.load(path, publish_mode="s3", project_name="churn")
    assert (cfg.studio.publish_mode, cfg.project.name) == ("s3", "churn")
    with pytest.raises(ConfigError, match=r"studio.publish_mode: Input should be"):
        config.load(path, publish_mode="ftp")


def test_the_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """A POSIX-locale shell (a minimal container, a CI runner) must still read a config
    with non-ASCII text; Python there defaults to ASCII unless told the encoding."""
    import os
    import subprocess
    import sys

    path = tmp_path / "mlops.yaml"
    path.write_text("studio:\n  provider_name: Équipe données\n", encoding="utf-8")
    package_root = Path(config.__file__).resolve().parent.parent
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
           "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "utf-8",
           "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    code = (
        "import locale, sys; from mlops_templates import config; "
        "print(locale.getpreferredencoding(False)); "
        "print(config.load(sys.argv[1]).studio.provider_name)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                         text=True, encoding="utf-8", check=True).stdout.splitlines()
    assert out[0].lower() not in ("utf-8", "utf8"), "the child should run with an ASCII locale"
    assert out[1] == "Équipe données"


# ---------------------------------------------------------------- naming: AWS name limits
# The limits below are AWS's (service quotas and API references), written here so the
# test does not lean on naming.LIMITS.
AWS_NAME_LIMITS = {
    "sagemaker": 63, "state-machine": 80, "lambda": 64, "sns": 256, "alarm": 255,
    "iam-role": 64, "codebuild": 150, "codepipeline": 100, "event-rule": 64, "bucket": 63,
    "stack": 128, "iam-policy": 128, "tag": 256, "schedule": 64, "dashboard": 255,
    "tuning-job": 32,
}
OVER_LIMIT = re.compile(
    r"project\.prefix/project\.name: the (\S+) name '(\S+)' is (\d+) characters, "
    r"over the AWS limit of (\d+); shorten the prefix or name"
)


def named(base_length: int) -> SimpleNamespace:
    """What naming reads of a config, with a ``<prefix>-<name>`` of ``base_length``."""
    return SimpleNamespace(project=SimpleNamespace(prefix="p", name="n" * (base_length - 2)))


@pytest.mark.parametrize("component", sorted(naming.COMPONENTS))
def test_a_physical_name_may_reach_its_aws_limit_not_pass_it(component: str) -> None:
    component = component.replace("<n>", "12")
    limit = AWS_NAME_LIMITS[naming.kind(component)]
    fits = named(limit - len(component) - 1)
    assert len(naming.physical_name(fits, component)) == limit
    over = named(limit - len(component))
    with pytest.raises(ConfigError) as info:
        naming.physical_name(over, component)
    match = OVER_LIMIT.fullmatch(str(info.value))
    assert match, str(info.value)
    assert match.groups() == (
        naming.kind(component), f"{naming.base(over)}-{component}", str(limit + 1), str(limit)
    )


def test_check_lengths_names_the_first_name_over_its_limit() -> None:
    """Past the SageMaker job-name rule's 29 characters of ``<prefix>-<name>`` the derived
    names themselves overflow: the refusal names one, its length and its AWS limit."""
    for base_length in range(30, 130):
        cfg = named(base_length)
        with pytest.raises(ConfigError) as info:
            naming.check_lengths(cfg)
        match = OVER_LIMIT.fullmatch(str(info.value))
        if match is None:
            assert "SageMaker job names" in str(info.value), str(info.value)
            continue
        kind, name, length, limit = match.groups()
        component = name.removeprefix(f"{naming.base(cfg)}-")
        assert naming.kind(component) == kind
        assert int(limit) == AWS_NAME_LIMITS[kind] < int(length) == len(name)
    # The longest IAM role name (<base>-prd-monitor-scheduler) passes 64 first, at 43.
    assert "SageMaker job names" in error_text(lambda: naming.check_lengths(named(42)))
    assert OVER_LIMIT.fullmatch(error_text(lambda: naming.check_lengths(named(43))))


def error_text(call: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


def test_numbered_names_are_checked_with_two_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """``<n>`` in a component stands for a number up to 99, and is checked as two digits."""
    monkeypatch.setattr(naming, "COMPONENTS", {"launch-<n>": "sagemaker"})
    # <base>-launch-99 is 63 characters at a base of 53: the next rule (job names) refuses it.
    assert "SageMaker job names" in error_text(lambda: naming.check_lengths(named(53)))
    match = OVER_LIMIT.fullmatch(error_text(lambda: naming.check_lengths(named(54))))
    assert match and match.group(2) == naming.base(named(54)) + "-launch-99"


def test_bucket_names_fit_63_characters_at_the_longest_account_and_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``<base>-<12-digit account>-<region>-<suffix>`` within S3's 63 characters, for the
    longest region name (ap-southeast-2, 14). The job-name rule is stricter today; with it
    out of the way the bucket rule must still hold on its own, exactly at its limit."""
    monkeypatch.setattr(naming, "JOB_NAME_AFTER_BASE", 0)
    room = 63 - len("-111122223333-ap-southeast-2-data")  # 4-letter suffixes: data, logs, tlog
    naming.check_lengths(named(room))
    message = error_text(lambda: naming.check_lengths(named(room + 1)))
    assert message == (
        f"project.prefix/project.name: bucket names '{naming.base(named(room + 1))}-<account>-"
        "<region>-data' can reach 64 characters, over the S3 limit of 63; shorten the prefix "
        "or name"
    )


def test_stack_names_are_the_projects_but_the_account_stack_is_the_prefixs() -> None:
    cfg = config.parse({})
    assert naming.stack_name(cfg, "workflow") == "mlops-abalone-workflow"
    assert naming.stack_name(cfg, "account") == "mlops-account"
    # CloudFormation stack names: 128 characters.
    assert len(naming.stack_name(named(128 - len("-deploy-prd")), "deploy-prd")) == 128
    match = OVER_LIMIT.fullmatch(error_text(lambda: naming.stack_name(named(118), "deploy-prd")))
    assert match and match.group(1, 3, 4) == ("stack", "129", "128")
    assert naming.stack_name(named(200), "account") == "p-account"


def test_bucket_and_job_name_formats() -> None:
    cfg = config.parse({})
    assert naming.bucket_name(cfg, "data") == "mlops-abalone-${AWS::AccountId}-${AWS::Region}-data"
    assert naming.bucket_name(cfg, "tpl") == "mlops-abalone-${AWS::AccountId}-${AWS::Region}-tpl"
    with pytest.raises(ValueError, match="^naming: no bucket suffix 'tmp'$"):
        naming.bucket_name(cfg, "tmp")
    assert naming.batch_name_format(cfg) == "mlops-abalone-batch-{}-{}"
    assert naming.batch_name_format(cfg, "mon") == "mlops-abalone-batch-mon-{}-{}"
    assert naming.monitor_job_name_format(cfg) == "mlops-abalone-mon-{}-{}-{}"
    assert naming.tuning_job_name_format(cfg) == "mlops-abalone-{}-{}"
    assert naming.job_name_format(cfg, "train") == "mlops-abalone-{}-train-{}-{}"


TUNING = {"training": {"tuning": {"enabled": True}}}


def test_tuning_job_names_fit_sagemakers_32_characters() -> None:
    """``<prefix>-<name>-<8 hex attempt>-<redrive count, up to 4 digits>`` within the 32
    characters SageMaker allows a tuning job: 18 characters for ``<prefix>-<name>``."""
    room = 32 - len("-0123abcd-9999")
    cfg = config.parse({"project": {"prefix": "ab", "name": "n" * (room - 3)}, **TUNING})
    assert len(naming.tuning_job_name_format(cfg).format("0123abcd", "9999")) == 32
    # Without tuning, the longer name is fine.
    config.parse({"project": {"prefix": "ab", "name": "n" * (room - 2)}})
    assert error_of({"project": {"prefix": "ab", "name": "n" * (room - 2)}, **TUNING}).splitlines() == [
        "mlops.yaml: invalid configuration",
        ("  (top level): project.prefix/project.name: 'ab-nnnnnnnnnnnnnnnn' leaves too little "
        "room for hyperparameter tuning job names (<name>-<attempt>-<redrive count> must fit "
        "in 32 characters); with training.tuning keep prefix + name (with the hyphen between) "
        "within 18 characters"),
    ]


def test_default_tuning_ranges() -> None:
    """The documented search space of ``training.tuning.ranges`` when none is given."""
    ranges = config.parse({}).training.tuning.ranges
    assert {name: r.model_dump(exclude_defaults=True) for name, r in ranges.items()} == {
        "max_depth": {"type": "integer", "min": 2, "max": 8},
        "eta": {"type": "continuous", "min": 0.01, "max": 0.3, "scaling": "Logarithmic"},
        "min_child_weight": {"type": "continuous", "min": 1, "max": 20},
    }
