"""What moto (5.2) lacks for the deploy and teardown tests, added to the in-process server.

The moto server of ``conftest.moto_server`` runs in the test process, so these patches
apply to it; each context manager undoes its patches on exit.

``cloudformation_like_aws``: moto creates and deletes a stack inside the API call, records
only the stack's own events, and when a resource fails it returns the resource's error
from ExecuteChangeSet or DeleteStack instead of failing the stack. Patched, it behaves as
CloudFormation does for what the deploy and teardown code reads: an IN_PROGRESS and a
COMPLETE event per resource, a resource's error as its CREATE_FAILED / DELETE_FAILED
event, a failed create rolled back to ROLLBACK_COMPLETE (what it created deleted), a
failed deletion leaving the stack in DELETE_FAILED. Events are listed newest first.

``sagemaker_projects``: moto has no SageMaker project API and cannot delete model
packages. Added: CreateProject, DescribeProject and DeleteProject, with Service Catalog's
provisioning emulated by a stack ``SC-<account>-pp-<id>`` made from ``product_template``
(unknown provisioning parameters are rejected, as Service Catalog rejects them), and
DeleteModelPackage and DeleteModelPackageGroup.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _backend() -> Any:
    return cfn_models.cloudformation_backends[ACCOUNT][REGION]


def _event(stack: Any, logical_id: str, physical_id: str, kind: str, status: str, reason: str = "") -> None:
    stack.events.append(
        cfn_models.Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=physical_id,
            resource_type=kind,
            resource_status=status,
            resource_status_reason=reason or None,
            resource_properties=None,
        )
    )


def _physical(resource: Any) -> str:
    try:
        return str(getattr(resource, "physical_resource_id", "") or "")
    except Exception:  # noqa: BLE001 - some moto models compute it from missing state
        return ""


@contextmanager
def cloudformation_like_aws() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    create_map = cfn_models.Stack._create_resource_map
    create_resource = parsing.parse_and_create_resource
    delete_resource = parsing.ResourceMap._delete_resource
    delete_map = parsing.ResourceMap.delete
    execute = cfn_models.CloudFormationBackend.execute_change_set
    delete_stack = cfn_models.CloudFormationBackend.delete_stack
    events = cfn_models.CloudFormationBackend.describe_stack_events

    def _create_resource_map(self: Any) -> Any:
        resources = create_map(self)
        resources.shim_stack = self
        return resources

    def parse_and_create_resource(
        logical_id: str, resource_json: dict[str, Any], resources: Any, *args: Any, **kwargs: Any
    ) -> Any:
        stack, kind = getattr(resources, "shim_stack", None), resource_json.get("Type", "")
        if stack is not None:
            _event(stack, logical_id, "", kind, "CREATE_IN_PROGRESS")
        try:
            created = create_resource(logical_id, resource_json, resources, *args, **kwargs)
        except Exception as err:
            if stack is not None:
                _event(stack, logical_id, "", kind, "CREATE_FAILED", str(err))
                stack.shim_failed = [*getattr(stack, "shim_failed", []), logical_id]
            raise
        if stack is not None:
            _event(stack, logical_id, _physical(created), kind, "CREATE_COMPLETE")
        return created

    def _delete_resource(self: Any, resource: Any, resource_json: dict[str, Any]) -> None:
        stack = getattr(self, "shim_stack", None)
        logical_id = getattr(resource, "logical_resource_id", "")
        started = self.__dict__.setdefault("shim_deleting", set())
        if stack is not None and logical_id not in started:
            _event(
                stack, logical_id, _physical(resource), resource_json.get("Type", ""), "DELETE_IN_PROGRESS"
            )
            started.add(logical_id)
        try:
            delete_resource(self, resource, resource_json)
        except Exception as err:
            self.__dict__.setdefault("shim_errors", {})[logical_id] = str(err)
            raise
        if stack is not None:
            _event(stack, logical_id, _physical(resource), resource_json.get("Type", ""), "DELETE_COMPLETE")

    def delete(self: Any) -> None:
        try:
            delete_map(self)
        except Exception:
            stack = getattr(self, "shim_stack", None)
            for logical_id, reason in self.__dict__.get("shim_errors", {}).items():
                if stack is not None and logical_id in self._parsed_resources:
                    kind = self._resource_json_map[logical_id].get("Type", "")
                    _event(stack, logical_id, "", kind, "DELETE_FAILED", reason)
            raise

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack.shim_failed = []
        try:
            execute(self, change_set_name, stack_name)
            # moto resolves a stack's outputs when a change set makes the stack, from no
            # template yet: resolve them from the executed template, as CloudFormation does.
            stack._parse_template()
            stack.output_map = stack._create_output_map()
        except Exception:  # noqa: BLE001 - any resource error fails the stack, as in CloudFormation
            failed = ", ".join(stack.shim_failed) or "unknown"
            if change_set.change_set_type == "CREATE":
                stack._add_stack_event(
                    "ROLLBACK_IN_PROGRESS",
                    f"The following resource(s) failed to create: [{failed}]. Rollback requested by user.",
                )
                try:
                    stack.resource_map.delete()
                except Exception:  # noqa: BLE001, S110 - a rollback deletes what it can
                    pass
                stack.status = "ROLLBACK_COMPLETE"
                stack._add_stack_event("ROLLBACK_COMPLETE")
            else:
                stack._add_stack_event(
                    "UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{failed}]."
                )
                stack.status = "UPDATE_ROLLBACK_COMPLETE"
                stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
            change_set.execution_status = "EXECUTE_FAILED"

    def delete_stack_(self: Any, name_or_stack_id: str) -> None:
        stack = next((s for s in self.stacks.values() if name_or_stack_id in (s.stack_id, s.name)), None)
        try:
            delete_stack(self, name_or_stack_id)
        except Exception:
            if stack is None:
                raise
            self.deleted_stacks.pop(stack.stack_id, None)
            self.stacks[stack.stack_id] = stack
            failed = [e.logical_resource_id for e in stack.events if e.resource_status == "DELETE_FAILED"]
            stack.status = "DELETE_FAILED"
            stack._add_stack_event(
                "DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(failed)}]. "
            )

    def describe_stack_events(self: Any, stack_name: str) -> list[Any]:
        return list(reversed(events(self, stack_name)))

    patch.setattr(cfn_models.Stack, "_create_resource_map", _create_resource_map)
    patch.setattr(parsing, "parse_and_create_resource", parse_and_create_resource)
    patch.setattr(parsing.ResourceMap, "_delete_resource", _delete_resource)
    patch.setattr(parsing.ResourceMap, "delete", delete)
    patch.setattr(cfn_models.CloudFormationBackend, "execute_change_set", execute_change_set)
    patch.setattr(cfn_models.CloudFormationBackend, "delete_stack", delete_stack_)
    patch.setattr(cfn_models.CloudFormationBackend, "describe_stack_events", describe_stack_events)
    try:
        yield
    finally:
        patch.undo()


class FakeProjects:
    """SageMaker projects: ``product_template`` (JSON text) is what provisioning deploys."""

    def __init__(self) -> None:
        self.product_template = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
        self.projects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def create(self, name: str, details: dict[str, Any]) -> dict[str, Any]:
        self.requests.append({"ProjectName": name, **details})
        declared = json.loads(self.product_template).get("Parameters", {})
        given = {p["Key"]: p["Value"] for p in details.get("ProvisioningParameters") or []}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ValidationError(
                f"Parameter validation failed: parameter {unknown[0]} is not in the template"
            )
        if name in self.projects:
            raise ValidationError(f"Project {name} already exists")
        with self._lock:
            number = len(self.requests)
        project_id = f"p-{number:012d}"
        product = f"pp-{number:013d}"
        stack = _backend().create_stack(
            name=f"SC-{ACCOUNT}-{product}", template=self.product_template, parameters=given
        )
        self.projects[name] = {
            "ProjectName": name,
            "ProjectId": project_id,
            "ProjectArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:project/{name}",
            "ProjectStatus": "CreateInProgress",
            "ServiceCatalogProvisioningDetails": details,
            "ServiceCatalogProvisionedProductDetails": {
                "ProvisionedProductId": product,
                "ProvisionedProductStatusMessage": "",
            },
            "CreationTime": datetime.now(UTC),
            "stack_id": stack.stack_id,
        }
        return self.projects[name]

    def describe(self, name: str) -> dict[str, Any]:
        if name not in self.projects:
            raise ValidationError(f"Project {name} does not exist")
        project = self.projects[name]
        shown = {k: v for k, v in project.items() if k != "stack_id"}
        # Provisioning shows as in progress once, then as what the stack came to.
        if project["ProjectStatus"] == "CreateInProgress":
            status = _backend().get_stack(project["stack_id"]).status
            project["ProjectStatus"] = "CreateCompleted" if status == "CREATE_COMPLETE" else "CreateFailed"
        return shown

    def delete(self, name: str) -> None:
        if name not in self.projects:
            raise ValidationError(f"Project {name} does not exist")
        project = self.projects[name]
        _backend().delete_stack(project["stack_id"])
        if _backend().get_stack(project["stack_id"]).status == "DELETE_FAILED":
            project["ProjectStatus"] = "DeleteFailed"
            return
        del self.projects[name]


@contextmanager
def sagemaker_projects() -> Iterator[FakeProjects]:
    fake = FakeProjects()
    patch = pytest.MonkeyPatch()

    def create_project(self: SageMakerResponse) -> ActionResult:
        project = fake.create(
            self._get_param("ProjectName"), self._get_param("ServiceCatalogProvisioningDetails")
        )
        return ActionResult({"ProjectArn": project["ProjectArn"], "ProjectId": project["ProjectId"]})

    def describe_project(self: SageMakerResponse) -> ActionResult:
        return ActionResult(fake.describe(self._get_param("ProjectName")))

    def delete_project(self: SageMakerResponse) -> ActionResult:
        fake.delete(self._get_param("ProjectName"))
        return EmptyResult()

    def delete_model_package(self: SageMakerResponse) -> ActionResult:
        backend = sagemaker_backends[ACCOUNT][REGION]
        name = self._get_param("ModelPackageName")
        if backend.model_packages.pop(name, None) is None:
            raise ValidationError(f"Model package {name} does not exist")
        return EmptyResult()

    def delete_model_package_group(self: SageMakerResponse) -> ActionResult:
        backend = sagemaker_backends[ACCOUNT][REGION]
        name = self._get_param("ModelPackageGroupName")
        if any(p.model_package_group_name == name for p in backend.model_packages.values()):
            raise ValidationError(f"Model package group {name} still has model packages")
        if backend.model_package_groups.pop(name, None) is None:
            raise ValidationError(f"Model package group {name} does not exist")
        return EmptyResult()

    for handler in (
        create_project,
        describe_project,
        delete_project,
        delete_model_package,
        delete_model_package_group,
    ):
        patch.setattr(SageMakerResponse, handler.__name__, handler, raising=False)
    try:
        yield fake
    finally:
        patch.undo()
