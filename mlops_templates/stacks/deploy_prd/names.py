"""Names of the production stack: Parameters, logical IDs, physical names and the
fixed values its parts share."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_templates import contract, naming
from mlops_templates.config import Config

COMPONENT = "deploy-prd"
ALIAS = "live"
API_PATH = "/predict"

# Parameters (beside endpoint.IMAGE_URI, MODEL_DATA_URL, EXECUTION_ROLE_ARN, KMS_KEY_ARN)
DATA_CAPTURE_URI = contract.DATA_CAPTURE_URI
BASELINE_STATISTICS_URI = contract.BASELINE_STATISTICS_URI
BASELINE_CONSTRAINTS_URI = contract.BASELINE_CONSTRAINTS_URI
MONITORING_OUTPUT_URI = contract.MONITORING_OUTPUT_URI
GROUND_TRUTH_URI = contract.GROUND_TRUTH_URI
NOTIFICATION_EMAIL = contract.NOTIFICATION_EMAIL
HAS_NOTIFICATION_EMAIL = "HasNotificationEmail"

# Logical IDs
NOTIFICATION_TOPIC = "NotificationTopic"
NOTIFICATION_SUBSCRIPTION = "NotificationEmailSubscription"
MODEL = "Model"
ENDPOINT_CONFIG = "EndpointConfig"
ENDPOINT = "Endpoint"
ENDPOINT_5XX_ALARM = "Endpoint5xxAlarm"
ENDPOINT_LATENCY_ALARM = "EndpointLatencyAlarm"
SCALABLE_TARGET = "EndpointScalableTarget"
SCALING_POLICY = "EndpointScalingPolicy"
DATA_QUALITY_JOB = "DataQualityJobDefinition"
MONITORING_SCHEDULE = "DataQualitySchedule"
DRIFT_ALARM = "DriftAlarm"
QUALITY_ALARM = "ModelQualityAlarm"
MONITOR_STATE_MACHINE = "MonitorStateMachine"
MONITOR_LOG_GROUP = "MonitorStateMachineLogGroup"
MONITOR_STATES_ROLE = "MonitorStateMachineRole"
MONITOR_SCHEDULE = "MonitorSchedule"
MONITOR_SCHEDULER_ROLE = "MonitorScheduleRole"
MONITOR_WINDOW = "MonitorWindowFunction"
DASHBOARD = "MonitoringDashboard"
NOTIFICATION_TOPIC_POLICY = "NotificationTopicPolicy"
DRIFT_NOTICE = "DriftNoticeRule"
QUALITY_NOTICE = "QualityNoticeRule"
ROLLBACK_NOTICE = "RollbackNoticeRule"
API_DEPLOYMENT_NOTICE = "ApiDeploymentNoticeRule"
API = "Api"
API_ACCESS_LOGS = "ApiAccessLogGroup"
API_FUNCTION = "ApiFunction"
PRE_TRAFFIC_HOOK = "PreTrafficHook"
POST_TRAFFIC_HOOK = "PostTrafficHook"
CODEDEPLOY_ROLE = "CodeDeployRole"
ALIAS_ERRORS_ALARM = "ApiAliasErrorsAlarm"
NEW_VERSION_ERRORS_ALARM = "ApiNewVersionErrorsAlarm"
API_5XX_ALARM = "Api5xxAlarm"
API_KEY = "ApiKey"
USAGE_PLAN = "ApiUsagePlan"
USAGE_PLAN_KEY = "ApiUsagePlanKey"

#: Names SAM gives the CodeDeploy resources it generates for ``ApiFunction``.
SAM_CODEDEPLOY_APPLICATION = "ServerlessDeploymentApplication"
SAM_DEPLOYMENT_GROUP = f"{API_FUNCTION}DeploymentGroup"

#: One raw abalone row without its label: the hooks' smoke-test request.
SAMPLE_CSV = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
PRE_TRAFFIC_TIMEOUT_SECONDS = 120
#: Capture files reach S3 a few minutes after the request; the hook reports before its
#: Lambda timeout (the handler keeps a margin for the report itself).
POST_TRAFFIC_MAX_WAIT_SECONDS = 480
POST_TRAFFIC_TIMEOUT_SECONDS = 600


#: The notification rules, by the kind of event they turn into a message.
NOTICE_KINDS = ("drift", "quality", "rollback", "api")


@dataclass(frozen=True)
class Names:
    """The physical names of the stack's resources, each checked by :mod:`naming`.

    A hook's role is named like its function (role and function limits are both 64).
    """

    endpoint: str
    schedule: str
    drift_alarm: str
    quality_alarm: str
    topic: str
    api: str
    pre_hook: str
    post_hook: str
    api_role: str
    codedeploy_role: str
    monitor: str
    monitor_schedule: str
    monitor_window: str
    monitor_states_role: str
    monitor_scheduler_role: str
    dashboard: str
    notices: dict[str, str]

    @classmethod
    def of(cls, config: Config) -> Names:
        def name(component: str) -> str:
            return naming.physical_name(config, component)

        return cls(
            endpoint=name("prd"),
            schedule=name("prd-data-quality"),
            drift_alarm=name("prd-drift"),
            topic=name("prd-notifications"),
            api=name("api"),
            pre_hook=name("prd-pre-traffic"),
            post_hook=name("prd-post-traffic"),
            api_role=name("prd-api"),
            codedeploy_role=name("prd-codedeploy"),
            quality_alarm=name("prd-quality"),
            monitor=name("prd-monitor"),
            monitor_schedule=name("prd-monitor-schedule"),
            monitor_window=name("prd-monitor-window"),
            monitor_states_role=name("prd-monitor-states"),
            monitor_scheduler_role=name("prd-monitor-scheduler"),
            dashboard=name("prd-dashboard"),
            notices={kind: name(f"prd-notice-{kind}") for kind in NOTICE_KINDS},
        )
