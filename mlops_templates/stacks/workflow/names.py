"""Names of the training workflow: logical IDs, Parameters, state names, job-name steps,
errors, integrations and the container paths its jobs use."""

from __future__ import annotations

from mlops_templates import asl, contract, naming

COMPONENT = "workflow"

# Logical IDs (stable: renaming one replaces the resource).
STATE_MACHINE = "TrainingStateMachine"
LOG_GROUP = "TrainingStateMachineLogGroup"
MODEL_PACKAGE_GROUP = "ModelPackageGroup"

# Parameters, also the names of the DefinitionSubstitutions placeholders.
KMS_KEY_ARN = contract.KMS_KEY_ARN
ARTIFACT_BUCKET = contract.ARTIFACT_BUCKET
SAGEMAKER_ROLE_ARN = contract.SAGEMAKER_ROLE_ARN
STATES_ROLE_ARN = contract.STATES_ROLE_ARN
NOTIFICATION_TOPIC_ARN = contract.NOTIFICATION_TOPIC_ARN
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
TUNE = "Tune"
READ_BEST_TRAINING_JOB = "ReadBestTrainingJob"
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
NOTIFY_GATE_FAILED = "NotifyGateFailed"
NOTIFY_REGISTERED = "NotifyRegistered"
FAILED = "Failed"

#: Step -> (the state that describes its failure, the error the run then fails with).
#: Caught errors are renamed after the step that failed: the raw names ("States.TaskFailed",
#: "SageMaker.AmazonSageMakerException") say little on their own, and names starting with
#: "States." are reserved, so a Fail state may not re-raise them. The raw error leads the
#: cause ("<raw error>: <raw cause>").
STEP_ERRORS: dict[str, tuple[str, str]] = {
    PREPROCESS: ("PreprocessError", "PreprocessingFailed"),
    TRAIN: ("TrainError", "TrainingFailed"),
    TUNE: ("TuneError", "TuningFailed"),
    READ_BEST_TRAINING_JOB: ("ReadBestTrainingJobError", "BestTrainingJobUnreadable"),
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
RESOURCE_TUNING_JOB = "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync"
RESOURCE_DESCRIBE_TRAINING_JOB = "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob"
RESOURCE_MODEL = "arn:aws:states:::sagemaker:createModel"
RESOURCE_MODEL_PACKAGE = "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
RESOURCE_S3_GET_OBJECT = "arn:aws:states:::aws-sdk:s3:getObject"
RESOURCE_SNS_PUBLISH = "arn:aws:states:::sns:publish"

# Container paths: the processing contract of the project container and of the
# Model Monitor analyzer (its baseline input and output locations are fixed names).
PROCESSING = "/opt/ml/processing"
ANALYZER_INPUT = f"{PROCESSING}/input/baseline_dataset_input"
ANALYZER_OUTPUT = f"{PROCESSING}/output"
#: The train split's feature profile (preprocess writes it, evaluate reads it) and the
#: monitoring baseline evaluate writes (``mlcontainer.paths``).
FEATURE_BASELINE_DIR = f"{PROCESSING}/feature_baseline"
MONITORING_BASELINE_DIR = f"{PROCESSING}/baseline"

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

