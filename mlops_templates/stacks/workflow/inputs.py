"""The first states: validate the execution input and build the run context."""

from __future__ import annotations

from mlops_templates import asl
from mlops_templates.asl import Choice, Compare, Not, Or, Pass, Rule
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.names import (
    ADD_DEFAULT_HYPERPARAMETERS,
    ARTIFACT_BUCKET,
    ATTEMPT_ID,
    FAILURE_PATH,
    INITIALIZE,
    INVALID_INPUT,
    LOAD_SETTINGS,
    NEW_ATTEMPT,
    NOTIFY_FAILURE,
    PREPROCESS,
    RUN_ID_PATTERN,
    VALIDATE_INPUT,
)
from mlops_templates.stacks.workflow.tasks import hyperparameter, placeholder, xgboost

RUN = "$.RunId"
ATTEMPT = "$.NewAttempt.Id"
#: The input fields every execution must have, as non-empty strings.
REQUIRED_INPUT = ("RunId", "TrainingDataUri", "ImageUri")


def run_paths(config: Config) -> dict[str, str]:
    """The S3 locations of one attempt, under ``runs/<RunId>/<Attempt>/``."""

    def uri(suffix: str) -> str:
        return asl.fmt(f"s3://{{}}/runs/{{}}/{{}}/{suffix}", "$.Settings.Bucket", RUN, ATTEMPT)

    paths: dict[str, str] = {
        "Train.$": uri("preprocess/train/"),
        "Validation.$": uri("preprocess/validation/"),
        "Test.$": uri("preprocess/test/"),
        "Model.$": uri("model/"),
        "Evaluation.$": uri("evaluation/"),
        "EvaluationReport.$": uri("evaluation/evaluation.json"),
        "EvaluationKey.$": asl.fmt("runs/{}/{}/evaluation/evaluation.json", RUN, ATTEMPT),
        "Baseline.$": uri("baseline/"),
        "BaselineStatistics.$": uri("baseline/statistics.json"),
        "BaselineConstraints.$": uri("baseline/constraints.json"),
    }
    # The input of the monitoring baseline: Model Monitor's baseline dataset, or the train
    # split's feature profile that evaluate completes (``baseline/`` holds the result).
    if config.monitoring.engine == "model_monitor":
        paths["BaselineDataset.$"] = uri("preprocess/baseline/")
    else:
        paths["FeatureBaseline.$"] = uri("preprocess/feature_baseline/")
    if xgboost(config):
        paths["XGBoost.$"] = uri("preprocess/xgboost/")
        paths["XGBoostTrain.$"] = uri("preprocess/xgboost/train/")
        paths["XGBoostValidation.$"] = uri("preprocess/xgboost/validation/")
    if config.training.use_spot:
        paths["Checkpoints.$"] = uri("checkpoints/")
    return paths


def validation_states() -> list[asl.State]:
    """``ValidateInput`` and where it sends an input: refused, completed, or accepted."""
    missing = Or([asl.is_present(f"$.{key}", False) for key in REQUIRED_INPUT])
    not_strings = Or([Not(asl.is_string(f"$.{key}")) for key in REQUIRED_INPUT])
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
    ]


def context_states(config: Config) -> list[asl.State]:
    """Load the build-time settings, draw the attempt id, and replace the input with the
    run context."""
    defaults = {k: hyperparameter(v) for k, v in config.training.fixed_hyperparameters.items()}
    return [
        Pass(
            name=LOAD_SETTINGS,
            comment="Build-time settings; the bucket comes from the stack's parameters.",
            result={"Bucket": placeholder(ARTIFACT_BUCKET), "Hyperparameters": defaults},
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
                "RunId.$": RUN,
                "Attempt.$": ATTEMPT,
                "TrainingDataUri.$": "$.TrainingDataUri",
                "ImageUri.$": "$.ImageUri",
                "Hyperparameters.$": asl.json_merge(
                    "$.Settings.Hyperparameters", "$.Hyperparameters"
                ),
                "Paths": run_paths(config),
            },
            next=PREPROCESS,
        ),
    ]


def input_states(config: Config) -> list[asl.State]:
    """Validate the execution input and build the run context every later state uses.

    ``NewAttempt`` draws the attempt id; ``Initialize`` replaces the input with
    ``{RunId, Attempt, TrainingDataUri, ImageUri, Hyperparameters, Paths}``, the paths
    under ``runs/<RunId>/<Attempt>/``. Job names are made by the Tasks (:func:`job_name`).
    """
    return [*validation_states(), *context_states(config)]
