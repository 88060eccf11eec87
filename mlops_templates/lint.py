"""Policy as code over rendered templates: cfn-lint (library API) and checkov.

cfn-lint runs with informational and experimental rules on, so "zero findings" means
zero of every level. checkov runs from its own tool environment (it pins an older
boto3 than this library needs); a failed check is accepted only when the resource's
Metadata suppresses it with a written reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.api import lint as cfn_lint
from cfnlint.config import ManualArgs

from mlops_templates.errors import LintError

TEMPLATE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Finding:
    """One lint or policy finding, printable as ``file:line: [tool RULE] message``."""

    path: str
    line: int
    tool: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.tool} {self.rule}] {self.message}"


def cfn_lint_text(
    text: str,
    path: str = "<template>",
    regions: list[str] | None = None,
    configure_rules: dict[str, dict[str, Any]] | None = None,
) -> list[Finding]:
    """cfn-lint one template (errors, warnings, informational and experimental rules).

    ``configure_rules`` passes rule options (cfn-lint's ``--configure-rule``), e.g. the
    resources a generated template may leave without Metadata.
    """
    matches = cfn_lint(
        text,
        config=ManualArgs(
            include_checks=["I"],
            include_experimental=True,
            regions=regions or ["us-east-1"],
            configure_rules=configure_rules or {},
        ),
    )
    return sorted(
        Finding(path, m.linenumber, "cfn-lint", m.rule.id, m.message) for m in matches
    )


def cfn_lint_files(paths: list[Path], regions: list[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        findings += cfn_lint_text(path.read_text(encoding="utf-8"), str(path), regions)
    return findings


def checkov_executable() -> str | None:
    """checkov from ``$CHECKOV``, the project's tool venv, or ``PATH``."""
    candidates = [os.environ.get("CHECKOV"), ".venv-checkov/bin/checkov"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())
    return shutil.which("checkov")


def checkov_files(paths: list[Path]) -> list[Finding]:
    """Run checkov (CloudFormation framework) over the given templates."""
    exe = checkov_executable()
    if exe is None:
        raise LintError(
            "checkov not found: run `make install` (it creates .venv-checkov) "
            "or set CHECKOV to its path"
        )
    if not paths:
        return []
    cmd = [exe, "--quiet", "--compact", "--framework", "cloudformation", "-o", "json",
           "--skip-download"]
    for path in paths:
        cmd += ["-f", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise LintError(f"checkov failed to run (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    out = proc.stdout.strip()
    if not out:
        return []
    reports = json.loads(out)
    if isinstance(reports, dict):
        reports = [reports]
    findings = []
    for report in reports:
        results = report.get("results", {}) if isinstance(report, dict) else {}
        for check in results.get("failed_checks", []):
            line = (check.get("file_line_range") or [0])[0]
            findings.append(
                Finding(
                    check.get("file_path", "?").lstrip("/"),
                    line,
                    "checkov",
                    check["check_id"],
                    f"{check['check_name']} ({check['resource']})",
                )
            )
    return sorted(findings)


def template_files(directory: str | Path) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if p.suffix in TEMPLATE_SUFFIXES)


def lint_directory(
    directory: str | Path, regions: list[str] | None = None, checkov: bool = True
) -> list[Finding]:
    """All findings for the templates in ``directory`` (empty list = clean)."""
    paths = template_files(directory)
    findings = cfn_lint_files(paths, regions)
    if checkov:
        findings += checkov_files(paths)
    return findings
