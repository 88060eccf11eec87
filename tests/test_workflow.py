"""The workflow stack: template properties, the ASL definition's rules and its variants."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import asl, config, lint, naming, regions, render
from mlops_templates.stacks import workflow

from .conftest import REPO
from .template_checks import assert_parameters_constrained_and_used
from .variants import names, variant_config

ASL_VALIDATOR = REPO / ".venv" / "node" / "node_modules" / ".bin" / "asl-validator"

#: Variants that change the definition: built-in XGBoost + spot + VPC (a golden config),
#: a GPU instance without a volume key, no isolation and an r2 gate, and Model Monitor as
#: the monitoring engine (its baseline job beside training).
VARIANTS = ["example", "api-key-xgboost", "gpu-r2-open", "model-monitor"]


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> tuple[str, config.Config]:
    return request.param, variant_config(request.param)


@pytest.fixture(scope="module")
def cfgs() -> dict[str, config.Config]:
    return {name: variant_config(name) for name in VARIANTS}


def _template(cfg: config.Config) -> dict[str, Any]:
    return workflow.build(cfg).to_dict()


def _machine(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"][workflow.STATE_MACHINE]["Properties"]


def _tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in asl.all_states(definition) if state["Type"] == "Task"}


def _model_monitor(cfg: config.Config) -> bool:
    return cfg.monitoring.engine == "model_monitor"


# ------------------------------------------------------------------- the template


# tests/test_templates.py lints the renderings of the committed configs.
@pytest.mark.parametrize("name", names(golden=False)[1:])
def test_every_variant_lints_clean(name: str) -> None:
    cfg = variant_config(name)
    text = render.to_yaml(workflow.build(cfg))
    findings = lint.cfn_lint_text(
        text, f"{name}/workflow.yaml", sorted({"us-east-1", cfg.project.region})
    )
    assert findings == [], "\n".join(map(str, findings))


def test_every_variant_passes_the_asl_validator(
    cfgs: dict[str, config.Config], tmp_path: Path
) -> None:
    if not ASL_VALIDATOR.exists():
        pytest.fail("asl-validator is missing: `make install` installs it")
    args = []
    for name, cfg in cfgs.items():
        path = tmp_path / f"{name}.asl.json"
        path.write_text(workflow.artifacts(cfg)["workflow.asl.json"], encoding="utf-8")
        args += ["--json-path", str(path)]
    proc = subprocess.run([str(ASL_VALIDATOR), *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("is valid") == len(cfgs), proc.stdout


def test_parameters_are_constrained_and_used(variant: tuple[str, config.Config]) -> None:
    template = _template(variant[1])
    parameters = template["Parameters"]
    assert set(parameters) == {
        "KmsKeyArn",
        "ArtifactBucket",
        "SageMakerRoleArn",
        "StatesRoleArn",
        "NotificationTopicArn",
    }
    assert_parameters_constrained_and_used(template)
    for name, parameter in parameters.items():
        assert parameter.get("AllowedPattern") and parameter.get("MaxLength"), name


# The longest value each Parameter must take (AWS limits: S3 bucket names 3-63 characters;
# IAM role paths up to 512 characters and names up to 64; SNS topic names up to 256; a
# multi-Region KMS key id is "mrk-" and 32 hex digits), in the longest partition and region.
LONGEST = {
    "KmsKeyArn": "arn:aws-iso-b:kms:us-isob-east-1:111122223333:key/mrk-" + "0" * 32,
    "ArtifactBucket": "b" * 63,
    "SageMakerRoleArn": "arn:aws-iso-b:iam::111122223333:role/" + "p/" * 255 + "/" + "r" * 64,
    "StatesRoleArn": "arn:aws-iso-b:iam::111122223333:role/" + "p/" * 255 + "/" + "r" * 64,
    "NotificationTopicArn": "arn:aws-iso-b:sns:us-isob-east-1:111122223333:" + "t" * 256,
}


def test_parameters_are_bounded_and_take_the_longest_legal_value(example_config: config.Config) -> None:
    parameters = _template(example_config)["Parameters"]
    assert {name: p["MaxLength"] for name, p in parameters.items()} == {
        "KmsKeyArn": 256, "ArtifactBucket": 63, "SageMakerRoleArn": 2048, "StatesRoleArn": 2048,
        "NotificationTopicArn": 1024,
    }
    for name, value in LONGEST.items():
        assert re.fullmatch(parameters[name]["AllowedPattern"], value), name
        assert len(value) <= parameters[name]["MaxLength"], name


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        (
            "KmsKeyArn",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:alias/project",
        ),
        ("ArtifactBucket", "mlops-abalone-111122223333-us-east-1-art", "s3://bucket"),
        (
            "SageMakerRoleArn",
            "arn:aws:iam::111122223333:role/service-role/mlops-abalone-sagemaker",
            "arn:aws:iam::111122223333:user/alice",
        ),
        (
            "NotificationTopicArn",
            "arn:aws-us-gov:sns:us-gov-west-1:111122223333:mlops-abalone",
            "arn:aws:sqs:us-east-1:111122223333:queue",
        ),
    ],
)
def test_parameter_patterns(
    example_config: config.Config, parameter: str, good: str, bad: str
) -> None:
    pattern = _template(example_config)["Parameters"][parameter]["AllowedPattern"]
    assert re.fullmatch(pattern, good)
    assert not re.fullmatch(pattern, bad)


def test_state_machine_is_standard_encrypted_logged_and_traced(
    example_config: config.Config,
) -> None:
    template = _template(example_config)
    machine = _machine(template)
    assert machine["StateMachineName"] == "mlops-abalone-training"
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["RoleArn"] == {"Ref": "StatesRoleArn"}
    assert machine["EncryptionConfiguration"] == {
        "Type": "CUSTOMER_MANAGED_KMS_KEY",
        "KmsKeyId": {"Ref": "KmsKeyArn"},
        "KmsDataKeyReusePeriodSeconds": 300,
    }
    assert machine["TracingConfiguration"] == {"Enabled": True}
    logging = machine["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": [workflow.LOG_GROUP, "Arn"]
    }
    group = template["Resources"][workflow.LOG_GROUP]["Properties"]
    assert group["KmsKeyId"] == {"Ref": "KmsKeyArn"}
    assert group["RetentionInDays"] == example_config.pipeline.log_retention_days
    # Unique per stack instance: a re-created workflow stack never meets a kept log group.
    assert group["LogGroupName"]["Fn::Sub"][0] == "/aws/vendedlogs/states/mlops-abalone-training-${Suffix}"
    assert template["Resources"][workflow.LOG_GROUP]["DeletionPolicy"] == "RetainExceptOnCreate"


def test_model_package_group_is_created_and_kept(example_config: config.Config) -> None:
    resource = _template(example_config)["Resources"][workflow.MODEL_PACKAGE_GROUP]
    assert resource["Type"] == "AWS::SageMaker::ModelPackageGroup"
    assert resource["Properties"]["ModelPackageGroupName"] == "mlops-abalone-models"
    # Kept when the stack is deleted, removed when its own first create fails.
    assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_substitutions_match_the_placeholders(variant: tuple[str, config.Config]) -> None:
    cfg = variant[1]
    machine = _machine(_template(cfg))
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == asl.placeholders(machine["Definition"])
    assert machine["Definition"] == workflow.definition(cfg)
    images = {
        "ModelMonitor": {
            "Fn::FindInMap": [regions.MAPPING_NAME, {"Ref": "AWS::Region"}, "ModelMonitor"]
        }
    }
    # Model Monitor's analyzer runs only with that engine (the builtin one needs no image).
    assert substitutions.get("ModelMonitorImage") == (
        images["ModelMonitor"] if _model_monitor(cfg) else None
    )
    assert ("XGBoostImage" in substitutions) == (cfg.training.image == "xgboost")


def test_image_mapping_comes_from_the_table(cfgs: dict[str, config.Config]) -> None:
    monitor = cfgs["model-monitor"]
    row = _template(monitor)["Mappings"][regions.MAPPING_NAME][monitor.project.region]
    assert row == {"ModelMonitor": regions.image_uri("model-monitor", monitor.project.region)}
    cfg = cfgs["api-key-xgboost"]
    mapping = _template(cfg)["Mappings"][regions.MAPPING_NAME]
    row = mapping[cfg.project.region]
    assert "ModelMonitor" not in row
    assert row["XGBoost"] == regions.image_uri(
        f"xgboost-{cfg.training.xgboost_version}", cfg.project.region
    )
    assert set(mapping) == set(regions.table())


def test_artifact_is_the_definition_with_placeholders(example_config: config.Config) -> None:
    files = workflow.artifacts(example_config)
    assert list(files) == ["workflow.asl.json"]
    text = files["workflow.asl.json"]
    assert text.endswith("}\n")
    assert json.loads(text) == workflow.definition(example_config)
    assert '"${ArtifactBucket}"' in text and "${NotificationTopicArn}" in text
    assert render.render(example_config, ["workflow"])["workflow.asl.json"] == text


# ---------------------------------------------------------------- the definition


def test_definition_is_sound(variant: tuple[str, config.Config]) -> None:
    definition = workflow.definition(variant[1])
    assert asl.problems(definition) == []
    assert definition["StartAt"] == workflow.VALIDATE_INPUT


def test_every_task_catches_into_failure_and_is_retried(variant: tuple[str, config.Config]) -> None:
    tasks = _tasks(workflow.definition(variant[1]))
    # Preprocess, Train, [Baseline,] Evaluate, ReadEvaluation, CreateModel, RegisterModel and
    # the three notices (registered, gate failed, failure).
    assert len(tasks) == (10 if _model_monitor(variant[1]) else 9)
    for name, task in tasks.items():
        assert task["Catch"], name
        for catcher in task["Catch"]:
            assert catcher["ErrorEquals"] == ["States.ALL"], name
            assert catcher["ResultPath"] in (workflow.FAILURE_PATH, "$.NotificationFailure"), name
        if task["Resource"] == "arn:aws:states:::sns:publish":
            # A notice goes on where the run was going: it never turns an outcome around.
            assert [c["Next"] for c in task["Catch"]] == [task["Next"]], name
        retried = {error for retry in task["Retry"] for error in retry["ErrorEquals"]}
        assert "States.ALL" not in retried, f"{name}: only transient errors are retried"
        if task["Resource"].startswith("arn:aws:states:::sagemaker:"):
            assert {"ThrottlingException", "SageMaker.AmazonSageMakerException"} <= retried, name
        for retry in task["Retry"]:
            assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 2, name


@pytest.mark.parametrize("name", ["example", "model-monitor", "tuning", "tuning-model-monitor"])
def test_failures_are_named_then_notified_then_failed(name: str) -> None:
    cfg = variant_config(name)
    tuned = cfg.training.tuning.enabled
    training = (workflow.TUNE, workflow.READ_BEST_TRAINING_JOB) if tuned else (workflow.TRAIN,)
    nested = (*training, workflow.BASELINE) if _model_monitor(cfg) else ()
    definition = workflow.definition(cfg)
    states = dict(asl.all_states(definition))
    for step, (state_name, error) in workflow.STEP_ERRORS.items():
        if step not in states:  # TrainAndBaseline and Baseline: Model Monitor only
            other_training = {workflow.TRAIN, workflow.TUNE, workflow.READ_BEST_TRAINING_JOB} - set(training)
            assert step in other_training or (
                not _model_monitor(cfg) and step in (workflow.BASELINE, workflow.TRAIN_AND_BASELINE)
            )
            assert state_name not in states
            continue
        target = states[state_name]
        catchers = states[step]["Catch"]
        assert catchers[-1]["Next"] == state_name
        if step in nested:  # inside a branch: fail it, named
            assert target == {
                "Type": "Fail",
                "Error": error,
                "CausePath": "States.Format('{}: {}', $.Failure.Error, $.Failure.Cause)",
            }
        else:
            assert target["Parameters"]["Error"] == error
            assert target["Next"] == workflow.NOTIFY_FAILURE
    if _model_monitor(cfg):
        parallel = states[workflow.TRAIN_AND_BASELINE]
        training_errors = (
            ["TuningFailed", "BestTrainingJobUnreadable"] if tuned else ["TrainingFailed"]
        )
        assert parallel["Catch"][0] == {
            "ErrorEquals": [*training_errors, "BaselineFailed"],
            "ResultPath": "$.Failure",
            "Next": "NotifyFailure",
        }
    notify = states[workflow.NOTIFY_FAILURE]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"] == "${NotificationTopicArn}"
    # One readable message (notifications.training_failed, or the config's), never the raw state.
    message = notify["Parameters"]["Message.$"]
    assert message.startswith("States.Format(") and "$.Failure.Error" in message
    assert "$$.Execution.Name" in message  # an input refused before Initialize has no RunId
    assert notify["ResultPath"] is None and notify["Next"] == workflow.FAILED
    assert states[workflow.FAILED] == {
        "Type": "Fail",
        "ErrorPath": "$.Failure.Error",
        "CausePath": "$.Failure.Cause",
    }
    # Every path into NotifyFailure carries one of the workflow's own error names.
    into_notify = [n for n, s in states.items() if workflow.NOTIFY_FAILURE in asl.transitions(s)]
    assert sorted(into_notify) == sorted(
        [workflow.INVALID_INPUT, workflow.METRIC_MISSING]
        + ([workflow.TRAIN_AND_BASELINE] if _model_monitor(cfg) else [])
        + [
            state_name
            for step, (state_name, _) in workflow.STEP_ERRORS.items()
            if step in states and step not in nested
        ]
    )
    # The gate's rejection has its own notice: its cause is the gate_failed message.
    assert states[workflow.GATE_FAILED]["Next"] == workflow.NOTIFY_GATE_FAILED
    gate_notice = states[workflow.NOTIFY_GATE_FAILED]
    assert gate_notice["Parameters"]["Message.$"] == "$.Failure.Cause"
    assert gate_notice["Next"] == workflow.FAILED


def test_jobs_are_encrypted_and_named_after_the_run(variant: tuple[str, config.Config]) -> None:
    cfg = variant[1]
    definition = workflow.definition(cfg)
    tasks = _tasks(definition)
    jobs = {n: t for n, t in tasks.items() if t["Resource"].endswith(".sync")}
    expected = {"Preprocess", "Train", "Evaluate"} | ({"Baseline"} if _model_monitor(cfg) else set())
    assert set(jobs) == expected
    for name, job in jobs.items():
        params = job["Parameters"]
        output = params.get("ProcessingOutputConfig") or params["OutputDataConfig"]
        assert output["KmsKeyId"] == "${KmsKeyArn}", name
        cluster = params.get("ResourceConfig") or params["ProcessingResources"]["ClusterConfig"]
        family = cluster["InstanceType"].split(".")[1]
        has_key = cluster.get("VolumeKmsKeyId") == "${KmsKeyArn}"
        assert has_key == (family not in workflow.LOCAL_STORAGE_FAMILIES), name
        job_name = params.get("ProcessingJobName.$") or params["TrainingJobName.$"]
        assert job_name == workflow.job_name(cfg, JOB_STEPS[name]), name
        assert {"Key": "mlops:run-id", "Value.$": "$.RunId"} in params["Tags"]
    model = tasks[workflow.CREATE_MODEL]["Parameters"]["ModelName.$"]
    assert model == workflow.job_name(cfg, workflow.STEP_MODEL)


#: Task -> the step its job (or model) is named after.
JOB_STEPS = {
    "Preprocess": workflow.STEP_PREPROCESS,
    "Train": workflow.STEP_TRAIN,
    "Baseline": workflow.STEP_BASELINE,
    "Evaluate": workflow.STEP_EVALUATE,
    "CreateModel": workflow.STEP_MODEL,
}


def test_job_names_are_new_per_attempt_and_redrive(variant: tuple[str, config.Config]) -> None:
    """Made at the Task from the run id, the execution's attempt id and its redrive count."""
    cfg = variant[1]
    base = naming.base(cfg)
    assert set(JOB_STEPS.values()) == set(workflow.STEPS)
    for step in workflow.STEPS:
        assert workflow.job_name(cfg, step) == (
            f"States.Format('{base}-{{}}-{step}-{{}}-{{}}', "
            "$.RunId, $.Attempt, $$.Execution.RedriveCount)"
        )
        assert len(step) + 1 <= naming.JOB_SUFFIX_MAX_LENGTH, step
        longest = naming.job_name_format(cfg, step).format(
            "r" * naming.RUN_ID_MAX_LENGTH,
            "a" * naming.ATTEMPT_ID_LENGTH,
            "9" * naming.REDRIVE_COUNT_MAX_DIGITS,
        )
        assert len(longest) <= naming.job_name_max_length(cfg) <= naming.LIMITS["sagemaker"]
    definition = workflow.definition(cfg)
    attempt = definition["States"][workflow.NEW_ATTEMPT]
    # The first group of a UUID: always ATTEMPT_ID_LENGTH (8) lower-case hex digits.
    assert attempt["Parameters"] == {
        "Id.$": "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"
    }
    assert naming.ATTEMPT_ID_LENGTH == len("1624a1d1")
    assert attempt["ResultPath"] == "$.NewAttempt" and attempt["Next"] == workflow.INITIALIZE
    initialize = definition["States"][workflow.INITIALIZE]["Parameters"]
    assert initialize["Attempt.$"] == "$.NewAttempt.Id"
    assert "JobNames" not in initialize  # a name made before its Task would miss redrives


def test_registration_is_idempotent_per_attempt(example_config: config.Config) -> None:
    tasks = _tasks(workflow.definition(example_config))
    params = tasks[workflow.REGISTER_MODEL]["Parameters"]
    # Not the redrive count: a redrive re-runs RegisterModel with the same model.
    assert params["ClientToken.$"] == "States.Format('{}-{}', $.RunId, $.Attempt)"
    assert naming.RUN_ID_MAX_LENGTH + 1 + naming.ATTEMPT_ID_LENGTH <= 36  # the API's limit
    assert params["CustomerMetadataProperties"] == {
        "RunId.$": "$.RunId",
        "Attempt.$": "$.Attempt",
        "ModelName.$": "$.Model.ModelName",
        "TrainingImage.$": "$.Training.TrainingImage",
    }
    selector = tasks[workflow.CREATE_MODEL]["ResultSelector"]
    assert selector["ModelName.$"] == "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)"


def test_run_id_pattern() -> None:
    pattern = re.compile(workflow.RUN_ID_PATTERN)
    longest = naming.RUN_ID_MAX_LENGTH
    for good in ("a", "1624a1d1-3699", "manual-run-1", "x" * longest):
        assert pattern.fullmatch(good), good
    for bad in ("", "-a", "a-", "Upper", "a_b", "a.b", "x" * (longest + 1), "2024-01-01T10:00"):
        assert not pattern.fullmatch(bad), bad


def test_job_settings_follow_the_config(variant: tuple[str, config.Config]) -> None:
    cfg = variant[1]
    training = cfg.training
    tasks = _tasks(workflow.definition(cfg))
    train = tasks["Train"]["Parameters"]
    assert train["ResourceConfig"]["InstanceType"] == training.instance_type
    assert train["ResourceConfig"]["InstanceCount"] == training.instance_count
    assert train["StoppingCondition"]["MaxRuntimeInSeconds"] == training.max_runtime_seconds
    assert train["EnableNetworkIsolation"] is training.network_isolation
    assert train["HyperParameters.$"] == "$.Hyperparameters"
    assert train["OutputDataConfig"]["S3OutputPath.$"] == "$.Paths.Model"
    assert ("EnableManagedSpotTraining" in train) == training.use_spot
    if training.use_spot:
        assert train["EnableManagedSpotTraining"] is True
        assert train["StoppingCondition"]["MaxWaitTimeInSeconds"] == training.max_wait_seconds
        assert train["CheckpointConfig"]["S3Uri.$"] == "$.Paths.Checkpoints"
    vpc = {"SecurityGroupIds": cfg.network.security_group_ids, "Subnets": cfg.network.subnet_ids}
    model = tasks["CreateModel"]["Parameters"]
    assert model["EnableNetworkIsolation"] is training.network_isolation
    processing = ("Preprocess", "Baseline", "Evaluate") if _model_monitor(cfg) else ("Preprocess", "Evaluate")
    for params in (
        train,
        model,
        *(tasks[n]["Parameters"]["NetworkConfig"] for n in processing),
    ):
        assert (params.get("VpcConfig") == vpc) == bool(cfg.network.subnet_ids)
        assert ("VpcConfig" in params) == bool(cfg.network.subnet_ids)
    for name in processing:
        network = tasks[name]["Parameters"]["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is training.network_isolation
        assert network["EnableInterContainerTrafficEncryption"] is True
    register = tasks["RegisterModel"]["Parameters"]
    assert register["ModelPackageGroupName"] == naming.physical_name(cfg, "models")
    assert register["ModelApprovalStatus"] == training.model_approval_status


def test_training_image_and_channels(cfgs: dict[str, config.Config]) -> None:
    custom = _tasks(workflow.definition(cfgs["example"]))["Train"]["Parameters"]
    assert custom["AlgorithmSpecification"] == {
        "TrainingInputMode": "File",
        "TrainingImage.$": "$.ImageUri",
        "MetricDefinitions": [
            {"Name": "train:rmse", "Regex": "train-rmse=([0-9.]+);"},
            {"Name": "validation:rmse", "Regex": "validation-rmse=([0-9.]+);"},
        ],
    }
    assert [c["DataSource"]["S3DataSource"]["S3Uri.$"] for c in custom["InputDataConfig"]] == [
        "$.Paths.Train",
        "$.Paths.Validation",
    ]
    builtin = _tasks(workflow.definition(cfgs["api-key-xgboost"]))
    xgb = builtin["Train"]["Parameters"]
    assert xgb["AlgorithmSpecification"] == {
        "TrainingInputMode": "File",
        "TrainingImage": "${XGBoostImage}",
    }
    assert [
        (c["ChannelName"], c["ContentType"], c["DataSource"]["S3DataSource"]["S3Uri.$"])
        for c in xgb["InputDataConfig"]
    ] == [
        ("train", "text/csv", "$.Paths.XGBoostTrain"),
        ("validation", "text/csv", "$.Paths.XGBoostValidation"),
    ]
    outputs = {
        o["OutputName"]
        for o in builtin["Preprocess"]["Parameters"]["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs == {"train", "validation", "test", "feature_baseline", "xgboost"}


def test_processing_jobs_use_the_container_entries(example_config: config.Config) -> None:
    tasks = _tasks(workflow.definition(example_config))
    for name, entry in (("Preprocess", "preprocess"), ("Evaluate", "evaluate")):
        spec = tasks[name]["Parameters"]["AppSpecification"]
        assert spec == {"ImageUri.$": "$.ImageUri", "ContainerEntrypoint": [entry]}
    preprocess = tasks["Preprocess"]["Parameters"]
    assert preprocess["ProcessingInputs"][0]["S3Input"]["S3Uri.$"] == "$.TrainingDataUri"
    outputs = {
        o["S3Output"]["LocalPath"]: o["S3Output"]["S3Uri.$"]
        for o in preprocess["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs == {
        "/opt/ml/processing/output/train": "$.Paths.Train",
        "/opt/ml/processing/output/validation": "$.Paths.Validation",
        "/opt/ml/processing/output/test": "$.Paths.Test",
        # The train split's feature profile (mlcontainer.baseline), which evaluate completes.
        "/opt/ml/processing/output/feature_baseline": "$.Paths.FeatureBaseline",
    }
    evaluate = tasks["Evaluate"]["Parameters"]
    inputs = {
        i["S3Input"]["LocalPath"]: i["S3Input"]["S3Uri.$"] for i in evaluate["ProcessingInputs"]
    }
    assert inputs == {
        "/opt/ml/processing/model": "$.Training.ModelDataUrl",
        "/opt/ml/processing/test": "$.Paths.Test",
        "/opt/ml/processing/feature_baseline": "$.Paths.FeatureBaseline",
    }
    outputs = {o["S3Output"]["LocalPath"]: o["S3Output"] for o in evaluate["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["/opt/ml/processing/evaluation"] == {
        "S3Uri.$": "$.Paths.Evaluation",
        "LocalPath": "/opt/ml/processing/evaluation",
        "S3UploadMode": "EndOfJob",
    }
    # The monitoring baseline: statistics.json and constraints.json, the deploy stack's inputs.
    assert outputs["/opt/ml/processing/baseline"]["S3Uri.$"] == "$.Paths.Baseline"
    assert "Baseline" not in tasks  # no Model Monitor analyzer


def test_baseline_follows_the_analyzer_contract(cfgs: dict[str, config.Config]) -> None:
    tasks = _tasks(workflow.definition(cfgs["model-monitor"]))
    preprocess = tasks["Preprocess"]["Parameters"]["ProcessingOutputConfig"]["Outputs"]
    assert {"OutputName": "baseline", "S3Output": {
        "S3Uri.$": "$.Paths.BaselineDataset", "LocalPath": "/opt/ml/processing/output/baseline",
        "S3UploadMode": "EndOfJob"}} in preprocess
    evaluate = tasks["Evaluate"]["Parameters"]
    assert len(evaluate["ProcessingInputs"]) == 2  # no feature profile to complete
    params = tasks["Baseline"]["Parameters"]
    assert params["AppSpecification"] == {"ImageUri": "${ModelMonitorImage}"}
    assert params["Environment"] == {
        "dataset_format": '{"csv": {"header": true}}',
        "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
        "output_path": "/opt/ml/processing/output",
        "publish_cloudwatch_metrics": "Disabled",
    }
    assert json.loads(params["Environment"]["dataset_format"]) == {"csv": {"header": True}}
    [source] = params["ProcessingInputs"]
    assert source["S3Input"]["LocalPath"] == "/opt/ml/processing/input/baseline_dataset_input"
    assert source["S3Input"]["S3Uri.$"] == "$.Paths.BaselineDataset"
    [output] = params["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output"
    assert output["S3Output"]["S3Uri.$"] == "$.Paths.Baseline"


def test_run_paths_follow_the_s3_layout(example_config: config.Config) -> None:
    paths = workflow.definition(example_config)["States"][workflow.INITIALIZE]["Parameters"][
        "Paths"
    ]
    fmt = "States.Format('s3://{{}}/runs/{{}}/{{}}/{}', $.Settings.Bucket, $.RunId, $.NewAttempt.Id)"
    assert paths["Train.$"] == fmt.format("preprocess/train/")
    assert paths["Test.$"] == fmt.format("preprocess/test/")
    assert paths["Model.$"] == fmt.format("model/")
    assert paths["EvaluationReport.$"] == fmt.format("evaluation/evaluation.json")
    assert paths["BaselineStatistics.$"] == fmt.format("baseline/statistics.json")
    assert paths["BaselineConstraints.$"] == fmt.format("baseline/constraints.json")
    assert "Checkpoints.$" not in paths  # spot only
    assert paths["EvaluationKey.$"] == (
        "States.Format('runs/{}/{}/evaluation/evaluation.json', $.RunId, $.NewAttempt.Id)"
    )


def test_hyperparameter_defaults_are_baked_in_as_strings(cfgs: dict[str, config.Config]) -> None:
    definition = workflow.definition(cfgs["gpu-r2-open"])
    settings = definition["States"][workflow.LOAD_SETTINGS]
    assert settings["Result"] == {
        "Bucket": "${ArtifactBucket}",
        "Hyperparameters": {"depth": "3", "objective": "reg:squarederror"},
    }
    initialize = definition["States"][workflow.INITIALIZE]["Parameters"]
    assert (
        initialize["Hyperparameters.$"]
        == "States.JsonMerge($.Settings.Hyperparameters, $.Hyperparameters, false)"
    )


@pytest.mark.parametrize(
    ("operator", "comparison"),
    [
        ("<", "NumericLessThan"),
        ("<=", "NumericLessThanEquals"),
        (">", "NumericGreaterThan"),
        (">=", "NumericGreaterThanEquals"),
    ],
)
def test_gate_choice_follows_the_config(operator: str, comparison: str) -> None:
    cfg = config.parse(
        {"training": {"gate": {"metric": "mae", "operator": operator, "threshold": 1.25}}}
    )
    states = {s.name: s.render() for s in workflow.gate_states(cfg)}
    gate = states[workflow.QUALITY_GATE]
    metric = "$.Evaluation.Report.regression_metrics.mae.value"
    assert gate["Choices"] == [
        {"Variable": metric, "IsPresent": False, "Next": workflow.METRIC_MISSING},
        {"Not": {"Variable": metric, "IsNumeric": True}, "Next": workflow.METRIC_MISSING},
        {"Variable": metric, comparison: 1.25, "Next": workflow.CREATE_MODEL},
    ]
    assert gate["Default"] == workflow.GATE_FAILED
    cause = states[workflow.GATE_FAILED]["Parameters"]["Cause.$"]
    assert f"the gate requires mae {operator} 1.25" in cause
    read = states[workflow.READ_EVALUATION]
    assert read["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
    assert read["ResultSelector"] == {"Report.$": "States.StringToJson($.Body)"}


def test_registration_points_at_the_evaluation_and_the_baseline(
    example_config: config.Config,
) -> None:
    params = _tasks(workflow.definition(example_config))["RegisterModel"]["Parameters"]
    statistics = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineStatistics"}
    constraints = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineConstraints"}
    assert params["ModelMetrics"] == {
        "ModelQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri.$": "$.Paths.EvaluationReport"}
        },
        "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
    }
    assert params["DriftCheckBaselines"] == {
        "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints}
    }
    assert params["InferenceSpecification"]["Containers"] == [
        {"Image.$": "$.ImageUri", "ModelDataUrl.$": "$.Training.ModelDataUrl"}
    ]


def test_the_project_container_serves_what_the_builtin_image_trained(
    cfgs: dict[str, config.Config],
) -> None:
    """The built-in image takes only encoded numeric CSV; clients send raw rows."""
    for name, cfg in cfgs.items():
        definition = workflow.definition(cfg)
        tasks = _tasks(definition)
        training = tasks["Train"]["Parameters"]["AlgorithmSpecification"]
        if name == "api-key-xgboost":
            assert training["TrainingImage"] == "${XGBoostImage}"
        else:
            assert training["TrainingImage.$"] == "$.ImageUri"
        assert tasks["Train"]["ResultSelector"]["TrainingImage.$"] == (
            "$.AlgorithmSpecification.TrainingImage"
        )
        model = tasks[workflow.CREATE_MODEL]["Parameters"]["PrimaryContainer"]
        [package] = tasks[workflow.REGISTER_MODEL]["Parameters"]["InferenceSpecification"][
            "Containers"
        ]
        output = definition["States"][workflow.OUTPUT]["Parameters"]
        assert model["Image.$"] == package["Image.$"] == output["ImageUri.$"] == "$.ImageUri"
        # ... the execution input's ImageUri, which Initialize carries on.
        assert definition["States"][workflow.INITIALIZE]["Parameters"]["ImageUri.$"] == (
            "$.ImageUri"
        )


def test_output_is_the_contract(example_config: config.Config) -> None:
    output = workflow.definition(example_config)["States"][workflow.OUTPUT]
    assert [key.removesuffix(".$") for key in output["Parameters"]] == list(workflow.OUTPUT_KEYS)
    assert output["Next"] == workflow.SUCCEEDED
