"""The studio stack with ``studio.publish_mode: s3``: SageMaker project templates in S3.

Since October 2025 SageMaker projects can be created from CloudFormation templates in S3
without Service Catalog ("Using a template from an Amazon S3 bucket",
https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-projects-templates-custom.html#sagemaker-projects-templates-s3):

* the template is an object in a bucket, tagged ``sagemaker:studio-visibility=true``;
* the bucket has a CORS policy, so Studio (a browser app on ``*.sagemaker.aws``) can read it;
* the domain carries the tag ``sagemaker:projectS3TemplatesLocation`` = ``s3://<bucket>/<prefix>/``;
* Studio execution roles need read access in the bucket policy (AWS blog "Simplify ModelOps
  with Amazon SageMaker AI Projects using Amazon S3-based templates",
  https://aws.amazon.com/blogs/machine-learning/simplify-modelops-with-amazon-sagemaker-ai-projects-using-amazon-s3-based-templates).

This module adds the template bucket (KMS-encrypted with its own key, versioned, TLS only,
public access blocked, access-logged to a second bucket), its policy and CORS rule, and
the outputs ``make publish`` and ``make project`` read. The launch role is the studio
stack's (:func:`mlops_templates.stacks.studio.launch_role`); ``make publish`` uploads the
packaged pipeline template with the visibility tag (:mod:`mlops_templates.publish`).
"""

from __future__ import annotations

from dataclasses import dataclass

from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs.aws import Allow, ArnLike, Condition, Principal, Statement, StringEquals
from troposphere import GetAtt, Join, Output, Ref, Sub, Template, iam, kms, s3

from mlops_templates import iam as iamdoc
from mlops_templates import naming
from mlops_templates.stacks import common
from mlops_templates.stacks.stack import Stack
from mlops_templates.stacks.studio import Launch

KEY = "TemplateBucketKey"
BUCKET = "TemplateBucket"
BUCKET_POLICY = "TemplateBucketPolicy"
LOG_BUCKET = "TemplateAccessLogBucket"
LOG_BUCKET_POLICY = "TemplateAccessLogBucketPolicy"
READ_POLICY = "LaunchTemplateReadPolicy"
#: The object tag Studio lists templates by (the doc above).
VISIBILITY_TAG = ("sagemaker:studio-visibility", "true")
#: The domain tag that points Studio at the templates (the doc above).
DOMAIN_TAG = "sagemaker:projectS3TemplatesLocation"
#: Key prefix of the templates in the bucket: the domain tag's location.
PREFIX = "templates/"
#: ``CfnTemplateProvider.TemplateName``: "a unique identifier for the template within the
#: project", 1-32 characters of ``[a-zA-Z0-9](-*[a-zA-Z0-9])*`` (API reference,
#: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CfnCreateTemplateProvider.html).
TEMPLATE_NAME = "pipeline"
#: Studio's origins: its apps are served from ``https://<domain>.studio.<region>.sagemaker.aws``.
#: AWS's sample CORS rule for S3 templates allows ``https://*.sagemaker.aws``
#: (aws-samples/sagemaker-custom-project-templates, s3_templates/cors-policy.json); Studio
#: only reads templates, so only GET and HEAD are allowed here.
STUDIO_ORIGIN = "https://*.sagemaker.aws"
#: What a reader of the templates may do: list them, read them and their tags (Studio lists
#: templates by their tag) and read older versions.
READ_OBJECT = (s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.GetObjectTagging)
READ_BUCKET = (s3_actions.ListBucket, s3_actions.GetBucketLocation)
#: Expiry of replaced template versions: a project's stack keeps its own copy.
NONCURRENT_DAYS = 365


def template_key(config) -> str:
    """The object key of the pipeline template: ``templates/<prefix>-<name>-pipeline.yaml``."""
    return f"{PREFIX}{naming.base(config)}-{TEMPLATE_NAME}.yaml"


@dataclass(frozen=True, eq=False)
class Store:
    """The template bucket and its key."""

    key: kms.Key
    bucket: s3.Bucket


def _readers(stack: Stack, launch: Launch) -> list:
    """The Studio execution roles and the launch role: who reads the templates."""
    return [*stack.config.studio.principal_arns, GetAtt(launch.role, "Arn")]


def key(stack: Stack) -> kms.Key:
    """The template bucket's key. As every key of the project, the account administers it
    and IAM policies grant its use: the launch role's below, the Studio execution roles'
    by their own policies (``TemplateBucketKeyArn``)."""
    template_key_ = common.kms_key(
        KEY, stack.config, "studio", f"Encrypts the SageMaker project templates of {naming.base(stack.config)}"
    )
    # The one key-policy shape of the project's keys: CloudWatch Logs of this account may use
    # it for log groups of this account and region (none of this stack's today).
    template_key_.KeyPolicy.Statement.append(common.logs_key_statement("CloudWatchLogsOfThisAccount"))
    return stack.add(template_key_, "Customer-managed key of the project template bucket")


def read_policy(stack: Stack, launch: Launch, template_key_: kms.Key, bucket: s3.Bucket) -> iam.ManagedPolicy:
    """The launch role's read access to the templates: decrypting through S3 only."""
    return stack.add(
        iam.ManagedPolicy(
            READ_POLICY,
            Description="Lets the launch role read the project templates",
            PolicyDocument=iamdoc.document(
                iamdoc.allow(
                    [kms_actions.Decrypt],
                    GetAtt(template_key_, "Arn"),
                    conditions=Condition(StringEquals("kms:ViaService", Sub("s3.${AWS::Region}.amazonaws.com"))),
                    sid="DecryptTemplatesThroughS3",
                ),
                iamdoc.allow(list(READ_OBJECT), Join("", [GetAtt(bucket, "Arn"), "/", PREFIX, "*"]), sid="ReadTemplates"),
            ),
            Roles=[Ref(launch.role)],
        ),
        "Lets the launch role read the project templates in the template bucket",
    )


def _log_bucket(stack: Stack) -> s3.Bucket:
    """The access-log bucket of the template bucket (SSE-S3: S3 server access logs are
    delivered only to such buckets), and its policy."""
    config = stack.config
    log_bucket = s3.Bucket(
        LOG_BUCKET,
        BucketName=Sub(naming.bucket_name(config, "tlog")),
        BucketEncryption=s3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                s3.ServerSideEncryptionRule(
                    ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                )
            ]
        ),
        PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
        ),
        OwnershipControls=s3.OwnershipControls(
            Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
        ),
        VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
        LifecycleConfiguration=s3.LifecycleConfiguration(
            Rules=[
                s3.LifecycleRule(
                    Id="ExpireAccessLogs",
                    Status="Enabled",
                    ExpirationInDays=config.pipeline.log_retention_days,
                    NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=1),
                )
            ]
        ),
        Tags=stack.tags(),
        DeletionPolicy=common.RETAIN,
        UpdateReplacePolicy="Retain",
    )
    common.skip_checkov(
        log_bucket,
        {
            "CKV_AWS_18": "This is the access-log bucket; logging it into itself would loop",
            "CKV_AWS_145": "S3 server access logging delivers only to SSE-S3 (AES256) buckets",
        },
    )
    stack.add(log_bucket, "Receives the S3 server access logs of the template bucket")
    policy = common.tls_only_bucket_policy(LOG_BUCKET_POLICY, log_bucket)
    policy.PolicyDocument.Statement.append(
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
                        common.arn("s3", naming.bucket_name(config, "tpl"), region=False, account=False),
                    ),
                    StringEquals("aws:SourceAccount", Ref("AWS::AccountId")),
                ]
            ),
        )
    )
    stack.add(policy, "TLS only; lets the S3 logging service deliver access logs")
    return log_bucket


def _template_bucket(stack: Stack, template_key_: kms.Key, log_bucket: s3.Bucket) -> s3.Bucket:
    bucket = common.secure_bucket(BUCKET, stack.config, "studio", template_key_, log_bucket)
    bucket.BucketName = Sub(naming.bucket_name(stack.config, "tpl"))
    bucket.DependsOn = [LOG_BUCKET_POLICY]
    bucket.CorsConfiguration = s3.CorsConfiguration(
        CorsRules=[
            s3.CorsRules(
                Id="StudioReadsTemplates",
                AllowedOrigins=[STUDIO_ORIGIN],
                AllowedMethods=["GET", "HEAD"],
                AllowedHeaders=["*"],
                ExposedHeaders=["ETag", "x-amz-version-id", "x-amz-server-side-encryption"],
                MaxAge=3000,
            )
        ]
    )
    bucket.LifecycleConfiguration = s3.LifecycleConfiguration(
        Rules=[
            s3.LifecycleRule(
                Id="ExpireReplacedTemplates",
                Status="Enabled",
                NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=NONCURRENT_DAYS),
                AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
            )
        ]
    )
    common.skip_checkov(
        bucket,
        {
            "CKV2_AWS_62": "Nothing reacts to template uploads: `make publish` uploads them and "
            "Studio reads them when a project is created",
        },
    )
    return stack.add(bucket, "The SageMaker project templates Studio lists (objects tagged "
                     "sagemaker:studio-visibility=true under templates/)")


def _bucket_policy(stack: Stack, bucket: s3.Bucket, launch: Launch) -> s3.BucketPolicy:
    """TLS only, and read access for the Studio execution roles and the launch role."""
    policy = common.tls_only_bucket_policy(BUCKET_POLICY, bucket)
    arn = GetAtt(bucket, "Arn")
    readers = Principal("AWS", _readers(stack, launch))
    policy.PolicyDocument.Statement += [
        Statement(
            Sid="ReadersListTemplates",
            Effect=Allow,
            Principal=readers,
            Action=list(READ_BUCKET),
            Resource=[arn],
        ),
        Statement(
            Sid="ReadersReadTemplates",
            Effect=Allow,
            Principal=readers,
            Action=list(READ_OBJECT),
            Resource=[Join("", [arn, "/", PREFIX, "*"])],
        ),
    ]
    return stack.add(policy, "TLS only; lets Studio users and the launch role read the templates")


def build(stack: Stack, launch: Launch) -> Template:
    """The template bucket and outputs of an s3-mode studio stack whose launch role is ``launch``."""
    template_key_ = key(stack)
    bucket = _template_bucket(stack, template_key_, _log_bucket(stack))
    _bucket_policy(stack, bucket, launch)
    read_policy(stack, launch, template_key_, bucket)
    url = Sub(f"https://${{{BUCKET}}}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}/{template_key(stack.config)}")
    for name, description, value in (
        ("TemplateBucketName", "Bucket of the SageMaker project templates", Ref(bucket)),
        ("TemplateObjectKey", "Object key of the pipeline template", template_key(stack.config)),
        ("TemplateUrl", "HTTPS URL of the pipeline template (CfnTemplateProvider.TemplateURL)", url),
        (
            "TemplatesLocation",
            f"Value of the SageMaker domain tag {DOMAIN_TAG}",
            Sub(f"s3://${{{BUCKET}}}/{PREFIX}"),
        ),
        ("TemplateBucketKeyArn", "ARN of the template bucket's KMS key", GetAtt(template_key_, "Arn")),
        ("LaunchRoleArn", "ARN of the launch role (CfnTemplateProvider.RoleARN)", GetAtt(launch.role, "Arn")),
    ):
        stack.template.add_output(Output(name, Description=description, Value=value))
    return stack.describe(
        "Bucket of SageMaker project templates that Studio lists (tagged objects, CORS for "
        "Studio, read by the Studio execution roles) and the role projects' stacks are created with",
    )
