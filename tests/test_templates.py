"""Every rendered template: equal to the committed files, deterministic, and clean under
cfn-lint (every level), checkov and the ASL validator.

``templates/`` is rendered from ``mlops.yaml``; ``tests/golden/<variant>/`` from
``tests/configs/<variant>.yaml``, with the CI workflow of a GitHub or GitLab orchestrator
under ``ci/`` (tests/test_ci.py lints those). After an intended change, ``make templates``
rewrites both and the diff is reviewed.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlops_templates import config, lint, render, stacks

from .conftest import EXAMPLE_CONFIG, REPO, TEMPLATES

CONFIGS = sorted((REPO / "tests" / "configs").glob("*.yaml"))
GOLDEN = REPO / "tests" / "golden"
ASL_VALIDATOR = REPO / ".venv" / "node" / "node_modules" / ".bin" / "asl-validator"

#: (config file, directory its rendering is committed in)
CASES = [(EXAMPLE_CONFIG, TEMPLATES)] + [(path, GOLDEN / path.stem) for path in CONFIGS]
CASE_IDS = ["mlops.yaml"] + [path.stem for path in CONFIGS]


def _rendered(config_path: Path) -> dict[str, str]:
    return render.render(config.load(config_path))


@pytest.fixture(scope="module")
def rendered() -> dict[Path, dict[str, str]]:
    return {path: _rendered(path) for path, _ in CASES}


@pytest.mark.parametrize(("config_path", "directory"), CASES, ids=CASE_IDS)
def test_committed_files_equal_a_fresh_render(
    config_path: Path, directory: Path, rendered: dict[Path, dict[str, str]]
) -> None:
    files = rendered[config_path]
    committed = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    assert committed == set(files), f"{directory}: run `make templates` (file set differs)"
    for name, text in files.items():
        old = (directory / name).read_text(encoding="utf-8")
        if old != text:
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(True), text.splitlines(True), f"{directory}/{name}", "rendered"
                )
            )
            pytest.fail(f"{directory}/{name} is stale: run `make templates`\n{diff[:4000]}")


def test_every_enabled_stack_is_rendered(rendered: dict[Path, dict[str, str]]) -> None:
    for path, files in rendered.items():
        cfg = config.load(path)
        expected = {f"{name}.yaml" for name in stacks.STACKS if stacks.enabled(name, cfg)}
        assert {name for name in files if name.endswith(".yaml")} == expected
        # The CI workflow of a GitHub or GitLab orchestrator, and nothing under ci/ otherwise.
        workflows = {name for name in files if name.startswith("ci/")}
        assert bool(workflows) == (cfg.pipeline.orchestrator != "codepipeline"), (path, workflows)


@pytest.mark.parametrize("config_path", [path for path, _ in CASES], ids=CASE_IDS)
def test_rendering_is_deterministic(config_path: Path, rendered: dict[Path, dict[str, str]]) -> None:
    assert _rendered(config_path) == rendered[config_path]


def _template_params() -> list[tuple[Path, str]]:
    return [
        (directory, f"{name}.yaml")
        for path, directory in CASES
        for name in sorted(stacks.STACKS)
        if stacks.enabled(name, config.load(path))
    ]


@pytest.mark.parametrize(
    ("directory", "name"),
    _template_params(),
    ids=[f"{d.name}/{n}" for d, n in _template_params()],
)
def test_cfn_lint_has_no_findings(directory: Path, name: str) -> None:
    path = directory / name
    findings = lint.cfn_lint_text(path.read_text(encoding="utf-8"), str(path), ["us-east-1", "eu-west-1"])
    assert findings == [], "\n".join(map(str, findings))


def test_checkov_has_no_unsuppressed_failures(tmp_path: Path) -> None:
    """One checkov run over every committed template (it is the slowest check)."""
    if lint.checkov_executable() is None:
        pytest.fail("checkov is missing: `make install` creates .venv-checkov")
    paths = sorted(TEMPLATES.glob("*.yaml")) + sorted(GOLDEN.glob("*/*.yaml"))
    assert paths
    findings = lint.checkov_files(paths)
    assert findings == [], "\n".join(map(str, findings))


def test_suppressions_have_reasons() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    for path in sorted(TEMPLATES.glob("*.yaml")) + sorted(GOLDEN.glob("*/*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
        for logical_id, resource in doc.get("Resources", {}).items():
            skips = ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
            for skip in skips:
                assert len(skip.get("comment", "").split()) >= 4, f"{path}:{logical_id}: {skip}"


@pytest.mark.parametrize("directory", [d for _, d in CASES], ids=CASE_IDS)
def test_asl_definitions_are_valid(directory: Path) -> None:
    definitions = sorted(directory.glob("*.asl.json"))
    assert definitions, f"no ASL definition rendered in {directory}"
    exe = shutil.which(str(ASL_VALIDATOR)) or shutil.which("asl-validator")
    if exe is None:
        pytest.fail("asl-validator is missing: `make install` installs it")
    for path in definitions:
        json.loads(path.read_text(encoding="utf-8"))
        proc = subprocess.run(
            [exe, "--json-path", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, f"{path}: {proc.stdout}{proc.stderr}"


@pytest.mark.parametrize(("region", "account", "expected"), [
    (True, True, "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:topic"),
    (False, True, "arn:${AWS::Partition}:sns::${AWS::AccountId}:topic"),
    (True, False, "arn:${AWS::Partition}:sns:${AWS::Region}::topic"),
    ("us-east-1", "aws", "arn:${AWS::Partition}:sns:us-east-1:aws:topic"),
])
def test_arn_parts(region: bool | str, account: bool | str, expected: str) -> None:
    """The stack's own region/account, none (global services, S3), or a literal."""
    from mlops_templates.stacks.common import arn

    assert arn("sns", "topic", region=region, account=account).to_dict() == {"Fn::Sub": expected}


@pytest.mark.parametrize("bad", [None, "", 0, 1])
def test_arn_refuses_a_part_that_is_neither_a_flag_nor_a_name(bad: object) -> None:
    """None or "" would silently mean "no region"; a scope must say False for that."""
    from mlops_templates.stacks.common import arn

    with pytest.raises(TypeError, match="region and account"):
        arn("sns", "topic", region=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="region and account"):
        arn("sns", "topic", account=bad)  # type: ignore[arg-type]
