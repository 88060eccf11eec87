"""Config variants of the pipeline and studio stacks (the example config plus overrides)."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import yaml

from mlops_templates import config, render
from mlops_templates.stacks import pipeline

from .conftest import EXAMPLE_CONFIG

SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
VARIANTS: dict[str, dict[str, Any]] = {
    "example": {},
    "codecommit-schedule": {
        "pipeline": {
            "source": {"provider": "codecommit", "repository": "abalone-model", "connection_arn": None},
            "retrain_schedule": "cron(0 3 ? * MON *)",
            "retrain_schedule_enabled": True,
            "retrain_on_drift": False,
        }
    },
    "create-vpc": {"network": {"create_vpc": True}},
    "existing-subnets": {
        "network": {
            "subnet_ids": SUBNETS,
            "security_group_ids": ["sg-0123456789abcdef0"],
            "vpc_id": "vpc-0123456789abcdef0",
        }
    },
    "connection-at-launch": {"pipeline": {"source": {"connection_arn": None}}},
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def variant_config(name: str) -> config.Config:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return config.parse(_merge(data, VARIANTS[name]), f"mlops.yaml+{name}")


@cache
def rendered(name: str, stack: str = "pipeline") -> str:
    return render.render(variant_config(name), [stack])[f"{stack}.yaml"]


@cache
def template(name: str) -> dict[str, Any]:
    return json.loads(pipeline.build(variant_config(name)).to_json())
