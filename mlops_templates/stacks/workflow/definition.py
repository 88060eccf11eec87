"""The workflow's definition: the states in order, rendered as ASL, with the
``DefinitionSubstitutions`` that fill its placeholders, and the ASL file for validators."""

from __future__ import annotations

import json
from typing import Any

from troposphere import Ref

from mlops_templates import asl, naming, regions
from mlops_templates.asl import StateMachine
from mlops_templates.config import Config
from mlops_templates.stacks.workflow.inputs import input_states
from mlops_templates.stacks.workflow.jobs import (
    evaluate_state,
    model_monitor,
    preprocess_state,
    train_and_baseline_state,
    train_state,
)
from mlops_templates.stacks.workflow.names import (
    ARTIFACT_BUCKET,
    KMS_KEY_ARN,
    MODEL_MONITOR_IMAGE,
    NOTIFICATION_TOPIC_ARN,
    SAGEMAKER_ROLE_ARN,
    XGBOOST_IMAGE,
)
from mlops_templates.stacks.workflow.outcome import (
    failure_states,
    gate_states,
    register_states,
)
from mlops_templates.stacks.workflow.tasks import tuning, xgboost
from mlops_templates.stacks.workflow.tuning import tune_states


def state_machine(config: Config) -> StateMachine:
    """The whole workflow as typed states (see the module docstring for the flow)."""
    return StateMachine(
        [
            *input_states(config),
            preprocess_state(config),
            *training_states(config),
            evaluate_state(config),
            *gate_states(config),
            *register_states(config),
            *failure_states(config),
        ],
        comment=f"Train, evaluate, gate and register a model of {naming.base(config)}.",
    )


def training_states(config: Config) -> list[asl.State]:
    """What trains: one training job or a tuning job (beside the baseline with Model Monitor)."""
    if model_monitor(config):
        return [train_and_baseline_state(config)]
    return tune_states(config) if tuning(config) else [train_state(config)]


def definition(config: Config) -> dict[str, Any]:
    """The rendered ASL definition, ``${...}`` placeholders left in."""
    return state_machine(config).render()


def substitutions(config: Config) -> dict[str, Any]:
    """DefinitionSubstitutions: placeholder -> CloudFormation value."""
    values: dict[str, Any] = {
        ARTIFACT_BUCKET: Ref(ARTIFACT_BUCKET),
        KMS_KEY_ARN: Ref(KMS_KEY_ARN),
        NOTIFICATION_TOPIC_ARN: Ref(NOTIFICATION_TOPIC_ARN),
        SAGEMAKER_ROLE_ARN: Ref(SAGEMAKER_ROLE_ARN),
    }
    if model_monitor(config):
        values[MODEL_MONITOR_IMAGE] = regions.image("ModelMonitor")
    if xgboost(config):
        values[XGBOOST_IMAGE] = regions.image("XGBoost")
    return values


def artifacts(config: Config) -> dict[str, str]:
    """``workflow.asl.json``: the definition for ASL validators, placeholders left in."""
    return {"workflow.asl.json": json.dumps(definition(config), indent=2, sort_keys=False) + "\n"}

