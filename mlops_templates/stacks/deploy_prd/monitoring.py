"""Monitoring of the production endpoint, by ``monitoring.engine``:

* ``builtin`` (the default; every account): a schedule runs the project's own monitor job
  over the captured traffic (:mod:`.monitor`); it publishes drift, data-quality and
  model-quality metrics, which the drift and quality alarms watch (:mod:`.alarms`);
* ``model_monitor``: SageMaker Model Monitor's data-quality schedule and a metric-math
  drift alarm on its metrics (:mod:`.model_monitor`), for accounts that have it.

Either way the drift alarm is ``<base>-prd-drift`` (and the quality alarm
``<base>-prd-quality``): the pipeline's retraining rule matches them by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import cloudwatch, sns

from mlops_templates.stacks.deploy_prd import alarms, model_monitor
from mlops_templates.stacks.deploy_prd import monitor as builtin
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.alarms import SCHEDULE_PERIOD_SECONDS
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.deploy_prd.serving import Endpoint
from mlops_templates.stacks.stack import Stack

__all__ = ["SCHEDULE_PERIOD_SECONDS", "Monitoring", "monitoring"]


@dataclass(frozen=True, eq=False)
class Monitoring:
    """The alarms (and, builtin, the monitor) the notices, dashboard and outputs name."""

    drift_alarm: cloudwatch.Alarm
    quality_alarm: cloudwatch.Alarm | None = None
    monitor: builtin.Monitor | None = None

    @property
    def alarms(self) -> list[cloudwatch.Alarm]:
        return [a for a in (self.drift_alarm, self.quality_alarm) if a is not None]


def monitoring(
    stack: Stack, inputs: Inputs, topic: sns.Topic, served: Endpoint, names: n.Names
) -> Monitoring:
    """The engine's checks and the alarms on them."""
    if stack.config.monitoring.engine == "model_monitor":
        model_monitor.schedule(stack, inputs, served, names)
        return Monitoring(drift_alarm=model_monitor.drift_alarm(stack, names))
    job = builtin.monitor(stack, inputs, topic, names)
    return Monitoring(
        drift_alarm=alarms.drift_alarm(stack, names),
        quality_alarm=alarms.quality_alarm(stack, names),
        monitor=job,
    )
