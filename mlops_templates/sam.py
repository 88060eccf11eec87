"""The SAM transform, offline: what CloudFormation expands ``deploy-prd`` into.

CloudFormation runs the ``AWS::Serverless-2016-10-31`` transform on its side; the
permission checks and the linters need the resources it generates (Lambda versions and
aliases, the CodeDeploy application and group, the API's deployment and stage, ...).
The translator (``aws-sam-translator``, a development dependency) is imported only here.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from unittest import mock

#: What ``aws cloudformation package`` writes in place of a local ``CodeUri``.
PACKAGED_CODE_URI = "s3://artifacts/function.zip"


class _NoManagedPolicies:
    """Managed-policy loader for offline translation: every role here is explicit."""

    def load(self) -> dict[str, str]:
        return {}


def expand(
    template: dict[str, Any], region: str = "us-east-1", code_uri: str = PACKAGED_CODE_URI
) -> dict[str, Any]:
    """``template`` (a SAM template as a dict) as the hosted transform would expand it.

    Local ``CodeUri`` folders are replaced by an S3 URI, as packaging does. ARNs keep
    the ``${AWS::Partition}`` pseudo parameter, so the expansion is as
    partition-independent as its source.
    """
    try:
        from samtranslator.translator.arn_generator import ArnGenerator
        from samtranslator.translator.transform import transform
    except ImportError as err:  # pragma: no cover - a development dependency
        raise RuntimeError(
            "expanding the SAM template needs aws-sam-translator (pip install -e '.[dev]')"
        ) from err

    # The translator logs feature-toggle and metrics chatter on every call.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    copy = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            code = resource["Properties"].get("CodeUri")
            if isinstance(code, str) and not code.startswith("s3://"):
                resource["Properties"]["CodeUri"] = code_uri
    with (
        mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": region}),
        mock.patch.object(
            ArnGenerator,
            "get_partition_name",
            classmethod(lambda cls, region=None: "${AWS::Partition}"),
        ),
    ):
        # passthrough_metadata: generated resources inherit their SAM resource's
        # Metadata (its Context and checkov reasons), as in a deployed stack.
        return transform(copy, {}, _NoManagedPolicies(), passthrough_metadata=True)
