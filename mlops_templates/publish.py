"""``make publish`` with ``studio.publish_mode: s3`` (or ``MODE=s3``): the pipeline as an S3
project template.

The studio stack of this mode (:mod:`mlops_templates.stacks.studio_s3`) is deployed first,
since it creates the template bucket; then the packaged pipeline template is uploaded to
``templates/<prefix>-<name>-pipeline.yaml`` in that bucket with the object tag
``sagemaker:studio-visibility=true``, which Studio lists S3 templates by
(https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-projects-templates-custom.html#sagemaker-projects-templates-s3).
The bucket is versioned: a publish replaces the template Studio lists and keeps the older
versions. The Service Catalog path stays in the Makefile (``aws s3 cp`` and ``deploy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import deploy, naming
from mlops_templates.config import Config
from mlops_templates.stacks import studio_s3
from mlops_templates.stackwatch import (
    DeployError,
    Watcher,
    aws_error,
    not_found,
    session,
)

STUDIO = deploy.PUBLISH_STACK


def tagging() -> str:
    """The ``Tagging`` of a ``PutObject`` that makes Studio list the template."""
    return urlencode([studio_s3.VISIBILITY_TAG])


def upload_template(s3: Any, bucket: str, key: str, text: str) -> str:
    """Upload the template ``text`` to ``s3://bucket/key`` with the visibility tag; its
    version id (``""`` where the bucket keeps no versions)."""
    try:
        put = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType="application/x-yaml",
            Tagging=tagging(),
        )
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"upload the pipeline template to s3://{bucket}/{key}") from None
    return put.get("VersionId", "")


def stack_outputs(cloudformation: Any, name: str) -> dict[str, str]:
    """The outputs of stack ``name``; ``{}`` when there is no such stack."""
    try:
        found = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as err:
        if not_found(err):
            return {}
        raise aws_error(err, f"describe stack {name}") from None
    except BotoCoreError as err:
        raise aws_error(err, f"describe stack {name}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def publish_s3(
    config: Config,
    packaged: Path,
    bucket: str,
    overrides: Mapping[str, str],
    out: TextIO | None = None,
) -> str:
    """Deploy the publish stacks with the s3-mode studio stack, then upload
    ``packaged/pipeline.yaml`` to its template bucket; the template's URL.

    ``packaged`` holds the packaged templates: ``pipeline``, and the publish stacks with the
    studio stack rendered for this mode (``make publish`` renders and packages them).
    """
    if config.studio.publish_mode != "s3":
        raise DeployError("publish-s3: studio.publish_mode is service_catalog (pass MODE=s3)")
    pipeline = packaged / "pipeline.yaml"
    try:
        text = pipeline.read_text(encoding="utf-8")
    except OSError as err:
        raise DeployError(f"{pipeline}: {err.strerror} (package it first)") from None
    deploy.deploy(config, deploy.publish_stacks(config), packaged, bucket, overrides, out=out)
    boto = session(fallback=config.project.region)
    watcher = Watcher(boto.client("cloudformation"), out)
    outputs = stack_outputs(watcher.cloudformation, naming.stack_name(config, STUDIO))
    template_bucket, key = outputs.get("TemplateBucketName"), outputs.get("TemplateObjectKey")
    if not template_bucket or not key:
        raise DeployError(
            f"stack {naming.stack_name(config, STUDIO)} has no template bucket outputs (it has: "
            f"{', '.join(sorted(outputs)) or 'none'}): is it the s3-mode studio stack?"
        )
    version = upload_template(boto.client("s3"), template_bucket, key, text)
    url = outputs["TemplateUrl"]
    watcher.say(f"uploaded s3://{template_bucket}/{key} (version {version or 'none'}), tagged "
                f"{'='.join(studio_s3.VISIBILITY_TAG)}")
    watcher.say(f"template URL: {url}")
    watcher.say(
        "Studio lists it once the SageMaker domain has the tag "
        f"{studio_s3.DOMAIN_TAG}={outputs['TemplatesLocation']}:\n"
        "  aws sagemaker add-tags --resource-arn arn:aws:sagemaker:<region>:<account>:domain/<domain-id> "
        f"--tags Key={studio_s3.DOMAIN_TAG},Value={outputs['TemplatesLocation']}"
    )
    return url
