"""The production dashboard (``AWS::CloudWatch::Dashboard`` ``<base>-prd-dashboard``): the
endpoint's traffic, errors and latency beside what monitoring found.

Widgets: invocations; 4XX and 5XX errors; model latency (average and p99); each feature's
drift distance with the threshold (the builtin monitor's ``FeatureDrift``, or Model
Monitor's ``feature_baseline_drift_<feature>``); the drift and model-quality alarms; the
quality metrics and labelled rows; and the last monitoring run's status and row counts.
"""

from __future__ import annotations

import json
from typing import Any

from troposphere import Sub, cloudwatch

from mlops_templates import contract, naming
from mlops_templates.stacks import endpoint as shared
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.alarms import SCHEDULES
from mlops_templates.stacks.deploy_prd.model_monitor import MODEL_MONITOR_NAMESPACE
from mlops_templates.stacks.stack import Stack

WIDTH, HEIGHT = 8, 6
#: Filled in by ``Fn::Sub``: the dashboard's region and the alarms' ARNs.
REGION = "${AWS::Region}"


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, **properties: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x, "y": y, "width": WIDTH, "height": HEIGHT,
        "properties": {"title": title, "region": REGION, "metrics": metrics, **properties},
    }


def _traffic(names: n.Names) -> list[dict[str, Any]]:
    dims = ["EndpointName", names.endpoint, "VariantName", shared.VARIANT_NAME]
    return [
        _widget("Invocations", [["AWS/SageMaker", "Invocations", *dims]], 0, 0, stat="Sum", period=300),
        _widget("Errors (4XX, 5XX)", [["AWS/SageMaker", "Invocation4XXErrors", *dims],
                                      ["AWS/SageMaker", "Invocation5XXErrors", *dims]],
                WIDTH, 0, stat="Sum", period=300),
        _widget("Model latency (µs)", [["AWS/SageMaker", "ModelLatency", *dims, {"stat": "Average"}],
                                       ["AWS/SageMaker", "ModelLatency", *dims, {"stat": "p99"}]],
                2 * WIDTH, 0, period=300),
    ]


def _drift(stack: Stack, names: n.Names, period: int) -> dict[str, Any]:
    mon = stack.config.monitoring
    if mon.engine == "model_monitor":
        dims = ["Endpoint", names.endpoint, "MonitoringSchedule", names.schedule]
        metrics = [[MODEL_MONITOR_NAMESPACE, f"feature_baseline_drift_{f}", *dims, {"label": f}]
                   for f in mon.drift_features]
    else:
        namespace = naming.metrics_namespace(stack.config)
        metrics = [[namespace, "FeatureDrift", "EndpointName", names.endpoint, "Feature", f, {"label": f}]
                   for f in mon.drift_features]
        metrics.append([namespace, "PredictionDrift", "EndpointName", names.endpoint, {"label": "prediction"}])
    threshold = {"label": "drift threshold", "value": mon.drift_distance_threshold}
    return _widget("Drift from the training baseline, per feature", metrics, 0, HEIGHT,
                   stat="Maximum", period=period, annotations={"horizontal": [threshold]})


def _alarms(alarms: list[Any]) -> dict[str, Any]:
    return {
        "type": "alarm", "x": WIDTH, "y": HEIGHT, "width": WIDTH, "height": HEIGHT,
        "properties": {"title": "Drift and model-quality alarms",
                       "alarms": ["${" + f"{alarm.title}.Arn" + "}" for alarm in alarms]},
    }


def _quality(stack: Stack, names: n.Names, period: int) -> list[dict[str, Any]]:
    namespace = naming.metrics_namespace(stack.config)
    dims = ["EndpointName", names.endpoint]
    quality = stack.config.monitoring.quality
    metrics = [[namespace, name, *dims] for name in contract.QUALITY_METRIC_NAMES.values()]
    metrics.append([namespace, "JoinedRows", *dims, {"yAxis": "right", "stat": "Sum"}])
    threshold = {"label": f"{quality.metric} threshold", "value": quality.threshold}
    status = [[namespace, "MonitorFailed", *dims, {"label": "last run failed (1) or not (0)"}],
              [namespace, "Rows", *dims, {"label": "live rows"}],
              [namespace, "FeaturesDrifted", *dims, {"label": "features drifted"}],
              [namespace, "SyntheticRecords", *dims, {"label": "synthetic requests left out"}]]
    return [
        _widget("Model quality on ground truth", metrics, 2 * WIDTH, HEIGHT, stat="Average",
                period=period, annotations={"horizontal": [threshold]}),
        _widget("Last monitoring run", status, 0, 2 * HEIGHT, view="singleValue", stat="Maximum",
                period=period, setPeriodToTimeRange=False),
    ]


def dashboard(stack: Stack, names: n.Names, alarms: list[Any]) -> cloudwatch.Dashboard:
    """The dashboard; ``alarms`` are the monitoring alarms its alarm widget shows."""
    period = SCHEDULES[stack.config.monitoring.schedule_expression].period
    widgets = [*_traffic(names), _drift(stack, names, period), _alarms(alarms)]
    if stack.config.monitoring.engine == "builtin":
        widgets += _quality(stack, names, period)
    body = json.dumps({"widgets": widgets}, sort_keys=False, ensure_ascii=False)
    return stack.add(
        cloudwatch.Dashboard(
            n.DASHBOARD,
            DashboardName=names.dashboard,
            # ${AWS::Region} and ${<Alarm>.Arn} are resolved by Fn::Sub.
            DashboardBody=Sub(body),
        ),
        "Production dashboard: traffic, errors, latency, drift, model quality, monitor status",
    )
