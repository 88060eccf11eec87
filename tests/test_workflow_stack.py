"""The workflow stack's contract with what deploys and runs it: the Outputs the CI's train
step and operators read, and Parameters that take every valid value and refuse others."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlops_templates.stacks import workflow

from .variants import names, variant_config


def _template(name: str) -> dict[str, Any]:
    return workflow.build(variant_config(name)).to_dict()


@pytest.mark.parametrize("name", ["example", "model-monitor", "api-key-xgboost"])
def test_the_outputs_name_the_state_machine_its_registry_and_its_logs(name: str) -> None:
    template = _template(name)
    resources = template["Resources"]
    machine = next(k for k, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine")
    group = next(k for k, r in resources.items() if r["Type"] == "AWS::SageMaker::ModelPackageGroup")
    logs = next(k for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup")
    values = {key: output["Value"] for key, output in template["Outputs"].items()}
    # Ref of a state machine is its ARN, of a log group its name (CloudFormation reference).
    assert values == {
        "StateMachineArn": {"Ref": machine},  # what `ci train` starts
        "StateMachineName": {"Fn::GetAtt": [machine, "Name"]},
        "ModelPackageGroupArn": {"Fn::GetAtt": [group, "ModelPackageGroupArn"]},
        "LogGroupName": {"Ref": logs},
    }
    assert all(output["Description"].strip() for output in template["Outputs"].values())
    assert resources[group]["Properties"]["Tags"]
    assert resources[machine]["Properties"]["StateMachineName"].endswith("-training")


LONGEST = {
    # Partition, region and the longest name or key id each pattern allows.
    "KmsKeyArn": "arn:aws-iso-b:kms:ap-southeast-5:111122223333:key/" + "k" * 128,
    "ArtifactBucket": "b" * 63,  # S3 bucket names: 3 to 63 characters
    "SageMakerRoleArn": "arn:aws-iso-b:iam::111122223333:role/" + "r" * 512,
    "StatesRoleArn": "arn:aws-iso-b:iam::111122223333:role/" + "r" * 512,
    "NotificationTopicArn": "arn:aws-iso-b:sns:ap-southeast-5:111122223333:" + "t" * 256,
}


@pytest.mark.parametrize("name", names(golden=False)[:3])
def test_parameters_are_strings_that_fit_every_valid_value(name: str) -> None:
    parameters = _template(name)["Parameters"]
    assert set(parameters) == set(LONGEST)
    for key, parameter in parameters.items():
        assert parameter["Type"] == "String", key
        assert re.fullmatch(parameter["AllowedPattern"], LONGEST[key]), key
        assert len(LONGEST[key]) <= parameter["MaxLength"], key
    # The services' own limits: S3 bucket names 63 characters, IAM ARNs 2048.
    assert parameters["ArtifactBucket"]["MaxLength"] == 63
    assert parameters["SageMakerRoleArn"]["MaxLength"] == parameters["StatesRoleArn"]["MaxLength"] == 2048
    assert not re.fullmatch(parameters["ArtifactBucket"]["AllowedPattern"], "b" * 64)


STACK_ID = "arn:aws:cloudformation:us-east-1:111122223333:stack/mlops-abalone-workflow/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"


def _evaluate(node: Any) -> Any:
    """The intrinsic functions of a log group name, as CloudFormation evaluates them."""
    if isinstance(node, dict) and len(node) == 1:
        [(function, args)] = node.items()
        if function == "Ref":
            return {"AWS::StackId": STACK_ID}[args]
        if function == "Fn::Split":
            return _evaluate(args[1]).split(args[0])
        if function == "Fn::Select":
            return _evaluate(args[1])[args[0]]
        if function == "Fn::Sub":
            text, variables = args
            for key, value in variables.items():
                text = text.replace("${" + key + "}", _evaluate(value))
            return text
    return node


def test_the_log_group_is_named_after_the_machine_and_this_stack_instance() -> None:
    resources = _template("example")["Resources"]
    [group] = [r for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    # Under /aws/vendedlogs/ (no resource policy statement per machine); the stack ID's
    # first group: a re-created stack never meets the group a deleted one kept.
    name = _evaluate(group["Properties"]["LogGroupName"])
    assert name == "/aws/vendedlogs/states/mlops-abalone-training-1a2b3c4d"
