"""The development endpoint stack: what it creates, what must never regress, and clean
cfn-lint output for the config variants (tests/test_templates.py covers ``mlops.yaml``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlops_templates import config, lint, render
from mlops_templates.stacks import deploy_dev, endpoint

from .template_checks import assert_parameters_constrained_and_used, referenced
from .variants import variant_config

#: Variants that change the dev template: VPC placement, another region and fleet.
#: Variants that change the dev template: VPC placement, another region and fleet.
VARIANTS = ["api-key-linear-vpc", "short-name"]



def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def dev(example_config: config.Config) -> dict[str, Any]:
    return deploy_dev.build(example_config).to_dict()


def test_creates_model_config_and_named_endpoint(dev: dict[str, Any]) -> None:
    assert {r["Type"] for r in dev["Resources"].values()} == {
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
    }
    (ep,) = _resources(dev, "AWS::SageMaker::Endpoint").values()
    assert ep["Properties"]["EndpointName"] == "mlops-abalone-dev"
    assert ep["Properties"]["EndpointConfigName"] == {
        "Fn::GetAtt": [deploy_dev.ENDPOINT_CONFIG, "EndpointConfigName"]
    }
    assert dev["Outputs"]["EndpointName"]["Value"] == {
        "Fn::GetAtt": [deploy_dev.ENDPOINT, "EndpointName"]
    }


def test_model_takes_its_inputs_from_parameters_and_is_network_isolated(
    dev: dict[str, Any],
) -> None:
    (model,) = _resources(dev, "AWS::SageMaker::Model").values()
    props = model["Properties"]
    assert props["ExecutionRoleArn"] == {"Ref": "ExecutionRoleArn"}
    assert props["PrimaryContainer"]["Image"] == {"Ref": "ImageUri"}
    assert props["PrimaryContainer"]["ModelDataUrl"] == {"Ref": "ModelDataUrl"}
    assert props["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in props
    # Replacing a named Model or EndpointConfig would collide with the old one.
    assert "ModelName" not in props


def test_endpoint_config_uses_dev_settings_and_kms(
    dev: dict[str, Any], example_config: config.Config
) -> None:
    (cfg,) = _resources(dev, "AWS::SageMaker::EndpointConfig").values()
    props = cfg["Properties"]
    (variant,) = props["ProductionVariants"]
    assert variant["InstanceType"] == example_config.endpoints.dev.instance_type
    assert variant["InitialInstanceCount"] == example_config.endpoints.dev.instance_count
    assert variant["VariantName"] == endpoint.VARIANT_NAME
    assert props["KmsKeyId"] == {"Ref": "KmsKeyArn"}
    assert "EndpointConfigName" not in props


def test_parameters_are_constrained_and_all_used(dev: dict[str, Any]) -> None:
    params = dev["Parameters"]
    assert set(params) == {"ImageUri", "ModelDataUrl", "ExecutionRoleArn", "KmsKeyArn"}
    assert_parameters_constrained_and_used(dev)
    assert set(params) <= referenced(dev["Resources"])


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("ImageUri", "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-abalone:1a2b3c", True),
        (
            "ImageUri",
            "453000072557.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-xgboost:1.7-1",
            True,
        ),
        ("ImageUri", "docker.io/library/python:3.13", False),
        ("ModelDataUrl", "s3://my-bucket/runs/r1/model/model.tar.gz", True),
        ("ModelDataUrl", "https://example.com/model.tar.gz", False),
        ("ExecutionRoleArn", "arn:aws:iam::111122223333:role/service/SageMaker", True),
        ("ExecutionRoleArn", "arn:aws:iam::111122223333:user/alice", False),
        (
            "KmsKeyArn",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            True,
        ),
        ("KmsKeyArn", "alias/aws/s3", False),
    ],
)
def test_parameter_patterns_accept_real_values_only(
    dev: dict[str, Any], name: str, value: str, ok: bool
) -> None:
    assert bool(re.fullmatch(dev["Parameters"][name]["AllowedPattern"], value)) is ok


def test_vpc_subnets_place_the_model_in_the_vpc() -> None:
    cfg = variant_config("api-key-linear-vpc")
    (model,) = _resources(deploy_dev.build(cfg).to_dict(), "AWS::SageMaker::Model").values()
    assert model["Properties"]["VpcConfig"] == {
        "Subnets": cfg.network.subnet_ids,
        "SecurityGroupIds": cfg.network.security_group_ids,
    }
    assert model["Properties"]["EnableNetworkIsolation"] is True


def test_instance_families_with_local_storage_are_rejected() -> None:
    """SageMaker refuses a volume key for them: the endpoint volume would lose its CMK."""
    with pytest.raises(config.ConfigError, match="endpoints.dev.instance_type.*local NVMe"):
        config.parse({"endpoints": {"dev": {"instance_type": "ml.m5d.large"}}})


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_has_no_cfn_lint_findings(name: str) -> None:
    cfg = variant_config(name)
    text = render.to_yaml(deploy_dev.build(cfg))
    findings = lint.cfn_lint_text(
        text, f"{name}/deploy-dev.yaml", ["us-east-1", cfg.project.region]
    )
    assert findings == [], "\n".join(map(str, findings))
