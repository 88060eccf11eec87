"""The development endpoint stack (``deploy-dev``): plain CloudFormation.

The pipeline deploys every trained model here first, so that it can be tried before the
manual approval that promotes it to ``deploy-prd``.
"""

from __future__ import annotations

from troposphere import GetAtt, Output, Ref, Template, sagemaker

from mlops_templates import naming
from mlops_templates.config import Config
from mlops_templates.stacks import endpoint
from mlops_templates.stacks.stack import Stack

COMPONENT = "deploy-dev"

MODEL = "Model"
ENDPOINT_CONFIG = "EndpointConfig"
ENDPOINT = "Endpoint"


def enabled(config: Config) -> bool:
    """Not with ``deployment.mode: batch`` (no endpoints)."""
    return config.deployment.realtime


def build(config: Config) -> Template:
    """The dev endpoint.

    Creates an ``AWS::SageMaker::Model`` (network-isolated, in the configured subnets when
    ``network.subnet_ids`` is set), an ``AWS::SageMaker::EndpointConfig`` (instance type
    and count from ``endpoints.dev``, volume encrypted with ``KmsKeyArn``) and the
    ``AWS::SageMaker::Endpoint`` ``<prefix>-<name>-dev``.
    """
    dev = config.endpoints.dev
    stack = Stack.new(config, COMPONENT, "SageMaker development endpoint")
    params = endpoint.add_model_parameters(stack.template)
    model = stack.add(
        endpoint.model(MODEL, config, COMPONENT, params),
        "The trained model: serving image plus model artifact, network-isolated",
    )
    endpoint_config = stack.add(
        endpoint.endpoint_config(
            ENDPOINT_CONFIG,
            config,
            COMPONENT,
            model,
            dev.instance_type,
            dev.instance_count,
            Ref(params[endpoint.KMS_KEY_ARN]),
        ),
        "Development fleet (endpoints.dev), its volume encrypted with KmsKeyArn",
    )
    dev_endpoint = stack.add(
        sagemaker.Endpoint(
            ENDPOINT,
            EndpointName=naming.physical_name(config, "dev"),
            EndpointConfigName=GetAtt(endpoint_config, "EndpointConfigName"),
            Tags=stack.tags(),
        ),
        "Where each trained model is tried before the manual approval for production",
    )
    stack.template.add_output(
        Output(
            "EndpointName",
            Description="Name of the development SageMaker endpoint",
            Value=GetAtt(dev_endpoint, "EndpointName"),
        )
    )
    return stack.describe(
        "SageMaker Model (image + artifact from the workflow) -> EndpointConfig -> Endpoint",
        must=["volumes encrypted with the KmsKeyArn key"],
    )
