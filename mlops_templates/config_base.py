"""The config model's shared pieces: its base class, and the instance-type rules that
the serving, training, monitoring and batch settings share (:mod:`mlops_templates.config`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
)

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
#: An IAM role's ARN (any partition, with an optional path). After "role/" come the path
#: without its leading "/" (a path is 1-512 characters) and the name (1-64): at most 575
#: characters (IAM API Reference, CreateRole: Path, RoleName).
IAM_ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,575}"
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
    # validate_default: a default must pass its own field rules too (a default outside them
    # would render a template the config itself would refuse).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
