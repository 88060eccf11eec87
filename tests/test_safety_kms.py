"""Safety: a customer-managed KMS key encrypts every place the system keeps data.

Checked on every stack of every config file, with resources found by Type (never by the
builder's logical-ID constants) and expected values written here. "The key" of a template
is a ``AWS::KMS::Key`` the template creates, or a Parameter that accepts a KMS key ARN and
refuses an alias (the per-run stacks receive the pipeline's key as a parameter).

Every resource type any stack renders is classified below: either its encryption is
checked, or it is listed as keeping no customer data at rest. A new type fails
:func:`test_every_rendered_resource_type_is_classified_for_encryption` until it is
classified, so a new data store cannot slip in unencrypted.

Each test also mutates a scratch copy of the rendered template and checks that the same
assertion then fails.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import config, sam, stacks

REPO = Path(__file__).resolve().parent.parent
from . import variants

CONFIGS = variants.paths()
#: Every (config, stack) pair the config renders: a stack that is off (ci-oidc without a CI
#: orchestrator) has nothing to check.
CASES = [
    (path, name)
    for path in CONFIGS
    for name in stacks.STACKS
    if stacks.enabled(name, config.load(path))
]
CASE_IDS = [f"{path.relative_to(REPO)}:{name}" for path, name in CASES]
CONFIG_IDS = [str(p.relative_to(REPO)) for p in CONFIGS]

#: A customer-managed key's ARN, and references that are not one: AWS-managed key aliases
#: (``aws/s3``, ``aws/sagemaker``) are exactly what "customer-managed" excludes.
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOT_A_KEY_ARN = (
    "alias/aws/sagemaker",
    "arn:aws:kms:us-east-1:111122223333:alias/aws/s3",
    "aws/s3",
    "",
)

#: SageMaker instance families and whether their storage volume is EBS (True) or local
#: NVMe instance store (False). CreateTrainingJob ``ResourceConfig.VolumeKmsKeyId`` and
#: ``ProcessingClusterConfig.VolumeKmsKeyId`` (SageMaker API reference): "Certain
#: Nitro-based instances include local storage, dependent on the instance type. Local
#: storage volumes are encrypted using a hardware module on the instance. You can't
#: request a VolumeKmsKeyId when using an instance type with local storage."
EBS_BACKED = {
    "t2": True, "t3": True, "m4": True, "m5": True, "m6i": True, "m7i": True, "c4": True,
    "c5": True, "c6i": True, "c7i": True, "r5": True, "r6i": True, "r7i": True, "p3": True,
    "inf1": True, "inf2": True,
    "m5d": False, "m6id": False, "c5d": False, "c6id": False, "r5d": False, "g4dn": False,
    "g5": False, "g6": False, "g6e": False, "p4d": False, "p5": False, "trn1": False,
}

#: Resource types that keep no customer data at rest (configuration, wiring, IAM, network,
#: metadata). Everything else must be in CHECKS.
NO_DATA_AT_REST = frozenset({
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",  # a layout of metric and alarm widgets
    "AWS::EC2::FlowLog",  # delivers into a log group, which is checked
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::Events::Rule",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::OIDCProvider",  # the CI issuer's URL and audiences
    "AWS::IAM::Role",
    "AWS::KMS::Alias",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SageMaker::Endpoint",  # its volumes and capture are the EndpointConfig's
    "AWS::SageMaker::Model",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::SageMaker::MonitoringSchedule",  # runs the DataQualityJobDefinition, checked
    "AWS::ServiceCatalog::CloudFormationProduct",
    "AWS::ServiceCatalog::LaunchRoleConstraint",
    "AWS::ServiceCatalog::Portfolio",
    "AWS::ServiceCatalog::PortfolioPrincipalAssociation",
    "AWS::ServiceCatalog::PortfolioProductAssociation",
    "Custom::ApiGatewayAccountSettings",
    "Custom::RunStacksTeardown",
})

#: Pseudo parameters the key policies are resolved with: a commercial region and a
#: partition of its own, so a hard-coded partition or region cannot pass.
ENVIRONMENTS = [
    {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "111122223333"},
    {"AWS::Partition": "aws-cn", "AWS::Region": "cn-north-1", "AWS::AccountId": "444455556666"},
]


# ----------------------------------------------------------------------------- helpers


@cache
def _rendered(path: str, name: str) -> str | None:
    cfg = config.load(path)
    if not stacks.enabled(name, cfg):
        return None
    return json.dumps(stacks.module(name).build(cfg).to_dict())


def template(path: Path, name: str) -> dict[str, Any] | None:
    """A fresh (mutable) copy of the rendered template; None when the stack is off."""
    text = _rendered(str(path), name)
    return None if text is None else json.loads(text)


def of_type(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v.get("Properties", {}) for k, v in t["Resources"].items() if v["Type"] == kind}


def getatt(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return ".".join(target) if isinstance(target, list) else target
    return None


def key_parameters(t: dict[str, Any]) -> set[str]:
    """Parameters that accept a KMS key ARN and refuse every alias."""
    found = set()
    for name, spec in t.get("Parameters", {}).items():
        pattern = spec.get("AllowedPattern")
        if pattern and re.fullmatch(pattern, KEY_ARN) and not any(
            re.fullmatch(pattern, other) for other in NOT_A_KEY_ARN
        ):
            found.add(name)
    return found


def is_key(t: dict[str, Any], value: Any) -> bool:
    """``value`` refers to the template's customer-managed key."""
    keys = set(of_type(t, "AWS::KMS::Key"))
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return value["Ref"] in keys or value["Ref"] in key_parameters(t)
    target = getatt(value)
    return target is not None and target in {f"{k}.Arn" for k in keys}


def assert_key(t: dict[str, Any], value: Any, where: str) -> None:
    assert is_key(t, value), f"{where}: {value!r} is not the customer-managed key"


def killed(check: Callable[..., None], mutate: Callable[[dict[str, Any]], None],
           t: dict[str, Any], *args: Any) -> None:
    """``check`` passes on ``t`` but fails once ``mutate`` changed a scratch copy."""
    check(t, *args)
    scratch = copy.deepcopy(t)
    mutate(scratch)
    with pytest.raises((AssertionError, LookupError)):
        check(scratch, *args)


# ------------------------------------------------------------------- per-type checks


def log_targets(t: dict[str, Any]) -> set[str]:
    """Buckets other buckets deliver their server access logs to."""
    targets = set()
    for props in of_type(t, "AWS::S3::Bucket").values():
        logging_config = props.get("LoggingConfiguration")
        if logging_config:
            target = logging_config["DestinationBucketName"]
            assert set(target) == {"Ref"}, target
            targets.add(target["Ref"])
    return targets


def check_buckets(t: dict[str, Any]) -> None:
    targets = log_targets(t)
    for logical_id, props in of_type(t, "AWS::S3::Bucket").items():
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert len(rules) == 1, logical_id
        default = rules[0]["ServerSideEncryptionByDefault"]
        if logical_id in targets:
            # S3 delivers server access logs only to a bucket whose default encryption
            # is SSE-S3 (AES256); SSE-KMS is not supported for the target bucket.
            assert default == {"SSEAlgorithm": "AES256"}, logical_id
        else:
            assert default["SSEAlgorithm"] == "aws:kms", logical_id
            assert_key(t, default.get("KMSMasterKeyID"), logical_id)


def check_topics(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::SNS::Topic").items():
        assert_key(t, props.get("KmsMasterKeyId"), logical_id)


def check_log_groups(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::Logs::LogGroup").items():
        assert_key(t, props.get("KmsKeyId"), logical_id)


def check_endpoint_configs(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::SageMaker::EndpointConfig").items():
        assert_key(t, props.get("KmsKeyId"), f"{logical_id} volume")
        for variant in props["ProductionVariants"]:
            family = variant["InstanceType"].split(".")[1]
            assert EBS_BACKED[family] is True, f"{logical_id}: {variant['InstanceType']}"
        if "DataCaptureConfig" in props:
            assert_key(t, props["DataCaptureConfig"].get("KmsKeyId"), f"{logical_id} capture")


def check_functions(t: dict[str, Any]) -> None:
    for kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
        for logical_id, props in of_type(t, kind).items():
            # The key of the function's environment variables.
            assert_key(t, props.get("KmsKeyArn"), logical_id)


def check_state_machines(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::StepFunctions::StateMachine").items():
        encryption = props["EncryptionConfiguration"]
        assert encryption["Type"] == "CUSTOMER_MANAGED_KMS_KEY", logical_id
        assert_key(t, encryption.get("KmsKeyId"), logical_id)
        check_workflow_jobs(t, props)


def check_codebuild(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::CodeBuild::Project").items():
        assert_key(t, props.get("EncryptionKey"), logical_id)


def check_ecr(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::ECR::Repository").items():
        encryption = props["EncryptionConfiguration"]
        assert encryption["EncryptionType"] == "KMS", logical_id
        assert_key(t, encryption.get("KmsKey"), logical_id)


def check_pipelines(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::CodePipeline::Pipeline").items():
        stores = (
            [props["ArtifactStore"]] if "ArtifactStore" in props
            else [s["ArtifactStore"] for s in props["ArtifactStores"]]
        )
        assert stores, logical_id
        for store in stores:
            assert store["Type"] == "S3", logical_id
            assert store["EncryptionKey"]["Type"] == "KMS", logical_id
            assert_key(t, store["EncryptionKey"].get("Id"), logical_id)


def check_monitoring_jobs(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::SageMaker::DataQualityJobDefinition").items():
        assert_key(t, props["DataQualityJobOutputConfig"].get("KmsKeyId"), f"{logical_id} output")
        cluster = props["JobResources"]["ClusterConfig"]
        assert EBS_BACKED[cluster["InstanceType"].split(".")[1]] is True, logical_id
        assert_key(t, cluster.get("VolumeKmsKeyId"), f"{logical_id} volume")


def check_schedules(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::Scheduler::Schedule").items():
        # The schedule keeps its target's input at rest.
        assert_key(t, props.get("KmsKeyArn"), logical_id)


def check_kms_keys(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::KMS::Key").items():
        assert props.get("EnableKeyRotation") is True, logical_id
        check_key_policy(props["KeyPolicy"], logical_id)


def check_api_cache(t: dict[str, Any]) -> None:
    for logical_id, props in of_type(t, "AWS::Serverless::Api").items():
        # A stage cache would keep answers at rest: off, or encrypted.
        if props.get("CacheClusterEnabled"):
            for setting in props.get("MethodSettings", []):
                assert setting.get("CacheDataEncrypted") is True, logical_id


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "AWS::S3::Bucket": check_buckets,
    "AWS::SNS::Topic": check_topics,
    "AWS::Logs::LogGroup": check_log_groups,
    "AWS::SageMaker::EndpointConfig": check_endpoint_configs,
    "AWS::Lambda::Function": check_functions,
    "AWS::Serverless::Function": check_functions,
    "AWS::StepFunctions::StateMachine": check_state_machines,
    "AWS::CodeBuild::Project": check_codebuild,
    "AWS::ECR::Repository": check_ecr,
    "AWS::CodePipeline::Pipeline": check_pipelines,
    "AWS::SageMaker::DataQualityJobDefinition": check_monitoring_jobs,
    "AWS::Scheduler::Schedule": check_schedules,
    "AWS::KMS::Key": check_kms_keys,
    "AWS::Serverless::Api": check_api_cache,
}


# ------------------------------------------------------------- workflow job definitions


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from all_states(state[key])


def check_volume(t: dict[str, Any], machine: dict[str, Any], cluster: dict[str, Any], where: str) -> None:
    family = cluster["InstanceType"].split(".")[1]
    if EBS_BACKED[family]:
        assert_substituted_key(t, machine, cluster.get("VolumeKmsKeyId"), f"{where} volume")
    else:
        assert "VolumeKmsKeyId" not in cluster, f"{where}: {cluster['InstanceType']} has local NVMe"


def assert_substituted_key(t: dict[str, Any], machine: dict[str, Any], value: Any, where: str) -> None:
    """``value`` is ``${Name}`` and the state machine substitutes the key for Name."""
    match = re.fullmatch(r"\$\{([A-Za-z0-9_]+)\}", value or "")
    assert match, f"{where}: {value!r} is not a definition substitution"
    assert_key(t, machine["DefinitionSubstitutions"].get(match.group(1)), where)


def check_workflow_jobs(t: dict[str, Any], machine: dict[str, Any]) -> None:
    definition = machine["Definition"]
    jobs = 0
    for name, state in all_states(definition):
        resource = state.get("Resource", "")
        if state["Type"] != "Task" or ":sagemaker:" not in resource:
            continue
        params = state["Parameters"]
        if ":sagemaker:createProcessingJob" in resource:
            jobs += 1
            assert_substituted_key(t, machine, params["ProcessingOutputConfig"].get("KmsKeyId"), f"{name} output")
            check_volume(t, machine, params["ProcessingResources"]["ClusterConfig"], name)
        elif ":sagemaker:createTrainingJob" in resource or ":sagemaker:createHyperParameterTuningJob" in resource:
            # A tuning job's training jobs take its TrainingJobDefinition.
            jobs += 1
            params = params.get("TrainingJobDefinition", params)
            assert_substituted_key(t, machine, params["OutputDataConfig"].get("KmsKeyId"), f"{name} output")
            check_volume(t, machine, params["ResourceConfig"], name)
        elif ":sagemaker:createTransformJob" in resource:
            jobs += 1
            assert_substituted_key(t, machine, params["TransformOutput"].get("KmsKeyId"), f"{name} output")
            assert_substituted_key(t, machine, params["TransformResources"].get("VolumeKmsKeyId"), f"{name} volume")
        else:
            # Anything else SageMaker is asked to do must keep no data of its own.
            assert re.search(r":sagemaker:(createModel|createModelPackage|describeTrainingJob|"
                             r"listModelPackages|describeModelPackage|deleteModel)$", resource), (
                f"{name}: unclassified SageMaker call {resource}"
            )
    assert jobs > 0, "the workflow runs no SageMaker job"


# ------------------------------------------------------------------------- key policy


def resolve(node: Any, env: dict[str, str]) -> Any:
    """Pseudo parameters in ``Fn::Sub`` and ``Ref`` replaced by ``env``'s values."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: env.get(m.group(1), m.group(0)), node["Fn::Sub"])
        if set(node) == {"Ref"} and node["Ref"] in env:
            return env[node["Ref"]]
        return {k: resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    return node


def principals(statement: dict[str, Any]) -> set[tuple[str, str]]:
    principal = statement["Principal"]
    if principal == "*":
        return {("*", "*")}
    found = set()
    for kind, values in principal.items():
        for value in values if isinstance(values, list) else [values]:
            found.add((kind, value))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_key_policy(policy: dict[str, Any], where: str) -> None:
    for env in ENVIRONMENTS:
        partition, region, account = env["AWS::Partition"], env["AWS::Region"], env["AWS::AccountId"]
        root = ("AWS", f"arn:{partition}:iam::{account}:root")
        logs = ("Service", f"logs.{region}.amazonaws.com")
        topic_publishers = {("Service", "cloudwatch.amazonaws.com"), ("Service", "events.amazonaws.com")}
        statements = resolve(policy["Statement"], env)
        for s in statements:
            assert s["Effect"] in ("Allow", "Deny"), where
            assert principals(s) <= {root, logs} | topic_publishers, f"{where}: {s['Principal']}"
        # The account root administers the key (so IAM policies can grant its use).
        admin = [s for s in statements if principals(s) == {root}]
        assert len(admin) == 1, where
        assert admin[0]["Effect"] == "Allow"
        assert as_list(admin[0]["Action"]) == ["kms:*"]
        assert as_list(admin[0]["Resource"]) == ["*"]
        assert "Condition" not in admin[0]
        # CloudWatch Logs may use it only for this account's log groups in this region.
        for_logs = [s for s in statements if logs in principals(s)]
        assert for_logs, f"{where}: CloudWatch Logs cannot use the key"
        for s in for_logs:
            assert principals(s) == {logs}, where
            assert s["Condition"] == {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{partition}:logs:{region}:{account}:log-group:*"
                    )
                }
            }, f"{where}: {s.get('Condition')}"
            assert not any(a in ("kms:*", "kms:PutKeyPolicy", "kms:CreateGrant") for a in as_list(s["Action"]))
        # Encrypted-topic publishers (alarms, rules) only read and wrap data keys.
        for s in statements:
            if principals(s) & topic_publishers:
                assert principals(s) <= topic_publishers, where
                assert set(as_list(s["Action"])) <= {"kms:GenerateDataKey", "kms:GenerateDataKey*", "kms:Decrypt"}


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("path", "name"), CASES, ids=CASE_IDS)
def test_every_rendered_resource_type_is_classified_for_encryption(path: Path, name: str) -> None:
    t = template(path, name)
    assert t is not None, f"{name} is off in {path.name}"
    kinds = {r["Type"] for r in t["Resources"].values()}
    unclassified = kinds - set(CHECKS) - NO_DATA_AT_REST
    assert not unclassified, f"classify these types in {__name__}: {sorted(unclassified)}"


@pytest.mark.parametrize(("path", "name"), CASES, ids=CASE_IDS)
def test_customer_managed_key_on_every_data_store_of_every_stack(path: Path, name: str) -> None:
    t = template(path, name)
    assert t is not None, f"{name} is off in {path.name}"
    present = {r["Type"] for r in t["Resources"].values()}
    for kind, check in CHECKS.items():
        if kind in present:
            check(t)


def _first(t: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(iter(of_type(t, kind).values()))


def _encrypted_bucket(t: dict[str, Any]) -> dict[str, Any]:
    targets = log_targets(t)
    return next(p for k, p in of_type(t, "AWS::S3::Bucket").items() if k not in targets)


def _log_bucket(t: dict[str, Any]) -> dict[str, Any]:
    [target] = log_targets(t)
    return t["Resources"][target]["Properties"]


def _default_encryption(props: dict[str, Any]) -> dict[str, Any]:
    return props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_pipeline_stack_encryption_mutations_are_caught(path: Path) -> None:
    t = template(path, "pipeline")
    assert t is not None
    key_id = next(iter(of_type(t, "AWS::KMS::Key")))

    def bucket_sse_s3(t: dict[str, Any]) -> None:
        _default_encryption(_encrypted_bucket(t)).clear()
        _default_encryption(_encrypted_bucket(t))["SSEAlgorithm"] = "AES256"

    def bucket_aws_managed_key(t: dict[str, Any]) -> None:
        _default_encryption(_encrypted_bucket(t))["KMSMasterKeyID"] = "alias/aws/s3"

    def log_bucket_kms(t: dict[str, Any]) -> None:
        _default_encryption(_log_bucket(t)).update(
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
        )

    def topic_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::SNS::Topic")["KmsMasterKeyId"]

    def log_group_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::Logs::LogGroup")["KmsKeyId"]

    def function_environment_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::Lambda::Function")["KmsKeyArn"]

    def codebuild_default_key(t: dict[str, Any]) -> None:
        _first(t, "AWS::CodeBuild::Project")["EncryptionKey"] = "alias/aws/s3"

    def ecr_aes256(t: dict[str, Any]) -> None:
        _first(t, "AWS::ECR::Repository")["EncryptionConfiguration"] = {"EncryptionType": "AES256"}

    def artifact_store_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::CodePipeline::Pipeline")["ArtifactStore"]["EncryptionKey"]

    def rotation_off(t: dict[str, Any]) -> None:
        _first(t, "AWS::KMS::Key")["EnableKeyRotation"] = False

    def check(t: dict[str, Any]) -> None:
        for kind, check_kind in CHECKS.items():
            if of_type(t, kind):
                check_kind(t)

    mutations = [
        bucket_sse_s3, bucket_aws_managed_key, log_bucket_kms, topic_unencrypted,
        log_group_unencrypted, function_environment_unencrypted, ecr_aes256, rotation_off,
    ]
    # CodeBuild and CodePipeline exist only when CodePipeline orchestrates (not a CI system).
    if of_type(t, "AWS::CodePipeline::Pipeline"):
        mutations += [codebuild_default_key, artifact_store_unencrypted]
    for mutation in mutations:
        killed(check, mutation, t)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_per_run_stacks_encryption_mutations_are_caught(path: Path) -> None:
    prd = template(path, "deploy-prd")
    dev = template(path, "deploy-dev")
    workflow = template(path, "workflow")
    if prd is None and dev is None and not config.load(path).deployment.realtime:
        return  # deployment.mode batch: no endpoint stacks (the batch stack is checked above)
    assert prd is not None and dev is not None and workflow is not None

    def no_volume_key(t: dict[str, Any]) -> None:
        del _first(t, "AWS::SageMaker::EndpointConfig")["KmsKeyId"]

    def capture_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]["KmsKeyId"]

    def capture_aws_managed(t: dict[str, Any]) -> None:
        _first(t, "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]["KmsKeyId"] = "alias/aws/sagemaker"

    def hook_environment_unencrypted(t: dict[str, Any]) -> None:
        del _first(t, "AWS::Serverless::Function")["KmsKeyArn"]

    def monitor_output_unencrypted(t: dict[str, Any]) -> None:
        if of_type(t, "AWS::SageMaker::DataQualityJobDefinition"):
            del _first(t, "AWS::SageMaker::DataQualityJobDefinition")["DataQualityJobOutputConfig"]["KmsKeyId"]
        else:  # the builtin monitor's processing job
            del jobs(t, ":createProcessingJob")[0]["ProcessingOutputConfig"]["KmsKeyId"]

    def monitor_volume_unencrypted(t: dict[str, Any]) -> None:
        if of_type(t, "AWS::SageMaker::DataQualityJobDefinition"):
            job = _first(t, "AWS::SageMaker::DataQualityJobDefinition")
            del job["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"]
        else:
            del jobs(t, ":createProcessingJob")[0]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]

    def schedule_aws_owned_key(t: dict[str, Any]) -> None:
        del _first(t, "AWS::Scheduler::Schedule")["KmsKeyArn"]

    def machine(t: dict[str, Any]) -> dict[str, Any]:
        return _first(t, "AWS::StepFunctions::StateMachine")

    def jobs(t: dict[str, Any], marker: str) -> list[dict[str, Any]]:
        """The Parameters of the jobs whose Resource has ``marker``; for ``:createTrainingJob``
        also the training job definitions of tuning jobs."""
        found = [
            s["Parameters"] for _, s in all_states(machine(t)["Definition"])
            if marker in s.get("Resource", "")
        ]
        if marker == ":createTrainingJob":
            found += [p["TrainingJobDefinition"] for p in jobs(t, ":createHyperParameterTuningJob")]
        return found

    def key_parameter_accepts_aliases(t: dict[str, Any]) -> None:
        for name in key_parameters(t):
            t["Parameters"][name]["AllowedPattern"] = ".*"

    def check(t: dict[str, Any]) -> None:
        for kind, check_kind in CHECKS.items():
            if of_type(t, kind):
                check_kind(t)

    prd_mutations = [
        no_volume_key, capture_unencrypted, capture_aws_managed, hook_environment_unencrypted,
        monitor_output_unencrypted, monitor_volume_unencrypted, key_parameter_accepts_aliases,
    ]
    if of_type(prd, "AWS::Scheduler::Schedule"):
        prd_mutations.append(schedule_aws_owned_key)
    for mutation in prd_mutations:
        killed(check, mutation, prd)
    killed(check, no_volume_key, dev)

    def state_machine_aws_owned(t: dict[str, Any]) -> None:
        machine(t)["EncryptionConfiguration"] = {"Type": "AWS_OWNED_KEY"}

    def processing_output_unencrypted(t: dict[str, Any]) -> None:
        del jobs(t, ":createProcessingJob")[-1]["ProcessingOutputConfig"]["KmsKeyId"]

    def training_output_unencrypted(t: dict[str, Any]) -> None:
        del jobs(t, ":createTrainingJob")[0]["OutputDataConfig"]["KmsKeyId"]

    def training_volume_unencrypted(t: dict[str, Any]) -> None:
        del jobs(t, ":createTrainingJob")[0]["ResourceConfig"]["VolumeKmsKeyId"]

    def processing_volume_unencrypted(t: dict[str, Any]) -> None:
        del jobs(t, ":createProcessingJob")[0]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]

    def substitution_not_the_key(t: dict[str, Any]) -> None:
        substitutions = machine(t)["DefinitionSubstitutions"]
        for name, value in substitutions.items():
            if is_key(t, value):
                substitutions[name] = "alias/aws/sagemaker"

    mutations = [
        state_machine_aws_owned, processing_output_unencrypted, training_output_unencrypted,
        processing_volume_unencrypted, substitution_not_the_key,
    ]
    # Instances with local NVMe storage take no volume key (the next test covers them).
    if "VolumeKmsKeyId" in jobs(workflow, ":createTrainingJob")[0]["ResourceConfig"]:
        mutations.append(training_volume_unencrypted)
    for mutation in mutations:
        killed(check, mutation, workflow)


@pytest.mark.parametrize(
    ("training", "volume_key_on_training", "volume_key_on_processing"),
    [
        ({"instance_type": "ml.m5.xlarge", "processing_instance_type": "ml.c5.xlarge"}, True, True),
        ({"instance_type": "ml.p3.2xlarge", "processing_instance_type": "ml.m5d.xlarge"}, True, False),
        ({"instance_type": "ml.g5.xlarge", "processing_instance_type": "ml.r5.large"}, False, True),
        ({"instance_type": "ml.g4dn.xlarge", "processing_instance_type": "ml.c5d.xlarge"}, False, False),
    ],
)
def test_job_volumes_take_the_key_exactly_when_ebs_backed(
    training: dict[str, str], volume_key_on_training: bool, volume_key_on_processing: bool
) -> None:
    cfg = config.parse({"training": training})
    t = json.loads(json.dumps(stacks.module("workflow").build(cfg).to_dict()))
    check_state_machines(t)
    [machine] = of_type(t, "AWS::StepFunctions::StateMachine").values()
    seen = {"training": set(), "processing": set()}
    for _, state in all_states(machine["Definition"]):
        resource = state.get("Resource", "")
        if ":sagemaker:createTrainingJob" in resource:
            seen["training"].add("VolumeKmsKeyId" in state["Parameters"]["ResourceConfig"])
        elif ":sagemaker:createProcessingJob" in resource:
            cluster = state["Parameters"]["ProcessingResources"]["ClusterConfig"]
            if cluster["InstanceType"] == training["processing_instance_type"]:
                seen["processing"].add("VolumeKmsKeyId" in cluster)
    assert seen == {"training": {volume_key_on_training}, "processing": {volume_key_on_processing}}


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("name", ["pipeline", "account"])
def test_key_policy_lets_logs_use_the_key_only_for_this_accounts_log_groups(path: Path, name: str) -> None:
    t = template(path, name)
    assert t is not None, f"{name} is off in {path.name}"
    keys = of_type(t, "AWS::KMS::Key")
    assert keys, f"{name} creates no key"
    check_kms_keys(t)

    def policy(t: dict[str, Any]) -> list[dict[str, Any]]:
        return _first(t, "AWS::KMS::Key")["KeyPolicy"]["Statement"]

    def logs_statement(t: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in policy(t) if "logs." in json.dumps(s["Principal"]))

    def logs_condition_dropped(t: dict[str, Any]) -> None:
        del logs_statement(t)["Condition"]

    def logs_condition_any_account(t: dict[str, Any]) -> None:
        logs_statement(t)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] = {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:*:log-group:*"
        }

    def logs_condition_hard_coded_partition(t: dict[str, Any]) -> None:
        logs_statement(t)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] = {
            "Fn::Sub": "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
        }

    def logs_condition_string_like(t: dict[str, Any]) -> None:
        s = logs_statement(t)
        s["Condition"] = {"StringLike": s["Condition"]["ArnLike"]}

    def logs_any_region(t: dict[str, Any]) -> None:
        logs_statement(t)["Principal"] = {"Service": "logs.amazonaws.com"}

    def no_root_admin(t: dict[str, Any]) -> None:
        policy(t)[:] = [s for s in policy(t) if "root" not in json.dumps(s["Principal"])]

    def everyone(t: dict[str, Any]) -> None:
        policy(t).append({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})

    def rotation_off(t: dict[str, Any]) -> None:
        _first(t, "AWS::KMS::Key")["EnableKeyRotation"] = False

    for mutation in (
        logs_condition_dropped, logs_condition_any_account, logs_condition_hard_coded_partition,
        logs_condition_string_like, logs_any_region, no_root_admin, everyone, rotation_off,
    ):
        killed(check_kms_keys, mutation, t)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("name", ["deploy-prd", "account"])
def test_functions_keep_the_key_after_the_sam_transform(path: Path, name: str) -> None:
    t = template(path, name)
    if t is None and name == "deploy-prd" and not config.load(path).deployment.realtime:
        return  # deployment.mode batch: no deploy-prd stack
    assert t is not None, f"{name} is off in {path.name}"
    cfg = config.load(path)
    expanded = sam.expand(t, cfg.project.region)
    functions = of_type(expanded, "AWS::Lambda::Function")
    assert functions
    check_functions(expanded)
    check_log_groups(expanded)
    check_topics(expanded)
