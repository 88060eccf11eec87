"""How the container fails: where SageMaker reads the reason, with which exit status, and
what the message names. Plus the Dockerfile lint and ``make local`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_container_lifecycle import ROW, load_local

REPO = Path(__file__).resolve().parent.parent
local = load_local()

pytestmark = pytest.mark.slow


def _training_root(tmp_path: Path, train_csv: str, hyperparameters: dict[str, str]) -> Path:
    channel = tmp_path / "input/data/train"
    channel.mkdir(parents=True)
    (channel / "train.csv").write_text(train_csv)
    (tmp_path / "input/config").mkdir(parents=True)
    (tmp_path / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    return tmp_path


def test_bad_hyperparameter_fails_training_with_a_reason(tmp_path: Path) -> None:
    root = _training_root(tmp_path, f"{ROW},9\n" * 20, {"max_depth": "deep"})
    step = local.run_step("train", root, check=False)
    assert step.returncode == 1
    reason = (root / "output/failure").read_text()
    assert reason == "training failed: hyperparameter 'max_depth': 'deep' is not an integer in [0, 32]"
    assert reason in step.output
    assert not (root / "model/model.ubj").exists()


def test_bad_training_row_fails_training_naming_line_and_column(tmp_path: Path) -> None:
    rows = f"{ROW},9\n" * 5 + "M,0.455,0.365,0.095,heavy,0.2245,0.101,0.15,9\n"
    root = _training_root(tmp_path, rows, {"num_round": "5"})
    step = local.run_step("train", root, check=False)
    assert step.returncode == 1
    assert (root / "output/failure").read_text() == (
        "training failed: channel 'train', train.csv, line 6, column 'whole_weight': "
        "'heavy' is not a number")


def test_missing_channel_fails_training(tmp_path: Path) -> None:
    step = local.run_step("train", tmp_path, check=False)
    assert step.returncode == 1
    assert "channel 'train' has no data" in (tmp_path / "output/failure").read_text()


def test_preprocess_validation_names_row_and_column(tmp_path: Path) -> None:
    raw = tmp_path / "processing/input/raw"
    raw.mkdir(parents=True)
    lines = local.SAMPLE_DATA.read_text().splitlines()
    lines[17] = lines[17].replace(",0.", ",zero.", 1)  # line 18 of the file, 'length'
    (raw / "abalone.csv").write_text("\n".join(lines) + "\n")
    step = local.run_step("preprocess", tmp_path, check=False)
    assert step.returncode == 1
    message = (tmp_path / "output/message").read_text()
    assert message.startswith("preprocess failed: abalone.csv, line 18, column 'length': ")
    assert "'zero." in message and "is not a number" in message
    assert not (tmp_path / "processing/output/train").exists()


def test_preprocess_rejects_an_unknown_sex_code(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text(local.SAMPLE_DATA.read_text().replace("\nI,", "\nU,", 1))
    step = local.run_step("preprocess", tmp_path, "--input", str(raw), check=False)
    assert step.returncode == 1
    assert "column 'sex': unknown value 'U'; expected one of F, I, M" in step.output


def test_server_without_a_model_exits_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    server = local.Server(tmp_path, workers=1)
    try:
        with pytest.raises(RuntimeError, match=r"exited with status 1"):
            server.wait_ready(timeout=30)
    finally:
        server.stop()
    assert "no model in" in server.log() and "model.ubj" in server.log()


def test_server_with_a_broken_model_exits_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model/model.ubj").write_bytes(b"{not a model")
    (tmp_path / "model/preprocessing.json").write_text("{}")
    server = local.Server(tmp_path, workers=1)
    try:
        with pytest.raises(RuntimeError, match=r"exited with status 1"):
            server.wait_ready(timeout=30)
    finally:
        server.stop()
    assert "cannot load the model" in server.log()


def test_dispatcher_usage() -> None:
    env = local.container_env(Path("/nonexistent"))
    run = [sys.executable, "-m", "mlcontainer"]
    assert subprocess.run([*run, "--version"], env=env, capture_output=True, text=True,
                          check=True).stdout.startswith("mlcontainer ")
    unknown = subprocess.run([*run, "fit"], env=env, capture_output=True, text=True, check=False)
    assert unknown.returncode == 2 and "unknown command 'fit'" in unknown.stderr
    for command in ("preprocess", "train", "evaluate", "serve"):
        shim = REPO / "container/bin" / command
        assert shim.stat().st_mode & 0o111, f"{shim} is not executable"
        assert f"-m mlcontainer {command}" in shim.read_text()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    result = subprocess.run([hadolint, str(REPO / "container/Dockerfile")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout


def test_image_requirements_are_pinned_and_hashed() -> None:
    for variant in ("cpu", "cuda"):
        text = (REPO / f"container/requirements/{variant}.txt").read_text()
        text += (REPO / "container/requirements/common.txt").read_text()
        requirements = [line for line in text.splitlines()
                        if line and not line.startswith(("#", " ", "-r"))]
        assert requirements, variant
        for line in requirements:
            assert "==" in line and line.endswith("\\"), f"{variant}: {line} is not pinned and hashed"


def test_make_local_end_to_end() -> None:
    script = REPO / "scripts/local.py"
    result = subprocess.run([sys.executable, str(script), "-H", "num_round=15"],
                            capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("preprocess", "train", "evaluate", "gate", "serve", "smoke"):
        assert f"  {step} " in out
    assert "rmse " in out and ": PASS" in out and " rings" in out


def test_make_local_stops_at_a_failed_gate(tmp_path: Path) -> None:
    config = tmp_path / "mlops.yaml"
    config.write_text("training:\n  gate:\n    metric: r2\n    operator: '>'\n    threshold: 0.99\n")
    result = subprocess.run([sys.executable, str(REPO / "scripts/local.py"), "-c", str(config),
                             "-H", "num_round=5", "--workdir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert result.returncode == 1
    assert "r2 " in result.stdout and "> 0.99: FAIL" in result.stdout
    assert "would not register" in result.stdout
    assert not (tmp_path / "run/hosting/model").exists()
