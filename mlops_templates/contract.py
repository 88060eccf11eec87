"""The pipeline's runtime contract: the names the pipeline stack, the per-run stacks and
the pipeline's CodeBuild steps must agree on, written once.

Standard library only, and nothing imported: the TrainOutput build runs
``stacks/pipeline_build.py`` from the source checkout, without the library's
dependencies installed, and that file reads this one.
"""

from __future__ import annotations

# -- The Build project's environment ---------------------------------------------------

#: Variables the pipeline stack sets on the Build project.
STACK_ENV = (
    "PROJECT_PREFIX",
    "SAGEMAKER_PROJECT_NAME",
    "SAGEMAKER_PROJECT_ID",
    "CONFIG_FILE",
    "ARTIFACT_BUCKET",
    "DATA_BUCKET",
    "DATA_PREFIX",
    "KMS_KEY_ARN",
    "SAGEMAKER_ROLE_ARN",
    "STATES_ROLE_ARN",
    "NOTIFICATION_TOPIC_ARN",
    "NOTIFICATION_EMAIL",
    "IMAGE_REPOSITORY_NAME",
    "IMAGE_REPOSITORY_URI",
)
#: Set only when the pipeline stack created the VPC: passed on to the per-run stacks.
NETWORK_ENV = ("SUBNET_IDS", "SECURITY_GROUP_IDS")
#: Variables the Build action sets per run (from CodePipeline variables).
ACTION_ENV = ("PIPELINE_EXECUTION_ID", "TRAINING_DATA_URI")
#: Variables the build computes; exported to later actions as ``#{BuildVariables.<name>}``.
EXPORTED = ("RUN_ID", "IMAGE_URI", "TRAINING_DATA_URI")

# -- Runs ------------------------------------------------------------------------------

#: The per-run stacks the build renders and packages, in deployment order (each only where
#: the config enables it: ``deployment.mode`` turns the endpoint stacks or the batch stack off).
RUN_STACKS = ("workflow", "deploy-dev", "deploy-prd", "batch")
#: Run ids are ``[a-z0-9-]``, at most this long: the first two groups of the CodePipeline
#: execution id, leaving room in SageMaker job names for the workflow's attempt suffix.
RUN_ID_MAX_LENGTH = 13
#: Value of the ``TrainingDataUri`` pipeline variable that means "newest upload".
LATEST = "latest"
#: The e-mail Parameter's value for "no subscription" (Service Catalog passes no empty values).
NO_EMAIL = "none"

# -- Files between the actions ---------------------------------------------------------

#: The training state machine's execution input, written by the Build action.
EXECUTION_INPUT = "workflow-input.json"
#: The state machine's output, written by the TrainOutput action.
TRAIN_OUTPUT = "train-output.json"

# -- Parameters of the per-run stacks the build fills in ---------------------------------

KMS_KEY_ARN = "KmsKeyArn"
ARTIFACT_BUCKET = "ArtifactBucket"
SAGEMAKER_ROLE_ARN = "SageMakerRoleArn"
EXECUTION_ROLE_ARN = "ExecutionRoleArn"
STATES_ROLE_ARN = "StatesRoleArn"
NOTIFICATION_TOPIC_ARN = "NotificationTopicArn"
DATA_BUCKET = "DataBucket"
NOTIFICATION_EMAIL = "NotificationEmail"
DATA_CAPTURE_URI = "DataCaptureUri"
MONITORING_OUTPUT_URI = "MonitoringOutputUri"
GROUND_TRUTH_URI = "GroundTruthUri"
#: Where in the artifact bucket the endpoint captures requests and monitoring reports land.
DATA_CAPTURE_PREFIX = "data-capture"
MONITORING_PREFIX = "monitoring"

# ...and those the training output supplies (``Fn::GetParam`` on TRAIN_OUTPUT).
MODEL_DATA_URL = "ModelDataUrl"
IMAGE_URI = "ImageUri"
BASELINE_STATISTICS_URI = "BaselineStatisticsUri"
BASELINE_CONSTRAINTS_URI = "BaselineConstraintsUri"
#: Training-output keys each deploy stack takes as parameter overrides.
TRAIN_OUTPUT_OVERRIDES: dict[str, tuple[str, ...]] = {
    "deploy-dev": (MODEL_DATA_URL, IMAGE_URI),
    "deploy-prd": (MODEL_DATA_URL, IMAGE_URI, BASELINE_STATISTICS_URI, BASELINE_CONSTRAINTS_URI),
}
TRAIN_OUTPUT_KEYS = tuple(sorted({key for keys in TRAIN_OUTPUT_OVERRIDES.values() for key in keys}))

# -- Monitoring ---------------------------------------------------------------------------

#: Inference ids of synthetic requests (deployment hooks, smoke tests) start with this; the
#: monitor leaves them out of live data. The hooks and the monitor job get it from the stack.
SYNTHETIC_INFERENCE_ID_PREFIX = "synthetic-"
#: Where in the artifact bucket ground truth is uploaded: ``<prefix>/yyyy/mm/dd/hh/*.jsonl``
#: (the hour the labels were collected), in Model Monitor's ground-truth format.
GROUND_TRUTH_PREFIX = "ground-truth"
#: CloudWatch metrics the monitor job writes into metrics.json (the container's
#: ``mlcontainer.monitor.METRICS`` is the same list; a test keeps them equal).
MONITOR_METRICS = (
    "FeaturesDrifted", "FeatureDrift", "PredictionDrift", "Records", "Rows", "SyntheticRecords",
    "MissingValues", "InvalidValues", "OutOfRangeValues", "GroundTruthRows", "JoinedRows",
    "RMSE", "MAE", "R2", "MonitorFailed",
)
#: The metric of each ``monitoring.quality.metric``.
QUALITY_METRIC_NAMES = {"rmse": "RMSE", "mae": "MAE", "r2": "R2"}

# -- Batch inference --------------------------------------------------------------------------

#: A batch input line is ``<row id>,<features>``: the model gets the features (the transform's
#: ``InputFilter``), each output line is the whole input line and its prediction
#: (``JoinSource: Input``), so every prediction keeps its row id; the monitor reads that
#: output (its ``INPUT_FORMAT=batch``) and joins ground truth on the row id.
BATCH_INPUT_FILTER = "$[1:]"
BATCH_JOIN_SOURCE = "Input"
BATCH_OUTPUT_FILTER = "$"
