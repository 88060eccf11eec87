"""Pieces shared by the endpoint stacks (``deploy-dev`` and ``deploy-prd``): their common
Parameters, the SageMaker Model and the EndpointConfig."""

from __future__ import annotations

from typing import Any, ClassVar

from troposphere import GetAtt, Parameter, PropsDictType, Ref, Template, sagemaker
from troposphere.validators import boolean, integer

from mlops_templates import contract
from mlops_templates.config import Config
from mlops_templates.config_base import IAM_ROLE_ARN
from mlops_templates.stacks import common

#: The single production variant. Blue/green updates require the new EndpointConfig to
#: keep the variant name, so it never changes.
VARIANT_NAME = "AllTraffic"

IMAGE_URI = contract.IMAGE_URI
MODEL_DATA_URL = contract.MODEL_DATA_URL
EXECUTION_ROLE_ARN = contract.EXECUTION_ROLE_ARN
KMS_KEY_ARN = contract.KMS_KEY_ARN

#: An S3 URI with a key prefix, without a trailing slash or a colon in the prefix, so
#: that IAM resources and conditions can be derived from it with Fn::Split.
S3_PREFIX_URI_PATTERN = (
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*'()/=-]*[A-Za-z0-9!_.*'()=-]$"
)


class EndpointDataCaptureConfig(sagemaker.DataCaptureConfig):
    """``AWS::SageMaker::EndpointConfig.DataCaptureConfig``.

    troposphere generates one ``DataCaptureConfig`` class for two resource types and
    keeps the transform job's (three properties); the EndpointConfig needs these.
    """

    props: ClassVar[PropsDictType] = {
        "CaptureContentTypeHeader": (sagemaker.CaptureContentTypeHeader, False),
        "CaptureOptions": ([sagemaker.CaptureOption], True),
        "DestinationS3Uri": (str, True),
        "EnableCapture": (boolean, False),
        "InitialSamplingPercentage": (integer, True),
        "KmsKeyId": (str, False),
    }


def _string_parameter(
    template: Template,
    logical_id: str,
    description: str,
    pattern: str,
    max_length: int,
    constraint: str,
) -> Parameter:
    """A String Parameter that CloudFormation validates before it creates anything."""
    return template.add_parameter(
        Parameter(
            logical_id,
            Type="String",
            Description=description,
            AllowedPattern=pattern,
            MaxLength=max_length,
            ConstraintDescription=constraint,
        )
    )


def add_model_parameters(template: Template) -> dict[str, Parameter]:
    """``ImageUri``, ``ModelDataUrl``, ``ExecutionRoleArn`` and ``KmsKeyArn``."""
    return {
        IMAGE_URI: _string_parameter(
            template,
            IMAGE_URI,
            "ECR URI of the serving image (the workflow's ImageUri output)",
            pattern=(
                r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|[a-z0-9.-]+\.gov)"
                r"/[a-z0-9][a-z0-9._/-]*"
                r"(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})?$"
            ),
            max_length=255,
            constraint=(
                "an ECR image URI, <account>.dkr.ecr.<region>.amazonaws.com/<repository>"
                "[:tag|@sha256:digest], at most 255 characters"
            ),
        ),
        MODEL_DATA_URL: s3_object_uri_parameter(
            template,
            MODEL_DATA_URL,
            "S3 URI of model.tar.gz (the workflow's ModelDataUrl output)",
        ),
        EXECUTION_ROLE_ARN: _string_parameter(
            template,
            EXECUTION_ROLE_ARN,
            "ARN of the IAM role SageMaker assumes to pull the image and model",
            pattern=rf"^{IAM_ROLE_ARN}$",
            max_length=2048,
            constraint="an IAM role ARN, arn:<partition>:iam::<account>:role/<name>",
        ),
        KMS_KEY_ARN: _string_parameter(
            template,
            KMS_KEY_ARN,
            "ARN of the customer-managed KMS key for volumes and data at rest",
            pattern=(
                r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-[a-f0-9]{32}|"
                r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})$"
            ),
            max_length=2048,
            constraint="a KMS key ARN, arn:<partition>:kms:<region>:<account>:key/<id>",
        ),
    }


def s3_uri_parameter(template: Template, logical_id: str, description: str) -> Parameter:
    """An ``s3://bucket/prefix`` Parameter (no trailing slash)."""
    return _string_parameter(
        template,
        logical_id,
        description,
        pattern=S3_PREFIX_URI_PATTERN,
        max_length=1024,
        constraint="an s3://bucket/prefix URI without a trailing slash, at most 1024 characters",
    )


def s3_object_uri_parameter(template: Template, logical_id: str, description: str) -> Parameter:
    """An ``s3://bucket/key`` Parameter naming one object."""
    return _string_parameter(
        template,
        logical_id,
        description,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$",
        max_length=1024,
        constraint="an s3://bucket/key URI, at most 1024 characters",
    )


def model(
    logical_id: str, config: Config, component: str, params: dict[str, Parameter]
) -> sagemaker.Model:
    """The SageMaker Model: serving image + model artifact, network-isolated.

    The serving container needs no network of its own (SageMaker downloads the model
    artifact for it), so network isolation costs nothing and blocks exfiltration. With
    ``network.subnet_ids`` the model runs in those subnets.

    The Model carries no name: every property change replaces it, and CloudFormation
    can only replace a resource whose name it generates.
    """
    resource = sagemaker.Model(
        logical_id,
        ExecutionRoleArn=Ref(params[EXECUTION_ROLE_ARN]),
        EnableNetworkIsolation=True,
        PrimaryContainer=sagemaker.ContainerDefinition(
            Image=Ref(params[IMAGE_URI]),
            ModelDataUrl=Ref(params[MODEL_DATA_URL]),
            Mode="SingleModel",
        ),
        Tags=common.tags(config, component),
    )
    if config.network.subnet_ids:
        resource.VpcConfig = sagemaker.VpcConfig(
            Subnets=list(config.network.subnet_ids),
            SecurityGroupIds=list(config.network.security_group_ids),
        )
    return resource


def endpoint_config(
    logical_id: str,
    config: Config,
    component: str,
    model_resource: sagemaker.Model,
    instance_type: str,
    instance_count: int,
    kms_key: Any,
    data_capture: EndpointDataCaptureConfig | None = None,
) -> sagemaker.EndpointConfig:
    """One-variant EndpointConfig, its volume encrypted with ``kms_key``.

    Unnamed for the same reason as the Model: a blue/green update needs a new
    EndpointConfig beside the old one. (The config rejects instance families with local
    NVMe storage, for which SageMaker refuses a volume key.)
    """
    resource = sagemaker.EndpointConfig(
        logical_id,
        ProductionVariants=[
            sagemaker.ProductionVariant(
                VariantName=VARIANT_NAME,
                ModelName=GetAtt(model_resource, "ModelName"),
                InstanceType=instance_type,
                InitialInstanceCount=instance_count,
                InitialVariantWeight=1.0,
            )
        ],
        KmsKeyId=kms_key,
        Tags=common.tags(config, component),
    )
    if data_capture is not None:
        resource.DataCaptureConfig = data_capture
    return resource
