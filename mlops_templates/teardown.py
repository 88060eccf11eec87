"""Ordered teardown of one project (``make destroy NAME=<project> [PURGE=1]``).

1. The per-run stacks: ``deploy-prd``, ``deploy-dev`` and ``batch`` together (those that
   exist), then ``workflow``.
   They go first: the pipeline stack's CloudFormation role deployed them and is the only
   role allowed to delete them, and it goes with the pipeline stack.
2. The project: the SageMaker project when one of that name exists (Service Catalog
   then deletes its ``SC-<account>-pp-...`` stack), and the ``<prefix>-<project>-pipeline``
   stack of a deployment without Studio.
3. What the stacks retain because it holds data: the buckets, the image repository, the
   model package group and its versions, the log groups and the KMS key. They are listed
   with the command that removes each; ``purge`` removes the kinds it names.

Every step looks before it acts, so a second run, or a run over a half-deleted project,
carries on where the last one stopped. A stack deletion that fails stops the teardown
with the first failed resource and its reason, before anything that depends on it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import naming
from mlops_templates.config import Config
from mlops_templates.naming import BUCKET_SUFFIXES
from mlops_templates.projects import (
    describe_project,
    provisioned_stack_name,
    wait_project,
)
from mlops_templates.stackwatch import (
    DeployError,
    Watcher,
    aws_error,
    describe,
    error_code,
    session,
    terminal,
)

#: Per-run stacks, in deletion order; the stacks of one group are deleted together.
RUN_STACK_GROUPS: tuple[tuple[str, ...], ...] = (("deploy-prd", "deploy-dev", "batch"), ("workflow",))
#: What ``purge`` can remove, in the order it removes them (the key last: it encrypts the rest).
KINDS = ("buckets", "repository", "models", "logs", "key")
#: Days before a key scheduled for deletion is deleted (the shortest AWS allows).
KEY_PENDING_DAYS = 7
#: Up to this many model versions, the report prints one delete command per version.
COMMANDS_SHOWN = 10


@dataclass
class Retained:
    """A resource the stacks left behind."""

    kind: str
    name: str
    detail: str = ""
    commands: list[str] = field(default_factory=list)
    #: What purging needs: object versions, model package ARNs, aliases.
    parts: list[Any] = field(default_factory=list)


class Teardown:
    """Tears down project ``config.project.name`` (see the module docstring)."""

    def __init__(self, config: Config, out: TextIO | None = None, boto: Any = None):
        self.config = config
        self.name = config.project.name
        self.base = naming.base(config)
        self.boto = boto or session(fallback=config.project.region)
        self.cloudformation = self.boto.client("cloudformation")
        self.watcher = Watcher(self.cloudformation, out)
        self.say = self.watcher.say
        self._account = ""

    @property
    def account(self) -> str:
        if not self._account:
            try:
                self._account = self.boto.client("sts").get_caller_identity()["Account"]
            except (ClientError, BotoCoreError) as err:
                raise aws_error(err, "find the AWS account (sts get-caller-identity)") from None
        return self._account

    @property
    def region(self) -> str:
        return str(self.boto.region_name)

    def client(self, service: str) -> Any:
        return self.boto.client(service)

    # -- Stacks ---------------------------------------------------------------------------

    def delete_stacks(self, names: Iterable[str], before: str) -> None:
        """Delete stacks together and wait; on failure stop with the first failed resource."""
        started: dict[str, str] = {}
        for name in names:
            stack = describe(self.cloudformation, name)
            if stack is None:
                self.say(f"stack {name} does not exist: skipped")
                continue
            if not terminal(stack.status) and stack.status != "DELETE_IN_PROGRESS":
                self.say(f"stack {name} is {stack.status}: waiting for it to finish first")
                self.watcher.mark(stack.id)
                self.watcher.wait({stack.id: name})
            self.say(f"stack {name}: deleting")
            self.watcher.mark(stack.id)
            if stack.status != "DELETE_IN_PROGRESS":
                try:
                    self.cloudformation.delete_stack(StackName=stack.id)
                except (ClientError, BotoCoreError) as err:
                    raise aws_error(err, f"delete stack {name}") from None
            started[stack.id] = name
        if not started:
            return
        final = self.watcher.wait(started, started=True)
        failed = [stack for stack in final.values() if stack.status != "DELETE_COMPLETE"]
        for stack in final.values():
            if stack.status == "DELETE_COMPLETE":
                self.say(f"stack {stack.name}: DELETE_COMPLETE")
        if failed:
            lines = "\n".join(f"stack {s.name}: {s.status}\n{self.watcher.failure(s)}" for s in failed)
            raise DeployError(
                f"{lines}\nStopped before {before}. Fix the cause (or retain the resource: "
                "`aws cloudformation delete-stack --stack-name <stack> --retain-resources <LogicalId>`), "
                f"then run `make destroy NAME={self.name}` again"
            )

    def run_stacks(self) -> None:
        for group in RUN_STACK_GROUPS:
            self.delete_stacks(
                [naming.stack_name(self.config, stack) for stack in group],
                before="the pipeline stack, whose CloudFormation role is the only one allowed "
                "to delete the per-run stacks",
            )

    def project(self) -> None:
        """Delete the SageMaker project (and its stack), then a pipeline stack of that name."""
        sagemaker = self.client("sagemaker")
        found = describe_project(sagemaker, self.name)
        if found is None:
            self.say(f"SageMaker project {self.name} does not exist: skipped")
        else:
            product = found.get("ServiceCatalogProvisionedProductDetails") or {}
            stack_id = ""
            if product.get("ProvisionedProductId"):
                stack = describe(
                    self.cloudformation, provisioned_stack_name(self.account, product["ProvisionedProductId"])
                )
                if stack is not None:
                    stack_id = stack.id
                    self.watcher.mark(stack_id)
            self.say(f"SageMaker project {self.name}: deleting (Service Catalog deletes its pipeline stack)")
            if found.get("ProjectStatus") != "DeleteInProgress":
                try:
                    sagemaker.delete_project(ProjectName=self.name)
                except (ClientError, BotoCoreError) as err:
                    raise aws_error(err, f"delete SageMaker project {self.name}") from None
            wait_project(self.boto, self.name, self.watcher, self.account, stack_id)
        self.delete_stacks([naming.stack_name(self.config, "pipeline")], before="the retained resources")

    # -- Retained resources ---------------------------------------------------------------

    def retained(self) -> list[Retained]:
        """What the deleted stacks kept, as it exists now."""
        return [*self._buckets(), *self._repository(), *self._models(), *self._log_groups(), *self._keys()]

    def _buckets(self) -> list[Retained]:
        s3, found = self.client("s3"), []
        for suffix in BUCKET_SUFFIXES:
            bucket = f"{self.base}-{self.account}-{self.region}-{suffix}"
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError as err:
                if error_code(err) in {"404", "NoSuchBucket", "NotFound"}:
                    continue
                if error_code(err) in {"403", "AccessDenied"}:
                    self.say(f"bucket {bucket}: access denied (403): not listed; check it by hand")
                    continue
                raise aws_error(err, f"look for bucket {bucket}") from None
            versions = self._versions(s3, bucket)
            commands = (
                [f"aws s3api delete-bucket --bucket {bucket}"]
                if not versions
                else [
                    f"make destroy NAME={self.name} PURGE=buckets  # the buckets: every object version, then the bucket"
                ]
            )
            found.append(
                Retained(
                    "buckets",
                    f"s3://{bucket}",
                    f"{len(versions)} object versions and delete markers",
                    commands,
                    versions,
                )
            )
        return found

    @staticmethod
    def _versions(s3: Any, bucket: str) -> list[dict[str, str]]:
        versions: list[dict[str, str]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})
        return versions

    def _repository(self) -> list[Retained]:
        ecr = self.client("ecr")
        try:
            ecr.describe_repositories(repositoryNames=[self.base])
        except ClientError as err:
            if error_code(err) == "RepositoryNotFoundException":
                return []
            raise aws_error(err, f"look for ECR repository {self.base}") from None
        images = sum(
            len(page["imageIds"])
            for page in ecr.get_paginator("list_images").paginate(repositoryName=self.base)
        )
        return [
            Retained(
                "repository",
                f"ECR repository {self.base}",
                f"{images} images",
                [f"aws ecr delete-repository --repository-name {self.base} --force"],
            )
        ]

    def _models(self) -> list[Retained]:
        sagemaker, group = self.client("sagemaker"), naming.physical_name(self.config, "models")
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        except ClientError as err:
            if error_code(err) in {"ValidationException", "ResourceNotFound"}:
                return []
            raise aws_error(err, f"look for model package group {group}") from None
        arns: list[str] = []
        token = None
        while True:
            page = sagemaker.list_model_packages(
                ModelPackageGroupName=group,
                ModelPackageType="Both",
                **({"NextToken": token} if token else {}),
            )
            arns.extend(p["ModelPackageArn"] for p in page.get("ModelPackageSummaryList", []))
            token = page.get("NextToken")
            if not token:
                break
        last = f"aws sagemaker delete-model-package-group --model-package-group-name {group}"
        if len(arns) > COMMANDS_SHOWN:
            commands = [
                f"make destroy NAME={self.name} PURGE=models  # its {len(arns)} versions, then the group"
            ]
        else:
            commands = [f"aws sagemaker delete-model-package --model-package-name {arn}" for arn in arns] + [
                last
            ]
        return [
            Retained("models", f"model package group {group}", f"{len(arns)} model versions", commands, arns)
        ]

    def _log_groups(self) -> list[Retained]:
        logs, prefix = self.client("logs"), self.config.project.prefix
        exact = {f"/aws/vendedlogs/states/{naming.physical_name(self.config, 'training')}"}
        found: dict[str, Retained] = {}
        for start, by_tag in (
            (f"/{prefix}/{self.name}/", False),
            (f"/aws/vendedlogs/states/{self.base}-", True),
            # Per-run stacks' groups without a set name: <stack name>-<logical id>-<suffix>.
            (f"{self.base}-", True),
        ):
            for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=start):
                for group in page.get("logGroups", []):
                    name = group["logGroupName"]
                    # A hyphen-ended prefix also matches project "<name>-x": the tag decides.
                    if by_tag and name not in exact and not self._tagged(logs, group):
                        continue
                    found[name] = Retained(
                        "logs",
                        f"log group {name}",
                        f"{group.get('storedBytes', 0)} bytes",
                        [f"aws logs delete-log-group --log-group-name {name}"],
                    )
        return list(found.values())

    def _tagged(self, logs: Any, group: dict[str, Any]) -> bool:
        arn = group.get("logGroupArn") or str(group.get("arn", "")).removesuffix(":*")
        try:
            tags = logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
        except ClientError:
            return False
        return tags.get(naming.PROJECT_TAG) == self.base

    def _keys(self) -> list[Retained]:
        kms, alias = self.client("kms"), f"alias/{self.base}"
        keys: dict[str, str] = {}
        try:
            keys[kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]] = ""
        except ClientError as err:
            if error_code(err) != "NotFoundException":
                raise aws_error(err, f"look for KMS key {alias}") from None
        for page in kms.get_paginator("list_keys").paginate():
            for key in page["Keys"]:
                try:
                    tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
                except ClientError:
                    continue  # AWS-managed keys and keys this role may not read
                values = {t["TagKey"]: t["TagValue"] for t in tags}
                # The pipeline's key only: the account stack's key carries the project tag too.
                if values.get(naming.PROJECT_TAG) == self.base and values.get(naming.COMPONENT_TAG) == "pipeline":
                    keys[key["KeyId"]] = ""
        found = []
        for key_id in keys:
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if (
                metadata.get("KeyState") in {"PendingDeletion", "PendingReplicaDeletion"}
                or metadata.get("KeyManager") == "AWS"
            ):
                continue
            aliases = [
                a["AliasName"]
                for a in kms.list_aliases(KeyId=key_id).get("Aliases", [])
                if a["AliasName"] == alias or a["AliasName"].startswith(f"{alias}-")
            ]
            commands = [
                f"aws kms schedule-key-deletion --key-id {key_id} --pending-window-in-days {KEY_PENDING_DAYS}"
            ]
            commands += [f"aws kms delete-alias --alias-name {name}" for name in aliases]
            shown = f"KMS key {key_id}" + (f" ({', '.join(aliases)})" if aliases else "")
            found.append(Retained("key", shown, "encrypts the data above", commands, [key_id, *aliases]))
        return found

    def report(self, kept: list[Retained]) -> None:
        if not kept:
            self.say(f"project {self.name}: nothing retained")
            return
        self.say("Kept because they hold data (the stacks retain them), with the command that removes each:")
        for item in kept:
            self.say(f"  {item.kind:<10} {item.name}: {item.detail}")
            for command in item.commands:
                self.say(f"      {command}")
        self.say(
            f"Remove them all: make destroy NAME={self.name} PURGE=1 (or PURGE=<kinds>, of {','.join(KINDS)})"
        )

    def purge(self, kept: list[Retained], kinds: Iterable[str]) -> None:
        chosen = set(kinds)
        for item in sorted(kept, key=lambda r: KINDS.index(r.kind)):
            if item.kind in chosen:
                getattr(self, f"_purge_{item.kind}")(item)
                self.say(f"purged {item.name}")

    def _purge_buckets(self, item: Retained) -> None:
        s3, bucket = self.client("s3"), item.name.removeprefix("s3://")
        versions = self._versions(s3, bucket)
        for start in range(0, len(versions), 1000):
            answer = s3.delete_objects(
                Bucket=bucket, Delete={"Objects": versions[start : start + 1000], "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise DeployError(
                    f"s3://{bucket}: could not delete {first['Key']}: {first.get('Code')}: {first.get('Message')}"
                )
        s3.delete_bucket(Bucket=bucket)

    def _purge_repository(self, item: Retained) -> None:
        self.client("ecr").delete_repository(repositoryName=self.base, force=True)

    def _purge_models(self, item: Retained) -> None:
        sagemaker = self.client("sagemaker")
        for arn in item.parts:
            sagemaker.delete_model_package(ModelPackageName=arn)
        sagemaker.delete_model_package_group(
            ModelPackageGroupName=naming.physical_name(self.config, "models")
        )

    def _purge_logs(self, item: Retained) -> None:
        self.client("logs").delete_log_group(logGroupName=item.name.removeprefix("log group "))

    def _purge_key(self, item: Retained) -> None:
        kms = self.client("kms")
        key_id, *aliases = item.parts
        for alias in aliases:
            kms.delete_alias(AliasName=alias)
        when = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_PENDING_DAYS).get(
            "DeletionDate"
        )
        if when is not None:
            self.say(f"KMS key {key_id}: deletion scheduled for {when:%Y-%m-%d}")


def confirm_on_terminal(question: str) -> bool:
    """Ask on the terminal; refuse when there is none to ask on."""
    if not sys.stdin.isatty():
        raise DeployError("destroy needs a confirmation: pass YES=1 (make) or --yes")
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


def destroy(
    config: Config,
    purge: Iterable[str] = (),
    yes: bool = False,
    confirm: Callable[[str], bool] = confirm_on_terminal,
    out: TextIO | None = None,
) -> None:
    """Tear down project ``config.project.name`` (see the module docstring)."""
    kinds = list(purge)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise DeployError(
            f"PURGE: unknown kind(s) {', '.join(unknown)} (use 1, or some of {','.join(KINDS)})"
        )
    name, stacks = config.project.name, [naming.stack_name(config, s) for g in RUN_STACK_GROUPS for s in g]
    what = (
        f"Delete project {name}: stacks {', '.join(stacks)}, the SageMaker project {name} "
        f"(or stack {naming.stack_name(config, 'pipeline')})"
        + (f", and PURGE the retained {', '.join(kinds)}" if kinds else "")
    )
    if not yes and not confirm(what + "?"):
        raise DeployError("destroy: not confirmed; nothing deleted")
    teardown = Teardown(config, out)
    teardown.say(what)
    teardown.run_stacks()
    teardown.project()
    kept = teardown.retained()
    if kinds:
        teardown.purge(kept, kinds)
        kept = [item for item in kept if item.kind not in kinds]
    teardown.report(kept)
