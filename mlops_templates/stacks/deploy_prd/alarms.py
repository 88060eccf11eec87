"""The alarms on the builtin monitor's metrics: drift (drifted features) and model quality.

The monitor state machine publishes one datapoint per run of each metric, in the project's
namespace with the ``EndpointName`` dimension (:mod:`.monitor_definition`), so both are
plain metric alarms whose period is the schedule's. Neither has actions: the pipeline's
retraining rule and this stack's notification rules match their state changes by name
(:mod:`.notices`), which turns them into one readable message instead of the alarm's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from troposphere import cloudwatch

from mlops_templates import contract, naming, notifications
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.stack import Stack


class AlarmNames(Protocol):
    """What the alarms name: themselves and the ``EndpointName`` dimension (deploy-prd's
    and the batch stack's names)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def drift_alarm(self) -> str: ...
    @property
    def quality_alarm(self) -> str: ...


@dataclass(frozen=True)
class Schedule:
    """How an allowed schedule expression runs the monitor, and what the alarms make of it."""

    period: int
    #: Drift alarm: datapoints out of the last evaluation periods that must breach. Hourly
    #: windows hold few rows and a short burst of odd traffic is not drift: two of the last
    #: three runs. Six-hourly and daily windows are large enough, and a day is long enough
    #: to wait: the first breaching run.
    evaluation_periods: int
    datapoints: int


#: Per allowed ``monitoring.schedule_expression``. An alarm evaluates at most a day of
#: periods (Period x EvaluationPeriods).
SCHEDULES: dict[str, Schedule] = {
    "cron(0 * ? * * *)": Schedule(3600, 3, 2),
    "cron(0 */6 ? * * *)": Schedule(21600, 1, 1),
    "cron(0 0 ? * * *)": Schedule(86400, 1, 1),
}
#: Seconds between two monitoring runs, per allowed schedule expression.
SCHEDULE_PERIOD_SECONDS = {expression: s.period for expression, s in SCHEDULES.items()}
COMPARISONS = {
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
}


def dimensions(names: AlarmNames) -> list[cloudwatch.MetricDimension]:
    return [cloudwatch.MetricDimension(Name="EndpointName", Value=names.endpoint)]


#: The batch stack's alarms: a run publishes one datapoint when it ends (on uploads, not on
#: a fixed period), and one bad batch is enough: hourly periods, the first breaching run.
EVENT_DRIVEN = Schedule(3600, 1, 1)


def drift_alarm(stack: Stack, names: AlarmNames, schedule: Schedule | None = None) -> cloudwatch.Alarm:
    """``FeaturesDrifted`` at or above ``drift_violations_threshold``: enough watched features
    are farther than ``drift_distance_threshold`` from the baseline. One drifted feature is a
    reason to retrain; a sum of distances would let many small, harmless shifts add up."""
    mon = stack.config.monitoring
    schedule = schedule or SCHEDULES[mon.schedule_expression]
    return stack.add(
        cloudwatch.Alarm(
            n.DRIFT_ALARM,
            AlarmName=names.drift_alarm,
            AlarmDescription=(
                f"At least {mon.drift_violations_threshold} of the features "
                f"{', '.join(mon.drift_features)} drifted more than "
                f"{mon.drift_distance_threshold:g} (Jensen-Shannon distance) from the training "
                f"baseline in {schedule.datapoints} of the last {schedule.evaluation_periods} "
                "monitoring runs"
            ),
            Namespace=naming.metrics_namespace(stack.config),
            MetricName="FeaturesDrifted",
            Dimensions=dimensions(names),
            Statistic="Maximum",
            Period=schedule.period,
            EvaluationPeriods=schedule.evaluation_periods,
            DatapointsToAlarm=schedule.datapoints,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            Threshold=mon.drift_violations_threshold,
            # No run in the period is not drift (a run without traffic reports 0).
            TreatMissingData="notBreaching",
        ),
        "Drift alarm: its state changes start retraining through the pipeline and notify",
        must=[f"AlarmName is {names.drift_alarm}: the pipeline's rule matches it"],
    )


def quality_rule(stack: Stack, words: bool = False) -> str:
    """``rmse > 3`` (or ``rmse above 3`` for EventBridge texts)."""
    quality = stack.config.monitoring.quality
    operator = notifications.operator_words(quality.operator) if words else quality.operator
    return f"{quality.metric} {operator} {quality.threshold:g}"


def quality_alarm(stack: Stack, names: AlarmNames, schedule: Schedule | None = None) -> cloudwatch.Alarm:
    """The quality metric of the predictions joined with ground truth against its threshold.
    A run with fewer than ``quality.min_rows`` labelled rows publishes no datapoint:
    missing data, which is not breaching."""
    quality = stack.config.monitoring.quality
    schedule = schedule or SCHEDULES[stack.config.monitoring.schedule_expression]
    return stack.add(
        cloudwatch.Alarm(
            n.QUALITY_ALARM,
            AlarmName=names.quality_alarm,
            AlarmDescription=(
                f"Model quality on uploaded ground truth breached {quality_rule(stack)} in a "
                f"monitoring run (at least {quality.min_rows} labelled rows)"
            ),
            Namespace=naming.metrics_namespace(stack.config),
            MetricName=contract.QUALITY_METRIC_NAMES[quality.metric],
            Dimensions=dimensions(names),
            Statistic="Average",
            Period=schedule.period,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            ComparisonOperator=COMPARISONS[quality.operator],
            Threshold=quality.threshold,
            TreatMissingData="notBreaching",
        ),
        "Model-quality alarm: its state changes start retraining through the pipeline and notify",
        must=[f"AlarmName is {names.quality_alarm}: the pipeline's rule matches it"],
    )
