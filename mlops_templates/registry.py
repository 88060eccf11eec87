"""The project's model registry: the source of truth for what runs in production.

The training workflow registers every model that passes the quality gate as a version of
the model package group ``<base>-models``. Production serves the group's newest
*Approved* version (:mod:`mlops_templates.promotion` converges it); this module reads and
changes the group: ``approve``, ``reject`` (with a reason), ``rollback`` (registers the
artifact of the previous approved version again as a new, approved version, so that it
goes through the same promotion and guardrails as any other), and the lookups they share.

Each function takes a boto3 SageMaker client and the group's name; errors name the field
and the value at fault (:class:`RegistryError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import contract, naming
from mlops_templates.errors import MlopsError

APPROVED, REJECTED, PENDING = "Approved", "Rejected", "PendingManualApproval"
#: CustomerMetadataProperties of a version registered by :func:`rollback`.
ROLLBACK_OF = "RollbackOf"
#: The key of the training run in CustomerMetadataProperties (the workflow writes it).
RUN_ID = "RunId"
#: UpdateModelPackage's ApprovalDescription is at most this long (SageMaker API reference).
DESCRIPTION_MAX = 1024


class RegistryError(MlopsError):
    """A registry command cannot go on; the message names the field and value at fault."""


def group_name(config: naming.Config) -> str:
    """The project's model package group (the workflow stack creates it)."""
    return naming.physical_name(config, "models")


def _call(what: str, func: Any, **kwargs: Any) -> Any:
    try:
        return func(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise RegistryError(f"{what}: {err}") from None


def versions(sagemaker: Any, group: str, status: str | None = None) -> list[dict[str, Any]]:
    """The group's versions (summaries), newest first: ListModelPackages sorted by
    CreationTime, descending (the version number breaks ties)."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        kwargs["ModelApprovalStatus"] = status
    while True:
        page = _call(f"list the versions of model package group {group}", sagemaker.list_model_packages, **kwargs)
        found.extend(page.get("ModelPackageSummaryList", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return sorted(found, key=lambda p: (p["CreationTime"], p.get("ModelPackageVersion", 0)), reverse=True)


def describe(sagemaker: Any, arn: str) -> dict[str, Any]:
    return dict(_call(f"describe model package {arn}", sagemaker.describe_model_package, ModelPackageName=arn))


def newest_approved(sagemaker: Any, group: str) -> dict[str, Any] | None:
    """The newest Approved version, described; None when the group has none."""
    approved = versions(sagemaker, group, APPROVED)
    return describe(sagemaker, approved[0]["ModelPackageArn"]) if approved else None


def find(sagemaker: Any, group: str, version: str | int) -> dict[str, Any]:
    """Version ``version`` of the group (a summary); a clear error when there is none."""
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(f"VERSION={text or '(empty)'}: give a model package version number (1, 2, ...)")
    every = versions(sagemaker, group)
    for summary in every:
        if summary.get("ModelPackageVersion") == int(text):
            return summary
    known = ", ".join(str(s.get("ModelPackageVersion")) for s in reversed(every)) or "none yet"
    raise RegistryError(f"VERSION={text}: model package group {group} has no version {text} (versions: {known})")


def _update(sagemaker: Any, arn: str, status: str, description: str) -> str:
    return str(
        _call(
            f"set model package {arn} to {status}",
            sagemaker.update_model_package,
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=description[:DESCRIPTION_MAX],
        )["ModelPackageArn"]
    )


def approve(sagemaker: Any, group: str, version: str | int, description: str) -> str:
    """Set version ``version`` to Approved; production follows the newest approved one."""
    return _update(sagemaker, find(sagemaker, group, version)["ModelPackageArn"], APPROVED, description)


def approve_arn(sagemaker: Any, arn: str, description: str) -> str:
    """Set the model package ``arn`` to Approved (the CI deploy-prd job's approval)."""
    return _update(sagemaker, arn, APPROVED, description)


def reject(sagemaker: Any, group: str, version: str | int, reason: str) -> str:
    """Set version ``version`` to Rejected with ``reason`` as its ApprovalDescription."""
    if not reason.strip():
        raise RegistryError(f"REASON=(empty): say why version {version} is rejected (it is kept as its ApprovalDescription)")
    return _update(sagemaker, find(sagemaker, group, version)["ModelPackageArn"], REJECTED, reason.strip())


def artifact(package: Mapping[str, Any]) -> tuple[str, str]:
    """(image, model data) of a described version's first container."""
    container = package.get("InferenceSpecification", {}).get("Containers", [{}])[0]
    return container.get("Image", ""), container.get("ModelDataUrl", "")


def deploy_values(package: Mapping[str, Any]) -> dict[str, str]:
    """The deploy-prd parameters a described version supplies (the training output's
    keys: ``contract.TRAIN_OUTPUT_OVERRIDES['deploy-prd']``) and its run id."""
    image, model_data = artifact(package)
    baselines = package.get("DriftCheckBaselines", {}).get("ModelDataQuality", {})
    run_id = package.get("CustomerMetadataProperties", {}).get(RUN_ID, "")
    values = {
        contract.IMAGE_URI: image,
        contract.MODEL_DATA_URL: model_data,
        contract.BASELINE_STATISTICS_URI: baselines.get("Statistics", {}).get("S3Uri", ""),
        contract.BASELINE_CONSTRAINTS_URI: baselines.get("Constraints", {}).get("S3Uri", ""),
        RUN_ID: run_id,
    }
    missing = sorted(key for key, value in values.items() if not value)
    if missing:
        raise RegistryError(
            f"model package {package.get('ModelPackageArn')}: no {', '.join(missing)}; only versions the "
            "training workflow registered (or rollbacks of them) can be deployed"
        )
    return values


#: What :func:`rollback` copies from the version it rolls back to.
_COPIED = ("InferenceSpecification", "ModelMetrics", "DriftCheckBaselines")


def rollback(sagemaker: Any, group: str, note: str) -> tuple[str, dict[str, Any]]:
    """Register the previous approved version's artifact again, approved: (new ARN, the
    version copied). The previous one is the newest approved version whose artifact
    differs from the newest approved one's (what production serves once converged)."""
    approved = [describe(sagemaker, s["ModelPackageArn"]) for s in versions(sagemaker, group, APPROVED)]
    if not approved:
        raise RegistryError(f"model package group {group} has no approved version: nothing to roll back from")
    live = artifact(approved[0])
    previous = next((p for p in approved[1:] if artifact(p) != live), None)
    if previous is None:
        raise RegistryError(
            f"model package group {group}: no approved version before version "
            f"{approved[0].get('ModelPackageVersion')} with another artifact to roll back to; "
            "approve one (make approve VERSION=n)"
        )
    version = previous.get("ModelPackageVersion")
    metadata = {**previous.get("CustomerMetadataProperties", {}), ROLLBACK_OF: str(version)}
    copied = {key: previous[key] for key in _COPIED if key in previous}
    created = _call(
        f"register a rollback to version {version}",
        sagemaker.create_model_package,
        ModelPackageGroupName=group,
        ModelPackageDescription=f"Rollback to version {version}: {note}"[:DESCRIPTION_MAX],
        ModelApprovalStatus=APPROVED,
        CustomerMetadataProperties=metadata,
        **copied,
    )
    return str(created["ModelPackageArn"]), previous


def matching(packages: list[Mapping[str, Any]], image: str, model_data: str) -> Mapping[str, Any] | None:
    """The newest of the described ``packages`` (newest first) with this artifact,
    preferring an approved one (a rollback re-registers an artifact)."""
    same = [p for p in packages if artifact(p) == (image, model_data)]
    return next((p for p in same if p.get("ModelApprovalStatus") == APPROVED), same[0] if same else None)
