"""The batch stack (``batch``, ``deployment.mode`` batch or both): batch inference with the
newest approved model package, monitored like the endpoint.

An upload under ``batch.input_prefix`` of the project's data bucket (which sends its events to
EventBridge: the pipeline stack's ``DataBucket``), and optionally a schedule
(``batch.schedule_expression``), start the batch state machine (:mod:`.definition`): the newest
Approved model package -> a model -> a batch transform of the upload (or the whole prefix) ->
the project's monitor job over its output and the ground truth -> its metrics -> the drift and
model-quality alarms (deploy-prd's builders), which the pipeline's retraining rule matches by
name, and whose firing notice rules (deploy-prd's too) send to the project's topic in words.
Every failure is notified on the project's topic in words.

The pipeline deploys the stack after training (stage ``DeployBatch``): its Parameters are the
pipeline stack's resources, so no run's model is baked in; approving a version in the model
registry is what changes the model the next batch uses.
"""

from __future__ import annotations

import json

from troposphere import Output, Parameter, Ref, Template

from mlops_templates.config import Config
from mlops_templates.stacks import endpoint
from mlops_templates.stacks.batch import definition as batch_definition
from mlops_templates.stacks.batch import machine
from mlops_templates.stacks.batch import names as n
from mlops_templates.stacks.batch.machine import Inputs
from mlops_templates.stacks.deploy_prd import alarms, notices
from mlops_templates.stacks.stack import Stack

COMPONENT = n.COMPONENT

__all__ = ["COMPONENT", "artifacts", "build", "enabled"]


def enabled(config: Config) -> bool:
    """Only with ``deployment.mode`` batch or both."""
    return config.deployment.batch


def artifacts(config: Config) -> dict[str, str]:
    """``batch.asl.json``: the batch state machine's definition for ASL validators,
    placeholders left in."""
    return {"batch.asl.json": json.dumps(batch_definition.definition(config), indent=2) + "\n"}


def parameters(stack: Stack) -> Inputs:
    """The pipeline stack's key, SageMaker role, data bucket and topic (the build fills them in)."""
    t = stack.template
    model = endpoint.add_model_parameters(Template())  # for the patterns only
    key = t.add_parameter(Parameter(n.KMS_KEY_ARN, **model[endpoint.KMS_KEY_ARN].properties))
    role = t.add_parameter(Parameter(n.SAGEMAKER_ROLE_ARN, **model[endpoint.EXECUTION_ROLE_ARN].properties))
    bucket = t.add_parameter(Parameter(
        n.DATA_BUCKET, Type="String", Description="The project's data bucket (batch input, output and ground truth)",
        AllowedPattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", MaxLength=63,
        ConstraintDescription="an S3 bucket name"))
    topic = t.add_parameter(Parameter(
        n.NOTIFICATION_TOPIC_ARN, Type="String", Description="The project's notification topic",
        AllowedPattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$", MaxLength=1024,
        ConstraintDescription="an SNS topic ARN"))
    return Inputs(kms_key_arn=Ref(key), sagemaker_role_arn=Ref(role), data_bucket=Ref(bucket),
                  topic_arn=Ref(topic))


def build(config: Config) -> Template:
    """The batch stack.

    Creates: the ``AWS::StepFunctions::StateMachine`` ``<base>-batch`` (STANDARD, encrypted with
    the project key, logged, traced) with its ``AWS::IAM::Role`` and ``AWS::Logs::LogGroup``; the
    ``AWS::Events::Rule`` ``<base>-batch-upload`` on the data bucket's Object Created events
    under ``batch.input_prefix`` with its role; with ``batch.schedule_expression`` the
    ``AWS::Scheduler::Schedule`` ``<base>-batch-schedule`` with its role; the drift and
    model-quality ``AWS::CloudWatch::Alarm`` (``<base>-batch-drift``, ``<base>-batch-quality``)
    and the ``AWS::Events::Rule`` that notify the project's topic, in words, when they fire
    (``<base>-batch-notice-drift``, ``<base>-batch-notice-quality``).
    """
    stack = Stack.new(config, COMPONENT, "Batch inference with the newest approved model, monitored")
    names = n.Names.of(config)
    inputs = parameters(stack)
    state_machine = machine.state_machine(stack, inputs, names)
    machine.upload_rule(stack, inputs, state_machine, names)
    if config.batch.schedule_expression:
        machine.schedule(stack, inputs, state_machine, names)
    drift = alarms.drift_alarm(stack, names, alarms.EVENT_DRIVEN)
    quality = alarms.quality_alarm(stack, names, alarms.EVENT_DRIVEN)
    # As deploy-prd's: no alarm actions; rules turn an alarm's firing into one readable
    # message, here on the project's topic (the pipeline stack's policy lets them publish).
    notices.drift_notice(stack, inputs.topic_arn, names.endpoint, names.drift_notice, drift)
    notices.quality_notice(stack, inputs.topic_arn, names.endpoint, names.quality_notice, quality)
    stack.template.add_output([
        Output("BatchStateMachineArn", Description="State machine of the batch runs (start it to transform the input prefix now)",
               Value=Ref(state_machine)),
        Output("DriftAlarmName", Description="Alarm on the drift of the batches", Value=Ref(drift)),
        Output("QualityAlarmName", Description="Alarm on the model quality of the batches with ground truth",
               Value=Ref(quality)),
    ])
    return stack.describe(
        "S3 upload (EventBridge) or schedule -> batch state machine: newest approved model package "
        "-> model -> batch transform (KMS) -> monitor job (drift, quality on ground truth) -> "
        "metrics -> drift and quality alarms -> the pipeline's retraining rule and notices; failures notified",
        must=["data at rest encrypted with customer-managed KMS keys"],
    )
