"""The CodePipeline (V2) and its actions.

Source -> Build -> Train (deploy the workflow stack, run the state machine, extract its
output) -> DeployDev. One run at a time: runs share the per-run stacks and the endpoints.
``deployment.mode`` batch adds DeployBatch after Train (the batch stack, which transforms
with the newest approved model package) and, in batch mode alone, drops DeployDev.

The pipeline ends there: the model registry drives production. Approving a version (make
approve, or SageMaker Studio) starts the promotion (:mod:`.promotion`), which deploys the
newest approved version; a manual approval here would be a second source of truth.
"""

from __future__ import annotations

import json
from typing import Any

from troposphere import GetAtt, Ref, codebuild, codepipeline

from mlops_templates import contract
from mlops_templates.stacks.pipeline.builds import Builds
from mlops_templates.stacks.pipeline.names import (
    BUILD_NAMESPACE,
    BUILD_OUTPUT,
    DATA_VARIABLE,
    SOURCE_OUTPUT,
    TRAIN_OUTPUT,
    TRAIN_RESULT,
)
from mlops_templates.stacks.pipeline.roles import Roles
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.storage import Storage

PIPELINE = "Pipeline"

#: Stage names, in order (each where ``deployment.mode`` has it).
STAGES = ("Source", "Build", "Train", "DeployBatch", "DeployDev")
#: The stages of the endpoint stacks (``deployment.mode`` realtime or both).
ENDPOINT_STAGES = ("DeployDev",)
#: The run's ID, as the Build action exports it.
_RUN = f"#{{{BUILD_NAMESPACE}.RUN_ID}}"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    PIPELINE: "Source, build, train, deploy to dev (the model registry drives production)",
}


def create(
    stack: Stack, store: Storage, roles: Roles, builds: Builds, connection_arn: Any | None
) -> codepipeline.Pipeline:
    """Add the pipeline, run by the CodePipeline role, its stacks deployed by the deploy role."""
    names, source = stack.names, stack.config.pipeline.source
    deploy_role = roles.deploy.role
    stages = [
        codepipeline.Stages(Name="Source", Actions=[_source_action(stack, connection_arn)]),
        codepipeline.Stages(Name="Build", Actions=[_build_action(builds.build)]),
        codepipeline.Stages(
            Name="Train", Actions=_train_actions(stack, deploy_role, builds, roles.resources.state_machine_arn)
        ),
        codepipeline.Stages(
            Name="DeployDev", Actions=[_deploy(stack, "DeployDev", "deploy-dev", deploy_role)]
        ),
    ]
    stages = _mode_stages(stack, stages, deploy_role)
    pipeline = codepipeline.Pipeline(
        PIPELINE,
        Name=names.name("pipeline"),
        PipelineType="V2",
        # One run at a time: runs share the per-run stacks and the endpoints.
        ExecutionMode="QUEUED",
        RoleArn=GetAtt(roles.pipeline, "Arn"),
        ArtifactStore=codepipeline.ArtifactStore(
            Type="S3",
            Location=Ref(store.artifact),
            EncryptionKey=codepipeline.EncryptionKey(Id=GetAtt(store.key, "Arn"), Type="KMS"),
        ),
        Variables=[
            codepipeline.VariableDeclaration(
                Name=DATA_VARIABLE,
                DefaultValue=contract.LATEST,
                Description=(
                    "s3:// URI of the training data, or 'latest' for the newest object "
                    "under the data prefix"
                ),
            )
        ],
        RestartExecutionOnUpdate=False,
        Stages=stages,
        Tags=stack.tags("pipeline"),
    )
    if source.provider == "codeconnections":
        pipeline.Triggers = [_push_trigger(source.branch)]
    # A new pipeline starts a run at once: its deploy stages need the role's policies.
    pipeline.DependsOn = [p.title for p in roles.deploy.policies]
    return stack.add(pipeline)


def _mode_stages(stack: Stack, stages: list[codepipeline.Stages], deploy_role: Any) -> list[codepipeline.Stages]:
    """``stages`` for ``deployment.mode``: DeployBatch after Train with batch; the endpoint
    stages only with realtime."""
    mode = stack.config.deployment
    if not mode.realtime:
        stages = [s for s in stages if s.Name not in ENDPOINT_STAGES]
    if mode.batch:
        at = [s.Name for s in stages].index("Train") + 1
        stages.insert(at, codepipeline.Stages(
            Name="DeployBatch", Actions=[_deploy(stack, "DeployBatch", "batch", deploy_role,
                                                 capabilities="CAPABILITY_NAMED_IAM")]))
    return stages


def _action(
    name: str,
    category: str,
    provider: str,
    configuration: dict[str, Any],
    *,
    owner: str = "AWS",
    inputs: tuple[str, ...] = (),
    outputs: tuple[str, ...] = (),
    run_order: int = 1,
    namespace: str | None = None,
) -> codepipeline.Actions:
    action = codepipeline.Actions(
        Name=name,
        ActionTypeId=codepipeline.ActionTypeId(
            Category=category, Owner=owner, Provider=provider, Version="1"
        ),
        Configuration=configuration,
        RunOrder=run_order,
    )
    if inputs:
        action.InputArtifacts = [codepipeline.InputArtifacts(Name=n) for n in inputs]
    if outputs:
        action.OutputArtifacts = [codepipeline.OutputArtifacts(Name=n) for n in outputs]
    if namespace:
        action.Namespace = namespace
    return action


def _deploy(
    stack: Stack,
    name: str,
    stack_name: str,
    deploy_role: Any,
    capabilities: str | None = None,
    run_order: int = 1,
) -> codepipeline.Actions:
    """A CloudFormation action that deploys the per-run stack ``stack_name``."""
    configuration: dict[str, Any] = {
        # A stack whose first create failed (ROLLBACK_COMPLETE) cannot be updated: the
        # workflow and the dev endpoint are replaced, so a retried run works. (Production
        # is the promotion's, which never deletes it.)
        "ActionMode": "REPLACE_ON_FAILURE",
        "StackName": stack.names.name(stack_name),
        "TemplatePath": f"{BUILD_OUTPUT}::{stack_name}.yaml",
        "TemplateConfiguration": f"{BUILD_OUTPUT}::{stack_name}.json",
        "RoleArn": GetAtt(deploy_role, "Arn"),
    }
    inputs: tuple[str, ...] = (BUILD_OUTPUT,)
    overrides = contract.TRAIN_OUTPUT_OVERRIDES.get(stack_name)
    if overrides:
        configuration["ParameterOverrides"] = json.dumps(
            {key: {"Fn::GetParam": [TRAIN_RESULT, contract.TRAIN_OUTPUT, key]} for key in overrides},
            sort_keys=True,
        )
        inputs += (TRAIN_RESULT,)
    if capabilities:
        configuration["Capabilities"] = capabilities
    return _action(name, "Deploy", "CloudFormation", configuration, inputs=inputs, run_order=run_order)


def _source_action(stack: Stack, connection_arn: Any | None) -> codepipeline.Actions:
    src = stack.config.pipeline.source
    if src.provider == "codecommit":
        return _action(
            "Source",
            "Source",
            "CodeCommit",
            {
                "RepositoryName": src.repository,
                "BranchName": src.branch,
                "PollForSourceChanges": False,  # the SourcePushRule starts the pipeline
                "OutputArtifactFormat": "CODE_ZIP",
            },
            outputs=(SOURCE_OUTPUT,),
        )
    return _action(
        "Source",
        "Source",
        "CodeStarSourceConnection",
        {
            "ConnectionArn": connection_arn,
            "FullRepositoryId": src.repository,
            "BranchName": src.branch,
            "OutputArtifactFormat": "CODE_ZIP",
            "DetectChanges": True,
        },
        outputs=(SOURCE_OUTPUT,),
    )


def _build_action(build: codebuild.Project) -> codepipeline.Actions:
    build_env = [
        {"name": "PIPELINE_EXECUTION_ID", "type": "PLAINTEXT", "value": "#{codepipeline.PipelineExecutionId}"},
        {"name": "TRAINING_DATA_URI", "type": "PLAINTEXT", "value": f"#{{variables.{DATA_VARIABLE}}}"},
    ]
    return _action(
        "Build",
        "Build",
        "CodeBuild",
        {"ProjectName": Ref(build), "EnvironmentVariables": json.dumps(build_env)},
        inputs=(SOURCE_OUTPUT,),
        outputs=(BUILD_OUTPUT,),
        namespace=BUILD_NAMESPACE,
    )


def _train_actions(
    stack: Stack, deploy_role: Any, builds: Builds, state_machine_arn: Any
) -> list[codepipeline.Actions]:
    """Deploy the workflow stack, run its state machine, extract the training output."""
    return [
        _deploy(stack, "DeployWorkflow", "workflow", deploy_role, run_order=1),
        _action(
            "Train",
            "Invoke",
            "StepFunctions",
            {
                "StateMachineArn": state_machine_arn,
                "InputType": "FilePath",
                "Input": contract.EXECUTION_INPUT,
                "ExecutionNamePrefix": _RUN,
            },
            inputs=(BUILD_OUTPUT,),
            outputs=(TRAIN_OUTPUT,),
            run_order=2,
        ),
        _action(
            "TrainOutput",
            "Build",
            "CodeBuild",
            {"ProjectName": Ref(builds.train_output), "PrimarySource": TRAIN_OUTPUT},
            inputs=(TRAIN_OUTPUT, SOURCE_OUTPUT),
            outputs=(TRAIN_RESULT,),
            run_order=3,
        ),
    ]


def _push_trigger(branch: str) -> codepipeline.PipelineTriggerDeclaration:
    """Start a run on pushes to ``branch`` of the connected repository."""
    return codepipeline.PipelineTriggerDeclaration(
        ProviderType="CodeStarSourceConnection",
        GitConfiguration=codepipeline.GitConfiguration(
            SourceActionName="Source",
            Push=[
                codepipeline.GitPushFilter(
                    Branches=codepipeline.GitBranchFilterCriteria(Includes=[branch])
                )
            ],
        ),
    )
