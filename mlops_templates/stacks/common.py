"""Building blocks shared by the stack builders: template skeleton, tags, KMS keys,
encrypted log groups, secure buckets and checkov suppressions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import s3 as s3_actions
from awacs.aws import (
    Allow,
    ArnLike,
    Bool,
    Condition,
    Deny,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import (
    AWSObject,
    Equals,
    GetAtt,
    Join,
    Not,
    Parameter,
    Ref,
    Select,
    Split,
    Sub,
    Tags,
    Template,
    kms,
    logs,
    s3,
    sns,
    stepfunctions,
)

from mlops_templates import iam, naming
from mlops_templates.config import Config
from mlops_templates.contract import NO_EMAIL

TEMPLATE_VERSION = "2010-09-09"
#: Deletion policy of what holds data (keys, buckets, logs, repositories, registries): kept
#: when the stack is deleted, but removed when the stack's own first create fails and rolls
#: back, so a failed create leaves nothing behind that would block the retry.
RETAIN = "RetainExceptOnCreate"


def new_template(config: Config, description: str) -> Template:
    """An empty template with the project's description line."""
    template = Template(Description=f"{description} (project {config.project.prefix}-{config.project.name})")
    template.set_version(TEMPLATE_VERSION)
    return template


def arn(service: str, resource: str, *, region: bool | str = True, account: bool | str = True) -> Sub:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` as a ``Fn::Sub``.

    ``region``/``account``: True for the stack's own, False for none (global services,
    S3), or a literal such as ``"aws"`` for AWS-owned resources. ``resource`` may use
    ``${...}`` references.
    """

    def part(value: bool | str, pseudo: str) -> str:
        if isinstance(value, bool):
            return pseudo if value else ""
        if not isinstance(value, str) or not value:
            raise TypeError(f"arn(): region and account are True, False or a name, not {value!r}")
        return value

    return Sub(
        f"arn:${{AWS::Partition}}:{service}:{part(region, '${AWS::Region}')}:"
        f"{part(account, '${AWS::AccountId}')}:{resource}"
    )


def stack_suffix() -> Select:
    """The first eight hex digits of the stack's ID: unique per stack instance, so a name
    that carries it never collides with what a deleted stack of the same name kept."""
    return Select(0, Split("-", Select(2, Split("/", Ref("AWS::StackId")))))


def tag_values(config: Config, component: str, project: Any = None) -> dict[str, Any]:
    """The one source of tags: ``project.tags`` plus ``mlops:project`` (``<prefix>-<name>``,
    or ``project`` where the name is only known at deploy time) and ``mlops:component``."""
    values: dict[str, Any] = dict(sorted(config.project.tags.items()))
    values[naming.PROJECT_TAG] = naming.base(config) if project is None else project
    values[naming.COMPONENT_TAG] = component
    return values


def tags(config: Config, component: str, project: Any = None) -> Tags:
    """:func:`tag_values` as the ``Tags`` of a CloudFormation resource."""
    return Tags(**tag_values(config, component, project))


def skip_checkov(resource: AWSObject, reasons: dict[str, str]) -> AWSObject:
    """Suppress checkov checks on ``resource``, each with a written reason."""
    metadata = dict(getattr(resource, "Metadata", None) or {})
    skips = metadata.setdefault("checkov", {}).setdefault("skip", [])
    for check_id, reason in sorted(reasons.items()):
        if not reason.strip():
            raise ValueError(f"checkov suppression {check_id} needs a reason")
        skips.append({"id": check_id, "comment": reason})
    resource.Metadata = metadata
    return resource


def kms_key(
    logical_id: str,
    config: Config,
    component: str,
    description: str,
    service_principals: Iterable[str] = (),
) -> kms.Key:
    """Customer-managed, rotating KMS key.

    The account root administers the key (so IAM policies decide who uses it); the
    listed service principals may use it for this account's resources only.
    """
    statements: list[Statement] = [
        Statement(
            Sid="AccountAdministers",
            Effect=Allow,
            Principal=Principal("AWS", arn("iam", "root", region=False)),
            Action=[kms_actions.Action("*")],
            # A key policy's Resource "*" means "this key": it cannot name itself.
            Resource=["*"],
        )
    ]
    services = sorted(service_principals)
    if services:
        statements.append(
            Statement(
                Sid="ServicesUseKeyForThisAccount",
                Effect=Allow,
                Principal=Principal("Service", services),
                Action=[
                    kms_actions.Decrypt,
                    kms_actions.Encrypt,
                    kms_actions.GenerateDataKey,
                    kms_actions.GenerateDataKeyWithoutPlaintext,
                    kms_actions.ReEncryptFrom,
                    kms_actions.ReEncryptTo,
                    kms_actions.DescribeKey,
                ],
                Resource=["*"],
                Condition=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))),
            )
        )
    return kms.Key(
        logical_id,
        Description=description,
        EnableKeyRotation=True,
        KeyPolicy=iam.document(*statements),
        Tags=tags(config, component),
        DeletionPolicy=RETAIN,
        UpdateReplacePolicy="Retain",
    )


def logs_key_statement(sid: str) -> Statement:
    """Key-policy statement letting CloudWatch Logs encrypt this account's log groups.

    Logs calls KMS as the regional service principal, not as a role, so a key that
    encrypts a log group must grant it use in its own policy; the encryption-context
    condition keeps that grant to log groups of this account and region.
    """
    return Statement(
        Sid=sid,
        Effect=Allow,
        Principal=Principal("Service", Sub("logs.${AWS::Region}.amazonaws.com")),
        Action=[
            kms_actions.Encrypt,
            kms_actions.Decrypt,
            kms_actions.ReEncryptFrom,
            kms_actions.ReEncryptTo,
            kms_actions.GenerateDataKey,
            kms_actions.GenerateDataKeyWithoutPlaintext,
            kms_actions.DescribeKey,
        ],
        # A key policy's Resource "*" means "this key".
        Resource=["*"],
        Condition=Condition(
            ArnLike(
                "kms:EncryptionContext:aws:logs:arn",
                arn("logs", "log-group:*"),
            )
        ),
    )


#: What CloudFormation needs to create, configure, tag and delete a ``log_group``.
LOG_GROUP_MANAGEMENT = (
    logs_actions.CreateLogGroup,
    logs_actions.DeleteLogGroup,
    logs_actions.PutRetentionPolicy,
    logs_actions.DeleteRetentionPolicy,
    logs_actions.AssociateKmsKey,
    logs_actions.DisassociateKmsKey,
    logs_actions.TagResource,
    logs_actions.UntagResource,
    logs_actions.TagLogGroup,
    logs_actions.ListTagsForResource,
)


def log_group(
    logical_id: str,
    config: Config,
    component: str,
    key: kms.Key | Any,
    retention_days: int,
    name: Any | None = None,
) -> logs.LogGroup:
    """Log group encrypted with ``key`` (this stack's key, or a key ARN such as a
    Parameter's ``Ref``), with a retention period."""
    group = logs.LogGroup(
        logical_id,
        KmsKeyId=GetAtt(key, "Arn") if isinstance(key, kms.Key) else key,
        RetentionInDays=retention_days,
        Tags=tags(config, component),
        DeletionPolicy=RETAIN,
        UpdateReplacePolicy="Retain",
    )
    if name is not None:
        group.LogGroupName = name
    return group


EMAIL_PATTERN = rf"^({NO_EMAIL}|[^@\s]+@[^@\s]+\.[^@\s]+)$"


def optional_email(template: Template, logical_id: str, condition: str, description: str) -> Parameter:
    """An optional e-mail Parameter and the Condition that it is set.

    "No address" is the value ``none``, not an empty string: Service Catalog (Studio)
    passes no empty parameter values, and every stack follows the same convention.
    """
    parameter = template.add_parameter(
        Parameter(
            logical_id,
            Type="String",
            Description=description,
            Default=NO_EMAIL,
            MaxLength=254,
            AllowedPattern=EMAIL_PATTERN,
            ConstraintDescription=f"an e-mail address, or '{NO_EMAIL}' for no subscription",
        )
    )
    template.add_condition(condition, Not(Equals(Ref(parameter), NO_EMAIL)))
    return parameter


def email_subscription(
    logical_id: str, condition: str, email: Parameter, topic: sns.Topic
) -> sns.SubscriptionResource:
    """E-mail subscription to ``topic``, created only when ``condition`` holds."""
    return sns.SubscriptionResource(
        logical_id, Condition=condition, Protocol="email", Endpoint=Ref(email), TopicArn=Ref(topic)
    )


def tls_only_bucket_policy(logical_id: str, bucket: s3.Bucket) -> s3.BucketPolicy:
    """Deny every request to ``bucket`` that is not over TLS."""
    arn = GetAtt(bucket, "Arn")
    return s3.BucketPolicy(
        logical_id,
        Bucket=Ref(bucket),
        PolicyDocument=iam.document(
            Statement(
                Sid="DenyInsecureTransport",
                Effect=Deny,
                Principal=Principal("*"),
                Action=[s3_actions.Action("*")],
                Resource=[arn, Join("", [arn, "/*"])],
                Condition=Condition(Bool("aws:SecureTransport", False)),
            )
        ),
    )


def secure_bucket(
    logical_id: str,
    config: Config,
    component: str,
    key: kms.Key,
    log_bucket: s3.Bucket | None = None,
) -> s3.Bucket:
    """Versioned bucket, KMS-encrypted with ``key``, public access blocked.

    Access logs go to ``log_bucket`` when given (checkov CKV_AWS_18).
    """
    bucket = s3.Bucket(
        logical_id,
        BucketEncryption=s3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                s3.ServerSideEncryptionRule(
                    BucketKeyEnabled=True,
                    ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(
                        SSEAlgorithm="aws:kms", KMSMasterKeyID=GetAtt(key, "Arn")
                    ),
                )
            ]
        ),
        PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True,
            BlockPublicPolicy=True,
            IgnorePublicAcls=True,
            RestrictPublicBuckets=True,
        ),
        OwnershipControls=s3.OwnershipControls(
            Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
        ),
        VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
        Tags=tags(config, component),
        DeletionPolicy=RETAIN,
        UpdateReplacePolicy="Retain",
    )
    if log_bucket is not None:
        bucket.LoggingConfiguration = s3.LoggingConfiguration(
            DestinationBucketName=Ref(log_bucket), LogFilePrefix=f"{logical_id}/"
        )
    return bucket


def audited_state_machine(
    logical_id: str, name: Any, role_arn: Any, definition: Any, substitutions: dict[str, Any],
    key_arn: Any, log_group: Any, tags: Any,
) -> Any:
    """A STANDARD state machine encrypted with ``key_arn``, logged to ``log_group`` and
    traced: the settings every state machine of the project shares.

    Level ALL records every state transition for audit; execution data stays out of the
    logs because inputs, outputs and error causes carry data locations and job details
    that the execution history already keeps (behind Step Functions IAM)."""
    return stepfunctions.StateMachine(
        logical_id,
        StateMachineName=name,
        StateMachineType="STANDARD",
        RoleArn=role_arn,
        Definition=definition,
        DefinitionSubstitutions=substitutions,
        EncryptionConfiguration=stepfunctions.EncryptionConfiguration(
            Type="CUSTOMER_MANAGED_KMS_KEY", KmsKeyId=key_arn, KmsDataKeyReusePeriodSeconds=300
        ),
        LoggingConfiguration=stepfunctions.LoggingConfiguration(
            Level="ALL",
            IncludeExecutionData=False,
            Destinations=[stepfunctions.LogDestination(
                CloudWatchLogsLogGroup=stepfunctions.CloudWatchLogsLogGroup(LogGroupArn=GetAtt(log_group, "Arn"))
            )],
        ),
        TracingConfiguration=stepfunctions.TracingConfiguration(Enabled=True),
        Tags=tags,
    )


def bound_roles(template: Template, config: Config) -> None:
    """Give every IAM role of ``template`` (a per-run stack) the project's permissions
    boundary, ``<base>-boundary``, which the pipeline stack creates: its CloudFormation role
    creates roles only with it (``permissions.boundary``)."""
    name = naming.physical_name(config, "boundary")
    for resource in template.resources.values():
        if resource.resource_type == "AWS::IAM::Role":
            resource.PermissionsBoundary = arn("iam", f"policy/{name}", region=False)
