"""The production endpoint: model, fleet with data capture, blue/green guardrails and
auto scaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import (
    GetAtt,
    Ref,
    Sub,
    applicationautoscaling,
    cloudwatch,
    sagemaker,
)

from mlops_templates.stacks import endpoint as shared
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.notifications import rollback_alarm
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.stack import Stack

#: SageMaker blue/green traffic routing, per ``endpoints.prd.deployment.type``.
TRAFFIC_ROUTING = {"canary": "CANARY", "linear": "LINEAR", "all_at_once": "ALL_AT_ONCE"}


@dataclass(frozen=True, eq=False)
class Endpoint:
    """The endpoint resource and how other parts name it."""

    resource: sagemaker.Endpoint
    name: str

    @property
    def arn(self) -> Ref:
        return Ref(self.resource)  # Ref of an Endpoint is its ARN

    @property
    def name_ref(self) -> GetAtt:
        """The name as a reference: whatever uses it waits for the endpoint."""
        return GetAtt(self.resource, "EndpointName")


def endpoint_config(stack: Stack, inputs: Inputs) -> sagemaker.EndpointConfig:
    """The model and the production fleet that captures requests and responses."""
    cfg, prd = stack.config, stack.config.endpoints.prd
    model = stack.add(
        shared.model(n.MODEL, cfg, n.COMPONENT, inputs.model),
        why="The trained model: serving image plus model artifact, network-isolated",
    )
    capture = shared.EndpointDataCaptureConfig(
        EnableCapture=True,
        InitialSamplingPercentage=prd.data_capture_sampling_percentage,
        DestinationS3Uri=Ref(inputs.capture_uri),
        KmsKeyId=inputs.kms_key_arn,
        CaptureOptions=[
            sagemaker.CaptureOption(CaptureMode="Input"),
            sagemaker.CaptureOption(CaptureMode="Output"),
        ],
        CaptureContentTypeHeader=sagemaker.CaptureContentTypeHeader(
            CsvContentTypes=["text/csv"], JsonContentTypes=["application/json"]
        ),
    )
    return stack.add(
        shared.endpoint_config(
            n.ENDPOINT_CONFIG,
            cfg,
            n.COMPONENT,
            model,
            prd.instance_type,
            prd.instance_count,
            inputs.kms_key_arn,
            capture,
        ),
        why="Production fleet with data capture: Model Monitor reads the captured requests",
        must=[f"variant name stays {shared.VARIANT_NAME} (blue/green needs the same name)"],
    )


def guardrail_alarms(stack: Stack, names: n.Names) -> list[cloudwatch.Alarm]:
    """The 5XX and model-latency alarms SageMaker rolls an endpoint update back on."""
    prd = stack.config.endpoints.prd
    dimensions = {"EndpointName": names.endpoint, "VariantName": shared.VARIANT_NAME}
    why = "Guardrail: SageMaker rolls the endpoint back while this alarm is in ALARM"
    errors = rollback_alarm(
        n.ENDPOINT_5XX_ALARM,
        "AWS/SageMaker",
        dimensions,
        AlarmDescription="Production endpoint returns 5XX errors (rolls a deployment back)",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Threshold=prd.max_5xx_errors,
        EvaluationPeriods=1,
    )
    latency = rollback_alarm(
        n.ENDPOINT_LATENCY_ALARM,
        "AWS/SageMaker",
        dimensions,
        AlarmDescription=f"Production model latency above {prd.max_model_latency_ms} ms "
        "(rolls a deployment back)",
        MetricName="ModelLatency",
        Statistic="Average",
        # ModelLatency is reported in microseconds.
        Threshold=prd.max_model_latency_ms * 1000,
        # Two slow minutes out of three: one cold request does not roll back.
        EvaluationPeriods=3,
        DatapointsToAlarm=2,
    )
    return [stack.add(errors, why=why), stack.add(latency, why=why)]


def _traffic_routing(stack: Stack) -> sagemaker.TrafficRoutingConfig:
    policy = stack.config.endpoints.prd.deployment
    routing = sagemaker.TrafficRoutingConfig(
        Type=TRAFFIC_ROUTING[policy.type],
        WaitIntervalInSeconds=policy.wait_interval_seconds,
    )
    step = sagemaker.CapacitySize(Type="CAPACITY_PERCENT", Value=policy.traffic_percent)
    if policy.type == "canary":
        routing.CanarySize = step
    elif policy.type == "linear":
        routing.LinearStepSize = step
    return routing


def endpoint(stack: Stack, inputs: Inputs, names: n.Names) -> Endpoint:
    """The endpoint, updated blue/green and rolled back by its guardrail alarms."""
    config = endpoint_config(stack, inputs)
    alarms = guardrail_alarms(stack, names)
    policy = stack.config.endpoints.prd.deployment
    resource = stack.add(
        sagemaker.Endpoint(
            n.ENDPOINT,
            EndpointName=names.endpoint,
            EndpointConfigName=GetAtt(config, "EndpointConfigName"),
            DeploymentConfig=sagemaker.DeploymentConfig(
                BlueGreenUpdatePolicy=sagemaker.BlueGreenUpdatePolicy(
                    TrafficRoutingConfiguration=_traffic_routing(stack),
                    TerminationWaitInSeconds=policy.termination_wait_seconds,
                    MaximumExecutionTimeoutInSeconds=policy.maximum_execution_timeout_seconds,
                ),
                AutoRollbackConfiguration=sagemaker.AutoRollbackConfig(
                    Alarms=[sagemaker.Alarm(AlarmName=Ref(alarm)) for alarm in alarms]
                ),
            ),
            Tags=stack.tags(),
        ),
        why=f"Production endpoint; model updates are {policy.type.replace('_', ' ')} "
        "blue/green deployments that SageMaker rolls back when a guardrail alarm fires",
        must=["the drift alarm, monitoring schedule and hooks name this endpoint"],
    )
    return Endpoint(resource, names.endpoint)


def autoscaling(stack: Stack, served: Endpoint) -> Any:
    """Target tracking on the variant's invocations per instance.

    SageMaker lets a registered variant change its model (every pipeline run), but
    refuses an update that changes its instance type: changing
    ``endpoints.prd.instance_type`` needs the scalable target deregistered first.
    """
    scaling = stack.config.endpoints.prd.autoscaling
    target = stack.add(
        applicationautoscaling.ScalableTarget(
            n.SCALABLE_TARGET,
            ServiceNamespace="sagemaker",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            ResourceId=Sub(
                f"endpoint/${{{served.resource.title}.EndpointName}}/variant/{shared.VARIANT_NAME}"
            ),
            MinCapacity=scaling.min_capacity,
            MaxCapacity=scaling.max_capacity,
            # No RoleARN: Application Auto Scaling uses its service-linked role
            # AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant.
        ),
        why="Scales the production variant between the configured capacities",
    )
    tracking = applicationautoscaling.TargetTrackingScalingPolicyConfiguration(
        TargetValue=float(scaling.target_invocations_per_instance),
        PredefinedMetricSpecification=applicationautoscaling.PredefinedMetricSpecification(
            PredefinedMetricType="SageMakerVariantInvocationsPerInstance"
        ),
        ScaleInCooldown=scaling.scale_in_cooldown_seconds,
        ScaleOutCooldown=scaling.scale_out_cooldown_seconds,
    )
    return stack.add(
        applicationautoscaling.ScalingPolicy(
            n.SCALING_POLICY,
            PolicyName=f"{served.name}-invocations",
            PolicyType="TargetTrackingScaling",
            ScalingTargetId=Ref(target),
            TargetTrackingScalingPolicyConfiguration=tracking,
        ),
        why="Target tracking on invocations per instance",
    )
