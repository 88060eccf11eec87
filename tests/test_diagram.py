"""The architecture diagram: read from the templates, current in the README, valid Mermaid."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import diagram, render

from .conftest import REPO, TEMPLATES
from .variants import variant_config

NODE_MODULES = REPO / ".venv" / "node" / "node_modules"
CHECKER = REPO / "scripts" / "check_mermaid.mjs"


def _stacks(name: str) -> dict[str, dict[str, Any]]:
    """The templates of a variant, parsed like ``diagram.load`` parses files."""
    import json

    import cfn_flip

    files = render.render(variant_config(name))
    return {
        file.removesuffix(".yaml"): json.loads(cfn_flip.to_json(text))
        for file, text in files.items()
        if file.endswith(".yaml")
    }


def _edges(text: str) -> set[tuple[str, str, str]]:
    found = set()
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\w+) -\.?->(?:\|\"(.*?)\"\|)? (\w+)", line)
        if match:
            found.add((match[1], match[3], match[2] or ""))
    return found


def test_readme_shows_the_diagram_of_the_committed_templates() -> None:
    text = diagram.architecture(diagram.load(TEMPLATES))
    stale = diagram.update_readme(REPO / "README.md", text, check=True)
    assert not stale, "README.md: the architecture diagram is stale; run `make templates`"


def test_every_edge_joins_drawn_nodes_or_stacks() -> None:
    text = diagram.architecture(diagram.load(TEMPLATES))
    nodes = set(re.findall(r"^\s*(\w+)[\[({]", text, re.MULTILINE))
    groups = set(re.findall(r"^\s*subgraph (\w+)\[", text, re.MULTILINE))
    edges = _edges(text)
    assert len(edges) >= 25
    for source, target, _ in edges:
        assert {source, target} <= nodes | groups, (source, target)


def test_the_flows_follow_the_templates() -> None:
    edges = _edges(diagram.architecture(_stacks("example")))
    expected = {
        ("push", "actionSource", ""),
        ("actionTrain", "stateValidateInput", "StartExecution"),
        ("stateQualityGate", "stateCreateModel", "rmse < 3.0"),
        ("stateRegisterModel", "ModelPackageGroup", "new version"),
        ("actionDeployDev", "devEndpoint", "deploys"),
        ("actionPromoteProject", "prdEndpoint", "deploys"),
        ("ModelPackageGroup", "actionPromoteProject", "RegistryChangedRule"),
        ("prdApiFunction", "prdEndpoint", "InvokeEndpoint"),
        ("prdEndpoint", "prdCapture", "data capture"),
        ("prdDriftAlarm", "pipeline", "retrain"),
        ("upload", "pipeline", "DataUploadRule"),
    }
    assert expected <= edges, expected - edges


def test_another_config_draws_another_system() -> None:
    """No drift retraining, a CodeCommit push rule and an enabled schedule: the drawing
    changes with the templates, not with a hand-kept list."""
    text = diagram.architecture(_stacks("codecommit-schedule"))
    edges = _edges(text)
    assert not any(label == "retrain" for _, _, label in edges)
    assert ("push", "pipeline", "SourcePushRule") in edges
    assert "actionSource[\"Source: CodeCommit pricing-model@main\"]" in text
    assert '"schedule cron(0 3 ? * MON *)"' in text


def test_a_template_change_changes_the_diagram() -> None:
    stacks = _stacks("example")
    before = _edges(diagram.architecture(stacks))
    changed = copy.deepcopy(stacks)
    machine = next(
        r for r in changed["workflow"]["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    gate = machine["Properties"]["Definition"]["States"]["QualityGate"]
    for rule in gate["Choices"]:
        if rule.get("Next") == "CreateModel":
            rule["NumericLessThan"] = 2.5
    rules = changed["pipeline"]["Resources"]
    del rules[next(k for k, v in rules.items() if "RetrainOnDrift" in k)]
    after = _edges(diagram.architecture(changed))
    assert ("stateQualityGate", "stateCreateModel", "rmse < 2.5") in after - before
    assert ("prdDriftAlarm", "pipeline", "retrain") in before - after


def test_the_diagram_is_valid_mermaid(tmp_path: Path) -> None:
    """Parsed by Mermaid's own parser (what GitHub renders the README with)."""
    if not (NODE_MODULES / "mermaid").is_dir():
        pytest.fail("mermaid is missing: `make install` installs it")
    files = []
    for name in ("example", "codecommit-schedule", "create-vpc"):
        path = tmp_path / f"{name}.mmd"
        path.write_text(diagram.architecture(_stacks(name)), encoding="utf-8")
        files.append(str(path))
    broken = tmp_path / "broken.mmd"
    broken.write_text("flowchart LR\n    a -->\n", encoding="utf-8")
    proc = subprocess.run(
        ["node", str(CHECKER), str(NODE_MODULES), *files], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("flowchart") == len(files)
    proc = subprocess.run(
        ["node", str(CHECKER), str(NODE_MODULES), str(broken)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1 and "Parse error" in proc.stdout
