"""The production stack's Parameters: what each pipeline run passes in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import Parameter, Ref

from mlops_templates.stacks import common, endpoint
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.stack import Stack


@dataclass(frozen=True, eq=False)
class Inputs:
    """The Parameters, as the parts refer to them."""

    model: dict[str, Parameter]
    capture_uri: Parameter
    statistics_uri: Parameter
    constraints_uri: Parameter
    monitoring_uri: Parameter
    email: Parameter
    #: Where ground truth is uploaded (the builtin monitor only).
    ground_truth_uri: Parameter | None = None

    @property
    def kms_key_arn(self) -> Any:
        """The project's key (the pipeline stack's), which encrypts everything here."""
        return Ref(self.model[endpoint.KMS_KEY_ARN])

    @property
    def execution_role_arn(self) -> Any:
        return Ref(self.model[endpoint.EXECUTION_ROLE_ARN])

    @property
    def image_uri(self) -> Any:
        """The serving image, which also runs the monitor job."""
        return Ref(self.model[endpoint.IMAGE_URI])


def parameters(stack: Stack) -> Inputs:
    """The model's Parameters, the S3 locations of capture, baseline, reports and ground
    truth, and the optional notification e-mail."""
    t = stack.template
    builtin = stack.config.monitoring.engine == "builtin"
    ground_truth = (
        endpoint.s3_uri_parameter(
            t,
            n.GROUND_TRUTH_URI,
            "S3 prefix ground truth is uploaded under (s3://bucket/prefix; yyyy/mm/dd/hh/ below it)",
        )
        if builtin
        else None
    )
    statistics = "statistics.json of the monitoring baseline" if builtin else "Model Monitor baseline statistics.json"
    constraints = "constraints.json of the monitoring baseline" if builtin else "Model Monitor baseline constraints.json"
    reports = "monitoring reports" if builtin else "Model Monitor reports"
    return Inputs(
        model=endpoint.add_model_parameters(t),
        capture_uri=endpoint.s3_uri_parameter(
            t,
            n.DATA_CAPTURE_URI,
            "S3 prefix SageMaker writes captured requests and responses to (s3://bucket/prefix)",
        ),
        statistics_uri=endpoint.s3_object_uri_parameter(
            t, n.BASELINE_STATISTICS_URI, f"S3 URI of the {statistics} (workflow output)"
        ),
        constraints_uri=endpoint.s3_object_uri_parameter(
            t, n.BASELINE_CONSTRAINTS_URI, f"S3 URI of the {constraints} (workflow output)"
        ),
        monitoring_uri=endpoint.s3_uri_parameter(
            t, n.MONITORING_OUTPUT_URI, f"S3 prefix for {reports} (s3://bucket/prefix)"
        ),
        email=common.optional_email(
            t,
            n.NOTIFICATION_EMAIL,
            n.HAS_NOTIFICATION_EMAIL,
            "Optional e-mail address subscribed to the stack's notifications "
            "(alarms, deployments), or 'none'",
        ),
        ground_truth_uri=ground_truth,
    )
