"""Encryption, storage and notifications of the pipeline stack.

The project's KMS key and alias; the artifact and data buckets (KMS, versioned, public
access blocked, TLS only) with the access-log bucket they log to; the notification topic
with its policy and optional e-mail subscription; the image repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sns as sns_actions
from awacs.aws import (
    Allow,
    ArnEquals,
    ArnLike,
    Condition,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import GetAtt, Join, Parameter, Ref, Sub, ecr, kms, s3, sns

from mlops_templates import iam as iamdoc
from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks.batch.names import NOTICE_COMPONENTS
from mlops_templates.stacks.pipeline.names import PROJECT_ID
from mlops_templates.stacks.pipeline.parameters import HAS_EMAIL
from mlops_templates.stacks.pipeline.stack import Stack

KEY = "KmsKey"
KEY_ALIAS = "KmsKeyAlias"
LOG_BUCKET = "AccessLogBucket"
LOG_BUCKET_POLICY = "AccessLogBucketPolicy"
ARTIFACT_BUCKET = "ArtifactBucket"
ARTIFACT_BUCKET_POLICY = "ArtifactBucketPolicy"
DATA_BUCKET = "DataBucket"
DATA_BUCKET_POLICY = "DataBucketPolicy"
TOPIC = "NotificationTopic"
TOPIC_POLICY = "NotificationTopicPolicy"
SUBSCRIPTION = "NotificationSubscription"
REPOSITORY = "ImageRepository"

#: Images kept in the repository; an endpoint needs its image to scale out.
IMAGES_KEPT = 100
#: Name components of the EventBridge rules that publish notices to the topic
#: (:mod:`.rules`): a run failed, a run started, production deployed.
#: Name components of the pipeline's run notice rules (rules.py) and of the registry's
#: rejection notice rule (promotion.py, which exists with the promotion only).
RUN_NOTICE_COMPONENTS = ("pipeline-failed", "run-started", "run-succeeded")
REJECTED_NOTICE_COMPONENT = "registry-rejected"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    KEY: "Customer-managed key of the project's buckets, topic, logs, image repository and "
    "pipeline artifacts",
    KEY_ALIAS: "Stable name of the project key for people and per-run stacks",
    LOG_BUCKET: "Receives the S3 server access logs of the artifact and data buckets",
    LOG_BUCKET_POLICY: "TLS only; lets the S3 logging service deliver access logs",
    ARTIFACT_BUCKET: "Pipeline artifacts, packaged templates and the results of each run",
    ARTIFACT_BUCKET_POLICY: "Denies requests that do not use TLS",
    DATA_BUCKET: "Training data; uploads under the data prefix start a run via EventBridge",
    DATA_BUCKET_POLICY: "Denies requests that do not use TLS",
    TOPIC: "Approval requests and failure notices of the pipeline",
    TOPIC_POLICY: "Lets the notice rules (run started, failed, deployed; the batch alarms') publish to the topic",
    SUBSCRIPTION: "Optional e-mail subscriber of the notification topic",
    REPOSITORY: "The project's container image, one immutable tag per run",
}


@dataclass(frozen=True)
class Storage:
    """The project's key and the stores the roles, builds and pipeline use."""

    key: kms.Key
    artifact: s3.Bucket
    data: s3.Bucket
    topic: sns.Topic
    repository: ecr.Repository


def key(stack: Stack) -> kms.Key:
    """The project's customer-managed KMS key and its alias ``alias/<prefix>-<project>``."""
    names = stack.names
    project_key = common.kms_key(
        KEY,
        stack.config,
        "pipeline",
        Sub(f"Encrypts the artifacts, data, logs and images of {names.base} (${{{PROJECT_ID}}})"),
    )
    project_key.KeyPolicy.Statement += [
        common.logs_key_statement("CloudWatchLogsOfThisAccount"),
        # EventBridge rules and CloudWatch alarms publish to topics encrypted with
        # this key (the pipeline's and deploy-prd's).
        Statement(
            Sid="EncryptedTopicPublishers",
            Effect=Allow,
            Principal=Principal("Service", ["cloudwatch.amazonaws.com", "events.amazonaws.com"]),
            Action=[kms_actions.GenerateDataKey, kms_actions.Decrypt],
            Resource=["*"],
        ),
    ]
    project_key.Tags = stack.tags("pipeline")
    stack.add(project_key)
    stack.add(kms.Alias(KEY_ALIAS, AliasName=Sub(f"alias/{names.base}"), TargetKeyId=Ref(project_key)))
    return project_key


def create(stack: Stack, project_key: kms.Key, email: Parameter) -> Storage:
    """The buckets, the notification topic and the image repository, encrypted with ``project_key``."""
    log_bucket = _log_bucket(stack, project_key)
    artifact = _artifact_bucket(stack, project_key, log_bucket)
    data = _data_bucket(stack, project_key, log_bucket)
    for bucket, policy in ((artifact, ARTIFACT_BUCKET_POLICY), (data, DATA_BUCKET_POLICY)):
        stack.add(bucket)
        stack.add(common.tls_only_bucket_policy(policy, bucket))
    return Storage(
        key=project_key,
        artifact=artifact,
        data=data,
        topic=_topic(stack, project_key, email),
        repository=_repository(stack, project_key),
    )


def _log_bucket(stack: Stack, project_key: kms.Key) -> s3.Bucket:
    """The access-log bucket of the artifact and data buckets, and its policy."""
    log_bucket = common.secure_bucket(LOG_BUCKET, stack.config, "pipeline", project_key)
    # S3 server access logs can only be delivered to SSE-S3 buckets.
    log_bucket.BucketEncryption = s3.BucketEncryption(
        ServerSideEncryptionConfiguration=[
            s3.ServerSideEncryptionRule(
                ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
            )
        ]
    )
    log_bucket.BucketName = stack.names.bucket("logs")
    log_bucket.LifecycleConfiguration = s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id="ExpireAccessLogs",
                Status="Enabled",
                ExpirationInDays=stack.config.pipeline.log_retention_days,
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=1),
            )
        ]
    )
    log_bucket.Tags = stack.tags("pipeline")
    common.skip_checkov(
        log_bucket,
        {
            "CKV_AWS_18": "This is the access-log bucket; logging it into itself would loop",
            # Terraform-only ID in checkov today; it records the KMS exception.
            "CKV_AWS_145": "S3 server access logging delivers only to SSE-S3 (AES256) buckets",
        },
    )
    stack.add(log_bucket)
    log_policy = common.tls_only_bucket_policy(LOG_BUCKET_POLICY, log_bucket)
    log_policy.PolicyDocument.Statement.append(_log_delivery(stack, log_bucket))
    stack.add(log_policy)
    return log_bucket


def _log_delivery(stack: Stack, log_bucket: s3.Bucket) -> Statement:
    """Lets the S3 logging service write the access logs of the project's buckets."""
    return Statement(
        Sid="ServerAccessLogDelivery",
        Effect=Allow,
        Principal=Principal("Service", "logging.s3.amazonaws.com"),
        Action=[s3_actions.PutObject],
        Resource=[Join("", [GetAtt(log_bucket, "Arn"), "/*"])],
        Condition=Condition(
            [
                ArnLike(
                    "aws:SourceArn",
                    [
                        common.arn("s3", stack.names.bucket_text(suffix), region=False, account=False)
                        for suffix in ("art", "data")
                    ],
                ),
                StringEquals("aws:SourceAccount", Ref("AWS::AccountId")),
            ]
        ),
    )


def _artifact_bucket(stack: Stack, project_key: kms.Key, log_bucket: s3.Bucket) -> s3.Bucket:
    artifact = common.secure_bucket(ARTIFACT_BUCKET, stack.config, "pipeline", project_key, log_bucket)
    artifact.BucketName = stack.names.bucket("art")
    artifact.DependsOn = [LOG_BUCKET_POLICY]
    artifact.LifecycleConfiguration = s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id="ExpireOldVersions",
                Status="Enabled",
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=90),
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(
                    DaysAfterInitiation=7
                ),
            )
        ]
    )
    artifact.Tags = stack.tags("pipeline")
    return artifact


def _data_bucket(stack: Stack, project_key: kms.Key, log_bucket: s3.Bucket) -> s3.Bucket:
    data = common.secure_bucket(DATA_BUCKET, stack.config, "pipeline", project_key, log_bucket)
    data.BucketName = stack.names.bucket("data")
    data.DependsOn = [LOG_BUCKET_POLICY]
    data.NotificationConfiguration = s3.NotificationConfiguration(
        EventBridgeConfiguration=s3.EventBridgeConfiguration(EventBridgeEnabled=True)
    )
    data.LifecycleConfiguration = s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id="AbortIncompleteUploads",
                Status="Enabled",
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(
                    DaysAfterInitiation=7
                ),
            )
        ]
    )
    data.Tags = stack.tags("pipeline")
    return data


def notice_rule_components(config: Config) -> tuple[str, ...]:
    """Name components of the rules that may publish to the topic: the pipeline's notices
    (the registry's rejection notice only with the promotion, ``deployment.mode`` realtime or
    both) and, with a batch stack (batch or both), its alarms' notices."""
    rejected = (REJECTED_NOTICE_COMPONENT,) if config.deployment.realtime else ()
    batch = tuple(NOTICE_COMPONENTS.values()) if config.deployment.batch else ()
    return RUN_NOTICE_COMPONENTS + rejected + batch


def _topic(stack: Stack, project_key: kms.Key, email: Parameter) -> sns.Topic:
    """The approval and failure topic, its policy and the optional e-mail subscription."""
    names = stack.names
    topic = stack.add(
        sns.Topic(
            TOPIC,
            TopicName=names.name("notifications"),
            DisplayName=Sub(f"{names.base} pipeline"),
            KmsMasterKeyId=GetAtt(project_key, "Arn"),
            Tags=stack.tags("pipeline"),
        )
    )
    stack.add(
        sns.TopicPolicy(
            TOPIC_POLICY,
            Topics=[Ref(topic)],
            PolicyDocument=iamdoc.document(
                Statement(
                    Sid="PipelineNotices",
                    Effect=Allow,
                    Principal=Principal("Service", "events.amazonaws.com"),
                    Action=[sns_actions.Publish],
                    Resource=[Ref(topic)],
                    Condition=Condition(
                        ArnEquals(
                            "aws:SourceArn",
                            [
                                common.arn("events", f"rule/{names.text(component)}")
                                for component in notice_rule_components(stack.config)
                            ],
                        )
                    ),
                )
            ),
        )
    )
    stack.add(common.email_subscription(SUBSCRIPTION, HAS_EMAIL, email, topic))
    return topic


def _repository(stack: Stack, project_key: kms.Key) -> ecr.Repository:
    """The image repository: scan on push, immutable tags, KMS, lifecycle policy."""
    lifecycle = {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Remove untagged layers of interrupted pushes",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the images of the last {IMAGES_KEPT} runs",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": IMAGES_KEPT,
                },
                "action": {"type": "expire"},
            },
        ]
    }
    return stack.add(
        ecr.Repository(
            REPOSITORY,
            RepositoryName=Sub(stack.names.base),
            ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
            ImageTagMutability="IMMUTABLE",
            EncryptionConfiguration=ecr.EncryptionConfiguration(
                EncryptionType="KMS", KmsKey=GetAtt(project_key, "Arn")
            ),
            LifecyclePolicy=ecr.LifecyclePolicy(
                LifecyclePolicyText=json.dumps(lifecycle, sort_keys=True)
            ),
            Tags=stack.tags("pipeline"),
            DeletionPolicy=common.RETAIN,
            UpdateReplacePolicy="Retain",
        )
    )
