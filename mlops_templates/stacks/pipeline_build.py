"""The steps the pipeline's CodeBuild projects run, and the contract between them.

The pipeline stack sets the environment variables in ``contract.STACK_ENV``; CodePipeline
adds those in ``contract.ACTION_ENV`` (:mod:`mlops_templates.contract` holds every name
this file shares with the stacks). The Build project's buildspec calls::

    exports="$(python -m mlops_templates.stacks.pipeline_build env)" && eval "$exports"
    python -m mlops_templates.stacks.pipeline_build outputs --out build/out

``env`` exports ``RUN_ID`` (from the CodePipeline execution id), ``TRAINING_DATA_URI``
(the ``TrainingDataUri`` pipeline variable, or the newest object under the data prefix
when it is ``latest``: an EventBridge rule cannot pass the uploaded key to CodePipeline),
``IMAGE_URI`` (the repository tagged with the run id), ``CONFIG_FILE`` (a derived config
when the pipeline stack created the VPC) and ``DOCKER_BUILD_ARGS``.

The TrainOutput project (which has only the Step Functions output and the source
checkout, not an installed library) runs this file directly::

    python <source>/mlops_templates/stacks/pipeline_build.py train-output --src . --out train-result

so module-level imports are standard library only (and :mod:`mlops_templates.contract`,
found beside this file).

Files written (the Build action's output artifact ``BuildOutput``):

- ``<stack>.yaml`` of each per-run stack the config enables (``workflow``, ``deploy-dev``,
  ``deploy-prd``, ``batch``): packaged templates;
- ``<stack>.json`` of each: CloudFormation TemplateConfiguration files (``Parameters`` and
  ``Tags``);
- ``workflow-input.json``: the training state machine's execution input.

The TrainOutput action writes ``train-output.json`` (artifact ``TrainResult``): the
state machine's output object, read by the deploy actions with ``Fn::GetParam``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a file from the source checkout (the TrainOutput build)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlops_templates import contract
from mlops_templates.contract import (
    EXECUTION_INPUT,
    LATEST,
    NO_EMAIL,
    RUN_ID_MAX_LENGTH,
    TRAIN_OUTPUT,
    TRAIN_OUTPUT_KEYS,
    TRAIN_OUTPUT_OVERRIDES,
)

#: The per-run stacks' Parameters the build fills in from the pipeline's resources.
KNOWN_PARAMETERS_ENV = {
    contract.KMS_KEY_ARN: "KMS_KEY_ARN",
    contract.ARTIFACT_BUCKET: "ARTIFACT_BUCKET",
    contract.SAGEMAKER_ROLE_ARN: "SAGEMAKER_ROLE_ARN",
    contract.EXECUTION_ROLE_ARN: "SAGEMAKER_ROLE_ARN",
    contract.STATES_ROLE_ARN: "STATES_ROLE_ARN",
    contract.NOTIFICATION_TOPIC_ARN: "NOTIFICATION_TOPIC_ARN",
    contract.DATA_BUCKET: "DATA_BUCKET",
}
#: The container's build argument that selects GPU wheels (container/Dockerfile).
GPU_BUILD_ARG = "XGBOOST_VARIANT=cuda"
DERIVED_CONFIG = "build/config/mlops.yaml"


class BuildError(Exception):
    """A build step cannot continue; the message says what to fix."""


def run_id(execution_id: str) -> str:
    """A run id (``[a-z0-9-]``, at most 13 characters) from a CodePipeline execution id.

    ``1624A1D1-3699-43f0-8e1e-6bafd7fde791`` gives ``1624a1d1-3699``: the first two groups
    of the execution id (48 random bits), enough to find the execution in the console and
    to keep runs apart, short enough to leave room in SageMaker job names for the
    workflow's per-attempt suffix. A CodeBuild build id (``<project>:<uuid>``) is accepted
    for builds started by hand.
    """
    text = execution_id.strip().lower().rsplit(":", 1)[-1]
    text = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text))
    result = text[:RUN_ID_MAX_LENGTH].strip("-")
    if not result:
        raise BuildError(f"cannot derive a run id from the execution id {execution_id!r}")
    return result


def latest_object_uri(s3_client: Any, bucket: str, prefix: str) -> str:
    """``s3://`` URI of the newest object under ``prefix`` (folder markers ignored)."""
    newest: dict[str, Any] | None = None
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue
            if newest is None or (item["LastModified"], item["Key"]) > (
                newest["LastModified"],
                newest["Key"],
            ):
                newest = item
    if newest is None:
        raise BuildError(
            f"no training data under s3://{bucket}/{prefix}: upload a file there "
            f"(aws s3 cp data.csv s3://{bucket}/{prefix}) or start the pipeline with the "
            "variable TrainingDataUri=s3://..."
        )
    return f"s3://{bucket}/{newest['Key']}"


def _require(env: Mapping[str, str], *names: str) -> dict[str, str]:
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise BuildError(
            f"environment variable(s) {', '.join(missing)} not set: run this step in the "
            "pipeline's CodeBuild project (the pipeline stack sets them)"
        )
    return {name: env[name] for name in names}


def _load_config(env: Mapping[str, str]) -> Any:
    from mlops_templates import config as config_mod

    values = _require(env, "CONFIG_FILE", "SAGEMAKER_PROJECT_NAME")
    return config_mod.load(values["CONFIG_FILE"], values["SAGEMAKER_PROJECT_NAME"])


def derived_config(data: dict[str, Any], subnet_ids: str, security_group_ids: str) -> dict[str, Any]:
    """The config file's content with the network the pipeline stack created."""
    network = dict(data.get("network") or {})
    network.update(
        create_vpc=False,
        subnet_ids=[s for s in subnet_ids.split(",") if s],
        security_group_ids=[s for s in security_group_ids.split(",") if s],
    )
    network.pop("vpc_id", None)
    return {**data, "network": network}


def run_environment(env: Mapping[str, str], s3_client: Any = None) -> dict[str, str]:
    """The values ``env`` exports: RUN_ID, IMAGE_URI, TRAINING_DATA_URI, CONFIG_FILE and
    DOCKER_BUILD_ARGS."""
    import yaml

    values = _require(
        env, "PROJECT_PREFIX", "CONFIG_FILE", "SAGEMAKER_PROJECT_NAME", "DATA_BUCKET",
        "IMAGE_REPOSITORY_URI",
    )
    execution = env.get("PIPELINE_EXECUTION_ID") or env.get("CODEBUILD_BUILD_ID") or ""
    result = {"RUN_ID": run_id(execution), "CONFIG_FILE": values["CONFIG_FILE"]}
    result["IMAGE_URI"] = f"{values['IMAGE_REPOSITORY_URI']}:{result['RUN_ID']}"

    data_uri = (env.get("TRAINING_DATA_URI") or LATEST).strip()
    if data_uri == LATEST:
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        data_uri = latest_object_uri(s3_client, values["DATA_BUCKET"], env.get("DATA_PREFIX", ""))
    elif not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+", data_uri):
        raise BuildError(
            f"TrainingDataUri must be '{LATEST}' or an s3://bucket/key URI (got {data_uri!r})"
        )
    result["TRAINING_DATA_URI"] = data_uri

    if env.get("SUBNET_IDS"):
        source = Path(values["CONFIG_FILE"])
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        derived = derived_config(data, env["SUBNET_IDS"], env.get("SECURITY_GROUP_IDS", ""))
        target = Path(DERIVED_CONFIG)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(derived, sort_keys=False), encoding="utf-8")
        result["CONFIG_FILE"] = str(target)

    cfg = _load_config({**env, "CONFIG_FILE": result["CONFIG_FILE"]})
    if cfg.project.prefix != values["PROJECT_PREFIX"]:
        raise BuildError(
            f"{values['CONFIG_FILE']}: project.prefix is '{cfg.project.prefix}' but this pipeline "
            f"was created with prefix '{values['PROJECT_PREFIX']}'; names would not match. "
            "Use the config the Studio product was published from"
        )
    result["DOCKER_BUILD_ARGS"] = docker_build_args(cfg)
    return result


def docker_build_args(cfg: Any) -> str:
    """``docker build`` arguments for the training instance type (GPU wheels on GPUs)."""
    from mlops_templates.config_base import GPU_FAMILIES

    family = cfg.training.instance_type.split(".")[1]
    return f"--build-arg {GPU_BUILD_ARG}" if family in GPU_FAMILIES else ""


def _known_values(env: Mapping[str, str]) -> dict[str, str]:
    values = _require(env, *sorted(set(KNOWN_PARAMETERS_ENV.values())))
    known = {parameter: values[name] for parameter, name in KNOWN_PARAMETERS_ENV.items()}
    bucket = values["ARTIFACT_BUCKET"]
    known[contract.DATA_CAPTURE_URI] = f"s3://{bucket}/{contract.DATA_CAPTURE_PREFIX}"
    known[contract.MONITORING_OUTPUT_URI] = f"s3://{bucket}/{contract.MONITORING_PREFIX}"
    known[contract.GROUND_TRUTH_URI] = f"s3://{bucket}/{contract.GROUND_TRUTH_PREFIX}"
    email = env.get("NOTIFICATION_EMAIL", "").strip()
    if email and email != NO_EMAIL:
        known[contract.NOTIFICATION_EMAIL] = email
    return known


def template_configuration(
    stack: str, parameters: Mapping[str, Any], env: Mapping[str, str], configured: Mapping[str, str]
) -> dict[str, Any]:
    """TemplateConfiguration for ``stack`` whose Parameters are ``parameters``.

    Values come from the config's ``parameters.<stack>``, then from the pipeline
    stack's resources; values the Train output supplies are left to the action.
    """
    overridden = set(TRAIN_OUTPUT_OVERRIDES.get(stack, ()))
    values = {**configured, **_known_values(env)}
    chosen: dict[str, str] = {}
    for name, parameter in parameters.items():
        if name in overridden:
            continue
        if name in values:
            chosen[name] = values[name]
        elif (
            parameter if isinstance(parameter, Mapping) else getattr(parameter, "properties", {})
        ).get("Default") is None:
            raise BuildError(
                f"stack {stack}: parameter {name} has no value; set parameters.{stack}.{name} "
                "in the config file or give the parameter a Default"
            )
    tags = {
        "sagemaker:project-name": env.get("SAGEMAKER_PROJECT_NAME", ""),
        "sagemaker:project-id": env.get("SAGEMAKER_PROJECT_ID", ""),
    }
    return {"Parameters": chosen, "Tags": {k: v for k, v in tags.items() if v}}


def execution_input(cfg: Any, env: Mapping[str, str]) -> dict[str, Any]:
    """The training state machine's input for this run."""
    values = _require(env, "RUN_ID", "TRAINING_DATA_URI", "IMAGE_URI")
    return {
        "RunId": values["RUN_ID"],
        "TrainingDataUri": values["TRAINING_DATA_URI"],
        contract.IMAGE_URI: values["IMAGE_URI"],
        "Hyperparameters": {k: str(v) for k, v in cfg.training.hyperparameters.items()},
    }


def write_outputs(env: Mapping[str, str], out_dir: str | Path) -> list[Path]:
    """Write the TemplateConfiguration files and the execution input into ``out_dir``."""
    from mlops_templates import stacks

    cfg = _load_config(env)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"{stack}.json": template_configuration(
            stack,
            stacks.module(stack).build(cfg).parameters,
            env,
            cfg.parameters.get(stack, {}),
        )
        for stack in stacks.run_stacks(cfg)
    }
    files[EXECUTION_INPUT] = execution_input(cfg, env)
    written = []
    for name, content in files.items():
        path = out / name
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def normalize_train_output(src: str | Path, out_file: str | Path) -> dict[str, Any]:
    """Find the state machine's output in the Step Functions action's artifact.

    The action stores the execution's ``output`` (a JSON object) in its artifact; the
    file inside is located by content, so the deploy actions read one fixed name.
    """
    src_path, out_path = Path(src), Path(out_file).resolve()
    found: list[str] = []
    for path in sorted(p for p in src_path.rglob("*") if p.is_file()):
        if path.resolve() == out_path:
            continue
        found.append(str(path.relative_to(src_path)))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict) and contract.MODEL_DATA_URL in data:
            missing = [key for key in TRAIN_OUTPUT_KEYS if not isinstance(data.get(key), str)]
            if missing:
                raise BuildError(
                    f"{path}: the training output lacks {', '.join(missing)}; the workflow "
                    "must return them as strings"
                )
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            return data
    raise BuildError(
        f"no training output (a JSON object with ModelDataUrl) in {src_path}; "
        f"files found: {', '.join(found) or 'none'}"
    )


def _exports(values: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pipeline_build", description="Steps of the project pipeline's CodeBuild builds."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print `export` lines for the run's variables (RUN_ID, IMAGE_URI, ...)")
    p = sub.add_parser("outputs", help="write TemplateConfiguration files and the execution input")
    p.add_argument("--out", required=True)
    p = sub.add_parser("train-output", help="extract the training output into one JSON file")
    p.add_argument("--src", default=".")
    p.add_argument("--out", required=True, help="directory to write train-output.json into")
    args = parser.parse_args(argv)
    environ = os.environ if env is None else env
    errors: tuple[type[Exception], ...] = (BuildError,)
    if args.command != "train-output":
        from mlops_templates.errors import MlopsError

        errors = (BuildError, MlopsError)
    try:
        if args.command == "env":
            sys.stdout.write(_exports(run_environment(environ)))
        elif args.command == "outputs":
            for path in write_outputs(environ, args.out):
                print(path)
        else:
            normalize_train_output(args.src, Path(args.out) / TRAIN_OUTPUT)
            print(Path(args.out) / TRAIN_OUTPUT)
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
