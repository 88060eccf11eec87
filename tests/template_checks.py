"""Checks shared by the stack tests: what a template refers to, and the rule that every
Parameter is constrained and used."""

from __future__ import annotations

import re
from typing import Any


def referenced(node: Any, found: set[str] | None = None) -> set[str]:
    """Names used by Ref, GetAtt, Condition and ``${...}`` in Fn::Sub under ``node``."""
    found = set() if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("Ref", "Condition") and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(
                    value[0].split(".")[0] if isinstance(value, list) else value.split(".")[0]
                )
            elif key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^!][^}]*)\}", text):
                    if name.split(".")[0] not in local:
                        found.add(name.split(".")[0])
                referenced(local, found)
            else:
                referenced(value, found)
    elif isinstance(node, list):
        for item in node:
            referenced(item, found)
    return found


def assert_parameters_constrained_and_used(template: dict[str, Any]) -> None:
    """Every Parameter has a pattern and length limit (or allowed values) with a
    ConstraintDescription, and a resource or condition uses it."""
    used = referenced(template["Resources"]) | referenced(template.get("Conditions", {}))
    for name, spec in template.get("Parameters", {}).items():
        assert ("AllowedPattern" in spec and "MaxLength" in spec) or "AllowedValues" in spec, name
        assert spec.get("ConstraintDescription"), name
        assert name in used, f"parameter {name} is never used"
