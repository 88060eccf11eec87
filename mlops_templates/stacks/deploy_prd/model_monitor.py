"""Drift monitoring with SageMaker Model Monitor (``monitoring.engine: model_monitor``): the
data-quality schedule over the captured requests and answers, and its drift alarm.

SageMaker Model Monitor is closed to new customers ("Amazon SageMaker Model Monitor is no
longer open to new customers. Existing customers can continue to use the service as
normal", https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-schedule-data-monitor.html):
accounts that have it may keep it; every other account uses the builtin engine
(:mod:`.monitor`). Its analyzer reads the captured output and input together, with "the
prediction/output column(s) ... assumed to be the 1st column(s) in the training dataset"
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-create-baseline.html), so the
workflow's baseline dataset is ``prediction`` then the features (``preprocess``).
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, cloudwatch, sagemaker

from mlops_templates import regions
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.alarms import SCHEDULES
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.deploy_prd.serving import Endpoint
from mlops_templates.stacks.stack import Stack

MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"


def _network(stack: Stack) -> sagemaker.NetworkConfig:
    network = sagemaker.NetworkConfig(
        # The analyzer reads its inputs and writes its reports and metrics through
        # SageMaker; it needs no network of its own.
        EnableNetworkIsolation=True,
        EnableInterContainerTrafficEncryption=True,
    )
    placement = stack.config.network
    if placement.subnet_ids:
        network.VpcConfig = sagemaker.VpcConfig(
            Subnets=list(placement.subnet_ids),
            SecurityGroupIds=list(placement.security_group_ids),
        )
    return network


def data_quality_job(
    stack: Stack, inputs: Inputs, served: Endpoint
) -> sagemaker.DataQualityJobDefinition:
    """The Model Monitor job: captured requests against the training baseline."""
    mon = stack.config.monitoring
    regions.add_mapping(stack.template, {"ModelMonitor": "model-monitor"})
    cluster = sagemaker.ClusterConfig(
        InstanceCount=1,
        InstanceType=mon.instance_type,
        VolumeSizeInGB=mon.volume_size_gb,
        VolumeKmsKeyId=inputs.kms_key_arn,
    )
    output = sagemaker.MonitoringOutput(
        S3Output=sagemaker.S3Output(
            LocalPath="/opt/ml/processing/output",
            S3Uri=Ref(inputs.monitoring_uri),
            S3UploadMode="EndOfJob",
        )
    )
    return stack.add(
        sagemaker.DataQualityJobDefinition(
            n.DATA_QUALITY_JOB,
            # Unnamed: every change replaces a job definition, and CloudFormation
            # can only replace a resource whose name it generates.
            DataQualityAppSpecification=sagemaker.DataQualityAppSpecification(
                ImageUri=regions.image("ModelMonitor"),
                # Publishes feature_baseline_drift_<feature> to CloudWatch.
                Environment={"publish_cloudwatch_metrics": "Enabled"},
            ),
            DataQualityBaselineConfig=sagemaker.DataQualityBaselineConfig(
                StatisticsResource=sagemaker.StatisticsResource(S3Uri=Ref(inputs.statistics_uri)),
                ConstraintsResource=sagemaker.ConstraintsResource(
                    S3Uri=Ref(inputs.constraints_uri)
                ),
            ),
            DataQualityJobInput=sagemaker.DataQualityJobInput(
                EndpointInput=sagemaker.EndpointInput(
                    EndpointName=served.name_ref,
                    LocalPath="/opt/ml/processing/input/endpoint",
                    S3InputMode="File",
                    S3DataDistributionType="FullyReplicated",
                )
            ),
            DataQualityJobOutputConfig=sagemaker.MonitoringOutputConfig(
                KmsKeyId=inputs.kms_key_arn, MonitoringOutputs=[output]
            ),
            JobResources=sagemaker.MonitoringResources(ClusterConfig=cluster),
            NetworkConfig=_network(stack),
            RoleArn=inputs.execution_role_arn,
            StoppingCondition=sagemaker.StoppingCondition(
                MaxRuntimeInSeconds=mon.max_runtime_seconds
            ),
            Tags=stack.tags(),
        ),
        "Model Monitor data-quality job: captured requests against the training baseline",
        must=["the baseline's feature names are the drift alarm's metric names"],
    )


def schedule(stack: Stack, inputs: Inputs, served: Endpoint, names: n.Names) -> None:
    """The data-quality job, run on the configured schedule."""
    job = data_quality_job(stack, inputs, served)
    stack.add(
        sagemaker.MonitoringSchedule(
            n.MONITORING_SCHEDULE,
            MonitoringScheduleName=names.schedule,
            EndpointName=served.name_ref,
            MonitoringScheduleConfig=sagemaker.MonitoringScheduleConfig(
                MonitoringJobDefinitionName=GetAtt(job, "JobDefinitionName"),
                MonitoringType="DataQuality",
                ScheduleConfig=sagemaker.ScheduleConfig(
                    ScheduleExpression=stack.config.monitoring.schedule_expression
                ),
            ),
            Tags=stack.tags(),
        ),
        "Runs the data-quality job on the configured schedule",
        must=["the drift alarm's MonitoringSchedule dimension is this name"],
    )


def _drifted_features(stack: Stack, names: n.Names) -> list[cloudwatch.MetricDataQuery]:
    """One query per watched feature, and the count of those past the threshold."""
    mon = stack.config.monitoring
    period = SCHEDULES[mon.schedule_expression].period
    dimensions = [
        cloudwatch.MetricDimension(Name="Endpoint", Value=names.endpoint),
        cloudwatch.MetricDimension(Name="MonitoringSchedule", Value=names.schedule),
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
    return queries


def drift_alarm(stack: Stack, names: n.Names) -> cloudwatch.Alarm:
    """The alarm on the metrics Model Monitor really emits.

    Data-quality monitoring publishes, per run and per feature, the metric
    ``feature_baseline_drift_<feature>`` in ``aws/sagemaker/Endpoints/data-metrics``
    with the dimensions ``Endpoint`` and ``MonitoringSchedule``: the distance between
    the feature's distribution in the captured requests and in the baseline. It emits
    no count of violations, so the alarm derives one with metric math: the number of
    watched features whose distance exceeds ``drift_distance_threshold`` (the value
    Model Monitor itself compares with), alarming when it reaches
    ``drift_violations_threshold``. Its state changes reach people through the
    notification rules (:mod:`.notices`), never as the raw alarm message.
    """
    mon = stack.config.monitoring
    threshold = format(mon.drift_distance_threshold, "g")
    return stack.add(
        cloudwatch.Alarm(
            n.DRIFT_ALARM,
            AlarmName=names.drift_alarm,
            AlarmDescription=(
                f"At least {mon.drift_violations_threshold} of the features "
                f"{', '.join(mon.drift_features)} drifted more than {threshold} from the "
                "training baseline in a Model Monitor run"
            ),
            Metrics=_drifted_features(stack, names),
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            Threshold=mon.drift_violations_threshold,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            # No run in the period (or no captured traffic) is not drift.
            TreatMissingData="notBreaching",
        ),
        "Drift alarm: its state changes start retraining through the pipeline",
        must=[f"AlarmName is {names.drift_alarm}: the pipeline's rule matches it"],
    )
