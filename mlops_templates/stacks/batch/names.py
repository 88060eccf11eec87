"""Names of the batch stack: Parameters, logical IDs, physical names."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_templates import contract, naming
from mlops_templates.config import Config

COMPONENT = "batch"

# Parameters (the build fills them in from the pipeline stack's resources).
KMS_KEY_ARN = contract.KMS_KEY_ARN
SAGEMAKER_ROLE_ARN = contract.SAGEMAKER_ROLE_ARN
DATA_BUCKET = contract.DATA_BUCKET
NOTIFICATION_TOPIC_ARN = contract.NOTIFICATION_TOPIC_ARN

# Logical IDs
STATE_MACHINE = "BatchStateMachine"
LOG_GROUP = "BatchStateMachineLogGroup"
STATES_ROLE = "BatchStateMachineRole"
UPLOAD_RULE = "BatchUploadRule"
UPLOAD_ROLE = "BatchUploadRuleRole"
SCHEDULE = "BatchSchedule"
SCHEDULER_ROLE = "BatchScheduleRole"
# The alarms and their notices keep deploy-prd's logical IDs (alarms.py and notices.py build both).
DRIFT_ALARM = "DriftAlarm"
QUALITY_ALARM = "ModelQualityAlarm"
DRIFT_NOTICE = "DriftNoticeRule"
QUALITY_NOTICE = "QualityNoticeRule"
#: Name components of the notice rules, per alarm kind: the pipeline stack's topic policy
#: lets rules of these names publish.
NOTICE_COMPONENTS = {"drift": "batch-notice-drift", "quality": "batch-notice-quality"}


@dataclass(frozen=True)
class Names:
    """The physical names of the stack's resources, each checked by :mod:`naming`.

    ``endpoint`` is the ``EndpointName`` dimension of the monitor's metrics (the monitor job
    names its input so): for batch runs, the state machine's name.
    """

    machine: str
    states_role: str
    upload_rule: str
    upload_role: str
    schedule: str
    scheduler_role: str
    drift_alarm: str
    quality_alarm: str
    drift_notice: str
    quality_notice: str

    @property
    def endpoint(self) -> str:
        return self.machine

    @classmethod
    def of(cls, config: Config) -> Names:
        def name(component: str) -> str:
            return naming.physical_name(config, component)

        return cls(
            machine=name("batch"),
            states_role=name("batch-states"),
            upload_rule=name("batch-upload"),
            upload_role=name("batch-upload-events"),
            schedule=name("batch-schedule"),
            scheduler_role=name("batch-scheduler"),
            drift_alarm=name("batch-drift"),
            quality_alarm=name("batch-quality"),
            drift_notice=name(NOTICE_COMPONENTS["drift"]),
            quality_notice=name(NOTICE_COMPONENTS["quality"]),
        )
