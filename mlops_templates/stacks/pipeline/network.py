"""The private VPC the pipeline stack creates when ``network.create_vpc`` is on.

Two private subnets in two Availability Zones, no internet gateway: SageMaker jobs
and endpoints reach AWS through VPC endpoints only (interface endpoints for the
SageMaker API and runtime, STS, CloudWatch Logs and metrics, ECR, KMS, CodeDeploy and
Lambda; an S3 gateway endpoint). Flow logs go to a KMS-encrypted log group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awacs import logs as logs_actions
from troposphere import GetAtt, GetAZs, Join, Ref, Select, Sub, Tags, ec2, iam, kms

from mlops_templates import iam as iamdoc
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.names import ProjectNames
from mlops_templates.stacks.pipeline.policies import role_arn, service_role
from mlops_templates.stacks.pipeline.stack import Stack

VPC = "Vpc"
SUBNETS = ("PrivateSubnet1", "PrivateSubnet2")
ROUTE_TABLE = "PrivateRouteTable"
ENDPOINT_SECURITY_GROUP = "EndpointSecurityGroup"
WORKLOAD_SECURITY_GROUP = "WorkloadSecurityGroup"
FLOW_LOG_GROUP = "FlowLogGroup"
FLOW_LOG_ROLE = "FlowLogRole"
FLOW_LOG = "FlowLog"
S3_ENDPOINT = "S3GatewayEndpoint"

VPC_CIDR = "10.0.0.0/16"
SUBNET_CIDRS = ("10.0.0.0/19", "10.0.32.0/19")
HTTPS = 443

#: Interface endpoints of every AWS API the jobs, endpoints and functions placed in the
#: VPC call, without internet access: service suffix -> logical ID. The traffic hooks
#: report to CodeDeploy (``codedeploy``; Lambda deployments need only that one, not
#: ``codedeploy-commands-secure``: CodeDeploy user guide, VPC endpoints) and the
#: pre-traffic hook invokes the API version being deployed (``lambda``).
#: tests/test_pipeline.py checks this against the clients the functions create.
INTERFACE_ENDPOINTS: dict[str, str] = {
    "sagemaker.api": "SageMakerApiEndpoint",
    "sagemaker.runtime": "SageMakerRuntimeEndpoint",
    "sts": "StsEndpoint",
    "logs": "LogsEndpoint",
    "ecr.api": "EcrApiEndpoint",
    "ecr.dkr": "EcrDockerEndpoint",
    "monitoring": "MonitoringEndpoint",
    "kms": "KmsEndpoint",
    "codedeploy": "CodeDeployEndpoint",
    "lambda": "LambdaEndpoint",
}


#: Why each network resource exists (Metadata Context).
WHY: dict[str, str] = {
    VPC: "Private network of the project's SageMaker jobs and endpoints (no internet gateway)",
    ROUTE_TABLE: "Routes of the private subnets (local and the S3 gateway endpoint only)",
    ENDPOINT_SECURITY_GROUP: "Admits HTTPS from the VPC to the interface endpoints",
    WORKLOAD_SECURITY_GROUP: "Jobs and endpoints: HTTPS to the endpoints, traffic within a job",
    "WorkloadSecurityGroupSelfIngress": "Traffic between instances of a distributed training job",
    "WorkloadSecurityGroupSelfEgress": "Traffic between instances of a distributed training job",
    FLOW_LOG_GROUP: "Encrypted VPC flow logs",
    FLOW_LOG_ROLE: "Lets VPC Flow Logs write to the flow-log group",
    FLOW_LOG: "Records the VPC's traffic for audits",
    S3_ENDPOINT: "S3 access (data, artifacts, image layers) without internet",
    **{s: "Private subnet in its own Availability Zone" for s in SUBNETS},
    **{f"{s}RouteTableAssociation": "Attaches the private route table" for s in SUBNETS},
    **{
        logical_id: f"Private access to the {service} API without internet"
        for service, logical_id in INTERFACE_ENDPOINTS.items()
    },
}


@dataclass(frozen=True)
class Network:
    """What the rest of the pipeline stack needs from the created VPC."""

    vpc_id: Ref
    subnet_ids: list[Ref]
    security_group_id: Ref


def _tags(base_tags: Tags, name: Sub) -> Tags:
    return base_tags + Tags(Name=name)


def _https_within_vpc(description: str) -> ec2.SecurityGroupRule:
    """HTTPS between the workloads and the interface endpoints, which share the VPC's range."""
    return ec2.SecurityGroupRule(
        Description=description, IpProtocol="tcp", FromPort=HTTPS, ToPort=HTTPS, CidrIp=VPC_CIDR
    )


def create(stack: Stack, project_key: kms.Key) -> Network:
    """Add the VPC, its subnets, endpoints, security groups and flow logs."""
    names, tags = stack.names, stack.tags("network")
    vpc = stack.add(
        ec2.VPC(
            VPC,
            CidrBlock=VPC_CIDR,
            EnableDnsHostnames=True,  # private DNS names of the interface endpoints
            EnableDnsSupport=True,
            Tags=_tags(tags, names.name("vpc")),
        )
    )
    route_table = stack.add(
        ec2.RouteTable(ROUTE_TABLE, VpcId=Ref(vpc), Tags=_tags(tags, names.name("private")))
    )
    subnets = _subnets(stack, vpc, route_table, tags)
    workload_sg = _workload_security_group(stack, vpc, tags)
    _endpoints(stack, vpc, route_table, subnets, tags)
    _flow_logs(stack, vpc, project_key, tags)
    return Network(
        vpc_id=Ref(vpc),
        subnet_ids=[Ref(s) for s in subnets],
        security_group_id=Ref(workload_sg),
    )


def subnet_list(network: Network) -> Join:
    return Join(",", network.subnet_ids)


def _subnets(stack: Stack, vpc: ec2.VPC, route_table: ec2.RouteTable, tags: Tags) -> list[ec2.Subnet]:
    """One private subnet per Availability Zone, each on the private route table."""
    subnets = []
    for index, (logical_id, cidr) in enumerate(zip(SUBNETS, SUBNET_CIDRS, strict=True)):
        subnet = stack.add(
            ec2.Subnet(
                logical_id,
                VpcId=Ref(vpc),
                CidrBlock=cidr,
                AvailabilityZone=Select(index, GetAZs("")),
                MapPublicIpOnLaunch=False,
                Tags=_tags(tags, stack.names.name(f"private-{index + 1}")),
            )
        )
        stack.add(
            ec2.SubnetRouteTableAssociation(
                f"{logical_id}RouteTableAssociation",
                SubnetId=Ref(subnet),
                RouteTableId=Ref(route_table),
            )
        )
        subnets.append(subnet)
    return subnets


def _workload_security_group(stack: Stack, vpc: ec2.VPC, tags: Tags) -> ec2.SecurityGroup:
    """The security group of the jobs and endpoints: HTTPS to the endpoints, and each other."""
    workload_sg = stack.add(
        ec2.SecurityGroup(
            WORKLOAD_SECURITY_GROUP,
            GroupDescription="SageMaker jobs and endpoints of the project",
            VpcId=Ref(vpc),
            SecurityGroupEgress=[_https_within_vpc("HTTPS to the VPC endpoints")],
            Tags=_tags(tags, stack.names.name("workload")),
        )
    )
    # Distributed training talks between instances of the same job.
    stack.add(
        ec2.SecurityGroupIngress(
            "WorkloadSecurityGroupSelfIngress",
            GroupId=Ref(workload_sg),
            Description="Traffic between instances of one training job",
            IpProtocol="-1",
            SourceSecurityGroupId=Ref(workload_sg),
        )
    )
    stack.add(
        ec2.SecurityGroupEgress(
            "WorkloadSecurityGroupSelfEgress",
            GroupId=Ref(workload_sg),
            Description="Traffic between instances of one training job",
            IpProtocol="-1",
            DestinationSecurityGroupId=Ref(workload_sg),
        )
    )
    return workload_sg


def _endpoints(
    stack: Stack, vpc: ec2.VPC, route_table: ec2.RouteTable, subnets: list[ec2.Subnet], tags: Tags
) -> None:
    """The interface endpoints, their security group, and the S3 gateway endpoint."""
    endpoint_sg = stack.add(
        ec2.SecurityGroup(
            ENDPOINT_SECURITY_GROUP,
            GroupDescription="Interface VPC endpoints of the project",
            VpcId=Ref(vpc),
            SecurityGroupIngress=[_https_within_vpc("HTTPS from the VPC")],
            # Endpoints only answer; an unroutable rule replaces the default allow-all egress.
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    Description="No outbound traffic",
                    IpProtocol="icmp",
                    FromPort=252,
                    ToPort=86,
                    CidrIp="255.255.255.255/32",
                )
            ],
            Tags=_tags(tags, stack.names.name("endpoints")),
        )
    )
    for service, logical_id in INTERFACE_ENDPOINTS.items():
        stack.add(
            ec2.VPCEndpoint(
                logical_id,
                VpcId=Ref(vpc),
                VpcEndpointType="Interface",
                ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                SubnetIds=[Ref(s) for s in subnets],
                SecurityGroupIds=[Ref(endpoint_sg)],
                PrivateDnsEnabled=True,
            )
        )
    stack.add(
        ec2.VPCEndpoint(
            S3_ENDPOINT,
            VpcId=Ref(vpc),
            VpcEndpointType="Gateway",
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            RouteTableIds=[Ref(route_table)],
        )
    )


def _flow_logs(stack: Stack, vpc: ec2.VPC, project_key: kms.Key, tags: Tags) -> None:
    """The VPC's flow logs, their encrypted log group and delivery role."""
    cfg, names = stack.config, stack.names
    group = stack.add(
        common.log_group(
            FLOW_LOG_GROUP,
            cfg,
            "network",
            project_key,
            cfg.pipeline.log_retention_days,
            name=Sub(
                f"/{names.prefix}/${{SageMakerProjectName}}/vpc-flow-logs-${{Suffix}}",
                Suffix=common.stack_suffix(),
            ),
        )
    )
    group.Tags = tags
    role = stack.add(flow_logs_role(FLOW_LOG_ROLE, names, GetAtt(group, "Arn"), tags))
    stack.add(
        ec2.FlowLog(
            FLOW_LOG,
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType="ALL",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=role_arn(role),
            Tags=_tags(tags, names.name("flow-logs")),
        )
    )


def flow_logs_role(logical_id: str, names: ProjectNames, log_group_arn: Any, tags: Tags) -> iam.Role:
    """The role VPC Flow Logs assumes to write into the flow-log group."""
    statements = [
        iamdoc.allow(
            [logs_actions.CreateLogStream, logs_actions.PutLogEvents, logs_actions.DescribeLogStreams],
            log_group_arn,
            sid="WriteFlowLogs",
        ),
        # DescribeLogGroups supports no resource-level permissions.
        iamdoc.allow([logs_actions.DescribeLogGroups], "*", sid="FindLogGroup"),
    ]
    return service_role(
        logical_id, names, "flow-logs", "vpc-flow-logs.amazonaws.com", statements, tags,
        "VPC Flow Logs delivery role",
    )
