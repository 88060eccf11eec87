"""The ``mlops-templates`` command: clear errors without tracebacks, build/diff/params."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_templates import cli

from .conftest import EXAMPLE_CONFIG, REPO


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).parent / "mlops-templates"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_validate_example() -> None:
    proc = run("-c", str(EXAMPLE_CONFIG), "validate")
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


def test_invalid_config_is_one_clear_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "mlops.yaml"
    bad.write_text("endpoints:\n  prd:\n    instance_count: 2\n    autoscaling: {min_capacity: 1}\n")
    proc = run("-c", str(bad), "build", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {bad}: invalid configuration")
    assert "endpoints.prd: a canary deployment needs instance_count >= 3" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for an invalid config"


def test_missing_config_file(tmp_path: Path) -> None:
    proc = run("-c", str(tmp_path / "nope.yaml"), "validate")
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_stack_is_rejected_by_the_parser() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["stack-name", "deploy-prod"])
    assert info.value.code == 2


def test_stack_name_and_project_name_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "stack-name", "deploy-prd"]) == 0
    assert capsys.readouterr().out.strip() == "mlops-abalone-deploy-prd"
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "--project-name", "churn", "stack-name", "pipeline"]) == 0
    assert capsys.readouterr().out.strip() == "mlops-churn-pipeline"


def test_build_then_diff_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "templates"
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "build", "--out", str(out), "--stack", "deploy-dev"]) == 0
    assert (out / "deploy-dev.yaml").is_file()
    capsys.readouterr()
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "diff", "--out", str(out), "--stack", "deploy-dev"]) == 0
    assert capsys.readouterr().out == ""
    (out / "deploy-dev.yaml").write_text("# edited by hand\n")
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "diff", "--out", str(out), "--stack", "deploy-dev"]) == 1
    assert "+++" in capsys.readouterr().out


def test_params_from_config_and_unknown_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "mlops.yaml"
    cfg.write_text(
        "parameters:\n  deploy-dev:\n    ImageUri: 111122223333.dkr.ecr.us-east-1.amazonaws.com/x:1\n"
    )
    assert cli.main(["-c", str(cfg), "params", "deploy-dev"]) == 0
    assert capsys.readouterr().out.strip() == "ImageUri=111122223333.dkr.ecr.us-east-1.amazonaws.com/x:1"
    cfg.write_text("parameters:\n  deploy-dev:\n    ImageUrl: x\n")
    assert cli.main(["-c", str(cfg), "params", "deploy-dev"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) ImageUrl" in err and "ImageUri" in err


def test_get_prints_validated_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "get", "project.name"]) == 0
    assert capsys.readouterr().out == "abalone\n"
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "get", "endpoints.prd.autoscaling.max_capacity"]) == 0
    assert capsys.readouterr().out == "6\n"
    assert cli.main(["-c", str(EXAMPLE_CONFIG), "get", "endpoints.prd.nope"]) == 2
    assert "no config setting 'endpoints.prd.nope'" in capsys.readouterr().err
