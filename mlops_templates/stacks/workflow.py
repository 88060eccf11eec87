"""The training workflow: a Step Functions state machine that turns a data set into a
registered, quality-gated model.

Resources: ``AWS::StepFunctions::StateMachine`` ``<base>-training`` (STANDARD, KMS
encrypted, X-Ray traced, logging to an ``AWS::Logs::LogGroup`` encrypted with the
project key) and the ``AWS::SageMaker::ModelPackageGroup`` ``<base>-models``.

Flow (names are the state names)::

    ValidateInput -> LoadSettings -> NewAttempt -> Initialize -> Preprocess
      -> TrainAndBaseline (Parallel: Train | Baseline)
      -> Evaluate -> ReadEvaluation -> QualityGate
           pass: CreateModel -> RegisterModel -> Output -> Succeeded
           fail: GateFailed -> NotifyFailure -> Failed
    any Task error: <Step>Error -> NotifyFailure -> Failed

Training and the Model Monitor baseline both need only the preprocessed splits, so they
run side by side after preprocessing; the baseline is usually done long before training,
so the Parallel costs no wall time. Every Task catches all errors into ``$.Failure``
(keeping its input); a ``<Step>Error`` state names the error after the step
(``TrainingFailed``, ...) with the raw error and cause as the cause, ``NotifyFailure``
publishes it to the project topic and ``Failed`` ends the run with it. Rejections have
their own errors: ``InvalidInput``, ``EvaluationIncomplete``, ``QualityGateFailed``.

Execution input (strings)::

    {"RunId": "1624a1d1-3699",                  # see RUN_ID_PATTERN
     "TrainingDataUri": "s3://bucket/training/abalone.csv",
     "ImageUri": "<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>",
     "Hyperparameters": {"max_depth": "6"}}    # optional; merged over the config's

``ImageUri`` is the project container: it preprocesses, evaluates and serves, and trains
unless ``training.image`` is ``xgboost`` (then SageMaker's built-in XGBoost image trains
on the encoded copies of the splits, and the container serves its ``xgboost-model``
with the same preprocessing as its own models: the built-in image would accept only
encoded, numeric CSV, not the raw rows the API, the deployment hooks and clients send).

Output of a successful execution::

    {"RunId", "ModelDataUrl", "ImageUri" (the serving image: the input's ImageUri),
     "ModelPackageArn", "BaselineStatisticsUri", "BaselineConstraintsUri", "EvaluationUri",
     "Metrics": {"rmse": {"value", "standard_deviation"}, "mae": ..., "r2": ..., "mse": ...}}

Attempts. A run may take several executions with the same input: the pipeline's Train
stage retried, or an execution started again by hand. SageMaker refuses a job or model
name used before in the account and region, so names cannot derive from the run id
alone. ``NewAttempt`` draws an attempt id for each execution (eight hex digits of
``States.UUID()``; ``$$.Execution.Name`` would do for the pipeline, whose action makes
it unique, but not for a name typed by hand, which may hold characters job names
refuse), and each Task that creates a job or model names it
``<base>-<RunId>-<step>-<Attempt>-<RedriveCount>`` (steps ``prep``, ``train``,
``stats``, ``eval``, ``model``), e.g. ``mlops-abalone-1624a1d1-3699-train-5f2c9a1e-0``.
A redrive re-runs the states that did not complete (a job stopped with the execution, or
failed by an error no Catch takes) with the same input and context, but
``$$.Execution.RedriveCount`` one higher, so the re-run job gets a new name too. A
Task's own retries (of a throttled or failed create call) keep the name: should the
failed call have started the job after all, the retry is refused instead of starting
a second, billed one beside it.
``naming.check_lengths`` makes sure the longest such name fits SageMaker's 63 characters.

S3 layout of an attempt: ``s3://<ArtifactBucket>/runs/<RunId>/<Attempt>/`` with
``preprocess/{train,validation,test,baseline[,xgboost]}/``, ``model/``, ``evaluation/``,
``baseline/`` (and ``checkpoints/`` for spot training). Per attempt, not per run: a model
version's registered evaluation and baseline stay those of its own model when the run
is tried again, and two executions of one run never mix their splits or reports. A
redrive writes into its execution's prefix again, which only replaces the outputs of
the step that did not complete (nothing registered refers to them yet); a redriven
spot training job resumes from the attempt's checkpoints.

Registration is idempotent per attempt: ``RegisterModel``'s ``ClientToken`` is
``<RunId>-<Attempt>``. A retried or redriven registration of the same model returns the
version the first call may already have created; a new execution trains a new model
and registers a new version.
"""

from __future__ import annotations

import json
from typing import Any

from troposphere import (
    GetAtt,
    Output,
    Parameter,
    Ref,
    Sub,
    Template,
    sagemaker,
    stepfunctions,
)

from mlops_templates import asl, naming, regions
from mlops_templates.asl import (
    Catch,
    Choice,
    Compare,
    Fail,
    Not,
    Or,
    Parallel,
    Pass,
    Retry,
    Rule,
    StateMachine,
    Succeed,
    Task,
)
from mlops_templates.config import Config
from mlops_templates.stacks import common, context

COMPONENT = "workflow"

# Logical IDs (stable: renaming one replaces the resource).
STATE_MACHINE = "TrainingStateMachine"
LOG_GROUP = "TrainingStateMachineLogGroup"
MODEL_PACKAGE_GROUP = "ModelPackageGroup"

# Parameters, also the names of the DefinitionSubstitutions placeholders.
KMS_KEY_ARN = "KmsKeyArn"
ARTIFACT_BUCKET = "ArtifactBucket"
SAGEMAKER_ROLE_ARN = "SageMakerRoleArn"
STATES_ROLE_ARN = "StatesRoleArn"
NOTIFICATION_TOPIC_ARN = "NotificationTopicArn"
# Substitutions that are not Parameters: region-specific images from the image table.
MODEL_MONITOR_IMAGE = "ModelMonitorImage"
XGBOOST_IMAGE = "XGBoostImage"

#: Run ids the pipeline passes: lower-case letters, digits and hyphens, at most
#: ``naming.RUN_ID_MAX_LENGTH`` characters, so every job name is a valid SageMaker name.
#: ASL cannot match a regular expression, so ``ValidateInput`` checks only presence,
#: type and emptiness; a run id outside this pattern is refused by SageMaker at the
#: first job (a caught ValidationException: notified, then Failed).
RUN_ID_PATTERN = rf"^[a-z0-9](-*[a-z0-9]){{0,{naming.RUN_ID_MAX_LENGTH - 1}}}$"

#: The attempt id: the first group of a random UUID, eight lower-case hex digits
#: (``naming.ATTEMPT_ID_LENGTH``), drawn once per execution by ``NewAttempt``.
ATTEMPT_ID = asl.array_get_item(asl.string_split(asl.uuid(), "-"), 0)
#: How many times this execution was redriven (0 until it is): part of every job name.
REDRIVE_COUNT = "$$.Execution.RedriveCount"

# Job-name steps (at most naming.JOB_SUFFIX_MAX_LENGTH - 1 characters each).
STEP_PREPROCESS = "prep"
STEP_TRAIN = "train"
STEP_BASELINE = "stats"
STEP_EVALUATE = "eval"
STEP_MODEL = "model"
STEPS = (STEP_PREPROCESS, STEP_TRAIN, STEP_BASELINE, STEP_EVALUATE, STEP_MODEL)

# State names.
VALIDATE_INPUT = "ValidateInput"
INVALID_INPUT = "InvalidInput"
ADD_DEFAULT_HYPERPARAMETERS = "AddDefaultHyperparameters"
LOAD_SETTINGS = "LoadSettings"
NEW_ATTEMPT = "NewAttempt"
INITIALIZE = "Initialize"
PREPROCESS = "Preprocess"
TRAIN_AND_BASELINE = "TrainAndBaseline"
TRAIN = "Train"
BASELINE = "Baseline"
EVALUATE = "Evaluate"
READ_EVALUATION = "ReadEvaluation"
QUALITY_GATE = "QualityGate"
METRIC_MISSING = "MetricMissing"
GATE_FAILED = "GateFailed"
CREATE_MODEL = "CreateModel"
REGISTER_MODEL = "RegisterModel"
OUTPUT = "Output"
SUCCEEDED = "Succeeded"
NOTIFY_FAILURE = "NotifyFailure"
FAILED = "Failed"

#: Step -> (the state that describes its failure, the error the run then fails with).
#: Caught errors are renamed after the step that failed: the raw names ("States.TaskFailed",
#: "SageMaker.AmazonSageMakerException") say little on their own, and names starting with
#: "States." are reserved, so a Fail state may not re-raise them. The raw error leads the
#: cause ("<raw error>: <raw cause>").
STEP_ERRORS: dict[str, tuple[str, str]] = {
    PREPROCESS: ("PreprocessError", "PreprocessingFailed"),
    TRAIN: ("TrainError", "TrainingFailed"),
    BASELINE: ("BaselineError", "BaselineFailed"),
    TRAIN_AND_BASELINE: ("TrainAndBaselineError", "TrainAndBaselineFailed"),
    EVALUATE: ("EvaluateError", "EvaluationFailed"),
    READ_EVALUATION: ("ReadEvaluationError", "EvaluationUnreadable"),
    CREATE_MODEL: ("CreateModelError", "ModelCreationFailed"),
    REGISTER_MODEL: ("RegisterModelError", "RegistrationFailed"),
}
#: Errors the workflow itself raises when it rejects a run (input, evaluation, gate).
REJECTION_ERRORS = ("InvalidInput", "EvaluationIncomplete", "QualityGateFailed")

#: Where a caught error lands (``{"Error", "Cause"}``), next to the state's input.
FAILURE_PATH = "$.Failure"

#: Branch order of the TrainAndBaseline Parallel state.
TRAIN_BRANCH, BASELINE_BRANCH = 0, 1

# Integration ARNs (Step Functions optimised integrations and AWS SDK integrations).
RESOURCE_PROCESSING_JOB = "arn:aws:states:::sagemaker:createProcessingJob.sync"
RESOURCE_TRAINING_JOB = "arn:aws:states:::sagemaker:createTrainingJob.sync"
RESOURCE_MODEL = "arn:aws:states:::sagemaker:createModel"
RESOURCE_MODEL_PACKAGE = "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
RESOURCE_S3_GET_OBJECT = "arn:aws:states:::aws-sdk:s3:getObject"
RESOURCE_SNS_PUBLISH = "arn:aws:states:::sns:publish"

# Container paths: the processing contract of the project container and of the
# Model Monitor analyzer (its baseline input and output locations are fixed names).
PROCESSING = "/opt/ml/processing"
ANALYZER_INPUT = f"{PROCESSING}/input/baseline_dataset_input"
ANALYZER_OUTPUT = f"{PROCESSING}/output"

#: Fields of the execution input (``Hyperparameters`` may be left out).
INPUT_KEYS = ("RunId", "TrainingDataUri", "ImageUri", "Hyperparameters")
#: Fields of a successful execution's output.
OUTPUT_KEYS = (
    "RunId",
    "ModelDataUrl",
    "ImageUri",
    "ModelPackageArn",
    "BaselineStatisticsUri",
    "BaselineConstraintsUri",
    "EvaluationUri",
    "Metrics",
)

#: Gate operator -> Choice comparison.
GATE_OPERATORS = {
    "<": "NumericLessThan",
    "<=": "NumericLessThanEquals",
    ">": "NumericGreaterThan",
    ">=": "NumericGreaterThanEquals",
}

#: Instance families with local NVMe storage: SageMaker refuses a volume KMS key for
#: them (their instance storage is encrypted by the hardware).
LOCAL_STORAGE_FAMILIES = frozenset(
    {"m5d", "m6id", "c5d", "c6id", "r5d", "g4dn", "g5", "g6", "g6e", "p4d", "p5", "trn1"}
)

# Transient errors worth retrying, per integration.
SAGEMAKER_TRANSIENT = ("ThrottlingException", "SageMaker.AmazonSageMakerException")
# AWS SDK integrations name unmodelled service errors (throttling among them)
# "<Service>.<Service>Exception"; registration is idempotent (ClientToken), so retrying
# them is safe.
SAGEMAKER_SDK_TRANSIENT = (
    "SageMaker.ThrottlingException",
    "SageMaker.SageMakerException",
    "SageMaker.SdkClientException",
)
S3_TRANSIENT = ("S3.SdkClientException", "S3.InternalErrorException", "S3.SlowDownException")
SNS_TRANSIENT = ("SNS.ThrottledException", "SNS.InternalErrorException", "SNS.SdkClientException")

#: Timeout of the short API calls (S3 read, model creation and registration, SNS).
API_TIMEOUT_SECONDS = 60


# ------------------------------------------------------------------------ helpers


def _substitution(name: str) -> str:
    return "${" + name + "}"


def _retry(errors: tuple[str, ...]) -> list[Retry]:
    # Full jitter spreads the retries of runs that were throttled together.
    return [
        Retry(
            errors,
            interval_seconds=5,
            max_attempts=4,
            backoff_rate=2.0,
            max_delay_seconds=60,
            jitter="FULL",
        )
    ]


def _catch(step: str) -> list[Catch]:
    """Catch every error of ``step`` into ``$.Failure`` and describe it."""
    return [Catch(STEP_ERRORS[step][0], result_path=FAILURE_PATH)]


def _raw_cause() -> str:
    return asl.fmt("{}: {}", f"{FAILURE_PATH}.Error", f"{FAILURE_PATH}.Cause")


def _describe_error(step: str) -> Pass:
    """Rename the caught error after ``step``, then notify."""
    name, error = STEP_ERRORS[step]
    return Pass(
        name=name,
        parameters={"Error": error, "Cause.$": _raw_cause()},
        result_path=FAILURE_PATH,
        next=NOTIFY_FAILURE,
    )


def _branch_error(step: str) -> Fail:
    # A Catch inside a branch can only go to the branch's own states: fail the branch
    # with the step's error so the Parallel's Catch notifies with the real cause.
    name, error = STEP_ERRORS[step]
    return Fail(name=name, error=error, cause_path=_raw_cause())


def _supports_volume_kms(instance_type: str) -> bool:
    return instance_type.split(".")[1] not in LOCAL_STORAGE_FAMILIES


def _cluster(instance_type: str, count: int, volume_gb: int) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "InstanceCount": count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": volume_gb,
    }
    if _supports_volume_kms(instance_type):
        cluster["VolumeKmsKeyId"] = _substitution(KMS_KEY_ARN)
    return cluster


def _vpc(config: Config) -> dict[str, Any] | None:
    if not config.network.subnet_ids:
        return None
    return {
        "SecurityGroupIds": list(config.network.security_group_ids),
        "Subnets": list(config.network.subnet_ids),
    }


def _network_config(config: Config) -> dict[str, Any]:
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": config.training.network_isolation,
    }
    vpc = _vpc(config)
    if vpc:
        network["VpcConfig"] = vpc
    return network


def _tags(config: Config) -> list[dict[str, str]]:
    return [
        {"Key": "mlops:project", "Value": naming.base(config)},
        {"Key": "mlops:component", "Value": COMPONENT},
        {"Key": "mlops:run-id", "Value.$": "$.RunId"},
    ]


def _s3_input(name: str, uri_path: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri.$": uri_path,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _s3_output(name: str, uri_path: str, local_path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri.$": uri_path, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def _hyperparameter(value: str | float) -> str:
    # SageMaker takes hyperparameters as strings only.
    return value if isinstance(value, str) else json.dumps(value)


def _processing_job(
    config: Config,
    name: str,
    step: str,
    app: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    cluster: dict[str, Any],
    max_runtime_seconds: int,
    environment: dict[str, str] | None = None,
    **state: Any,
) -> Task:
    """Processing-job Task of ``step``: outputs encrypted with the project key, the run's
    network settings and tags, transient errors retried and every error caught.

    ``state`` takes the remaining Task fields (``comment``, ``next``).
    """
    parameters: dict[str, Any] = {
        "ProcessingJobName.$": job_name(config, step),
        "RoleArn": _substitution(SAGEMAKER_ROLE_ARN),
        "AppSpecification": app,
    }
    if environment is not None:
        parameters["Environment"] = environment
    parameters.update(
        {
            "ProcessingInputs": inputs,
            "ProcessingOutputConfig": {"KmsKeyId": _substitution(KMS_KEY_ARN), "Outputs": outputs},
            "ProcessingResources": {"ClusterConfig": cluster},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
            "NetworkConfig": _network_config(config),
            "Tags": _tags(config),
        }
    )
    return Task(
        name=name,
        resource=RESOURCE_PROCESSING_JOB,
        parameters=parameters,
        result_path=None,
        retry=_retry(SAGEMAKER_TRANSIENT),
        catch=_catch(name),
        **state,
    )


def xgboost(config: Config) -> bool:
    """Whether the built-in XGBoost image trains (else the project container)."""
    return config.training.image == "xgboost"


def job_name(config: Config, step: str) -> str:
    """``States.Format`` expression for the name of ``step``'s job (or model),
    ``<base>-<RunId>-<step>-<Attempt>-<RedriveCount>``.

    It is evaluated by the Task that creates the job, so a redriven Task (same input,
    same context, but ``$$.Execution.RedriveCount`` one higher) names a new job, while
    the Task's own retries keep the name (see the module docstring).
    """
    return asl.fmt(naming.job_name_format(config, step), "$.RunId", "$.Attempt", REDRIVE_COUNT)


def registration_token() -> str:
    """``ClientToken`` of ``RegisterModel``: ``<RunId>-<Attempt>``, one model version per
    execution. A retry or a redrive of the registration sends the same token and gets
    the version it may already have created; a new execution trains a new model and
    registers it under a new token. (The redrive count stays out: a redrive re-runs
    ``RegisterModel`` only, with the same model, which must not be registered twice.)"""
    return asl.fmt("{}-{}", "$.RunId", "$.Attempt")


def gate_metric_path(config: Config) -> str:
    """Path of the gated metric in the state after ``ReadEvaluation``."""
    return f"$.Evaluation.Report.regression_metrics.{config.training.gate.metric}.value"


def gate_description(config: Config) -> str:
    gate = config.training.gate
    return f"{gate.metric} {gate.operator} {gate.threshold}"


# ------------------------------------------------------------------------- states


def input_states(config: Config) -> list[asl.State]:
    """Validate the execution input and build the run context every later state uses.

    ``NewAttempt`` draws the attempt id; ``Initialize`` replaces the input with
    ``{RunId, Attempt, TrainingDataUri, ImageUri, Hyperparameters, Paths}``, the paths
    under ``runs/<RunId>/<Attempt>/``. Job names are made by the Tasks (:func:`job_name`).
    """
    defaults = {k: _hyperparameter(v) for k, v in config.training.hyperparameters.items()}
    run = "$.RunId"
    attempt = "$.NewAttempt.Id"
    bucket = "$.Settings.Bucket"

    def uri(suffix: str) -> str:
        return asl.fmt(f"s3://{{}}/runs/{{}}/{{}}/{suffix}", bucket, run, attempt)

    paths: dict[str, str] = {
        "Train.$": uri("preprocess/train/"),
        "Validation.$": uri("preprocess/validation/"),
        "Test.$": uri("preprocess/test/"),
        "BaselineDataset.$": uri("preprocess/baseline/"),
        "Model.$": uri("model/"),
        "Evaluation.$": uri("evaluation/"),
        "EvaluationReport.$": uri("evaluation/evaluation.json"),
        "EvaluationKey.$": asl.fmt("runs/{}/{}/evaluation/evaluation.json", run, attempt),
        "Baseline.$": uri("baseline/"),
        "BaselineStatistics.$": uri("baseline/statistics.json"),
        "BaselineConstraints.$": uri("baseline/constraints.json"),
    }
    if xgboost(config):
        paths["XGBoost.$"] = uri("preprocess/xgboost/")
        paths["XGBoostTrain.$"] = uri("preprocess/xgboost/train/")
        paths["XGBoostValidation.$"] = uri("preprocess/xgboost/validation/")
    if config.training.use_spot:
        paths["Checkpoints.$"] = uri("checkpoints/")

    missing = Or(
        [asl.is_present(f"$.{key}", False) for key in ("RunId", "TrainingDataUri", "ImageUri")]
    )
    not_strings = Or(
        [Not(asl.is_string(f"$.{key}")) for key in ("RunId", "TrainingDataUri", "ImageUri")]
    )
    malformed = Or(
        [
            Compare("$.RunId", "StringEquals", ""),
            Not(Compare("$.TrainingDataUri", "StringMatches", "s3://*")),
            Compare("$.ImageUri", "StringEquals", ""),
        ]
    )
    not_object = Or(
        [
            Compare("$.Hyperparameters", operator, True)
            for operator in ("IsString", "IsNumeric", "IsBoolean", "IsNull")
        ]
    )
    return [
        Choice(
            name=VALIDATE_INPUT,
            comment=(
                "Rules run in order, so each only sees inputs the earlier ones accepted. "
                "RunId must also match " + RUN_ID_PATTERN + ", which SageMaker enforces "
                "through the job names."
            ),
            rules=[
                Rule(missing, INVALID_INPUT),
                Rule(not_strings, INVALID_INPUT),
                Rule(malformed, INVALID_INPUT),
                Rule(asl.is_present("$.Hyperparameters", False), ADD_DEFAULT_HYPERPARAMETERS),
                # JsonMerge needs an object; ASL has no IsObject, so refuse the scalars.
                Rule(not_object, INVALID_INPUT),
            ],
            default=LOAD_SETTINGS,
        ),
        Pass(
            name=INVALID_INPUT,
            parameters={
                "Error": "InvalidInput",
                "Cause": (
                    "The execution input needs string fields RunId (non-empty, pattern "
                    f"{RUN_ID_PATTERN}), TrainingDataUri (s3://...) and ImageUri, and "
                    "optionally an object Hyperparameters."
                ),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        ),
        Pass(
            name=ADD_DEFAULT_HYPERPARAMETERS,
            result={},
            result_path="$.Hyperparameters",
            next=LOAD_SETTINGS,
        ),
        Pass(
            name=LOAD_SETTINGS,
            comment="Build-time settings; the bucket comes from the stack's parameters.",
            result={"Bucket": _substitution(ARTIFACT_BUCKET), "Hyperparameters": defaults},
            result_path="$.Settings",
            next=NEW_ATTEMPT,
        ),
        Pass(
            name=NEW_ATTEMPT,
            comment=(
                "A new id for every execution: a retried run (same input, same RunId) "
                "gets new job names and its own S3 prefix."
            ),
            parameters={"Id.$": ATTEMPT_ID},
            result_path="$.NewAttempt",
            next=INITIALIZE,
        ),
        Pass(
            name=INITIALIZE,
            parameters={
                "RunId.$": run,
                "Attempt.$": attempt,
                "TrainingDataUri.$": "$.TrainingDataUri",
                "ImageUri.$": "$.ImageUri",
                "Hyperparameters.$": asl.json_merge(
                    "$.Settings.Hyperparameters", "$.Hyperparameters"
                ),
                "Paths": paths,
            },
            next=PREPROCESS,
        ),
    ]


def preprocess_state(config: Config) -> Task:
    """Processing job running the container's ``preprocess`` entry on the raw data."""
    outputs = [
        _s3_output(split, f"$.Paths.{split.capitalize()}", f"{PROCESSING}/output/{split}")
        for split in ("train", "validation", "test")
    ]
    outputs.append(
        _s3_output("baseline", "$.Paths.BaselineDataset", f"{PROCESSING}/output/baseline")
    )
    if xgboost(config):
        outputs.append(_s3_output("xgboost", "$.Paths.XGBoost", f"{PROCESSING}/output/xgboost"))
    training = config.training
    return _processing_job(
        config,
        PREPROCESS,
        STEP_PREPROCESS,
        app={"ImageUri.$": "$.ImageUri", "ContainerEntrypoint": ["preprocess"]},
        inputs=[_s3_input("raw", "$.TrainingDataUri", f"{PROCESSING}/input/raw")],
        outputs=outputs,
        cluster=_cluster(training.processing_instance_type, 1, training.volume_size_gb),
        max_runtime_seconds=training.max_runtime_seconds,
        comment="Split the raw data into train/validation/test plus the baseline dataset.",
        next=TRAIN_AND_BASELINE,
    )


def train_state(config: Config) -> Task:
    """Training job: the project container (or built-in XGBoost) on the train split."""
    training = config.training
    algorithm: dict[str, Any] = {"TrainingInputMode": "File"}
    if xgboost(config):
        algorithm["TrainingImage"] = _substitution(XGBOOST_IMAGE)
        channels = {"train": "$.Paths.XGBoostTrain", "validation": "$.Paths.XGBoostValidation"}
    else:
        algorithm["TrainingImage.$"] = "$.ImageUri"
        algorithm["MetricDefinitions"] = [
            {"Name": "train:rmse", "Regex": "train-rmse=([0-9.]+);"},
            {"Name": "validation:rmse", "Regex": "validation-rmse=([0-9.]+);"},
        ]
        channels = {"train": "$.Paths.Train", "validation": "$.Paths.Validation"}
    input_config = []
    for channel, path in channels.items():
        entry: dict[str, Any] = {
            "ChannelName": channel,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri.$": path,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        if xgboost(config):
            entry["ContentType"] = "text/csv"
        input_config.append(entry)
    resources = _cluster(training.instance_type, training.instance_count, training.volume_size_gb)
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": training.max_runtime_seconds}
    parameters: dict[str, Any] = {
        "TrainingJobName.$": job_name(config, STEP_TRAIN),
        "RoleArn": _substitution(SAGEMAKER_ROLE_ARN),
        "AlgorithmSpecification": algorithm,
        "HyperParameters.$": "$.Hyperparameters",
        "InputDataConfig": input_config,
        "OutputDataConfig": {
            "S3OutputPath.$": "$.Paths.Model",
            "KmsKeyId": _substitution(KMS_KEY_ARN),
        },
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": training.network_isolation,
        "EnableInterContainerTrafficEncryption": True,
    }
    if training.use_spot:
        stopping["MaxWaitTimeInSeconds"] = training.max_wait_seconds
        parameters["EnableManagedSpotTraining"] = True
        # Interrupted spot jobs resume from the last checkpoint instead of restarting.
        parameters["CheckpointConfig"] = {
            "S3Uri.$": "$.Paths.Checkpoints",
            "LocalPath": "/opt/ml/checkpoints",
        }
    vpc = _vpc(config)
    if vpc:
        parameters["VpcConfig"] = vpc
    parameters["Tags"] = _tags(config)
    return Task(
        name=TRAIN,
        resource=RESOURCE_TRAINING_JOB,
        parameters=parameters,
        result_selector={
            "ModelDataUrl.$": "$.ModelArtifacts.S3ModelArtifacts",
            "TrainingImage.$": "$.AlgorithmSpecification.TrainingImage",
        },
        result_path="$.Training",
        retry=_retry(SAGEMAKER_TRANSIENT),
        catch=_catch(TRAIN),
    )


def baseline_state(config: Config) -> Task:
    """Model Monitor baseline (statistics and constraints) of the training features.

    The analyzer reads ``dataset_source`` and writes ``statistics.json`` and
    ``constraints.json`` to ``output_path``; its input is the features-only train
    split with a header, the same columns, in the same order, as the captured requests.
    """
    monitoring = config.monitoring
    return _processing_job(
        config,
        BASELINE,
        STEP_BASELINE,
        app={"ImageUri": _substitution(MODEL_MONITOR_IMAGE)},
        environment={
            "dataset_format": json.dumps({"csv": {"header": True}}),
            "dataset_source": ANALYZER_INPUT,
            "output_path": ANALYZER_OUTPUT,
            "publish_cloudwatch_metrics": "Disabled",
        },
        inputs=[_s3_input("baseline_dataset_input", "$.Paths.BaselineDataset", ANALYZER_INPUT)],
        outputs=[_s3_output("monitoring_output", "$.Paths.Baseline", ANALYZER_OUTPUT)],
        cluster=_cluster(monitoring.instance_type, 1, monitoring.volume_size_gb),
        max_runtime_seconds=monitoring.max_runtime_seconds,
    )


def train_and_baseline_state(config: Config) -> Parallel:
    """Training beside the baseline; the output is the training branch's output.

    The training branch carries the run context on with ``$.Training`` added; the
    baseline branch only writes files whose URIs are already in ``$.Paths``.
    """
    branches: list[StateMachine] = [None, None]  # type: ignore[list-item]
    branches[TRAIN_BRANCH] = StateMachine([train_state(config), _branch_error(TRAIN)])
    branches[BASELINE_BRANCH] = StateMachine([baseline_state(config), _branch_error(BASELINE)])
    branch_errors = (STEP_ERRORS[TRAIN][1], STEP_ERRORS[BASELINE][1])
    return Parallel(
        name=TRAIN_AND_BASELINE,
        comment="Both need only the preprocessed splits; the baseline finishes first.",
        branches=branches,
        output_path=f"$[{TRAIN_BRANCH}]",
        catch=[
            # The branches already name their failures.
            Catch(NOTIFY_FAILURE, result_path=FAILURE_PATH, errors=branch_errors),
            *_catch(TRAIN_AND_BASELINE),
        ],
        next=EVALUATE,
    )


def evaluate_state(config: Config) -> Task:
    """Processing job running the container's ``evaluate`` entry on the test split."""
    training = config.training
    return _processing_job(
        config,
        EVALUATE,
        STEP_EVALUATE,
        app={"ImageUri.$": "$.ImageUri", "ContainerEntrypoint": ["evaluate"]},
        inputs=[
            _s3_input("model", "$.Training.ModelDataUrl", f"{PROCESSING}/model"),
            _s3_input("test", "$.Paths.Test", f"{PROCESSING}/test"),
        ],
        outputs=[_s3_output("evaluation", "$.Paths.Evaluation", f"{PROCESSING}/evaluation")],
        cluster=_cluster(training.processing_instance_type, 1, training.volume_size_gb),
        max_runtime_seconds=training.max_runtime_seconds,
        next=READ_EVALUATION,
    )


def gate_states(config: Config) -> list[asl.State]:
    """Read ``evaluation.json`` back and gate on the configured metric.

    The Choice first routes a missing or non-numeric metric to ``MetricMissing``
    (comparing a missing value would be an uncatchable runtime error), then passes
    the model on to ``CreateModel`` when the metric meets the threshold; anything
    else, by ``Default``, is ``GateFailed``.
    """
    gate = config.training.gate
    metric = gate_metric_path(config)
    return [
        Task(
            name=READ_EVALUATION,
            resource=RESOURCE_S3_GET_OBJECT,
            parameters={"Bucket": _substitution(ARTIFACT_BUCKET), "Key.$": "$.Paths.EvaluationKey"},
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={"Report.$": asl.string_to_json("$.Body")},
            result_path="$.Evaluation",
            retry=_retry(S3_TRANSIENT),
            catch=_catch(READ_EVALUATION),
            next=QUALITY_GATE,
        ),
        Choice(
            name=QUALITY_GATE,
            comment=f"Register the model only if {gate_description(config)} on the test split.",
            rules=[
                Rule(asl.is_present(metric, False), METRIC_MISSING),
                Rule(Not(asl.is_numeric(metric)), METRIC_MISSING),
                Rule(Compare(metric, GATE_OPERATORS[gate.operator], gate.threshold), CREATE_MODEL),
            ],
            default=GATE_FAILED,
        ),
        Pass(
            name=METRIC_MISSING,
            parameters={
                "Error": "EvaluationIncomplete",
                "Cause": (
                    f"evaluation.json has no numeric regression_metrics.{gate.metric}.value "
                    "to gate on."
                ),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        ),
        Pass(
            name=GATE_FAILED,
            parameters={
                "Error": "QualityGateFailed",
                "Cause.$": asl.fmt(
                    f"The model was not registered: {gate.metric} is {{}} on the test split; "
                    f"the gate requires {gate_description(config)}.",
                    metric,
                ),
            },
            result_path=FAILURE_PATH,
            next=NOTIFY_FAILURE,
        ),
    ]


def register_states(config: Config) -> list[asl.State]:
    """Create the SageMaker model and register it in the model package group.

    Both serve the model with the project container (``$.ImageUri``), also when the
    built-in XGBoost image trained it: the container reads the built-in artifact and
    answers the same raw rows as for its own models, where the built-in image takes
    only encoded, numeric CSV.
    """
    content_types = ["text/csv", "application/json"]
    instance_types = sorted(
        {config.endpoints.dev.instance_type, config.endpoints.prd.instance_type}
    )
    statistics = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineStatistics"}
    constraints = {"ContentType": "application/json", "S3Uri.$": "$.Paths.BaselineConstraints"}
    model: dict[str, Any] = {
        "ModelName.$": job_name(config, STEP_MODEL),
        "ExecutionRoleArn": _substitution(SAGEMAKER_ROLE_ARN),
        "PrimaryContainer": {
            "Image.$": "$.ImageUri",
            "ModelDataUrl.$": "$.Training.ModelDataUrl",
        },
        "EnableNetworkIsolation": config.training.network_isolation,
    }
    vpc = _vpc(config)
    if vpc:
        model["VpcConfig"] = vpc
    model["Tags"] = _tags(config)
    return [
        Task(
            name=CREATE_MODEL,
            resource=RESOURCE_MODEL,
            parameters=model,
            timeout_seconds=API_TIMEOUT_SECONDS,
            # The name the Task gave (its redrive count is known only there).
            result_selector={
                "ModelArn.$": "$.ModelArn",
                "ModelName.$": asl.array_get_item(asl.string_split("$.ModelArn", "/"), 1),
            },
            result_path="$.Model",
            retry=_retry(SAGEMAKER_TRANSIENT),
            catch=_catch(CREATE_MODEL),
            next=REGISTER_MODEL,
        ),
        Task(
            name=REGISTER_MODEL,
            resource=RESOURCE_MODEL_PACKAGE,
            parameters={
                "ModelPackageGroupName": naming.physical_name(config, "models"),
                "ClientToken.$": registration_token(),
                "ModelPackageDescription.$": asl.fmt(
                    "Training run {} (attempt {}); evaluation "
                    + gate_description(config)
                    + " passed.",
                    "$.RunId",
                    "$.Attempt",
                ),
                "ModelApprovalStatus": config.training.model_approval_status,
                "InferenceSpecification": {
                    "Containers": [
                        {
                            "Image.$": "$.ImageUri",
                            "ModelDataUrl.$": "$.Training.ModelDataUrl",
                        }
                    ],
                    "SupportedContentTypes": content_types,
                    "SupportedResponseMIMETypes": content_types,
                    "SupportedRealtimeInferenceInstanceTypes": instance_types,
                },
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {
                            "ContentType": "application/json",
                            "S3Uri.$": "$.Paths.EvaluationReport",
                        }
                    },
                    "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints},
                },
                "DriftCheckBaselines": {
                    "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints}
                },
                "CustomerMetadataProperties": {
                    "RunId.$": "$.RunId",
                    "Attempt.$": "$.Attempt",
                    "ModelName.$": "$.Model.ModelName",
                    "TrainingImage.$": "$.Training.TrainingImage",
                },
            },
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_selector={"ModelPackageArn.$": "$.ModelPackageArn"},
            result_path="$.Registration",
            retry=_retry(SAGEMAKER_SDK_TRANSIENT),
            catch=_catch(REGISTER_MODEL),
            next=OUTPUT,
        ),
        Pass(
            name=OUTPUT,
            comment="The execution's output, read by the pipeline's deploy stages.",
            parameters={
                "RunId.$": "$.RunId",
                "ModelDataUrl.$": "$.Training.ModelDataUrl",
                "ImageUri.$": "$.ImageUri",
                "ModelPackageArn.$": "$.Registration.ModelPackageArn",
                "BaselineStatisticsUri.$": "$.Paths.BaselineStatistics",
                "BaselineConstraintsUri.$": "$.Paths.BaselineConstraints",
                "EvaluationUri.$": "$.Paths.EvaluationReport",
                "Metrics.$": "$.Evaluation.Report.regression_metrics",
            },
            next=SUCCEEDED,
        ),
        Succeed(name=SUCCEEDED),
    ]


def failure_states(config: Config) -> list[asl.State]:
    """Name each step's failure, publish it to the project topic, then fail with it.

    Every error reaching ``NotifyFailure`` has a name of this workflow (one of
    ``STEP_ERRORS`` or ``REJECTION_ERRORS``), so ``Failed`` re-raises it as is.
    """
    top_level = [step for step in STEP_ERRORS if step not in (TRAIN, BASELINE)]
    return [
        *(_describe_error(step) for step in top_level),
        Task(
            name=NOTIFY_FAILURE,
            resource=RESOURCE_SNS_PUBLISH,
            parameters={
                "TopicArn": _substitution(NOTIFICATION_TOPIC_ARN),
                "Subject": f"{naming.base(config)}: training run failed",
                "Message": {
                    "StateMachine": naming.physical_name(config, "training", "state-machine"),
                    "Execution.$": "$$.Execution.Id",
                    "Input.$": "$$.Execution.Input",
                    "Error.$": f"{FAILURE_PATH}.Error",
                    "Cause.$": f"{FAILURE_PATH}.Cause",
                },
            },
            timeout_seconds=API_TIMEOUT_SECONDS,
            result_path=None,
            retry=_retry(SNS_TRANSIENT),
            # A failed notification must not hide the original error: keep $.Failure.
            catch=[Catch(FAILED, result_path="$.NotificationFailure")],
            next=FAILED,
        ),
        Fail(name=FAILED, error_path=f"{FAILURE_PATH}.Error", cause_path=f"{FAILURE_PATH}.Cause"),
    ]


def state_machine(config: Config) -> StateMachine:
    """The whole workflow as typed states (see the module docstring for the flow)."""
    return StateMachine(
        [
            *input_states(config),
            preprocess_state(config),
            train_and_baseline_state(config),
            evaluate_state(config),
            *gate_states(config),
            *register_states(config),
            *failure_states(config),
        ],
        comment=f"Train, evaluate, gate and register a model of {naming.base(config)}.",
    )


def definition(config: Config) -> dict[str, Any]:
    """The rendered ASL definition, ``${...}`` placeholders left in."""
    return state_machine(config).render()


def substitutions(config: Config) -> dict[str, Any]:
    """DefinitionSubstitutions: placeholder -> CloudFormation value."""
    values: dict[str, Any] = {
        ARTIFACT_BUCKET: Ref(ARTIFACT_BUCKET),
        KMS_KEY_ARN: Ref(KMS_KEY_ARN),
        MODEL_MONITOR_IMAGE: regions.image("ModelMonitor"),
        NOTIFICATION_TOPIC_ARN: Ref(NOTIFICATION_TOPIC_ARN),
        SAGEMAKER_ROLE_ARN: Ref(SAGEMAKER_ROLE_ARN),
    }
    if xgboost(config):
        values[XGBOOST_IMAGE] = regions.image("XGBoost")
    return values


def artifacts(config: Config) -> dict[str, str]:
    """``workflow.asl.json``: the definition for ASL validators, placeholders left in."""
    return {"workflow.asl.json": json.dumps(definition(config), indent=2, sort_keys=False) + "\n"}


# ------------------------------------------------------------------------ template

ARN_PARTITION = r"arn:aws[a-z-]*"


def _parameters(template: Template) -> None:
    template.add_parameter(
        Parameter(
            KMS_KEY_ARN,
            Type="String",
            Description="ARN of the project KMS key (log group, state machine, job volumes and outputs).",
            AllowedPattern=rf"^{ARN_PARTITION}:kms:[a-z0-9-]+:\d{{12}}:key/[a-zA-Z0-9-]{{1,128}}$",
            MaxLength=256,
            ConstraintDescription="must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias",
        )
    )
    template.add_parameter(
        Parameter(
            ARTIFACT_BUCKET,
            Type="String",
            Description="Name of the artifact bucket; runs write under runs/<RunId>/.",
            AllowedPattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            MaxLength=63,
            ConstraintDescription="must be an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)",
        )
    )
    for name, description in (
        (SAGEMAKER_ROLE_ARN, "ARN of the role SageMaker jobs and models run as."),
        (STATES_ROLE_ARN, "ARN of the role the state machine runs as."),
    ):
        template.add_parameter(
            Parameter(
                name,
                Type="String",
                Description=description,
                AllowedPattern=rf"^{ARN_PARTITION}:iam::\d{{12}}:role/[\w+=,.@/-]{{1,512}}$",
                MaxLength=2048,
                ConstraintDescription="must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
            )
        )
    template.add_parameter(
        Parameter(
            NOTIFICATION_TOPIC_ARN,
            Type="String",
            Description="ARN of the SNS topic told about failed or rejected runs.",
            AllowedPattern=rf"^{ARN_PARTITION}:sns:[a-z0-9-]+:\d{{12}}:[A-Za-z0-9_-]{{1,256}}$",
            MaxLength=1024,
            ConstraintDescription="must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
        )
    )


def build(config: Config) -> Template:
    """The workflow stack.

    Creates ``AWS::Logs::LogGroup`` (KMS, retention), ``AWS::SageMaker::ModelPackageGroup``
    ``<base>-models`` and ``AWS::StepFunctions::StateMachine`` ``<base>-training``
    (STANDARD, customer-managed KMS encryption, logging, X-Ray tracing).
    """
    template = common.new_template(
        config, "Training workflow: Step Functions state machine and SageMaker model package group"
    )
    context.describe_template(
        template,
        "Step Functions runs SageMaker jobs: preprocess, then training beside a Model Monitor "
        "baseline, then evaluation; a quality gate on the evaluation registers the model in "
        "the model package group or notifies the SNS topic and fails.",
        must=[
            (
                "Job names <base>-<RunId>-<step>-<Attempt>-<RedriveCount> are new for every "
                "execution and redrive, and fit in 63 characters: RunId has at most "
                f"{naming.RUN_ID_MAX_LENGTH} characters of [a-z0-9-]"
            ),
            "Every Task catches all errors into $.Failure, notifies, then fails",
        ],
    )
    _parameters(template)
    images = {"ModelMonitor": "model-monitor"}
    if xgboost(config):
        images["XGBoost"] = f"xgboost-{config.training.xgboost_version}"
    regions.add_mapping(template, images)

    name = naming.physical_name(config, "training", "state-machine")
    log_group = template.add_resource(
        common.log_group(
            LOG_GROUP,
            config,
            COMPONENT,
            Ref(KMS_KEY_ARN),
            config.pipeline.log_retention_days,
            # The /aws/vendedlogs/ prefix keeps Step Functions from adding a statement
            # per state machine to the account's size-limited logs resource policy.
            # The stack's ID in the name: a re-created project never collides with the
            # log group a deleted one kept.
            name=Sub(f"/aws/vendedlogs/states/{name}-${{Suffix}}", Suffix=common.stack_suffix()),
        )
    )
    group = template.add_resource(
        context.describe(
            sagemaker.ModelPackageGroup(
                MODEL_PACKAGE_GROUP,
                ModelPackageGroupName=naming.physical_name(config, "models"),
                ModelPackageGroupDescription=f"Quality-gated models of {naming.base(config)}",
                Tags=common.tags(config, COMPONENT),
                # Registered versions are the audit trail of what was deployed: keep them.
                DeletionPolicy=common.RETAIN,
                UpdateReplacePolicy="Retain",
            ),
            "Registry of the models that passed the quality gate; deploy stages and "
            "approvers pick versions from it.",
        )
    )
    machine = template.add_resource(
        context.describe(
            stepfunctions.StateMachine(
                STATE_MACHINE,
                StateMachineName=name,
                StateMachineType="STANDARD",
                RoleArn=Ref(STATES_ROLE_ARN),
                Definition=definition(config),
                DefinitionSubstitutions=substitutions(config),
                EncryptionConfiguration=stepfunctions.EncryptionConfiguration(
                    Type="CUSTOMER_MANAGED_KMS_KEY",
                    KmsKeyId=Ref(KMS_KEY_ARN),
                    KmsDataKeyReusePeriodSeconds=300,
                ),
                # Level ALL records every state transition for audit; execution data stays
                # out of the logs because inputs, outputs and error causes carry data
                # locations and job details that the execution history already keeps
                # (behind Step Functions IAM) for the runs that need debugging.
                LoggingConfiguration=stepfunctions.LoggingConfiguration(
                    Level="ALL",
                    IncludeExecutionData=False,
                    Destinations=[
                        stepfunctions.LogDestination(
                            CloudWatchLogsLogGroup=stepfunctions.CloudWatchLogsLogGroup(
                                LogGroupArn=GetAtt(log_group, "Arn")
                            )
                        )
                    ],
                ),
                TracingConfiguration=stepfunctions.TracingConfiguration(Enabled=True),
                Tags=common.tags(config, COMPONENT),
            ),
            "Training workflow the pipeline's Train stage starts once per run.",
        )
    )
    template.add_output(
        [
            Output(
                "StateMachineArn",
                Description="ARN of the training state machine",
                Value=Ref(machine),
            ),
            Output(
                "StateMachineName",
                Description="Name of the training state machine",
                Value=GetAtt(machine, "Name"),
            ),
            Output(
                "ModelPackageGroupArn",
                Description="ARN of the model package group the workflow registers models in",
                Value=GetAtt(group, "ModelPackageGroupArn"),
            ),
            Output(
                "LogGroupName", Description="Log group of the state machine", Value=Ref(log_group)
            ),
        ]
    )
    return template
