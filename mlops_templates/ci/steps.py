"""The steps a CI workflow runs with this library, after it assumed the ``ci-oidc`` role.

They replace what CodePipeline does around the same build commands (the CodeBuild
buildspec's): ``env`` prints the pipeline stack's resources as the build's environment
(what the pipeline stack sets on its CodeBuild project, ``contract.STACK_ENV``);
``deploy`` deploys one packaged per-run stack with the pipeline's CloudFormation role and
its TemplateConfiguration file, plus the training output for the endpoint stacks
(CodePipeline's CloudFormation actions); production's deploy first sets the run's model
package to Approved, saying who approved where (the environment's reviewers or the manual
job approved the run), so the registry says what production serves; ``train`` starts the training workflow and waits
for it (CodePipeline's Step Functions action), writing ``train-output.json`` the way the
TrainOutput build does.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from mlops_templates import contract, naming, registry
from mlops_templates.config import Config
from mlops_templates.deploy import StackSpec, deploy_stack
from mlops_templates.errors import MlopsError
from mlops_templates.stacks import pipeline_build
from mlops_templates.stacks.pipeline.builds import CONFIG_FILE

#: The pipeline stack's outputs each build variable comes from (the rest come from the
#: config or the stack's Parameters).
OUTPUT_ENV = {
    "ARTIFACT_BUCKET": "ArtifactBucketName",
    "DATA_BUCKET": "DataBucketName",
    "KMS_KEY_ARN": "KmsKeyArn",
    "SAGEMAKER_ROLE_ARN": "SageMakerRoleArn",
    "STATES_ROLE_ARN": "StatesRoleArn",
    "NOTIFICATION_TOPIC_ARN": "NotificationTopicArn",
    "IMAGE_REPOSITORY_URI": "ImageRepositoryUri",
}
#: ...and the network the pipeline stack created (``network.create_vpc``).
NETWORK_OUTPUTS = {"SUBNET_IDS": "SubnetIds", "SECURITY_GROUP_IDS": "SecurityGroupId"}
#: Capabilities of each per-run stack's deployment, as CodePipeline's actions give them.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "workflow": (),
    "deploy-dev": (),
    "deploy-prd": ("CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"),
}
#: How often ``train`` asks Step Functions about the execution.
POLL_SECONDS = 30.0
#: Step Functions' states of an execution that has ended.
ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class StepError(MlopsError):
    """A CI step cannot continue; the message says why and what to do."""


def _call(what: str, func: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return func(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise StepError(f"{what}: {err}") from None


def stack_outputs(boto: Any, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The outputs and Parameters of the deployed stack ``name``."""
    found = _call(
        f"read stack {name} (deploy it first: make deploy STAGE=system)",
        boto.client("cloudformation").describe_stacks,
        StackName=name,
    )["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])}
    return outputs, parameters


def stack_env(config: Config, outputs: Mapping[str, str], parameters: Mapping[str, str]) -> dict[str, str]:
    """The Build project's environment (``contract.STACK_ENV``, and ``NETWORK_ENV`` when
    the stack made the VPC) from the pipeline stack's outputs and Parameters."""
    if "PipelineName" in outputs:
        raise StepError(
            f"the pipeline stack runs CodePipeline {outputs['PipelineName']}: a CI workflow beside it "
            "would deploy the same stacks. Set pipeline.orchestrator to github or gitlab and deploy "
            "the pipeline stack again (make deploy STAGE=system)"
        )
    missing = sorted(set(OUTPUT_ENV.values()) - set(outputs))
    if missing:
        raise StepError(f"the pipeline stack has no output(s) {', '.join(missing)}: deploy it again")
    env = {
        "PROJECT_PREFIX": config.project.prefix,
        "SAGEMAKER_PROJECT_NAME": parameters.get("SageMakerProjectName", config.project.name),
        "SAGEMAKER_PROJECT_ID": parameters.get("SageMakerProjectId", ""),
        "CONFIG_FILE": CONFIG_FILE,
        "DATA_PREFIX": config.pipeline.data_prefix,
        "NOTIFICATION_EMAIL": parameters.get("NotificationEmail", contract.NO_EMAIL),
        **{name: outputs[key] for name, key in OUTPUT_ENV.items()},
    }
    env["IMAGE_REPOSITORY_NAME"] = env["IMAGE_REPOSITORY_URI"].split("/", 1)[1]
    env.update({name: outputs[key] for name, key in NETWORK_OUTPUTS.items() if key in outputs})
    return env


def exports(values: Mapping[str, str]) -> str:
    """``export NAME=value`` lines a shell can ``eval``."""
    import shlex

    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def _run_id(build_dir: Path) -> str:
    path = build_dir / contract.EXECUTION_INPUT
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["RunId"])
    except (OSError, ValueError, KeyError) as err:
        raise StepError(f"{path}: no run id ({err}); download the build job's output first") from None


def deployment(
    config: Config,
    stack: str,
    build_dir: Path,
    outputs: Mapping[str, str],
    train_output: Path | None = None,
) -> StackSpec:
    """How to deploy the packaged per-run stack ``stack`` of ``build_dir``: the
    TemplateConfiguration's Parameters, the training output's overrides, the pipeline's
    CloudFormation role; production is never deleted (CodePipeline's CREATE_UPDATE)."""
    if stack not in contract.RUN_STACKS:
        raise StepError(f"{stack} is not a per-run stack ({', '.join(contract.RUN_STACKS)})")
    configuration = build_dir / f"{stack}.json"
    try:
        values = dict(json.loads(configuration.read_text(encoding="utf-8"))["Parameters"])
    except (OSError, ValueError, KeyError) as err:
        raise StepError(f"{configuration}: {err}; download the build job's output first") from None
    overrides = contract.TRAIN_OUTPUT_OVERRIDES.get(stack, ())
    if overrides:
        if train_output is None:
            raise StepError(f"{stack} needs the training output: pass --train-output <dir>/{contract.TRAIN_OUTPUT}")
        try:
            trained = json.loads(train_output.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StepError(f"{train_output}: {err}") from None
        values.update({key: str(trained[key]) for key in overrides})
    name = naming.stack_name(config, stack)
    return StackSpec(
        name,
        build_dir / f"{stack}.yaml",
        outputs["ArtifactBucketName"],
        f"packages/{_run_id(build_dir)}/templates",
        values,
        CAPABILITIES[stack],
        role_arn=outputs["CloudFormationRoleArn"],
        replace_failed=stack != "deploy-prd",
    )


def approver(env: Mapping[str, str], environment: str = "production") -> str:
    """Who approved the production job, and where, as far as the CI system's variables say.

    GitHub does not pass the environment's reviewer to the job (GITHUB_ACTOR started the
    run), so the text names the environment and the run, whose page shows the review;
    GitLab's GITLAB_USER_LOGIN of a manual job is who started it: the approver.
    """
    if env.get("GITHUB_RUN_ID"):
        run = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}"
        return (
            f"the reviewers of the {environment} environment in GitHub Actions run "
            f"{run}/actions/runs/{env['GITHUB_RUN_ID']} (started by {env.get('GITHUB_ACTOR', 'unknown')})"
        )
    if env.get("GITLAB_USER_LOGIN"):
        return f"{env['GITLAB_USER_LOGIN']}, who started the manual production job {env.get('CI_JOB_URL', '')} in GitLab CI"
    return "the CI workflow's production job"


def approve_run(boto: Any, train_output: Path, env: Mapping[str, str], environment: str = "production") -> str:
    """Set the run's model package (the training output's ModelPackageArn) to Approved."""
    try:
        arn = json.loads(train_output.read_text(encoding="utf-8")).get("ModelPackageArn", "")
    except (OSError, ValueError) as err:
        raise StepError(f"{train_output}: {err}") from None
    if not arn:
        raise StepError(f"{train_output}: no ModelPackageArn; the training workflow registers the run's model")
    try:
        return registry.approve_arn(boto.client("sagemaker"), arn, f"Approved for production by {approver(env, environment)}")
    except registry.RegistryError as err:
        raise StepError(str(err)) from None


def deploy(
    boto: Any, config: Config, stack: str, build_dir: Path, train_output: Path | None, out: TextIO,
    env: Mapping[str, str] | None = None,
) -> str:
    """Deploy the per-run stack ``stack`` (see :func:`deployment`); production's approval
    is recorded in the model registry first."""
    import os

    outputs, _ = stack_outputs(boto, naming.stack_name(config, "pipeline"))
    spec = deployment(config, stack, build_dir, outputs, train_output)
    if stack == "deploy-prd" and train_output is not None:
        arn = approve_run(boto, train_output, os.environ if env is None else env, config.pipeline.ci.environment)
        print(f"model package {arn}: Approved", file=out, flush=True)
    return deploy_stack(boto, spec, out)


class _Stopped(Exception):
    """The CI system cancelled the job (SIGTERM)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stopped()


def train(
    boto: Any,
    config: Config,
    build_dir: Path,
    out_dir: Path,
    attempt: str,
    out: TextIO = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Run the training workflow on the build's execution input, wait for it and write
    ``train-output.json`` into ``out_dir``; a cancelled job stops the execution.

    ``attempt`` makes the execution's name unique per try of the same run (Step Functions
    refuses a name it has seen in 90 days).
    """
    outputs, _ = stack_outputs(boto, naming.stack_name(config, "workflow"))
    machine = outputs.get("StateMachineArn")
    if not machine:
        raise StepError("the workflow stack has no StateMachineArn output: deploy it first (ci deploy workflow)")
    path = build_dir / contract.EXECUTION_INPUT
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StepError(f"{path}: {err.strerror}; download the build job's output first") from None
    name = f"{_run_id(build_dir)}-{attempt}"
    states = boto.client("stepfunctions")
    execution = _call("start the training workflow", states.start_execution,
                      stateMachineArn=machine, name=name, input=text)["executionArn"]
    region = execution.split(":")[3]
    print(f"training {name}: https://{region}.console.aws.amazon.com/states/home?region={region}"
          f"#/v2/executions/details/{execution}", file=out, flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        found = _wait(states, execution, out, sleep)
    except (KeyboardInterrupt, _Stopped):
        _call("stop the training workflow", states.stop_execution, executionArn=execution,
              error="Cancelled", cause="the CI job was cancelled")
        raise StepError(f"the CI job was cancelled: execution {name} stopped") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if found["status"] != "SUCCEEDED":
        raise StepError(
            f"training {name} {found['status']}: {found.get('error', '')} {found.get('cause', '')}".strip()
        )
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "output.json").write_text(found.get("output", "{}"), encoding="utf-8")
        try:
            pipeline_build.normalize_train_output(scratch, out_dir / contract.TRAIN_OUTPUT)
        except pipeline_build.BuildError as err:
            raise StepError(str(err)) from None
    return out_dir / contract.TRAIN_OUTPUT


def _wait(states: Any, execution: str, out: TextIO, sleep: Callable[[float], None]) -> dict[str, Any]:
    status = ""
    while True:
        found = _call("follow the training workflow", states.describe_execution, executionArn=execution)
        if found["status"] != status:
            status = found["status"]
            print(f"  {time.strftime('%H:%M:%S', time.gmtime())}  {status}", file=out, flush=True)
        if status in ENDED:
            return found
        sleep(POLL_SECONDS)
