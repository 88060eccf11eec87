"""Pipeline stack: the Service Catalog product a SageMaker Studio project instantiates.

One stack per project (Parameters ``SageMakerProjectName`` and ``SageMakerProjectId``,
as Studio passes them). It creates:

- a customer-managed KMS key and its alias ``alias/<prefix>-<project>``;
- S3 buckets for pipeline artifacts and training data (KMS, versioned, public access
  blocked, TLS only, access-logged to a third bucket); the data bucket sends events to
  EventBridge;
- an SNS topic (KMS) for approvals and failures, with an optional e-mail subscription;
- an ECR repository for the project's container image (scan on push, immutable tags,
  KMS, lifecycle policy);
- CodeBuild projects ``Build`` (builds and pushes the image, renders and packages the
  per-run stacks, writes their parameters) and ``TrainOutput``, logging to a KMS log group;
- a CodePipeline (V2): Source → Build → Train (workflow stack, state machine) →
  DeployDev → Approve (manual) → DeployPrd;
- EventBridge rules: new training data, a retraining schedule, the production drift
  alarm and (CodeCommit) pushes start the pipeline; failed runs notify the topic;
- one IAM role per service (CodePipeline, CodeBuild, CloudFormation, SageMaker,
  Step Functions, EventBridge), each scoped to the project's resources;
- optionally a private VPC with the endpoints SageMaker needs (``network.create_vpc``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jinja2
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
from troposphere import (
    GetAtt,
    Join,
    Output,
    Parameter,
    Ref,
    Sub,
    Tags,
    Template,
    awslambda,
    codebuild,
    codepipeline,
    ecr,
    events,
    kms,
    s3,
    sns,
)
from troposphere.cloudformation import CustomResource

from mlops_templates import iam as iamdoc
from mlops_templates.config import Config
from mlops_templates.inline import inline_code
from mlops_templates.stacks import common, functions, network
from mlops_templates.stacks import pipeline_build as contract
from mlops_templates.stacks import pipeline_iam as roles
from mlops_templates.stacks.context import describe, describe_template
from mlops_templates.stacks.pipeline_names import (
    NAME_PATTERN,
    PROJECT_ID,
    PROJECT_NAME,
    ProjectNames,
    max_project_name_length,
)

# Parameters and conditions.
NOTIFICATION_EMAIL = "NotificationEmail"
CONNECTION_ARN = "CodeConnectionArn"
HAS_EMAIL = "HasNotificationEmail"

# Resources.
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
BUILD_LOG_GROUP = "BuildLogGroup"
BUILD_PROJECT = "BuildProject"
TRAIN_OUTPUT_PROJECT = "TrainOutputProject"
PIPELINE = "Pipeline"
PIPELINE_ROLE = "CodePipelineRole"
CODEBUILD_ROLE = "CodeBuildRole"
CLOUDFORMATION_ROLE = "CloudFormationRole"
SAGEMAKER_ROLE = "SageMakerRole"
STATES_ROLE = "StatesRole"
EVENTS_ROLE = "EventsRole"
SOURCE_RULE = "SourcePushRule"
DATA_RULE = "DataUploadRule"
SCHEDULE_RULE = "RetrainScheduleRule"
DRIFT_RULE = "RetrainOnDriftRule"
FAILURE_RULE = "PipelineFailedRule"
TEARDOWN_LOG_GROUP = "TeardownLogGroup"
TEARDOWN_ROLE = "TeardownRole"
TEARDOWN_FUNCTION = "TeardownFunction"
TEARDOWN = "RunStacksTeardown"

#: Why each resource exists (Metadata Context, read by cfn-lint and reviewers).
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
    TOPIC_POLICY: "Lets the pipeline-failure rule publish to the topic",
    SUBSCRIPTION: "Optional e-mail subscriber of the notification topic",
    REPOSITORY: "The project's container image, one immutable tag per run",
    BUILD_LOG_GROUP: "Encrypted logs of the CodeBuild projects",
    BUILD_PROJECT: "Builds and pushes the image, renders and packages the per-run stacks and "
    "writes their parameters",
    TRAIN_OUTPUT_PROJECT: "Copies the training workflow's output into a file the deploy "
    "actions read",
    PIPELINE: "Source, build, train, deploy to dev, approve, deploy to production",
    PIPELINE_ROLE: "Lets CodePipeline run the project's builds, stacks and workflow",
    CODEBUILD_ROLE: "Lets the builds push the image and write packaged templates",
    CLOUDFORMATION_ROLE: "Deploys the workflow, deploy-dev and deploy-prd stacks of each run",
    SAGEMAKER_ROLE: "Execution role of the project's SageMaker jobs, models and endpoints",
    STATES_ROLE: "Lets the training workflow run SageMaker jobs and register models",
    EVENTS_ROLE: "Lets EventBridge rules start the project's pipeline",
    SOURCE_RULE: "Starts the pipeline on pushes to the CodeCommit branch",
    DATA_RULE: "Starts the pipeline when training data is uploaded",
    SCHEDULE_RULE: "Retrains on a schedule",
    DRIFT_RULE: "Retrains when the production drift alarm fires",
    FAILURE_RULE: "Notifies the topic when a pipeline run fails",
    TEARDOWN_LOG_GROUP: "Encrypted logs of the teardown function",
    TEARDOWN_ROLE: "Lets the teardown function delete the per-run stacks with the deploy role",
    TEARDOWN_FUNCTION: "Deletes the per-run stacks when the project is deleted",
    TEARDOWN: "Deleting the project first deletes its per-run stacks (endpoints bill by the "
    "hour), before the role that may delete them goes",
}

#: Stage names, in order.
STAGES = ("Source", "Build", "Train", "DeployDev", "Approve", "DeployPrd")
# Artifacts and the Build action's variable namespace.
SOURCE_OUTPUT = "SourceOutput"
BUILD_OUTPUT = "BuildOutput"
TRAIN_OUTPUT = "TrainOutput"
TRAIN_RESULT = "TrainResult"
BUILD_NAMESPACE = "BuildVariables"
DATA_VARIABLE = "TrainingDataUri"

# Build environment.
CONFIG_FILE = "mlops.yaml"
CONTAINER_DIR = "container"
RENDER_DIR = "build"
OUT_DIR = "build/out"
TRAIN_RESULT_DIR = "train-result"
PYTHON_VERSION = "3.12"
BUILD_TIMEOUT_MINUTES = 60
BUILD_SCRIPT = "mlops_templates/stacks/pipeline_build.py"
CONNECTION_PATTERN = (
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]+$"
)
#: Images kept in the repository; an endpoint needs its image to scale out.
IMAGES_KEPT = 100

_JINJA = jinja2.Environment(
    loader=jinja2.PackageLoader("mlops_templates", "stacks"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def buildspec(config: Config) -> str:
    """The Build project's buildspec (YAML)."""
    return _JINJA.get_template("buildspec.yml.j2").render(
        base=f"{config.project.prefix}-<project>",
        exported=contract.EXPORTED,
        python_version=PYTHON_VERSION,
        module=contract.__name__,
        container_dir=CONTAINER_DIR,
        render_dir=RENDER_DIR,
        out_dir=OUT_DIR,
        stacks=contract.RUN_STACKS,
        artifact_files=[f"{s}.yaml" for s in contract.RUN_STACKS]
        + [f"{s}.json" for s in contract.RUN_STACKS]
        + [contract.EXECUTION_INPUT],
    )


def train_output_buildspec(config: Config) -> str:
    """The TrainOutput project's buildspec (YAML)."""
    return _JINJA.get_template("train_output_buildspec.yml.j2").render(
        base=f"{config.project.prefix}-<project>",
        python_version=PYTHON_VERSION,
        source_artifact=SOURCE_OUTPUT,
        script=BUILD_SCRIPT,
        out_dir=TRAIN_RESULT_DIR,
        train_output=contract.TRAIN_OUTPUT,
    )


class _Builder:
    """Assembles the pipeline template; one method per group of resources."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.names = ProjectNames.of(config)
        self.template = common.new_template(config, "SageMaker project pipeline")
        self.source = config.pipeline.source

    def tags(self, component: str) -> Tags:
        values: dict[str, Any] = dict(sorted(self.config.project.tags.items()))
        values["mlops:project"] = Sub(self.names.base)
        values["mlops:component"] = component
        return Tags(**values)

    def add(self, resource: Any) -> Any:
        return self.template.add_resource(resource)

    # Parameters ---------------------------------------------------------------------

    def parameters(self) -> None:
        t, prefix = self.template, self.config.project.prefix
        longest = max_project_name_length(prefix)
        t.add_parameter(
            Parameter(
                PROJECT_NAME,
                Type="String",
                Description=(
                    f"Name of the SageMaker project; resources are named {prefix}-<name>-..."
                ),
                MinLength=2,
                MaxLength=longest,
                AllowedPattern=NAME_PATTERN,
                ConstraintDescription=(
                    f"2-{longest} characters: lower-case letters, digits and hyphens, starting "
                    "with a letter and not ending with a hyphen (the names derived from it must "
                    "fit AWS limits)"
                ),
            )
        )
        t.add_parameter(
            Parameter(
                PROJECT_ID,
                Type="String",
                Description="ID of the SageMaker project (Studio passes it)",
                MinLength=1,
                MaxLength=20,
                AllowedPattern=r"^[A-Za-z0-9-]+$",
                ConstraintDescription="1-20 letters, digits and hyphens, e.g. p-abcdef123456",
            )
        )
        common.optional_email(
            t, NOTIFICATION_EMAIL, HAS_EMAIL, "E-mail address for approvals and failures, or 'none'"
        )
        groups = [{"Label": {"default": "SageMaker project"}, "Parameters": [PROJECT_NAME, PROJECT_ID]}]
        notification = [NOTIFICATION_EMAIL]
        if self.source.provider == "codeconnections" and self.source.connection_arn is None:
            t.add_parameter(
                Parameter(
                    CONNECTION_ARN,
                    Type="String",
                    Description=(
                        f"ARN of the CodeConnections connection to {self.source.repository} "
                        "(pipeline.source.connection_arn is not set in the config)"
                    ),
                    MaxLength=256,
                    AllowedPattern=CONNECTION_PATTERN,
                    ConstraintDescription="the ARN of an available CodeConnections connection",
                )
            )
            groups.append({"Label": {"default": "Source"}, "Parameters": [CONNECTION_ARN]})
        groups.append({"Label": {"default": "Notifications"}, "Parameters": notification})
        t.set_metadata(
            {
                "AWS::CloudFormation::Interface": {
                    "ParameterGroups": groups,
                    "ParameterLabels": {
                        PROJECT_NAME: {"default": "Project name"},
                        PROJECT_ID: {"default": "Project ID"},
                        NOTIFICATION_EMAIL: {"default": "Notification e-mail"},
                    },
                }
            }
        )

    def connection_arn(self) -> Any:
        if self.source.provider != "codeconnections":
            return None
        return self.source.connection_arn or Ref(CONNECTION_ARN)

    # Encryption, storage, notifications -----------------------------------------------

    def key(self) -> kms.Key:
        key = common.kms_key(
            KEY,
            self.config,
            "pipeline",
            Sub(f"Encrypts the artifacts, data, logs and images of {self.names.base} (${{{PROJECT_ID}}})"),
        )
        key.KeyPolicy.Statement += [
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
        key.Tags = self.tags("pipeline")
        self.add(key)
        self.add(kms.Alias(KEY_ALIAS, AliasName=Sub(f"alias/{self.names.base}"), TargetKeyId=Ref(key)))
        return key

    def buckets(self, key: kms.Key) -> tuple[s3.Bucket, s3.Bucket]:
        retention = self.config.pipeline.log_retention_days
        log_bucket = common.secure_bucket(LOG_BUCKET, self.config, "pipeline", key)
        # S3 server access logs can only be delivered to SSE-S3 buckets.
        log_bucket.BucketEncryption = s3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                s3.ServerSideEncryptionRule(
                    ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                )
            ]
        )
        log_bucket.BucketName = self.names.bucket("logs")
        log_bucket.LifecycleConfiguration = s3.LifecycleConfiguration(
            Rules=[
                s3.LifecycleRule(
                    Id="ExpireAccessLogs",
                    Status="Enabled",
                    ExpirationInDays=retention,
                    NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=1),
                )
            ]
        )
        log_bucket.Tags = self.tags("pipeline")
        common.skip_checkov(
            log_bucket,
            {
                "CKV_AWS_18": "This is the access-log bucket; logging it into itself would loop",
                # Terraform-only ID in checkov today; it records the KMS exception.
                "CKV_AWS_145": "S3 server access logging delivers only to SSE-S3 (AES256) buckets",
            },
        )
        self.add(log_bucket)
        log_policy = common.tls_only_bucket_policy(LOG_BUCKET_POLICY, log_bucket)
        log_policy.PolicyDocument.Statement.append(
            Statement(
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
                                common.arn("s3", self.names.bucket_text(suffix), region=False, account=False)
                                for suffix in ("art", "data")
                            ],
                        ),
                        StringEquals("aws:SourceAccount", Ref("AWS::AccountId")),
                    ]
                ),
            )
        )
        self.add(log_policy)

        artifact = common.secure_bucket(ARTIFACT_BUCKET, self.config, "pipeline", key, log_bucket)
        artifact.BucketName = self.names.bucket("art")
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
        artifact.Tags = self.tags("pipeline")
        data = common.secure_bucket(DATA_BUCKET, self.config, "pipeline", key, log_bucket)
        data.BucketName = self.names.bucket("data")
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
        data.Tags = self.tags("pipeline")
        for bucket, policy in ((artifact, ARTIFACT_BUCKET_POLICY), (data, DATA_BUCKET_POLICY)):
            self.add(bucket)
            self.add(common.tls_only_bucket_policy(policy, bucket))
        return artifact, data

    def topic(self, key: kms.Key) -> sns.Topic:
        topic = self.add(
            sns.Topic(
                TOPIC,
                TopicName=self.names.name("notifications"),
                DisplayName=Sub(f"{self.names.base} pipeline"),
                KmsMasterKeyId=GetAtt(key, "Arn"),
                Tags=self.tags("pipeline"),
            )
        )
        self.add(
            sns.TopicPolicy(
                TOPIC_POLICY,
                Topics=[Ref(topic)],
                PolicyDocument=iamdoc.document(
                    Statement(
                        Sid="PipelineFailureEvents",
                        Effect=Allow,
                        Principal=Principal("Service", "events.amazonaws.com"),
                        Action=[sns_actions.Publish],
                        Resource=[Ref(topic)],
                        Condition=Condition(
                            ArnEquals(
                                "aws:SourceArn",
                                common.arn("events", f"rule/{self.names.text('pipeline-failed')}"),
                            )
                        ),
                    )
                ),
            )
        )
        self.add(
            common.email_subscription(
                SUBSCRIPTION, HAS_EMAIL, self.template.parameters[NOTIFICATION_EMAIL], topic
            )
        )
        return topic

    def repository(self, key: kms.Key) -> ecr.Repository:
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
        return self.add(
            ecr.Repository(
                REPOSITORY,
                RepositoryName=Sub(self.names.base),
                ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
                ImageTagMutability="IMMUTABLE",
                EncryptionConfiguration=ecr.EncryptionConfiguration(
                    EncryptionType="KMS", KmsKey=GetAtt(key, "Arn")
                ),
                LifecyclePolicy=ecr.LifecyclePolicy(
                    LifecyclePolicyText=json.dumps(lifecycle, sort_keys=True)
                ),
                Tags=self.tags("pipeline"),
                DeletionPolicy=common.RETAIN,
                UpdateReplacePolicy="Retain",
            )
        )

    # Build ----------------------------------------------------------------------------

    def build_environment(
        self,
        res: roles.PipelineResources,
        artifact: s3.Bucket,
        data: s3.Bucket,
        topic: sns.Topic,
        repo: ecr.Repository,
        role_arns: dict[str, Any],
        vpc: network.Network | None,
    ) -> list[codebuild.EnvironmentVariable]:
        values: dict[str, Any] = {
            "PROJECT_PREFIX": self.config.project.prefix,
            "SAGEMAKER_PROJECT_NAME": Ref(PROJECT_NAME),
            "SAGEMAKER_PROJECT_ID": Ref(PROJECT_ID),
            "CONFIG_FILE": CONFIG_FILE,
            "ARTIFACT_BUCKET": Ref(artifact),
            "DATA_BUCKET": Ref(data),
            "DATA_PREFIX": self.config.pipeline.data_prefix,
            "KMS_KEY_ARN": res.key_arn,
            "SAGEMAKER_ROLE_ARN": role_arns[SAGEMAKER_ROLE],
            "STATES_ROLE_ARN": role_arns[STATES_ROLE],
            "NOTIFICATION_TOPIC_ARN": Ref(topic),
            "NOTIFICATION_EMAIL": Ref(NOTIFICATION_EMAIL),
            "IMAGE_REPOSITORY_NAME": Ref(repo),
            "IMAGE_REPOSITORY_URI": GetAtt(repo, "RepositoryUri"),
        }
        if vpc is not None:
            values["SUBNET_IDS"] = network.subnet_list(vpc)
            values["SECURITY_GROUP_IDS"] = vpc.security_group_id
        return [
            codebuild.EnvironmentVariable(Name=name, Type="PLAINTEXT", Value=value)
            for name, value in values.items()
        ]

    def build_projects(
        self,
        key: kms.Key,
        log_group: Any,
        role: Any,
        variables: list[codebuild.EnvironmentVariable],
    ) -> tuple[codebuild.Project, codebuild.Project]:
        cfg = self.config.pipeline
        net = self.config.network
        build = codebuild.Project(
            BUILD_PROJECT,
            Name=self.names.name("build"),
            Description=Sub(
                f"Builds the image and the per-run templates of {self.names.base}"
            ),
            ServiceRole=GetAtt(role, "Arn"),
            Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
            Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=buildspec(self.config)),
            Environment=codebuild.Environment(
                Type="LINUX_CONTAINER",
                ComputeType=cfg.codebuild_compute_type,
                Image=cfg.codebuild_image,
                ImagePullCredentialsType="CODEBUILD",
                PrivilegedMode=True,
                EnvironmentVariables=variables,
            ),
            EncryptionKey=GetAtt(key, "Arn"),
            LogsConfig=codebuild.LogsConfig(
                CloudWatchLogs=codebuild.CloudWatchLogs(
                    Status="ENABLED", GroupName=Ref(log_group), StreamName="build"
                )
            ),
            TimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
            QueuedTimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
            Tags=self.tags("pipeline"),
        )
        common.skip_checkov(
            build,
            {
                # No CloudFormation check has this ID yet (checkov's Terraform check does);
                # the suppression records the decision where policy tools look for it.
                "CKV_AWS_316": "docker build and push run in the build: Docker in CodeBuild needs "
                "privileged mode. The build runs only this repository's buildspec, embedded in the "
                "project, on a curated image",
            },
        )
        if net.vpc_id:
            build.VpcConfig = codebuild.VpcConfig(
                VpcId=net.vpc_id,
                Subnets=list(net.subnet_ids),
                SecurityGroupIds=list(net.security_group_ids),
            )
        train_output = codebuild.Project(
            TRAIN_OUTPUT_PROJECT,
            Name=self.names.name("train-output"),
            Description=Sub(f"Extracts the training output of {self.names.base} for the deploy stages"),
            ServiceRole=GetAtt(role, "Arn"),
            Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
            Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=train_output_buildspec(self.config)),
            Environment=codebuild.Environment(
                Type="LINUX_CONTAINER",
                ComputeType="BUILD_GENERAL1_SMALL",
                Image=cfg.codebuild_image,
                ImagePullCredentialsType="CODEBUILD",
                PrivilegedMode=False,
            ),
            EncryptionKey=GetAtt(key, "Arn"),
            LogsConfig=codebuild.LogsConfig(
                CloudWatchLogs=codebuild.CloudWatchLogs(
                    Status="ENABLED", GroupName=Ref(log_group), StreamName="train-output"
                )
            ),
            TimeoutInMinutes=10,
            QueuedTimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
            Tags=self.tags("pipeline"),
        )
        return self.add(build), self.add(train_output)

    # Pipeline -------------------------------------------------------------------------

    @staticmethod
    def _action(
        name: str,
        category: str,
        provider: str,
        configuration: dict[str, Any],
        *,
        owner: str = "AWS",
        inputs: tuple[str, ...] = (),
        outputs: tuple[str, ...] = (),
        run_order: int = 1,
        namespace: str | None = None,
    ) -> codepipeline.Actions:
        action = codepipeline.Actions(
            Name=name,
            ActionTypeId=codepipeline.ActionTypeId(
                Category=category, Owner=owner, Provider=provider, Version="1"
            ),
            Configuration=configuration,
            RunOrder=run_order,
        )
        if inputs:
            action.InputArtifacts = [codepipeline.InputArtifacts(Name=n) for n in inputs]
        if outputs:
            action.OutputArtifacts = [codepipeline.OutputArtifacts(Name=n) for n in outputs]
        if namespace:
            action.Namespace = namespace
        return action

    def _deploy(
        self,
        name: str,
        stack: str,
        deploy_role: Any,
        capabilities: str | None = None,
        run_order: int = 1,
    ) -> codepipeline.Actions:
        configuration: dict[str, Any] = {
            # A stack whose first create failed (ROLLBACK_COMPLETE) cannot be updated: the
            # workflow and the dev endpoint are replaced, so a retried run works.
            # Production is never deleted by a deployment: a failed production stack
            # needs a person (the pipeline stops there with CloudFormation's reason).
            "ActionMode": "CREATE_UPDATE" if stack == "deploy-prd" else "REPLACE_ON_FAILURE",
            "StackName": self.names.name(stack),
            "TemplatePath": f"{BUILD_OUTPUT}::{stack}.yaml",
            "TemplateConfiguration": f"{BUILD_OUTPUT}::{stack}.json",
            "RoleArn": GetAtt(deploy_role, "Arn"),
        }
        inputs: tuple[str, ...] = (BUILD_OUTPUT,)
        overrides = contract.TRAIN_OUTPUT_OVERRIDES.get(stack)
        if overrides:
            configuration["ParameterOverrides"] = json.dumps(
                {key: {"Fn::GetParam": [TRAIN_RESULT, contract.TRAIN_OUTPUT, key]} for key in overrides},
                sort_keys=True,
            )
            inputs += (TRAIN_RESULT,)
        if capabilities:
            configuration["Capabilities"] = capabilities
        return self._action(name, "Deploy", "CloudFormation", configuration, inputs=inputs, run_order=run_order)

    def source_action(self) -> codepipeline.Actions:
        src = self.source
        if src.provider == "codecommit":
            return self._action(
                "Source",
                "Source",
                "CodeCommit",
                {
                    "RepositoryName": src.repository,
                    "BranchName": src.branch,
                    "PollForSourceChanges": False,  # the SourcePushRule starts the pipeline
                    "OutputArtifactFormat": "CODE_ZIP",
                },
                outputs=(SOURCE_OUTPUT,),
            )
        return self._action(
            "Source",
            "Source",
            "CodeStarSourceConnection",
            {
                "ConnectionArn": self.connection_arn(),
                "FullRepositoryId": src.repository,
                "BranchName": src.branch,
                "OutputArtifactFormat": "CODE_ZIP",
                "DetectChanges": True,
            },
            outputs=(SOURCE_OUTPUT,),
        )

    def pipeline(
        self,
        role: Any,
        deploy_role: Any,
        artifact: s3.Bucket,
        key: kms.Key,
        topic: sns.Topic,
        build: codebuild.Project,
        train_output: codebuild.Project,
        state_machine_arn: Any,
    ) -> codepipeline.Pipeline:
        base = self.names.base
        run = f"#{{{BUILD_NAMESPACE}.RUN_ID}}"
        build_env = [
            {"name": "PIPELINE_EXECUTION_ID", "type": "PLAINTEXT", "value": "#{codepipeline.PipelineExecutionId}"},
            {"name": "TRAINING_DATA_URI", "type": "PLAINTEXT", "value": f"#{{variables.{DATA_VARIABLE}}}"},
        ]
        stages = [
            codepipeline.Stages(Name="Source", Actions=[self.source_action()]),
            codepipeline.Stages(
                Name="Build",
                Actions=[
                    self._action(
                        "Build",
                        "Build",
                        "CodeBuild",
                        {"ProjectName": Ref(build), "EnvironmentVariables": json.dumps(build_env)},
                        inputs=(SOURCE_OUTPUT,),
                        outputs=(BUILD_OUTPUT,),
                        namespace=BUILD_NAMESPACE,
                    )
                ],
            ),
            codepipeline.Stages(
                Name="Train",
                Actions=[
                    self._deploy("DeployWorkflow", "workflow", deploy_role, run_order=1),
                    self._action(
                        "Train",
                        "Invoke",
                        "StepFunctions",
                        {
                            "StateMachineArn": state_machine_arn,
                            "InputType": "FilePath",
                            "Input": contract.EXECUTION_INPUT,
                            "ExecutionNamePrefix": run,
                        },
                        inputs=(BUILD_OUTPUT,),
                        outputs=(TRAIN_OUTPUT,),
                        run_order=2,
                    ),
                    self._action(
                        "TrainOutput",
                        "Build",
                        "CodeBuild",
                        {"ProjectName": Ref(train_output), "PrimarySource": TRAIN_OUTPUT},
                        inputs=(TRAIN_OUTPUT, SOURCE_OUTPUT),
                        outputs=(TRAIN_RESULT,),
                        run_order=3,
                    ),
                ],
            ),
            codepipeline.Stages(
                Name="DeployDev", Actions=[self._deploy("DeployDev", "deploy-dev", deploy_role)]
            ),
            codepipeline.Stages(
                Name="Approve",
                Actions=[
                    self._action(
                        "Approve",
                        "Approval",
                        "Manual",
                        {
                            "NotificationArn": Ref(topic),
                            "CustomData": Sub(
                                f"Run {run} is deployed to the dev endpoint {base}-dev. "
                                f"Approve to deploy it to the production endpoint {base}-prd."
                            ),
                        },
                    )
                ],
            ),
            codepipeline.Stages(
                Name="DeployPrd",
                Actions=[
                    self._deploy(
                        "DeployPrd", "deploy-prd", deploy_role,
                        capabilities="CAPABILITY_NAMED_IAM,CAPABILITY_AUTO_EXPAND",
                    )
                ],
            ),
        ]
        pipeline = codepipeline.Pipeline(
            PIPELINE,
            Name=self.names.name("pipeline"),
            PipelineType="V2",
            # One run at a time: runs share the per-run stacks and the endpoints.
            ExecutionMode="QUEUED",
            RoleArn=GetAtt(role, "Arn"),
            ArtifactStore=codepipeline.ArtifactStore(
                Type="S3",
                Location=Ref(artifact),
                EncryptionKey=codepipeline.EncryptionKey(Id=GetAtt(key, "Arn"), Type="KMS"),
            ),
            Variables=[
                codepipeline.VariableDeclaration(
                    Name=DATA_VARIABLE,
                    DefaultValue=contract.LATEST,
                    Description=(
                        "s3:// URI of the training data, or 'latest' for the newest object "
                        "under the data prefix"
                    ),
                )
            ],
            RestartExecutionOnUpdate=False,
            Stages=stages,
            Tags=self.tags("pipeline"),
        )
        if self.source.provider == "codeconnections":
            pipeline.Triggers = [
                codepipeline.PipelineTriggerDeclaration(
                    ProviderType="CodeStarSourceConnection",
                    GitConfiguration=codepipeline.GitConfiguration(
                        SourceActionName="Source",
                        Push=[
                            codepipeline.GitPushFilter(
                                Branches=codepipeline.GitBranchFilterCriteria(
                                    Includes=[self.source.branch]
                                )
                            )
                        ],
                    ),
                )
            ]
        return self.add(pipeline)

    # Events ---------------------------------------------------------------------------

    def rules(self, pipeline_arn: Any, events_role: Any, topic: sns.Topic, data: s3.Bucket) -> None:
        cfg = self.config.pipeline
        names = self.names
        start = [events.Target(Id="Pipeline", Arn=pipeline_arn, RoleArn=GetAtt(events_role, "Arn"))]

        def starts_pipeline(
            logical_id: str, name: str, description: str, state: str = "ENABLED", **trigger: Any
        ) -> None:
            """A rule that starts a run on ``trigger``: an EventPattern or a ScheduleExpression."""
            self.add(
                events.Rule(
                    logical_id,
                    Name=names.name(name),
                    Description=Sub(description),
                    **trigger,
                    State=state,
                    Targets=start,
                )
            )

        if self.source.provider == "codecommit":
            starts_pipeline(
                SOURCE_RULE,
                "source-push",
                f"Starts {names.base} on pushes to {self.source.branch}",
                EventPattern={
                    "source": ["aws.codecommit"],
                    "detail-type": ["CodeCommit Repository State Change"],
                    "resources": [common.arn("codecommit", self.source.repository)],
                    "detail": {
                        "event": ["referenceCreated", "referenceUpdated"],
                        "referenceType": ["branch"],
                        "referenceName": [self.source.branch],
                    },
                },
            )
        starts_pipeline(
            DATA_RULE,
            "data-upload",
            f"Starts {names.base} when training data is uploaded",
            EventPattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [Ref(data)]},
                    "object": {"key": [{"prefix": cfg.data_prefix}]},
                },
            },
        )
        starts_pipeline(
            SCHEDULE_RULE,
            "retrain-schedule",
            f"Retrains {names.base} on a schedule",
            state="ENABLED" if cfg.retrain_schedule_enabled else "DISABLED",
            ScheduleExpression=cfg.retrain_schedule,
        )
        if cfg.retrain_on_drift:
            starts_pipeline(
                DRIFT_RULE,
                "retrain-on-drift",
                f"Retrains {names.base} when its production data drifts",
                EventPattern={
                    "source": ["aws.cloudwatch"],
                    "detail-type": ["CloudWatch Alarm State Change"],
                    "resources": [common.arn("cloudwatch", f"alarm:{names.text('prd-drift')}")],
                    "detail": {"state": {"value": ["ALARM"]}},
                },
            )
        self.add(
            events.Rule(
                FAILURE_RULE,
                Name=names.name("pipeline-failed"),
                Description=Sub(f"Notifies the topic when a run of {names.base} fails"),
                EventPattern={
                    "source": ["aws.codepipeline"],
                    "detail-type": ["CodePipeline Pipeline Execution State Change"],
                    "detail": {"pipeline": [names.name("pipeline")], "state": ["FAILED"]},
                },
                State="ENABLED",
                Targets=[
                    events.Target(
                        Id="Notify",
                        Arn=Ref(topic),
                        InputTransformer=events.InputTransformer(
                            InputPathsMap={
                                "pipeline": "$.detail.pipeline",
                                "execution": "$.detail.execution-id",
                                "time": "$.time",
                                "region": "$.region",
                            },
                            InputTemplate=(
                                '"Pipeline <pipeline> failed at <time> (execution <execution>). '
                                "See https://<region>.console.aws.amazon.com/codesuite/codepipeline/"
                                'pipelines/<pipeline>/executions/<execution>/timeline?region=<region>"'
                            ),
                        ),
                    )
                ],
            )
        )

    # Teardown -------------------------------------------------------------------------

    def teardown(self, key: kms.Key, deploy_role: Any, deploy_policies: list[Any]) -> None:
        """The custom resource that deletes the per-run stacks when the project is deleted.

        It depends on the deploy role and its policies, so CloudFormation deletes it (and
        runs the function) while the role still exists. The code is inline (the product
        template must carry it: Service Catalog launches it as it is).
        """
        cfg, names = self.config, self.names
        log_group = self.add(
            common.log_group(
                TEARDOWN_LOG_GROUP,
                cfg,
                "pipeline",
                key,
                cfg.pipeline.log_retention_days,
                name=Sub(f"/{names.prefix}/${{{PROJECT_NAME}}}/teardown-${{Suffix}}", Suffix=common.stack_suffix()),
            )
        )
        log_group.Tags = self.tags("pipeline")
        stacks = {stack: names.text(stack) for stack in contract.RUN_STACKS}
        waves = f"{stacks['deploy-prd']},{stacks['deploy-dev']};{stacks['workflow']}"
        function_name = names.text("teardown")
        role = self.add(
            roles.teardown_role(
                TEARDOWN_ROLE,
                self.names,
                [common.arn("cloudformation", f"stack/{name}/*") for name in stacks.values()],
                GetAtt(deploy_role, "Arn"),
                GetAtt(log_group, "Arn"),
                GetAtt(key, "Arn"),
                common.arn("lambda", f"function:{function_name}"),
                self.tags("pipeline"),
            )
        )
        function = awslambda.Function(
            TEARDOWN_FUNCTION,
            FunctionName=Sub(function_name),
            Description=Sub(f"Deletes the per-run stacks of {names.base} when the project is deleted"),
            Code=awslambda.Code(ZipFile=inline_code("teardown")),
            Handler="index.handler",
            Runtime=functions.PYTHON_RUNTIME,
            Architectures=["arm64"],
            MemorySize=128,
            # Deleting an endpoint stack takes minutes; the function continues in a new
            # invocation when this runs out.
            Timeout=900,
            Role=GetAtt(role, "Arn"),
            Environment=awslambda.Environment(
                Variables={"STACK_WAVES": Sub(waves), "ROLE_ARN": GetAtt(deploy_role, "Arn")}
            ),
            KmsKeyArn=GetAtt(key, "Arn"),
            TracingConfig=awslambda.TracingConfig(Mode="Active"),
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
            Tags=self.tags("pipeline"),
        )
        common.skip_checkov(
            function,
            {
                **functions.COMMON_SKIPS,
                **functions.NO_VPC_SKIP,
                "CKV_AWS_116": (
                    "CloudFormation invokes the function as a custom resource and the function "
                    "reports every outcome to CloudFormation itself; a dead-letter queue only "
                    "receives asynchronous events that failed"
                ),
            },
        )
        self.add(function)
        self.add(
            TeardownResource(
                TEARDOWN,
                ServiceToken=GetAtt(function, "Arn"),
                # Deleting the endpoint stacks can take longer than one invocation.
                ServiceTimeout=3600,
                DependsOn=[deploy_role.title, *(p.title for p in deploy_policies)],
            )
        )

    # Outputs --------------------------------------------------------------------------

    def outputs(self, values: dict[str, tuple[str, Any]]) -> None:
        for name, (description, value) in values.items():
            self.template.add_output(Output(name, Description=description, Value=value))

    # Assembly -------------------------------------------------------------------------

    def build(self) -> Template:
        cfg, names = self.config, self.names
        self.parameters()
        key = self.key()
        artifact, data = self.buckets(key)
        topic = self.topic(key)
        repo = self.repository(key)
        log_group = self.add(
            common.log_group(
                BUILD_LOG_GROUP,
                cfg,
                "pipeline",
                key,
                cfg.pipeline.log_retention_days,
                # The stack's ID in the name: a re-created project never collides with the
                # log group a deleted one kept.
                name=Sub(
                    f"/{names.prefix}/${{{PROJECT_NAME}}}/codebuild-${{Suffix}}",
                    Suffix=common.stack_suffix(),
                ),
            )
        )
        log_group.Tags = self.tags("pipeline")

        vpc = network.add_vpc(self.template, cfg, names, key, self.tags("network")) if cfg.network.create_vpc else None
        subnet_arns = [
            common.arn("ec2", f"subnet/{subnet}")
            for subnet in cfg.network.subnet_ids
        ]
        res = roles.PipelineResources(
            names=names,
            key_arn=GetAtt(key, "Arn"),
            artifact_bucket_arn=GetAtt(artifact, "Arn"),
            data_bucket_arn=GetAtt(data, "Arn"),
            data_prefix=cfg.pipeline.data_prefix,
            topic_arn=Ref(topic),
            repository_arn=GetAtt(repo, "Arn"),
            log_group_arn=GetAtt(log_group, "Arn"),
            build_project_arns=[
                common.arn("codebuild", f"project/{names.text(p)}") for p in ("build", "train-output")
            ],
            connection_arn=self.connection_arn(),
            codecommit_repository=self.source.repository if self.source.provider == "codecommit" else None,
            subnet_arns=subnet_arns,
        )
        tags = self.tags("pipeline")
        sagemaker_role = self.add(
            roles.sagemaker_role(SAGEMAKER_ROLE, _with_vpc(res, cfg.network.enabled), tags)
        )
        states_role = self.add(roles.states_role(STATES_ROLE, res, GetAtt(sagemaker_role, "Arn"), tags))
        deploy_role, deploy_policies = roles.cloudformation_role(
            CLOUDFORMATION_ROLE, _with_vpc(res, cfg.network.enabled), run_resource_types(cfg), tags
        )
        self.add(deploy_role)
        for policy in deploy_policies:
            self.add(policy)
        codebuild_role = self.add(
            roles.codebuild_role(CODEBUILD_ROLE, _with_vpc(res, bool(cfg.network.vpc_id)), tags)
        )
        pipeline_role = self.add(
            roles.codepipeline_role(PIPELINE_ROLE, res, GetAtt(deploy_role, "Arn"), tags)
        )
        events_role = self.add(roles.events_role(EVENTS_ROLE, res, tags))
        role_arns = {
            SAGEMAKER_ROLE: GetAtt(sagemaker_role, "Arn"),
            STATES_ROLE: GetAtt(states_role, "Arn"),
        }

        variables = self.build_environment(res, artifact, data, topic, repo, role_arns, vpc)
        build, train_output = self.build_projects(key, log_group, codebuild_role, variables)
        pipeline = self.pipeline(
            pipeline_role, deploy_role, artifact, key, topic, build, train_output, res.state_machine_arn
        )
        # A new pipeline starts a run at once: its deploy stages need the role's policies.
        pipeline.DependsOn = [p.title for p in deploy_policies]
        self.rules(res.pipeline_arn, events_role, topic, data)
        self.teardown(key, deploy_role, deploy_policies)

        outputs: dict[str, tuple[str, Any]] = {
            "PipelineName": ("Name of the CodePipeline", Ref(pipeline)),
            "ArtifactBucketName": ("Bucket of pipeline artifacts and run results", Ref(artifact)),
            "DataBucketName": (
                f"Bucket of training data (uploads under {cfg.pipeline.data_prefix} start a run)",
                Ref(data),
            ),
            "KmsKeyArn": ("ARN of the project's KMS key", GetAtt(key, "Arn")),
            "NotificationTopicArn": ("ARN of the approval and failure topic", Ref(topic)),
            "ImageRepositoryUri": ("URI of the project's ECR repository", GetAtt(repo, "RepositoryUri")),
            "CodePipelineRoleArn": ("ARN of the CodePipeline role", GetAtt(pipeline_role, "Arn")),
            "CodeBuildRoleArn": ("ARN of the CodeBuild role", GetAtt(codebuild_role, "Arn")),
            "CloudFormationRoleArn": ("ARN of the per-run stacks' deploy role", GetAtt(deploy_role, "Arn")),
            "SageMakerRoleArn": ("ARN of the SageMaker execution role", GetAtt(sagemaker_role, "Arn")),
            "StatesRoleArn": ("ARN of the Step Functions role", GetAtt(states_role, "Arn")),
            "EventsRoleArn": ("ARN of the EventBridge role", GetAtt(events_role, "Arn")),
        }
        if vpc is not None:
            outputs["VpcId"] = ("ID of the project's private VPC", vpc.vpc_id)
            outputs["SubnetIds"] = ("Private subnets of the project's VPC", network.subnet_list(vpc))
            outputs["SecurityGroupId"] = ("Security group of jobs and endpoints", vpc.security_group_id)
        self.outputs(outputs)
        for logical_id, resource in self.template.resources.items():
            why = WHY.get(logical_id) or network.WHY.get(logical_id)
            if why is None and logical_id.startswith(roles.CLOUDFORMATION_POLICY):
                why = "Permissions of the CloudFormation role, generated from the handler permissions"
            describe(resource, why)
        describe_template(
            self.template,
            "Per-project MLOps pipeline: a push or a data upload runs CodePipeline, which "
            "builds the image and per-run templates in CodeBuild, trains with the Step "
            "Functions workflow stack, deploys the dev endpoint, waits for approval and "
            "canary-deploys production",
            must=[
                (
                    "Physical names start with the prefix and SageMakerProjectName; the per-run "
                    "stacks rendered by the build derive the same names"
                ),
                "Data at rest is encrypted with the project key",
            ],
        )
        return self.template


#: What the SAM transform turns each serverless type of deploy-prd into (checked against
#: the real transform by the tests).
SAM_EXPANSION: dict[str, tuple[str, ...]] = {
    "AWS::Serverless::Function": (
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::Lambda::Permission",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
    ),
    "AWS::Serverless::Api": ("AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"),
}


def run_resource_types(config: Config) -> set[str]:
    """Resource types of the per-run stacks as CloudFormation creates them."""
    from mlops_templates import stacks

    found: set[str] = set()
    for name in contract.RUN_STACKS:
        for resource in stacks.module(name).build(config).resources.values():
            found.update(SAM_EXPANSION.get(resource.resource_type, (resource.resource_type,)))
    return found


def _with_vpc(res: roles.PipelineResources, in_vpc: bool) -> roles.PipelineResources:
    return replace(res, in_vpc=in_vpc)


class TeardownResource(CustomResource):
    """``Custom::RunStacksTeardown``: the per-run stacks' teardown (see ``_Builder.teardown``)."""

    resource_type = "Custom::RunStacksTeardown"
    props = {  # noqa: RUF012 - troposphere's class-level property table
        "ServiceToken": (str, True),
        "ServiceTimeout": (int, False),
    }


def build(config: Config) -> Template:
    """The pipeline stack for ``config`` (see the module docstring for its resources)."""
    return _Builder(config).build()
