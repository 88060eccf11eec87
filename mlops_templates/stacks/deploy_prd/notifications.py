"""The notification topic and the alarms deployments roll back on."""

from __future__ import annotations

from typing import Any

from troposphere import cloudwatch, sns

from mlops_templates import naming
from mlops_templates.stacks import common
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.stack import Stack


def topic(stack: Stack, inputs: Inputs, names: n.Names) -> sns.Topic:
    """The KMS-encrypted topic of alarms and deployments, with its optional e-mail."""
    resource = stack.add(
        sns.Topic(
            n.NOTIFICATION_TOPIC,
            TopicName=names.topic,
            DisplayName=f"{naming.base(stack.config)} production",
            # The project key: its policy lets EventBridge and CloudWatch Logs use it
            # (the pipeline stack's KmsKey).
            KmsMasterKeyId=inputs.kms_key_arn,
            Tags=stack.tags(),
        ),
        "Notifications of the endpoint's and API's alarms and deployments and of monitoring",
    )
    stack.add(
        common.email_subscription(
            n.NOTIFICATION_SUBSCRIPTION, n.HAS_NOTIFICATION_EMAIL, inputs.email, resource
        ),
        "Optional e-mail subscription to the notification topic",
    )
    return resource


def rollback_alarm(
    logical_id: str, namespace: str, dimensions: dict[str, Any], **props: Any
) -> cloudwatch.Alarm:
    """An alarm a deployment rolls back on: one-minute periods. It has no actions: the
    rollback notice rule (:mod:`.notices`) turns its firing into a readable message."""
    return cloudwatch.Alarm(
        logical_id,
        Namespace=namespace,
        Dimensions=[
            cloudwatch.MetricDimension(Name=name, Value=value) for name, value in dimensions.items()
        ],
        Period=60,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        # No requests means no datapoints: nothing to roll back for.
        TreatMissingData="notBreaching",
        **props,
    )
