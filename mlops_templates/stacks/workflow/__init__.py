"""The training workflow: a Step Functions state machine that turns a data set into a
registered, quality-gated model.

Resources: ``AWS::StepFunctions::StateMachine`` ``<base>-training`` (STANDARD, KMS
encrypted, X-Ray traced, logging to an ``AWS::Logs::LogGroup`` encrypted with the
project key) and the ``AWS::SageMaker::ModelPackageGroup`` ``<base>-models``.

Flow (names are the state names)::

    ValidateInput -> LoadSettings -> NewAttempt -> Initialize -> Preprocess
      -> Train | Tune -> ReadBestTrainingJob (training.tuning) (monitoring.engine builtin)
         | TrainAndBaseline (Parallel: Train | Baseline) (monitoring.engine model_monitor)
      -> Evaluate -> ReadEvaluation -> QualityGate
           pass: CreateModel -> RegisterModel -> NotifyRegistered -> Output -> Succeeded
           fail: GateFailed -> NotifyGateFailed -> Failed
    any Task error: <Step>Error -> NotifyFailure -> Failed

With the builtin monitoring engine, preprocess profiles the train split's features and
evaluate completes that profile with the model's prediction distribution: the monitor's
baseline (``baseline/statistics.json`` and ``constraints.json``). With Model Monitor,
training and the analyzer's baseline job both need only the preprocessed splits, so they
run side by side after preprocessing; the baseline is usually done long before training,
so the Parallel costs no wall time. The notices (``NotifyRegistered``, ``NotifyGateFailed``,
``NotifyFailure``) publish one readable message each (:mod:`mlops_templates.notifications`);
a failed notice goes on as if it had been sent. Every Task catches all errors into ``$.Failure``
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
A hyperparameter tuning job (``training.tuning``, :mod:`.tuning`) is named
``<base>-<Attempt>-<RedriveCount>`` (SageMaker allows it 32 characters), its training jobs
after it.

S3 layout of an attempt: ``s3://<ArtifactBucket>/runs/<RunId>/<Attempt>/`` with
``preprocess/{train,validation,test,feature_baseline|baseline[,xgboost]}/``, ``model/``, ``evaluation/``,
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

The definition (:mod:`.definition`: the states of :mod:`.inputs`, :mod:`.jobs` and
:mod:`.outcome`, built from :mod:`.tasks`) is separate from the stack that runs it
(:mod:`.resources`: Parameters, log group, model package group, state machine).
"""

from __future__ import annotations

from mlops_templates.stacks.workflow.definition import (
    artifacts,
    definition,
    state_machine,
    substitutions,
)
from mlops_templates.stacks.workflow.inputs import (
    input_states,
)
from mlops_templates.stacks.workflow.jobs import (
    baseline_state,
    evaluate_state,
    preprocess_state,
    train_and_baseline_state,
    train_state,
)
from mlops_templates.stacks.workflow.names import (
    ADD_DEFAULT_HYPERPARAMETERS,
    ANALYZER_INPUT,
    ANALYZER_OUTPUT,
    API_TIMEOUT_SECONDS,
    ARTIFACT_BUCKET,
    ATTEMPT_ID,
    BASELINE,
    BASELINE_BRANCH,
    COMPONENT,
    CREATE_MODEL,
    EVALUATE,
    FAILED,
    FAILURE_PATH,
    GATE_FAILED,
    GATE_OPERATORS,
    INITIALIZE,
    INPUT_KEYS,
    INVALID_INPUT,
    KMS_KEY_ARN,
    LOAD_SETTINGS,
    LOCAL_STORAGE_FAMILIES,
    LOG_GROUP,
    METRIC_MISSING,
    MODEL_MONITOR_IMAGE,
    MODEL_PACKAGE_GROUP,
    NEW_ATTEMPT,
    NOTIFICATION_TOPIC_ARN,
    NOTIFY_FAILURE,
    NOTIFY_GATE_FAILED,
    NOTIFY_REGISTERED,
    OUTPUT,
    OUTPUT_KEYS,
    PREPROCESS,
    PROCESSING,
    QUALITY_GATE,
    READ_BEST_TRAINING_JOB,
    READ_EVALUATION,
    REDRIVE_COUNT,
    REGISTER_MODEL,
    REJECTION_ERRORS,
    RESOURCE_DESCRIBE_TRAINING_JOB,
    RESOURCE_MODEL,
    RESOURCE_MODEL_PACKAGE,
    RESOURCE_PROCESSING_JOB,
    RESOURCE_S3_GET_OBJECT,
    RESOURCE_SNS_PUBLISH,
    RESOURCE_TRAINING_JOB,
    RESOURCE_TUNING_JOB,
    RUN_ID_PATTERN,
    S3_TRANSIENT,
    SAGEMAKER_ROLE_ARN,
    SAGEMAKER_SDK_TRANSIENT,
    SAGEMAKER_TRANSIENT,
    SNS_TRANSIENT,
    STATE_MACHINE,
    STATES_ROLE_ARN,
    STEP_BASELINE,
    STEP_ERRORS,
    STEP_EVALUATE,
    STEP_MODEL,
    STEP_PREPROCESS,
    STEP_TRAIN,
    STEPS,
    SUCCEEDED,
    TRAIN,
    TRAIN_AND_BASELINE,
    TRAIN_BRANCH,
    TUNE,
    VALIDATE_INPUT,
    XGBOOST_IMAGE,
)
from mlops_templates.stacks.workflow.outcome import (
    failure_states,
    gate_states,
    register_states,
)
from mlops_templates.stacks.workflow.resources import (
    ARN_PARTITION,
    build,
)
from mlops_templates.stacks.workflow.tasks import (
    gate_description,
    gate_metric_path,
    job_name,
    registration_token,
    xgboost,
)

__all__ = [
    "ADD_DEFAULT_HYPERPARAMETERS",
    "ANALYZER_INPUT",
    "ANALYZER_OUTPUT",
    "API_TIMEOUT_SECONDS",
    "ARN_PARTITION",
    "ARTIFACT_BUCKET",
    "ATTEMPT_ID",
    "BASELINE",
    "BASELINE_BRANCH",
    "COMPONENT",
    "CREATE_MODEL",
    "EVALUATE",
    "FAILED",
    "FAILURE_PATH",
    "GATE_FAILED",
    "GATE_OPERATORS",
    "INITIALIZE",
    "INPUT_KEYS",
    "INVALID_INPUT",
    "KMS_KEY_ARN",
    "LOAD_SETTINGS",
    "LOCAL_STORAGE_FAMILIES",
    "LOG_GROUP",
    "METRIC_MISSING",
    "MODEL_MONITOR_IMAGE",
    "MODEL_PACKAGE_GROUP",
    "NEW_ATTEMPT",
    "NOTIFICATION_TOPIC_ARN",
    "NOTIFY_FAILURE",
    "NOTIFY_GATE_FAILED",
    "NOTIFY_REGISTERED",
    "OUTPUT",
    "OUTPUT_KEYS",
    "PREPROCESS",
    "PROCESSING",
    "QUALITY_GATE",
    "READ_BEST_TRAINING_JOB",
    "READ_EVALUATION",
    "REDRIVE_COUNT",
    "REGISTER_MODEL",
    "REJECTION_ERRORS",
    "RESOURCE_DESCRIBE_TRAINING_JOB",
    "RESOURCE_MODEL",
    "RESOURCE_MODEL_PACKAGE",
    "RESOURCE_PROCESSING_JOB",
    "RESOURCE_S3_GET_OBJECT",
    "RESOURCE_SNS_PUBLISH",
    "RESOURCE_TRAINING_JOB",
    "RESOURCE_TUNING_JOB",
    "RUN_ID_PATTERN",
    "S3_TRANSIENT",
    "SAGEMAKER_ROLE_ARN",
    "SAGEMAKER_SDK_TRANSIENT",
    "SAGEMAKER_TRANSIENT",
    "SNS_TRANSIENT",
    "STATES_ROLE_ARN",
    "STATE_MACHINE",
    "STEPS",
    "STEP_BASELINE",
    "STEP_ERRORS",
    "STEP_EVALUATE",
    "STEP_MODEL",
    "STEP_PREPROCESS",
    "STEP_TRAIN",
    "SUCCEEDED",
    "TRAIN",
    "TRAIN_AND_BASELINE",
    "TRAIN_BRANCH",
    "TUNE",
    "VALIDATE_INPUT",
    "XGBOOST_IMAGE",
    "artifacts",
    "baseline_state",
    "build",
    "definition",
    "evaluate_state",
    "failure_states",
    "gate_description",
    "gate_metric_path",
    "gate_states",
    "input_states",
    "job_name",
    "preprocess_state",
    "register_states",
    "registration_token",
    "state_machine",
    "substitutions",
    "train_and_baseline_state",
    "train_state",
    "xgboost",
]
