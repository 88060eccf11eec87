"""``training``: the training job, its quality gate and hyperparameter tuning (part of the
config model, :mod:`mlops_templates.config`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from mlops_templates.config_base import (
    InstanceType,
    _Model,
)


class QualityGate(_Model):
    """Training quality gate: the model is registered only if the metric passes."""

    #: Test-split metric of `evaluation.json` the gate compares.
    metric: Literal["rmse", "mae", "r2"] = "rmse"
    #: Comparison the metric must pass against the threshold.
    operator: Literal["<", "<=", ">", ">="] = "<"
    #: Threshold of the quality gate.
    threshold: float = 3.0


class ParameterRange(_Model):
    """One hyperparameter's search range: numeric (`min`, `max`, `scaling`) or categorical
    (`values`)."""

    #: `integer` or `continuous` (with `min` and `max`), or `categorical` (with `values`).
    type: Literal["integer", "continuous", "categorical"]
    #: Numeric ranges: the smallest value tried.
    min: float | None = None
    #: Numeric ranges: the largest value tried.
    max: float | None = None
    #: Numeric ranges: how SageMaker samples between min and max (`Logarithmic` needs values
    #: above 0; `ReverseLogarithmic`, continuous only, values within 0 <= x < 1).
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = "Auto"
    #: Categorical ranges: the values tried.
    values: list[str | int | float] = Field(default_factory=list, max_length=30)

    @model_validator(mode="after")
    def _shape(self) -> ParameterRange:
        if self.type == "categorical":
            if not self.values or self.min is not None or self.max is not None:
                raise ValueError("a categorical range takes values (and no min or max)")
            if self.scaling != "Auto":
                raise ValueError("a categorical range has no scaling")
        elif self.min is None or self.max is None or self.values:
            raise ValueError(f"an {self.type} range takes min and max (and no values)")
        return self


def _default_ranges() -> dict[str, ParameterRange]:
    return {
        "max_depth": ParameterRange(type="integer", min=2, max=8),
        "eta": ParameterRange(type="continuous", min=0.01, max=0.3, scaling="Logarithmic"),
        "min_child_weight": ParameterRange(type="continuous", min=1, max=20),
    }


class TuningConfig(_Model):
    """Hyperparameter tuning: a SageMaker tuning job instead of the single training job; its
    best training job's model goes on to evaluation, the gate and registration."""

    #: Run a hyperparameter tuning job instead of one training job (custom image only).
    enabled: bool = False
    #: The metric the search minimises: the validation RMSE the container prints per round.
    objective_metric: Literal["validation:rmse"] = "validation:rmse"
    #: How SageMaker chooses the next hyperparameters.
    strategy: Literal["Bayesian", "Random"] = "Bayesian"
    #: Training jobs the search runs in all.
    max_jobs: int = Field(default=10, ge=1, le=500)
    #: Training jobs run at the same time.
    max_parallel_jobs: int = Field(default=2, ge=1, le=100)
    #: `Auto`: SageMaker stops training jobs whose objective lags behind the earlier ones'.
    early_stopping: Literal["Auto", "Off"] = "Off"
    #: Hyperparameter name -> range, each checked against the container's own rule for it.
    #: A tuned hyperparameter is left out of the fixed `hyperparameters` (the range wins over
    #: a default); naming it in an explicit `hyperparameters` is refused.
    ranges: dict[str, ParameterRange] = Field(
        default_factory=_default_ranges, min_length=1, max_length=30
    )

    @model_validator(mode="after")
    def _ranges(self) -> TuningConfig:
        from mlops_templates.tuning import check_range

        for name, spec in self.ranges.items():
            check_range(name, spec.type, spec.min, spec.max, spec.scaling, spec.values)
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(
                f"max_parallel_jobs ({self.max_parallel_jobs}) must not exceed max_jobs "
                f"({self.max_jobs})"
            )
        return self


class TrainingConfig(_Model):
    #: Training image: the project's container (`container/`) or SageMaker's built-in XGBoost.
    image: Literal["custom", "xgboost"] = "custom"
    #: Version of the built-in XGBoost image (`image: xgboost`).
    xgboost_version: str = "1.7-1"

    @field_validator("xgboost_version")
    @classmethod
    def _known_xgboost(cls, version: str) -> str:
        from mlops_templates.regions import xgboost_versions

        if version not in xgboost_versions():
            raise ValueError(
                f"built-in XGBoost version '{version}' is not in the image table "
                f"(known: {', '.join(xgboost_versions())})"
            )
        return version

    #: Instance type of the training job (a GPU family trains with CUDA).
    instance_type: InstanceType = "ml.m5.xlarge"
    #: Instances of the training job.
    instance_count: int = Field(default=1, ge=1, le=20)
    #: Volume of the training job (KMS-encrypted).
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    #: Time limit of the training job.
    max_runtime_seconds: int = Field(default=3600, ge=60, le=432000)
    #: Managed spot training, with checkpoints in S3.
    use_spot: bool = False
    #: Spot only: total wait including interruptions; must be >= max_runtime_seconds.
    max_wait_seconds: int = Field(default=7200, ge=60, le=432000)
    #: Run the training container without network access.
    network_isolation: bool = True
    #: Instance type of the preprocessing, baseline and evaluation jobs.
    processing_instance_type: InstanceType = "ml.m5.xlarge"
    #: Default hyperparameters; a run's execution input may override them.
    hyperparameters: dict[str, str | int | float] = Field(
        default_factory=lambda: {
            "max_depth": 3,
            "eta": 0.05,
            "min_child_weight": 10,
            "subsample": 0.8,
            "num_round": 500,
            "early_stopping_rounds": 20,
        }
    )
    #: Hyperparameter tuning (off by default).
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    gate: QualityGate = Field(default_factory=QualityGate)
    #: Approval status of a newly registered model package. Production serves the newest
    #: approved version: `Approved` sends every model that passes the gate to production.
    model_approval_status: Literal["PendingManualApproval", "Approved"] = (
        "PendingManualApproval"
    )

    @model_validator(mode="after")
    def _spot(self) -> TrainingConfig:
        if self.use_spot and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError(
                f"max_wait_seconds ({self.max_wait_seconds}) must be >= "
                f"max_runtime_seconds ({self.max_runtime_seconds}) for spot training"
            )
        return self

    @model_validator(mode="after")
    def _tuning(self) -> TrainingConfig:
        if not self.tuning.enabled:
            return self
        if self.image != "custom":
            raise ValueError(
                "tuning.enabled needs image 'custom': the ranges are checked against the project "
                "container's rules and its metric (validation:rmse); the built-in XGBoost image "
                "has other hyperparameters and metrics"
            )
        if "hyperparameters" in self.model_fields_set:
            fixed = sorted(set(self.hyperparameters) & set(self.tuning.ranges))
            if fixed:
                raise ValueError(
                    f"hyperparameters fixes {', '.join(fixed)}, which tuning.ranges also tunes: "
                    "remove one of the two"
                )
        return self

    @property
    def fixed_hyperparameters(self) -> dict[str, str | int | float]:
        """The hyperparameters every training job gets: all of ``hyperparameters``, less the
        tuned ones when tuning is on (the range wins over a default)."""
        if not self.tuning.enabled:
            return dict(self.hyperparameters)
        return {k: v for k, v in self.hyperparameters.items() if k not in self.tuning.ranges}
