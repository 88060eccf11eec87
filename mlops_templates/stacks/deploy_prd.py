"""The production stack (``deploy-prd``): guarded endpoint, drift monitoring, public API.

A SAM template (``Transform: AWS::Serverless-2016-10-31``): the API's Lambda function is
canary-deployed by CodeDeploy through SAM's ``AutoPublishAlias``/``DeploymentPreference``.
``CodeUri`` paths are relative to ``templates/``, where the rendered file lives, so
``aws cloudformation package`` finds ``../lambdas/<function>/``.

Two deployment mechanisms guard production:

* the SageMaker endpoint uses SageMaker's own deployment guardrails: a blue/green update
  (canary, linear or all at once) that rolls back by itself when the endpoint's 5XX or
  latency alarm fires while traffic shifts;
* the API function shifts Lambda alias traffic with CodeDeploy, after a PreTraffic hook
  has checked the endpoint and before a PostTraffic hook checks that requests are still
  captured; CodeDeploy rolls back on the alias, new-version or API 5XX alarms.

Model Monitor compares the captured requests with the training baseline on a schedule;
the drift alarm ``<prefix>-<name>-prd-drift`` (whose state changes the pipeline's
EventBridge rule matches to retrain) counts the features that drifted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from awacs import awslambda as lambda_actions
from awacs import cloudwatch as cloudwatch_actions
from awacs import codedeploy as codedeploy_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sagemaker as sm
from awacs import sns as sns_actions
from awacs.aws import Condition, Statement, StringLike
from troposphere import (
    GetAtt,
    Join,
    Output,
    PropsDictType,
    Ref,
    Select,
    Split,
    Sub,
    Template,
    apigateway,
    applicationautoscaling,
    cloudwatch,
    iam,
    sagemaker,
    serverless,
    sns,
)
from troposphere.apigateway import MethodSetting

from mlops_templates import iam as iam_policy
from mlops_templates import naming, regions
from mlops_templates.config import Config
from mlops_templates.stacks import common, context, endpoint, functions

COMPONENT = "deploy-prd"
SAM_TRANSFORM = functions.SAM_TRANSFORM
PYTHON_RUNTIME = functions.PYTHON_RUNTIME
ALIAS = "live"
API_PATH = "/predict"

# Parameters (beside endpoint.IMAGE_URI, MODEL_DATA_URL, EXECUTION_ROLE_ARN, KMS_KEY_ARN)
DATA_CAPTURE_URI = "DataCaptureUri"
BASELINE_STATISTICS_URI = "BaselineStatisticsUri"
BASELINE_CONSTRAINTS_URI = "BaselineConstraintsUri"
MONITORING_OUTPUT_URI = "MonitoringOutputUri"
NOTIFICATION_EMAIL = "NotificationEmail"
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

MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
#: Seconds between two monitoring runs, per allowed schedule expression: one metric
#: datapoint per feature and run, so the drift alarm's period is the schedule's.
SCHEDULE_PERIOD_SECONDS = {
    "cron(0 * ? * * *)": 3600,
    "cron(0 */6 ? * * *)": 21600,
    "cron(0 0 ? * * *)": 86400,
}

#: SageMaker blue/green traffic routing, per ``endpoints.prd.deployment.type``.
TRAFFIC_ROUTING = {"canary": "CANARY", "linear": "LINEAR", "all_at_once": "ALL_AT_ONCE"}

API_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId",'
    '"ip":"$context.identity.sourceIp","caller":"$context.identity.caller",'
    '"user":"$context.identity.user","apiKeyId":"$context.identity.apiKeyId",'
    '"requestTime":"$context.requestTime","httpMethod":"$context.httpMethod",'
    '"resourcePath":"$context.resourcePath","status":"$context.status",'
    '"protocol":"$context.protocol","responseLength":"$context.responseLength",'
    '"integrationLatency":"$context.integrationLatency",'
    '"integrationError":"$context.integrationErrorMessage",'
    '"xrayTraceId":"$context.xrayTraceId"}'
)


class _DeploymentPreference(serverless.DeploymentPreference):
    """SAM ``DeploymentPreference`` with ``TriggerConfigurations``, which troposphere lacks."""

    props: ClassVar[PropsDictType] = {
        **serverless.DeploymentPreference.props,
        "TriggerConfigurations": (list, False),
    }


class _Api(serverless.Api):
    """SAM API that also tags what SAM generates for it (``PropagateTags``)."""

    props: ClassVar[PropsDictType] = {
        **serverless.Api.props,
        "PropagateTags": (bool, False),
    }


class _Builder:
    """Holds the template and the resources later parts refer to."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.prd = config.endpoints.prd
        self.template = common.new_template(
            config, "SageMaker production endpoint with guardrails, drift monitoring and API"
        )
        self.template.set_transform(SAM_TRANSFORM)
        self.endpoint_name = naming.physical_name(config, "prd")
        self.schedule_name = naming.physical_name(config, "prd-data-quality")
        self.drift_alarm_name = naming.physical_name(config, "prd-drift")
        self.api_name = naming.physical_name(config, "api", "lambda")
        self.pre_hook_name = naming.physical_name(config, "prd-pre-traffic", "lambda")
        self.post_hook_name = naming.physical_name(config, "prd-post-traffic", "lambda")

    def add(self, resource: Any, why: str, must: list[str] | None = None) -> Any:
        return self.template.add_resource(context.describe(resource, why, must))

    # -- Parameters -----------------------------------------------------------------

    def parameters(self) -> None:
        t = self.template
        self.params = endpoint.add_model_parameters(t)
        self.capture_uri = endpoint.s3_uri_parameter(
            t,
            DATA_CAPTURE_URI,
            "S3 prefix SageMaker writes captured requests and responses to (s3://bucket/prefix)",
        )
        self.statistics_uri = endpoint.s3_object_uri_parameter(
            t, BASELINE_STATISTICS_URI, "S3 URI of the baseline statistics.json (workflow output)"
        )
        self.constraints_uri = endpoint.s3_object_uri_parameter(
            t, BASELINE_CONSTRAINTS_URI, "S3 URI of the baseline constraints.json (workflow output)"
        )
        self.monitoring_uri = endpoint.s3_uri_parameter(
            t, MONITORING_OUTPUT_URI, "S3 prefix for Model Monitor reports (s3://bucket/prefix)"
        )
        self.email = common.optional_email(
            t,
            NOTIFICATION_EMAIL,
            HAS_NOTIFICATION_EMAIL,
            "Optional e-mail address subscribed to the stack's notifications "
            "(alarms, deployments), or 'none'",
        )
        self.kms_key_arn = Ref(self.params[endpoint.KMS_KEY_ARN])

    # -- Notifications ----------------------------------------------------------------

    def notifications(self) -> None:
        self.topic = self.add(
            sns.Topic(
                NOTIFICATION_TOPIC,
                TopicName=naming.physical_name(self.config, "prd-notifications", "sns"),
                DisplayName=f"{naming.base(self.config)} production",
                # The project key: its policy lets CloudWatch alarms, EventBridge and
                # CloudWatch Logs use it (the pipeline stack's KmsKey).
                KmsMasterKeyId=self.kms_key_arn,
                Tags=common.tags(self.config, COMPONENT),
            ),
            "Notifications of endpoint, API and drift alarms and of API deployments",
        )
        self.add(
            common.email_subscription(
                NOTIFICATION_SUBSCRIPTION, HAS_NOTIFICATION_EMAIL, self.email, self.topic
            ),
            "Optional e-mail subscription to the notification topic",
        )
        self.topic_actions = [Ref(self.topic)]

    # -- Endpoint ------------------------------------------------------------------------

    def endpoint(self) -> None:
        prd, cfg = self.prd, self.config
        model = self.add(
            endpoint.model(MODEL, cfg, COMPONENT, self.params),
            "The trained model: serving image plus model artifact, network-isolated",
        )
        capture = endpoint.EndpointDataCaptureConfig(
            EnableCapture=True,
            InitialSamplingPercentage=prd.data_capture_sampling_percentage,
            DestinationS3Uri=Ref(self.capture_uri),
            KmsKeyId=self.kms_key_arn,
            CaptureOptions=[
                sagemaker.CaptureOption(CaptureMode="Input"),
                sagemaker.CaptureOption(CaptureMode="Output"),
            ],
            CaptureContentTypeHeader=sagemaker.CaptureContentTypeHeader(
                CsvContentTypes=["text/csv"], JsonContentTypes=["application/json"]
            ),
        )
        config_resource = self.add(
            endpoint.endpoint_config(
                ENDPOINT_CONFIG,
                cfg,
                COMPONENT,
                model,
                prd.instance_type,
                prd.instance_count,
                self.kms_key_arn,
                capture,
            ),
            "Production fleet with data capture: Model Monitor reads the captured requests",
            must=[f"variant name stays {endpoint.VARIANT_NAME} (blue/green needs the same name)"],
        )
        self._guardrail_alarms()
        policy = prd.deployment
        routing = sagemaker.TrafficRoutingConfig(
            Type=TRAFFIC_ROUTING[policy.type],
            WaitIntervalInSeconds=policy.wait_interval_seconds,
        )
        step = sagemaker.CapacitySize(Type="CAPACITY_PERCENT", Value=policy.traffic_percent)
        if policy.type == "canary":
            routing.CanarySize = step
        elif policy.type == "linear":
            routing.LinearStepSize = step
        self.endpoint_resource = self.add(
            sagemaker.Endpoint(
                ENDPOINT,
                EndpointName=self.endpoint_name,
                EndpointConfigName=GetAtt(config_resource, "EndpointConfigName"),
                DeploymentConfig=sagemaker.DeploymentConfig(
                    BlueGreenUpdatePolicy=sagemaker.BlueGreenUpdatePolicy(
                        TrafficRoutingConfiguration=routing,
                        TerminationWaitInSeconds=policy.termination_wait_seconds,
                        MaximumExecutionTimeoutInSeconds=policy.maximum_execution_timeout_seconds,
                    ),
                    AutoRollbackConfiguration=sagemaker.AutoRollbackConfig(
                        Alarms=[
                            sagemaker.Alarm(AlarmName=Ref(self.endpoint_5xx)),
                            sagemaker.Alarm(AlarmName=Ref(self.endpoint_latency)),
                        ]
                    ),
                ),
                Tags=common.tags(cfg, COMPONENT),
            ),
            f"Production endpoint; model updates are {policy.type.replace('_', ' ')} blue/green "
            "deployments that SageMaker rolls back when a guardrail alarm fires",
            must=["the drift alarm, monitoring schedule and hooks name this endpoint"],
        )
        self.endpoint_arn = Ref(self.endpoint_resource)  # Ref of an Endpoint is its ARN

    def _rollback_alarm(
        self, logical_id: str, namespace: str, dimensions: dict[str, Any], **props: Any
    ) -> cloudwatch.Alarm:
        """An alarm a deployment rolls back on: one-minute periods, notifying the topic."""
        return cloudwatch.Alarm(
            logical_id,
            Namespace=namespace,
            Dimensions=[
                cloudwatch.MetricDimension(Name=name, Value=value)
                for name, value in dimensions.items()
            ],
            Period=60,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            # No requests means no datapoints: nothing to roll back for.
            TreatMissingData="notBreaching",
            AlarmActions=self.topic_actions,
            **props,
        )

    def _endpoint_alarm(self, logical_id: str, **props: Any) -> cloudwatch.Alarm:
        dimensions = {"EndpointName": self.endpoint_name, "VariantName": endpoint.VARIANT_NAME}
        return self._rollback_alarm(logical_id, "AWS/SageMaker", dimensions, **props)

    def _guardrail_alarms(self) -> None:
        prd = self.prd
        self.endpoint_5xx = self.add(
            self._endpoint_alarm(
                ENDPOINT_5XX_ALARM,
                AlarmDescription="Production endpoint returns 5XX errors (rolls a deployment back)",
                MetricName="Invocation5XXErrors",
                Statistic="Sum",
                Threshold=prd.max_5xx_errors,
                EvaluationPeriods=1,
            ),
            "Guardrail: SageMaker rolls the endpoint back while this alarm is in ALARM",
        )
        self.endpoint_latency = self.add(
            self._endpoint_alarm(
                ENDPOINT_LATENCY_ALARM,
                AlarmDescription=(
                    f"Production model latency above {prd.max_model_latency_ms} ms "
                    "(rolls a deployment back)"
                ),
                MetricName="ModelLatency",
                Statistic="Average",
                # ModelLatency is reported in microseconds.
                Threshold=prd.max_model_latency_ms * 1000,
                # Two slow minutes out of three: one cold request does not roll back.
                EvaluationPeriods=3,
                DatapointsToAlarm=2,
            ),
            "Guardrail: SageMaker rolls the endpoint back while this alarm is in ALARM",
        )

    # -- Auto scaling --------------------------------------------------------------------

    def autoscaling(self) -> None:
        """Target tracking on the variant's invocations per instance.

        SageMaker lets a registered variant change its model (every pipeline run), but
        refuses an update that changes its instance type: changing
        ``endpoints.prd.instance_type`` needs the scalable target deregistered first.
        """
        scaling = self.prd.autoscaling
        target = self.add(
            applicationautoscaling.ScalableTarget(
                SCALABLE_TARGET,
                ServiceNamespace="sagemaker",
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                ResourceId=Sub(
                    f"endpoint/${{{ENDPOINT}.EndpointName}}/variant/{endpoint.VARIANT_NAME}"
                ),
                MinCapacity=scaling.min_capacity,
                MaxCapacity=scaling.max_capacity,
                # No RoleARN: Application Auto Scaling uses its service-linked role
                # AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant.
            ),
            "Scales the production variant between the configured capacities",
        )
        tracking = applicationautoscaling.TargetTrackingScalingPolicyConfiguration(
            TargetValue=float(scaling.target_invocations_per_instance),
            PredefinedMetricSpecification=applicationautoscaling.PredefinedMetricSpecification(
                PredefinedMetricType="SageMakerVariantInvocationsPerInstance"
            ),
            ScaleInCooldown=scaling.scale_in_cooldown_seconds,
            ScaleOutCooldown=scaling.scale_out_cooldown_seconds,
        )
        self.add(
            applicationautoscaling.ScalingPolicy(
                SCALING_POLICY,
                PolicyName=f"{self.endpoint_name}-invocations",
                PolicyType="TargetTrackingScaling",
                ScalingTargetId=Ref(target),
                TargetTrackingScalingPolicyConfiguration=tracking,
            ),
            "Target tracking on invocations per instance",
        )

    # -- Model Monitor -------------------------------------------------------------------

    def monitoring(self) -> None:
        cfg, mon = self.config, self.config.monitoring
        regions.add_mapping(self.template, {"ModelMonitor": "model-monitor"})
        cluster = sagemaker.ClusterConfig(
            InstanceCount=1,
            InstanceType=mon.instance_type,
            VolumeSizeInGB=mon.volume_size_gb,
            VolumeKmsKeyId=self.kms_key_arn,
        )
        network = sagemaker.NetworkConfig(
            # The analyzer reads its inputs and writes its reports and metrics through
            # SageMaker; it needs no network of its own.
            EnableNetworkIsolation=True,
            EnableInterContainerTrafficEncryption=True,
        )
        if cfg.network.subnet_ids:
            network.VpcConfig = sagemaker.VpcConfig(
                Subnets=list(cfg.network.subnet_ids),
                SecurityGroupIds=list(cfg.network.security_group_ids),
            )
        job = self.add(
            sagemaker.DataQualityJobDefinition(
                DATA_QUALITY_JOB,
                # Unnamed: every change replaces a job definition, and CloudFormation
                # can only replace a resource whose name it generates.
                DataQualityAppSpecification=sagemaker.DataQualityAppSpecification(
                    ImageUri=regions.image("ModelMonitor"),
                    # Publishes feature_baseline_drift_<feature> to CloudWatch.
                    Environment={"publish_cloudwatch_metrics": "Enabled"},
                ),
                DataQualityBaselineConfig=sagemaker.DataQualityBaselineConfig(
                    StatisticsResource=sagemaker.StatisticsResource(S3Uri=Ref(self.statistics_uri)),
                    ConstraintsResource=sagemaker.ConstraintsResource(
                        S3Uri=Ref(self.constraints_uri)
                    ),
                ),
                DataQualityJobInput=sagemaker.DataQualityJobInput(
                    EndpointInput=sagemaker.EndpointInput(
                        EndpointName=GetAtt(self.endpoint_resource, "EndpointName"),
                        LocalPath="/opt/ml/processing/input/endpoint",
                        S3InputMode="File",
                        S3DataDistributionType="FullyReplicated",
                    )
                ),
                DataQualityJobOutputConfig=sagemaker.MonitoringOutputConfig(
                    KmsKeyId=self.kms_key_arn,
                    MonitoringOutputs=[
                        sagemaker.MonitoringOutput(
                            S3Output=sagemaker.S3Output(
                                LocalPath="/opt/ml/processing/output",
                                S3Uri=Ref(self.monitoring_uri),
                                S3UploadMode="EndOfJob",
                            )
                        )
                    ],
                ),
                JobResources=sagemaker.MonitoringResources(ClusterConfig=cluster),
                NetworkConfig=network,
                RoleArn=Ref(self.params[endpoint.EXECUTION_ROLE_ARN]),
                StoppingCondition=sagemaker.StoppingCondition(
                    MaxRuntimeInSeconds=mon.max_runtime_seconds
                ),
                Tags=common.tags(cfg, COMPONENT),
            ),
            "Model Monitor data-quality job: captured requests against the training baseline",
            must=["the baseline's feature names are the drift alarm's metric names"],
        )
        self.add(
            sagemaker.MonitoringSchedule(
                MONITORING_SCHEDULE,
                MonitoringScheduleName=self.schedule_name,
                EndpointName=GetAtt(self.endpoint_resource, "EndpointName"),
                MonitoringScheduleConfig=sagemaker.MonitoringScheduleConfig(
                    MonitoringJobDefinitionName=GetAtt(job, "JobDefinitionName"),
                    MonitoringType="DataQuality",
                    ScheduleConfig=sagemaker.ScheduleConfig(
                        ScheduleExpression=mon.schedule_expression
                    ),
                ),
                Tags=common.tags(cfg, COMPONENT),
            ),
            "Runs the data-quality job on the configured schedule",
            must=["the drift alarm's MonitoringSchedule dimension is this name"],
        )

    def drift_alarm(self) -> None:
        """The alarm on the metrics Model Monitor really emits.

        Data-quality monitoring publishes, per run and per feature, the metric
        ``feature_baseline_drift_<feature>`` in ``aws/sagemaker/Endpoints/data-metrics``
        with the dimensions ``Endpoint`` and ``MonitoringSchedule``: the distance between
        the feature's distribution in the captured requests and in the baseline. It emits
        no count of violations, so the alarm derives one with metric math: the number of
        watched features whose distance exceeds ``drift_distance_threshold`` (the value
        Model Monitor itself compares with), alarming when it reaches
        ``drift_violations_threshold``. One drifted feature is a reason to retrain;
        alarming on a single feature's metric would miss drift everywhere else, and a
        sum of distances would let many small, harmless shifts add up to an alarm.
        """
        mon = self.config.monitoring
        period = SCHEDULE_PERIOD_SECONDS[mon.schedule_expression]
        dimensions = [
            cloudwatch.MetricDimension(Name="Endpoint", Value=self.endpoint_name),
            cloudwatch.MetricDimension(Name="MonitoringSchedule", Value=self.schedule_name),
        ]
        queries = [
            cloudwatch.MetricDataQuery(
                Id=f"f{index}",
                Label=feature,
                MetricStat=cloudwatch.MetricStat(
                    Metric=cloudwatch.Metric(
                        Namespace=MODEL_MONITOR_NAMESPACE,
                        MetricName=f"feature_baseline_drift_{feature}",
                        Dimensions=dimensions,
                    ),
                    Period=period,
                    Stat="Maximum",
                ),
                ReturnData=False,
            )
            for index, feature in enumerate(mon.drift_features)
        ]
        threshold = format(mon.drift_distance_threshold, "g")
        # FILL: a feature without a datapoint in a run counts as not drifted.
        expression = " + ".join(
            f"IF(FILL(f{index}, 0) > {threshold}, 1, 0)" for index in range(len(queries))
        )
        queries.append(
            cloudwatch.MetricDataQuery(
                Id="drifted",
                Label="Features drifted from the baseline",
                Expression=expression,
                ReturnData=True,
            )
        )
        self.drift_alarm_resource = self.add(
            cloudwatch.Alarm(
                DRIFT_ALARM,
                AlarmName=self.drift_alarm_name,
                AlarmDescription=(
                    f"At least {mon.drift_violations_threshold} of the features "
                    f"{', '.join(mon.drift_features)} drifted more than {threshold} from the "
                    "training baseline in a Model Monitor run"
                ),
                Metrics=queries,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                Threshold=mon.drift_violations_threshold,
                EvaluationPeriods=1,
                DatapointsToAlarm=1,
                # No run in the period (or no captured traffic) is not drift.
                TreatMissingData="notBreaching",
                AlarmActions=self.topic_actions,
                OKActions=self.topic_actions,
            ),
            "Drift alarm: its state changes start retraining through the pipeline",
            must=[f"AlarmName is {self.drift_alarm_name}: the pipeline's rule matches it"],
        )

    # -- Lambda functions -----------------------------------------------------------------

    def _log_group(self, logical_id: str, why: str) -> Any:
        return self.add(
            common.log_group(
                logical_id,
                self.config,
                COMPONENT,
                self.kms_key_arn,
                self.config.api.log_retention_days,
            ),
            why,
        )

    def _function_role(
        self, logical_id: str, component: str, log_group: Any, statements: list[Statement], why: str
    ) -> iam.Role:
        network = self.config.network
        return self.add(
            functions.role(
                logical_id,
                self.config,
                COMPONENT,
                naming.physical_name(self.config, component, "iam-role"),
                log_group,
                self.kms_key_arn,
                statements,
                network.subnet_ids,
                network.security_group_ids,
            ),
            why,
        )

    def _function(
        self,
        logical_id: str,
        name: str,
        code_dir: str,
        role: iam.Role,
        log_group: Any,
        environment: dict[str, Any],
        timeout: int,
        why: str,
        skips: dict[str, str] | None = None,
        **props: Any,
    ) -> functions.SamFunction:
        cfg = self.config
        return self.add(
            functions.function(
                logical_id, cfg, COMPONENT, name, code_dir, role, log_group, self.kms_key_arn,
                environment, timeout, cfg.api.memory_mb, cfg.network.subnet_ids,
                cfg.network.security_group_ids, skips, **props,
            ),
            why,
        )

    def hooks(self) -> None:
        """The CodeDeploy PreTraffic and PostTraffic hook functions."""
        deployment_group_arn = common.arn(
            "codedeploy",
            f"deploymentgroup:${{{SAM_CODEDEPLOY_APPLICATION}}}/${{{SAM_DEPLOYMENT_GROUP}}}",
        )
        report = iam_policy.allow(
            [
                codedeploy_actions.PutLifecycleEventHookExecutionStatus,
                codedeploy_actions.GetDeployment,
            ],
            deployment_group_arn,
            sid="ReportToOwnDeploymentGroup",
        )
        check_endpoint = iam_policy.allow(
            [sm.DescribeEndpoint, sm.InvokeEndpoint], self.endpoint_arn, sid="CheckEndpoint"
        )
        dead_letters = [
            iam_policy.allow([sns_actions.Publish], Ref(self.topic), sid="DeadLetters"),
            iam_policy.allow(
                [kms_actions.GenerateDataKey, kms_actions.Decrypt],
                self.kms_key_arn,
                sid="EncryptDeadLetters",
            ),
        ]
        # CodeDeploy invokes hooks asynchronously: an invocation that fails before
        # reporting lands on the notification topic instead of vanishing.
        dlq = serverless.DeadLetterQueue(Type="SNS", TargetArn=Ref(self.topic))

        pre_logs = self._log_group(f"{PRE_TRAFFIC_HOOK}LogGroup", "Logs of the PreTraffic hook")
        # The hook tries the API function version being deployed before it gets traffic.
        invoke_new_version = iam_policy.allow(
            [lambda_actions.InvokeFunction],
            functions.function_arns(self.api_name)[1],
            sid="InvokeNewApiVersion",
        )
        pre_role = self._function_role(
            f"{PRE_TRAFFIC_HOOK}Role",
            "prd-pre-traffic",
            pre_logs,
            [report, check_endpoint, invoke_new_version, *dead_letters],
            "PreTraffic hook: report to its deployment group, describe and invoke the endpoint, "
            "invoke the API version being deployed",
        )
        self.pre_hook = self._function(
            PRE_TRAFFIC_HOOK,
            self.pre_hook_name,
            "pre_traffic_hook",
            pre_role,
            pre_logs,
            {
                "ENDPOINT_NAME": self.endpoint_name,
                "SAMPLE_CSV": SAMPLE_CSV,
                # SAM's reference to the version its AutoPublishAlias publishes.
                "API_FUNCTION_VERSION": Ref(f"{API_FUNCTION}.Version"),
            },
            PRE_TRAFFIC_TIMEOUT_SECONDS,
            "CodeDeploy PreTraffic hook: the endpoint is InService, captures data and answers, "
            "and the API version being deployed answers a real request",
            DeadLetterQueue=dlq,
            DependsOn=[ENDPOINT],
        )

        capture_path = Select(1, Split("s3://", Ref(self.capture_uri)))
        bucket = Select(0, Split("/", capture_path))
        # Fn::Split takes only a literal delimiter, so the key prefix of a URI of any
        # depth cannot be cut out of the Parameter; listing is limited instead to the
        # folders SageMaker names after this endpoint (<prefix>/<endpoint>/<variant>/...).
        endpoint_folders = [f"*/{self.endpoint_name}/", f"*/{self.endpoint_name}/*"]
        read_capture = [
            iam_policy.allow(
                [s3_actions.ListBucket],
                Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", bucket]),
                conditions=Condition(StringLike("s3:prefix", endpoint_folders)),
                sid="ListCapturedEndpointFolders",
            ),
            iam_policy.allow(
                [s3_actions.GetObject],
                Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", capture_path, "/*"]),
                sid="ReadCapturedData",
            ),
        ]
        post_logs = self._log_group(f"{POST_TRAFFIC_HOOK}LogGroup", "Logs of the PostTraffic hook")
        post_role = self._function_role(
            f"{POST_TRAFFIC_HOOK}Role",
            "prd-post-traffic",
            post_logs,
            [report, check_endpoint, *read_capture, *dead_letters],
            "PostTraffic hook: report to its deployment group, invoke the endpoint, read "
            "the capture prefix",
        )
        self.post_hook = self._function(
            POST_TRAFFIC_HOOK,
            self.post_hook_name,
            "post_traffic_hook",
            post_role,
            post_logs,
            {
                "ENDPOINT_NAME": self.endpoint_name,
                "DATA_CAPTURE_URI": Ref(self.capture_uri),
                "MAX_WAIT_SECONDS": str(POST_TRAFFIC_MAX_WAIT_SECONDS),
                "SAMPLE_CSV": SAMPLE_CSV,
            },
            POST_TRAFFIC_TIMEOUT_SECONDS,
            "CodeDeploy PostTraffic hook: captured requests still reach S3 after the shift",
            DeadLetterQueue=dlq,
            DependsOn=[ENDPOINT],
        )

    def codedeploy_role(self) -> None:
        """CodeDeploy's service role, in place of SAM's AWSCodeDeployRoleForLambda."""
        self.codedeploy = self.add(
            iam.Role(
                CODEDEPLOY_ROLE,
                RoleName=naming.physical_name(self.config, "prd-codedeploy", "iam-role"),
                AssumeRolePolicyDocument=iam_policy.trust("codedeploy.amazonaws.com"),
                Policies=[
                    iam_policy.inline_policy(
                        "lambda-deployment",
                        iam_policy.allow(
                            [
                                lambda_actions.GetAlias,
                                lambda_actions.UpdateAlias,
                                lambda_actions.GetProvisionedConcurrencyConfig,
                            ],
                            functions.function_arns(self.api_name),
                            sid="ShiftApiAlias",
                        ),
                        iam_policy.allow(
                            [lambda_actions.InvokeFunction],
                            functions.function_arns(self.pre_hook_name)
                            + functions.function_arns(self.post_hook_name),
                            sid="RunHooks",
                        ),
                        # DescribeAlarms has no resource-level permissions (it is a
                        # listing action): it needs Resource "*". Read-only.
                        iam_policy.allow(
                            [cloudwatch_actions.DescribeAlarms], "*", sid="ReadRollbackAlarms"
                        ),
                        iam_policy.allow(
                            [sns_actions.Publish], Ref(self.topic), sid="NotifyDeploymentEvents"
                        ),
                        iam_policy.allow(
                            [kms_actions.GenerateDataKey, kms_actions.Decrypt],
                            self.kms_key_arn,
                            sid="EncryptNotifications",
                        ),
                    )
                ],
                Tags=common.tags(self.config, COMPONENT),
            ),
            "CodeDeploy shifts the API alias, runs the two hooks and notifies the topic; "
            "scoped to this stack instead of the AWSCodeDeployRoleForLambda managed policy",
        )

    def _api_alarms(self, stage: str) -> list[cloudwatch.Alarm]:
        def errors(logical_id: str, namespace: str, metric: str, description: str,
                   dimensions: dict[str, Any]) -> cloudwatch.Alarm:
            return self._rollback_alarm(
                logical_id,
                namespace,
                dimensions,
                AlarmDescription=description,
                MetricName=metric,
                Statistic="Sum",
                EvaluationPeriods=1,
                Threshold=1,
            )

        alias = {"FunctionName": self.api_name, "Resource": f"{self.api_name}:{ALIAS}"}
        alias_errors = self.add(
            errors(
                ALIAS_ERRORS_ALARM, "AWS/Lambda", "Errors",
                f"API function alias '{ALIAS}' raises errors (rollback)", alias,
            ),
            "CodeDeploy rollback alarm: errors of the live alias (old and new version)",
        )
        new_version_errors = self.add(
            errors(
                NEW_VERSION_ERRORS_ALARM, "AWS/Lambda", "Errors",
                "The API function version being deployed raises errors (rollback)",
                {**alias, "ExecutedVersion": GetAtt(f"{API_FUNCTION}.Version", "Version")},
            ),
            "CodeDeploy rollback alarm: errors of the version being deployed",
        )
        api_5xx = self.add(
            errors(
                API_5XX_ALARM, "AWS/ApiGateway", "5XXError",
                "The API answers 5XX errors (rollback)",
                {"ApiName": self.api_name, "Stage": stage},
            ),
            "CodeDeploy rollback alarm: 5XX answers of the API stage",
        )
        return [alias_errors, new_version_errors, api_5xx]

    def _usage_plan(self) -> None:
        """API key and usage plan (quota and throttle per key) for ``api.auth: api_key``."""
        api_cfg = self.config.api
        self.api_key = self.add(
            apigateway.ApiKey(
                API_KEY,
                Name=f"{self.api_name}-key",
                Description=f"Key of the {naming.base(self.config)} prediction API",
                Enabled=True,
                Tags=common.tags(self.config, COMPONENT),
            ),
            "The API key callers send in x-api-key",
        )
        plan = self.add(
            apigateway.UsagePlan(
                USAGE_PLAN,
                UsagePlanName=f"{self.api_name}-usage",
                Description="Daily quota and throttle of the prediction API's key",
                # "<Api>.Stage" is SAM's reference to the stage it generates: the plan
                # waits for the stage to exist.
                ApiStages=[
                    apigateway.ApiStage(ApiId=Ref(self.api_resource), Stage=Ref(f"{API}.Stage"))
                ],
                Quota=apigateway.QuotaSettings(Limit=api_cfg.quota_per_day, Period="DAY"),
                Throttle=apigateway.ThrottleSettings(
                    BurstLimit=api_cfg.throttle.burst_limit,
                    RateLimit=api_cfg.throttle.rate_limit,
                ),
                Tags=common.tags(self.config, COMPONENT),
            ),
            "Quota and throttle applied to the API key",
        )
        self.add(
            apigateway.UsagePlanKey(
                USAGE_PLAN_KEY,
                KeyId=Ref(self.api_key),
                KeyType="API_KEY",
                UsagePlanId=Ref(plan),
            ),
            "Attaches the API key to the usage plan",
        )

    def api(self) -> None:
        cfg, api_cfg = self.config, self.config.api
        stage = api_cfg.stage_name
        access_logs = self._log_group(API_ACCESS_LOGS, "Access logs of the API stage")
        auth = serverless.Auth()
        if api_cfg.auth == "iam":
            # NONE: API Gateway invokes the function with its resource-based permission,
            # not with the caller's credentials.
            auth.DefaultAuthorizer = "AWS_IAM"
            auth.InvokeRole = "NONE"
        else:
            # The key, usage plan and their link are declared below rather than through
            # SAM's Auth.UsagePlan, whose generated resources carry redundant DependsOn.
            auth.ApiKeyRequired = True
        if api_cfg.ip_allow_list:
            invoke = "execute-api:Invoke"
            statements: list[dict[str, Any]] = [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": invoke,
                    "Resource": "execute-api:/*",
                    "Condition": {"NotIpAddress": {"aws:SourceIp": list(api_cfg.ip_allow_list)}},
                }
            ]
            if api_cfg.auth == "api_key":
                # Without IAM auth API Gateway needs an explicit Allow; callers still need
                # an API key, and the Deny above keeps every other address out.
                statements.insert(
                    0,
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": invoke,
                        "Resource": "execute-api:/*",
                    },
                )
            # IAM auth needs no Allow: same-account callers are authorised by their IAM
            # policies, and other accounts stay out because nothing here allows them.
            auth.ResourcePolicy = serverless.ResourcePolicyStatement(CustomStatements=statements)

        api = _Api(
            API,
            Name=self.api_name,
            StageName=stage,
            # Without it SAM also creates a stage named "Stage".
            OpenApiVersion="3.0.1",
            EndpointConfiguration=serverless.EndpointConfiguration(Type="REGIONAL"),
            Auth=auth,
            TracingEnabled=True,
            AccessLogSetting=serverless.AccessLogSetting(
                DestinationArn=GetAtt(access_logs, "Arn"), Format=API_ACCESS_LOG_FORMAT
            ),
            MethodSettings=[
                MethodSetting(
                    ResourcePath="/*",
                    HttpMethod="*",
                    ThrottlingRateLimit=api_cfg.throttle.rate_limit,
                    ThrottlingBurstLimit=api_cfg.throttle.burst_limit,
                    MetricsEnabled=True,
                    DataTraceEnabled=False,
                )
            ],
            Tags=functions.tag_dict(cfg, COMPONENT),
            PropagateTags=True,
        )
        common.skip_checkov(
            api,
            {
                "CKV_AWS_120": (
                    "Caching is off on purpose: every POST carries its own features and a "
                    "cached answer would return another request's prediction"
                ),
            },
        )
        self.api_resource = self.add(
            api,
            f"REST API in front of the endpoint: {api_cfg.auth.replace('_', ' ')} auth, "
            "throttled, traced, access-logged",
            must=["never a method open without IAM auth or a required API key"],
        )

        if api_cfg.auth == "api_key":
            self._usage_plan()
        rollback_alarms = self._api_alarms(stage)
        function_logs = self._log_group(f"{API_FUNCTION}LogGroup", "Logs of the API function")
        role = self._function_role(
            f"{API_FUNCTION}Role",
            "prd-api",
            function_logs,
            [iam_policy.allow([sm.InvokeEndpoint], self.endpoint_arn, sid="InvokeEndpoint")],
            "API function: invoke the production endpoint only",
        )
        self._function(
            API_FUNCTION,
            self.api_name,
            "api",
            role,
            function_logs,
            {"ENDPOINT_NAME": GetAtt(self.endpoint_resource, "EndpointName")},
            api_cfg.timeout_seconds,
            "Forwards API requests to the endpoint; CodeDeploy shifts its alias gradually",
            skips={
                "CKV_AWS_116": (
                    "API Gateway invokes the function synchronously and receives every "
                    "error; a dead-letter queue only ever receives asynchronous events"
                )
            },
            AutoPublishAlias=ALIAS,
            DeploymentPreference=_DeploymentPreference(
                Type=api_cfg.deployment_preference,
                Alarms=[Ref(alarm) for alarm in rollback_alarms],
                Hooks=serverless.Hooks(
                    PreTraffic=Ref(self.pre_hook), PostTraffic=Ref(self.post_hook)
                ),
                Role=GetAtt(self.codedeploy, "Arn"),
                TriggerConfigurations=[
                    {
                        "TriggerName": "deployment-events",
                        "TriggerTargetArn": Ref(self.topic),
                        "TriggerEvents": [
                            "DeploymentStart",
                            "DeploymentSuccess",
                            "DeploymentFailure",
                            "DeploymentStop",
                            "DeploymentRollback",
                        ],
                    }
                ],
            ),
            Events={
                "Predict": {
                    "Type": "Api",
                    "Properties": {
                        "RestApiId": Ref(self.api_resource),
                        "Path": API_PATH,
                        "Method": "post",
                    },
                }
            },
        )

    # -- Outputs --------------------------------------------------------------------------

    def outputs(self) -> None:
        stage = self.config.api.stage_name
        outputs = [
            Output(
                "EndpointName",
                Description="Name of the production SageMaker endpoint",
                Value=GetAtt(self.endpoint_resource, "EndpointName"),
            ),
            Output(
                "ApiUrl",
                Description=f"URL to POST text/csv or application/json rows to ({API_PATH})",
                Value=Sub(
                    f"https://${{{API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
                    f"/{stage}{API_PATH}"
                ),
            ),
            Output(
                "NotificationTopicArn",
                Description="SNS topic of the stack's alarms and API deployments",
                Value=Ref(self.topic),
            ),
            Output(
                "DriftAlarmName",
                Description="CloudWatch alarm that fires when Model Monitor finds drift",
                Value=Ref(self.drift_alarm_resource),
            ),
        ]
        if self.config.api.auth == "api_key":
            outputs.append(
                Output(
                    "ApiKeyId",
                    Description="ID of the API key (read its value with apigateway get-api-key)",
                    Value=Ref(self.api_key),
                )
            )
        self.template.add_output(outputs)


def build(config: Config) -> Template:
    """The production stack.

    Creates: a KMS key and a KMS-encrypted ``AWS::SNS::Topic`` (optional e-mail
    subscription); ``AWS::SageMaker::Model``, ``AWS::SageMaker::EndpointConfig`` (volume
    and data capture encrypted with ``KmsKeyArn``) and the ``AWS::SageMaker::Endpoint``
    ``<prefix>-<name>-prd`` with a blue/green ``DeploymentConfig`` and auto-rollback on
    two ``AWS::CloudWatch::Alarm`` (5XX errors, model latency);
    ``AWS::ApplicationAutoScaling::ScalableTarget`` and ``ScalingPolicy``;
    ``AWS::SageMaker::DataQualityJobDefinition`` and ``AWS::SageMaker::MonitoringSchedule``
    ``<prefix>-<name>-prd-data-quality`` and the drift alarm ``<prefix>-<name>-prd-drift``;
    the ``AWS::Serverless::Api`` and three ``AWS::Serverless::Function`` (API, PreTraffic
    and PostTraffic hooks) with their IAM roles and encrypted log groups, CodeDeploy's
    IAM role and three rollback alarms.
    """
    builder = _Builder(config)
    builder.parameters()
    builder.notifications()
    builder.endpoint()
    builder.autoscaling()
    builder.monitoring()
    builder.drift_alarm()
    builder.hooks()
    builder.codedeploy_role()
    builder.api()
    builder.outputs()
    context.describe_template(
        builder.template,
        "API Gateway (IAM or API key) -> Lambda alias (CodeDeploy canary with hooks) -> "
        "SageMaker endpoint (blue/green guardrails, auto scaling, data capture to S3) -> "
        "Model Monitor schedule -> drift alarm -> SNS and the pipeline's retraining rule",
        must=[
            "data at rest encrypted with customer-managed KMS keys",
            "the API is never reachable without authentication",
        ],
    )
    return builder.template
