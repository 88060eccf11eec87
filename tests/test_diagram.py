"""The architecture diagram: read from the templates, current in the README, valid Mermaid."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import config, diagram, diagram_modes, render

from .conftest import EXAMPLE_CONFIG, REPO, TEMPLATES
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


def _readme_diagram() -> str:
    """What `make diagram` draws: the committed templates and the example config's other
    studio and batch settings."""
    return diagram.architecture(diagram.load(TEMPLATES), diagram_modes.variants(config.load(EXAMPLE_CONFIG)))


def _drawn(name: str) -> str:
    """The diagram of a variant's templates with its config's other settings."""
    return diagram.architecture(_stacks(name), diagram_modes.variants(variant_config(name)))


def test_readme_shows_the_diagram_of_the_committed_templates() -> None:
    text = _readme_diagram()
    stale = diagram.update_readme(REPO / "README.md", text, check=True)
    assert not stale, "README.md: the architecture diagram is stale; run `make templates`"


def test_every_edge_joins_drawn_nodes_or_stacks() -> None:
    text = _readme_diagram()
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
    for name in ("example", "codecommit-schedule", "create-vpc", "batch", "s3-templates"):
        path = tmp_path / f"{name}.mmd"
        path.write_text(diagram.architecture(_stacks(name)), encoding="utf-8")
        files.append(str(path))
    readme = tmp_path / "readme.mmd"
    readme.write_text(_readme_diagram(), encoding="utf-8")
    files.append(str(readme))
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


# -- the batch stack and S3 publishing ----------------------------------------------------


def test_the_readme_diagram_shows_the_batch_stack_and_s3_publishing_beside_the_example() -> None:
    """The example deploys endpoints and publishes through Service Catalog; the diagram also
    draws the batch stack (deployment.mode batch or both) and the S3 template bucket
    (studio.publish_mode s3), titled with their settings."""
    text = _readme_diagram()
    edges = _edges(text)
    expected = {
        ("user", "PipelineProduct", "create project"),
        ("user", "TemplateBucket", "create project"),
        ("TemplateBucket", "pipeline", "provisions"),
        ("actionTrainOutput", "actionDeployBatch", ""),
        ("actionDeployBatch", "batchFindModel", "deploys"),
        ("ModelPackageGroup", "batchFindModel", "reads"),
        ("batchFindModel", "batchTransform", ""),
        ("batchTransform", "batchMonitor", ""),
        ("batchupload", "batchFindModel", "BatchUploadRule"),
        ("batchMonitor", "batchDriftAlarm", ""),
        ("batchMonitor", "batchModelQualityAlarm", ""),
        # With a batch stack, the pipeline's retraining rule matches its alarms too.
        ("batchDriftAlarm", "pipeline", "retrain"),
        ("batchModelQualityAlarm", "pipeline", "retrain"),
    }
    assert expected <= edges, expected - edges
    assert 'subgraph batch["batch stack: Step Functions batch run (deployment.mode batch or both)"]' in text
    assert 'subgraph studios3["studio stack: S3 project templates (studio.publish_mode s3)"]' in text
    assert '"S3 project template templates/mlops-abalone-pipeline.yaml<br/>read by Studio (CORS)"' in text
    assert '"DeployBatch: CloudFormation deploy (deployment.mode batch or both)"' in text
    assert '"alarm mlops-abalone-batch-drift"' in text and '"alarm mlops-abalone-batch-quality"' in text
    # The example's own chain is unchanged: DeployDev still follows TrainOutput.
    assert ("actionTrainOutput", "actionDeployDev", "") in edges
    assert not any(target == "actionDeployBatch" for _, target, _ in _edges(diagram.architecture(_stacks("example"))))


def test_a_batch_config_draws_its_own_batch_stack_and_no_production() -> None:
    """deployment.mode batch: DeployBatch is a stage of the chain, the schedule and the upload
    start the batch run, no endpoint and no promotion; the batch stack is not drawn twice."""
    text = _drawn("batch")
    edges = _edges(text)
    expected = {
        ("actionTrainOutput", "actionDeployBatch", ""),
        ("actionDeployBatch", "batchFindModel", "deploys"),
        ("ModelPackageGroup", "batchFindModel", "reads"),
        ("batchschedule", "batchFindModel", "BatchSchedule"),
        ("batchupload", "batchFindModel", "BatchUploadRule"),
        ("batchDriftAlarm", "pipeline", "retrain"),
    }
    assert expected <= edges, expected - edges
    assert '"schedule cron(0 2 * * ? *)"' in text
    assert 'subgraph batch["batch stack: Step Functions batch run"]' in text
    assert text.count("subgraph batch[") == 1
    assert "prdEndpoint" not in text and "devEndpoint" not in text and "actionPromoteProject" not in text


def test_an_s3_config_draws_its_template_bucket_in_place_of_service_catalog() -> None:
    text = _drawn("s3-templates")
    edges = _edges(text)
    assert 'subgraph studio["studio stack: S3 project templates"]' in text
    assert '"S3 project template templates/mlops-churn-pipeline.yaml<br/>read by Studio (CORS)"' in text
    assert {("user", "TemplateBucket", "create project"), ("TemplateBucket", "pipeline", "provisions")} <= edges
    assert "studios3" not in text and "PipelineProduct" not in text
